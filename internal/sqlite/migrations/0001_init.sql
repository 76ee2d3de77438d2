-- Times are INTEGER microseconds since the Unix epoch, UTC: they sort and
-- compare as numbers, and match PostgreSQL's timestamptz precision so both
-- stores round-trip the same values.
CREATE TABLE conversations (
	id         TEXT PRIMARY KEY,
	user_id    TEXT NOT NULL,
	title      TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
);
CREATE INDEX conversations_user_updated ON conversations (user_id, updated_at DESC, id DESC);

CREATE TABLE messages (
	id                TEXT PRIMARY KEY,
	conversation_id   TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
	user_id           TEXT NOT NULL,
	provider          TEXT NOT NULL,
	text              TEXT NOT NULL,
	reply             TEXT NOT NULL DEFAULT '',
	status            TEXT NOT NULL,
	error_code        TEXT NOT NULL DEFAULT '',
	error_message     TEXT NOT NULL DEFAULT '',
	model             TEXT NOT NULL DEFAULT '',
	finish_reason     TEXT NOT NULL DEFAULT '',
	prompt_tokens     INTEGER NOT NULL DEFAULT 0,
	completion_tokens INTEGER NOT NULL DEFAULT 0,
	total_tokens      INTEGER NOT NULL DEFAULT 0,
	trace_id          TEXT NOT NULL DEFAULT '',
	last_seq          INTEGER NOT NULL DEFAULT 0,
	idempotency_key   TEXT,
	request_hash      TEXT NOT NULL DEFAULT '',
	lease_owner       TEXT,
	lease_until       INTEGER,
	created_at        INTEGER NOT NULL,
	updated_at        INTEGER NOT NULL,
	completed_at      INTEGER
);
CREATE UNIQUE INDEX messages_user_idempotency ON messages (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX messages_conversation_created ON messages (conversation_id, created_at DESC, id DESC);
CREATE INDEX messages_running ON messages (user_id) WHERE status IN ('queued', 'working');
CREATE INDEX messages_running_created ON messages (created_at, id) WHERE status IN ('queued', 'working');

CREATE TABLE outbox (
	id              TEXT PRIMARY KEY,
	record          TEXT NOT NULL,
	state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'dead')),
	attempts        INTEGER NOT NULL DEFAULT 0,
	next_attempt_at INTEGER NOT NULL,
	lease_owner     TEXT,
	lease_until     INTEGER,
	last_error      TEXT NOT NULL DEFAULT '',
	created_at      INTEGER NOT NULL
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at, id);
