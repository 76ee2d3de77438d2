-- Tokens each user's exchanges used per UTC day (YYYY-MM-DD): the daily AI
-- budget. A row is added to as each exchange finishes, in the same
-- transaction.
CREATE TABLE token_usage (
	user_id TEXT NOT NULL,
	day     TEXT NOT NULL,
	tokens  INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (user_id, day)
) WITHOUT ROWID;
