-- Tokens each user's exchanges used per UTC day: the daily AI budget
-- (GYMBRO_AI_DAILY_TOKENS) that every instance of a fleet enforces alike.
-- A row is added to as each exchange finishes, in the same transaction.
CREATE TABLE token_usage (
	user_id text NOT NULL,
	day     date NOT NULL,
	tokens  bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (user_id, day)
);
