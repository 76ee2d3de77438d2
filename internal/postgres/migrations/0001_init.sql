-- Names are unqualified: they land in the first schema of the search_path,
-- which Open sets when it is given a schema.
-- Ids are COLLATE "C" so keyset pages order them bytewise, as SQLite and
-- Go do, whatever the database's locale.
CREATE TABLE conversations (
	id         text COLLATE "C" PRIMARY KEY,
	user_id    text NOT NULL,
	title      text NOT NULL,
	created_at timestamptz NOT NULL,
	updated_at timestamptz NOT NULL
);
CREATE INDEX conversations_user_updated ON conversations (user_id, updated_at DESC, id DESC);

CREATE TABLE messages (
	id                text COLLATE "C" PRIMARY KEY,
	conversation_id   text COLLATE "C" NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
	user_id           text NOT NULL,
	provider          text NOT NULL,
	text              text NOT NULL,
	reply             text NOT NULL DEFAULT '',
	status            text NOT NULL,
	error_code        text NOT NULL DEFAULT '',
	error_message     text NOT NULL DEFAULT '',
	model             text NOT NULL DEFAULT '',
	finish_reason     text NOT NULL DEFAULT '',
	prompt_tokens     bigint NOT NULL DEFAULT 0,
	completion_tokens bigint NOT NULL DEFAULT 0,
	total_tokens      bigint NOT NULL DEFAULT 0,
	trace_id          text NOT NULL DEFAULT '',
	last_seq          bigint NOT NULL DEFAULT 0,
	idempotency_key   text,
	request_hash      text NOT NULL DEFAULT '',
	lease_owner       text,
	lease_until       timestamptz,
	created_at        timestamptz NOT NULL,
	updated_at        timestamptz NOT NULL,
	completed_at      timestamptz
);
CREATE UNIQUE INDEX messages_user_idempotency ON messages (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX messages_conversation_created ON messages (conversation_id, created_at DESC, id DESC);
CREATE INDEX messages_running ON messages (user_id) WHERE status IN ('queued', 'working');
CREATE INDEX messages_running_created ON messages (created_at, id) WHERE status IN ('queued', 'working');

CREATE TABLE outbox (
	id              text COLLATE "C" PRIMARY KEY,
	record          jsonb NOT NULL,
	state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'dead')),
	attempts        integer NOT NULL DEFAULT 0,
	next_attempt_at timestamptz NOT NULL,
	lease_owner     text,
	lease_until     timestamptz,
	last_error      text NOT NULL DEFAULT '',
	created_at      timestamptz NOT NULL
);
CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE state = 'pending';
