-- A user is an issuer and a subject. Until now the token's sub alone was
-- the user id, whichever issuer signed it, so a Firebase token whose sub
-- equalled a Supabase user's id was that user. From now on a Supabase
-- user's id stays their Supabase id (these rows are untouched), a Firebase
-- user's is 'firebase:<sub>', an OIDC user's 'oidc:<issuer-hash>:<sub>'.
--
-- Firebase users' exchanges move to their new id, with each conversation
-- that holds only theirs. A conversation that also holds another
-- provider's exchanges stays with its owner (only the exchanges move).
-- OIDC users' rows cannot be moved here, since the issuer is not stored;
-- README ("Identity across providers") has the statement to run for one.
-- A day's token count restarts for the users whose id changes.
UPDATE conversations SET user_id = 'firebase:' || user_id
WHERE user_id NOT LIKE '%:%'
	AND EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = conversations.id AND m.provider = 'firebase')
	AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = conversations.id AND m.provider <> 'firebase');
UPDATE messages SET user_id = 'firebase:' || user_id
WHERE provider = 'firebase' AND user_id NOT LIKE 'firebase:%';
