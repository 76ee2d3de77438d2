package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/sqlstore"
)

const messageColumns = `id, conversation_id, user_id, provider, text, reply, status,
	error_code, error_message, model, finish_reason, prompt_tokens, completion_tokens,
	total_tokens, trace_id, last_seq, created_at, updated_at, completed_at`

// scanMessage reads messageColumns, then any extra columns into extra.
func scanMessage(row pgx.Row, extra ...any) (*gymbro.Message, error) {
	var (
		m      gymbro.Message
		status string
	)
	dest := append([]any{&m.ID, &m.ConversationID, &m.UserID, &m.Provider, &m.Text, &m.Reply, &status,
		&m.ErrorCode, &m.ErrorMessage, &m.Model, &m.FinishReason, &m.Usage.PromptTokens,
		&m.Usage.CompletionTokens, &m.Usage.TotalTokens, &m.TraceID, &m.LastSeq,
		&m.CreatedAt, &m.UpdatedAt, &m.CompletedAt}, extra...)
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	m.Status = gymbro.Status(status)
	m.CreatedAt, m.UpdatedAt, m.CompletedAt = m.CreatedAt.UTC(), m.UpdatedAt.UTC(), utcPtr(m.CompletedAt)
	return &m, nil
}

func scanMessages(rows pgx.Rows) ([]*gymbro.Message, error) {
	defer rows.Close()
	var out []*gymbro.Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func getMessage(ctx context.Context, q querier, id string) (*gymbro.Message, error) {
	m, err := scanMessage(q.QueryRow(ctx, `SELECT `+messageColumns+` FROM messages WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, gymbro.MessageNotFound()
	}
	return m, err
}

// CreateMessage stores a new exchange, taken by its generation; see
// gymbro.Store and sqlstore.CreateMessage, which decides. It costs one
// round trip: a pipelined batch of BEGIN, the lock, the idempotent prior,
// one statement that reads the rest of the admission and writes only when
// it admits, and COMMIT.
func (db *DB) CreateMessage(ctx context.Context, in gymbro.NewMessage) (*gymbro.Message, bool, error) {
	var (
		out      *gymbro.Message
		replayed bool
	)
	err := db.pipelined(ctx, func(p *pipe) (err error) {
		out, replayed, err = sqlstore.CreateMessage(ctx, createTx{p}, in, ts(orNow(in.Now, db.now)))
		return err
	})
	if err != nil {
		return nil, false, err
	}
	return out, replayed, nil
}

// createTx is PostgreSQL's half of the create-message transaction.
type createTx struct{ p *pipe }

// qCreate reads the admission (running count and the day's tokens, each
// only when its limit is set; whether the idempotency key is taken) and,
// in the same statement and snapshot, writes the conversation and the
// message only when sqlstore.Admits would: the rule in SQL, so that the
// decision costs no round trip of its own. The message goes only into a
// conversation of the same user: another user's conversation id touches
// no row, so nothing is inserted (and the id is then reported missing).
// Its one row: running, tokens, whether the message was inserted, whether
// the admission admitted it.
//
// $1 id, $2 conversation, $3 user, $4 provider, $5 text, $6 status,
// $7 trace, $8 key, $9 request hash, $10 at, $11 lease owner, $12 lease
// until, $13 new conversation, $14 its title, $15 cap, $16 budget, $17 day.
const qCreate = `WITH a AS (
	SELECT CASE WHEN $15::int > 0 THEN (SELECT count(*) FROM messages
			WHERE user_id = $3 AND status IN ('queued', 'working')) ELSE 0 END AS running,
		CASE WHEN $16::bigint > 0 THEN (SELECT coalesce(sum(tokens), 0) FROM token_usage
			WHERE user_id = $3 AND day = $17) ELSE 0 END AS tokens,
		EXISTS (SELECT 1 FROM messages WHERE user_id = $3 AND idempotency_key = $8) AS prior
), ok AS (
	SELECT 1 FROM a WHERE NOT prior AND ($15 <= 0 OR running < $15) AND ($16 <= 0 OR tokens < $16)
), conv AS (
	INSERT INTO conversations (id, user_id, title, created_at, updated_at)
	SELECT $2, $3, $14, $10, $10 FROM ok WHERE $13
	RETURNING id
), bumped AS (
	UPDATE conversations SET updated_at = greatest(updated_at, $10)
	WHERE id = $2 AND user_id = $3 AND NOT $13 AND EXISTS (SELECT 1 FROM ok)
	RETURNING id
), msg AS (
	INSERT INTO messages (id, conversation_id, user_id, provider, text, status,
		trace_id, idempotency_key, request_hash, created_at, updated_at, lease_owner, lease_until)
	SELECT $1, c.id, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, $12
	FROM (SELECT id FROM conv UNION ALL SELECT id FROM bumped) c
	RETURNING 1
)
SELECT running, tokens, EXISTS (SELECT 1 FROM msg), EXISTS (SELECT 1 FROM ok) FROM a`

// Create takes one transaction-scoped advisory lock, reads the idempotent
// prior and runs qCreate, all in one pipelined batch with COMMIT. Creates
// of one user take turns on the user's lock when a cap or a budget is in
// force, so two instances cannot both count n-1 and both insert; otherwise
// creates with the same key take turns on the key's lock, so the loser of
// a race sees the winner's row and replays it instead of failing on the
// unique index (which stays as the backstop). Each statement after the
// lock reads what the lock's previous holders committed.
func (c createTx) Create(ctx context.Context, in gymbro.NewMessage, r sqlstore.Row) (sqlstore.Admission, sqlstore.Outcome, error) {
	var (
		a                  sqlstore.Admission
		inserted, admitted bool
	)
	b := &pgx.Batch{}
	switch {
	case in.MaxRunning > 0 || in.DailyTokens > 0:
		b.Queue(`SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, "gymbro_user:"+in.UserID)
	case in.IdempotencyKey != "":
		b.Queue(`SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, "gymbro_idem:"+in.UserID+"\x1f"+in.IdempotencyKey)
	}
	var key *string
	if in.IdempotencyKey != "" {
		key = &in.IdempotencyKey
		b.Queue(`SELECT `+messageColumns+`, request_hash FROM messages WHERE user_id = $1 AND idempotency_key = $2`,
			in.UserID, in.IdempotencyKey).QueryRow(func(row pgx.Row) error {
			m, err := scanMessage(row, &a.PriorHash)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			a.Prior = m
			return err
		})
	}
	m := r.Message
	b.Queue(qCreate, m.ID, m.ConversationID, m.UserID, m.Provider, m.Text, string(m.Status),
		m.TraceID, key, r.RequestHash, m.CreatedAt, r.Lease.Owner, ts(r.Lease.Until),
		r.NewConversation, r.Title, in.MaxRunning, in.DailyTokens, gymbro.UsageDay(in.Now),
	).QueryRow(func(row pgx.Row) error { return row.Scan(&a.Running, &a.TokensUsed, &inserted, &admitted) })
	err := c.p.send(b, true)
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.TableName == "conversations":
		return a, sqlstore.ConversationExists, nil
	case isUnique(err):
		return a, sqlstore.MessageExists, nil
	case err != nil:
		return a, 0, err
	case !admitted:
		return a, sqlstore.NotAdmitted, nil
	case !inserted:
		return a, sqlstore.ConversationMissing, nil
	}
	return a, sqlstore.Inserted, nil
}

// Message returns the user's exchange; another user's reads as missing so
// ids cannot be probed (OWASP API1:2023, broken object level authorization).
func (db *DB) Message(ctx context.Context, userID, id string) (*gymbro.Message, error) {
	m, err := getMessage(ctx, db.q, id)
	if err != nil {
		return nil, dbErr(err)
	}
	if m.UserID != userID {
		return nil, gymbro.MessageNotFound()
	}
	return m, nil
}

// MessageByID returns an exchange whoever owns it.
func (db *DB) MessageByID(ctx context.Context, id string) (*gymbro.Message, error) {
	m, err := getMessage(ctx, db.q, id)
	return m, dbErr(err)
}

func exists(ctx context.Context, q querier, id string) (bool, error) {
	var ok bool
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM messages WHERE id = $1)`, id).Scan(&ok)
	return ok, err
}

// guardedUpdate runs one UPDATE whose WHERE encodes the allowed state; the
// row lock it takes makes check and change one step. It commits
// asynchronously (synchronous_commit off, for this transaction only): what
// it records (a generation renewing its lease, checkpointing its reply) is
// state a crash loses anyway, and recovery ends such a message as
// interrupted. So no caller waits for a WAL flush, and
// only CreateMessage and FinishMessage, which record what a client was
// told, wait for theirs. It is still one round trip.
func (db *DB) guardedUpdate(ctx context.Context, id, code, msg, query string, args ...any) error {
	var n int64
	err := db.pipelined(ctx, func(p *pipe) error {
		b := &pgx.Batch{}
		b.Queue(`SET LOCAL synchronous_commit = off`)
		b.Queue(query, args...).Exec(func(tag pgconn.CommandTag) error {
			n = tag.RowsAffected()
			return nil
		})
		return p.send(b, true)
	})
	if err != nil {
		return err
	}
	if n == 0 {
		return dbErr(sqlstore.StateError(ctx, func(ctx context.Context, id string) (bool, error) {
			return exists(ctx, db.q, id)
		}, id, code, msg))
	}
	return nil
}

// RenewLease extends owner's lease on a working exchange.
func (db *DB) RenewLease(ctx context.Context, id, owner string, leaseUntil time.Time) error {
	return db.guardedUpdate(ctx, id, "lease_lost", "The lease on the message is lost.",
		`UPDATE messages SET lease_until = $1 WHERE id = $2 AND status = 'working' AND lease_owner = $3`,
		ts(leaseUntil), id, owner)
}

// SaveReply checkpoints the partial reply of a running exchange.
func (db *DB) SaveReply(ctx context.Context, id, reply string) error {
	return db.guardedUpdate(ctx, id, "message_terminal", "The message is already finished.",
		`UPDATE messages SET reply = $1, updated_at = $2 WHERE id = $3 AND status IN ('queued', 'working')`,
		reply, ts(db.now()), id)
}

// FinishMessage records the result, its outbox record and the user's
// tokens in one statement, a transaction of its own; see
// sqlstore.FinishMessage.
func (db *DB) FinishMessage(ctx context.Context, m *gymbro.Message, r gymbro.Result) (*gymbro.Message, error) {
	done, err := sqlstore.FinishMessage(ctx, finishTx{db}, m, r, ts(orNow(r.At, db.now)))
	return done, dbErr(err)
}

// finishTx is PostgreSQL's half of the finish-message transaction.
type finishTx struct{ db *DB }

// qFinish updates the exchange if it is running and its creation fields
// match, and with the updated row, and only then, inserts the outbox
// record and adds the tokens (when there are any): one statement, so it
// all commits or none of it does. Its one row counts the updated rows.
//
// $1 status, $2 reply, $3 error code, $4 error message, $5 model, $6 finish
// reason, $7–$9 usage, $10 last seq, $11 at, $12 id, $13 user, $14
// conversation, $15 provider, $16 text, $17 trace, $18 created at, $19
// record, $20 day, $21 tokens.
const qFinish = `WITH done AS (
	UPDATE messages SET status = $1, reply = $2, error_code = $3, error_message = $4, model = $5,
		finish_reason = $6, prompt_tokens = $7, completion_tokens = $8, total_tokens = $9, last_seq = $10,
		completed_at = $11, updated_at = $11, lease_owner = NULL, lease_until = NULL
	WHERE id = $12 AND status IN ('queued', 'working') AND user_id = $13 AND conversation_id = $14
		AND provider = $15 AND text = $16 AND trace_id = $17 AND created_at = $18
	RETURNING id, user_id
), synced AS (
	INSERT INTO outbox (id, record, next_attempt_at, created_at) SELECT id, $19::jsonb, $11, $11 FROM done
), counted AS (
	INSERT INTO token_usage (user_id, day, tokens) SELECT user_id, $20::date, $21::bigint FROM done WHERE $21::bigint > 0
	ON CONFLICT (user_id, day) DO UPDATE SET tokens = token_usage.tokens + excluded.tokens
)
SELECT count(*) FROM done`

func (f finishTx) Finish(ctx context.Context, m *gymbro.Message, record []byte, day string, tokens int64) (bool, error) {
	var n int
	err := f.db.q.QueryRow(ctx, qFinish, string(m.Status), m.Reply, m.ErrorCode, m.ErrorMessage, m.Model,
		m.FinishReason, m.Usage.PromptTokens, m.Usage.CompletionTokens, m.Usage.TotalTokens, m.LastSeq,
		m.UpdatedAt, m.ID, m.UserID, m.ConversationID, m.Provider, m.Text, m.TraceID, ts(m.CreatedAt),
		string(record), day, tokens).Scan(&n)
	return n == 1, err
}

func (f finishTx) Stored(ctx context.Context, id string) (*gymbro.Message, error) {
	m, err := getMessage(ctx, f.db.q, id)
	if gymbro.ErrorCode(err) == gymbro.CodeMessageNotFound {
		return nil, nil
	}
	return m, err
}

// TokensUsed returns what the user's exchanges used on day; see gymbro.UsageLedger.
func (db *DB) TokensUsed(ctx context.Context, userID, day string) (int64, error) {
	var n int64
	err := db.q.QueryRow(ctx, `SELECT coalesce(sum(tokens), 0) FROM token_usage WHERE user_id = $1 AND day = $2`,
		userID, day).Scan(&n)
	return n, dbErr(err)
}

// ChargeTokens adds tokens to the user's count for day; see gymbro.UsageLedger.
func (db *DB) ChargeTokens(ctx context.Context, userID, day string, tokens int64) error {
	if tokens <= 0 {
		return nil
	}
	_, err := db.q.Exec(ctx, `INSERT INTO token_usage (user_id, day, tokens) VALUES ($1, $2::date, $3)
		ON CONFLICT (user_id, day) DO UPDATE SET tokens = token_usage.tokens + excluded.tokens`, userID, day, tokens)
	return dbErr(err)
}

// DiscardMessage deletes an exchange owner holds, and its conversation
// when it holds no other; see gymbro.Store.
func (db *DB) DiscardMessage(ctx context.Context, id, owner string) error {
	return db.tx(ctx, func(tx pgx.Tx) error {
		var convID string
		err := tx.QueryRow(ctx, `DELETE FROM messages WHERE id = $1 AND status = 'working' AND lease_owner = $2
			RETURNING conversation_id`, id, owner).Scan(&convID)
		if errors.Is(err, pgx.ErrNoRows) {
			return sqlstore.StateError(ctx, func(ctx context.Context, id string) (bool, error) { return exists(ctx, tx, id) },
				id, "message_not_held", "The message is finished or held by another instance.")
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM conversations c WHERE id = $1
			AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id)`, convID)
		return err
	})
}

// ExpiredLeases returns running exchanges nobody holds a live lease on.
func (db *DB) ExpiredLeases(ctx context.Context, now time.Time, limit int) ([]*gymbro.Message, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := db.q.Query(ctx, `SELECT `+messageColumns+` FROM messages
		WHERE status IN ('queued', 'working')
		AND ((lease_until IS NOT NULL AND lease_until < $1) OR (lease_until IS NULL AND created_at < $1))
		ORDER BY created_at, id LIMIT $2`, ts(now), limit)
	if err != nil {
		return nil, dbErr(err)
	}
	ms, err := scanMessages(rows)
	return ms, dbErr(err)
}

// Conversations lists the user's conversations, most recently updated first.
func (db *DB) Conversations(ctx context.Context, userID string, p gymbro.Page) ([]*gymbro.Conversation, string, error) {
	c, err := gymbro.DecodeCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	limit := p.Size()
	q := `SELECT id, user_id, title, created_at, updated_at FROM conversations WHERE user_id = $1`
	args := []any{userID, limit + 1}
	if c != nil {
		q += ` AND (updated_at, id) < ($3, $4)`
		args = append(args, time.UnixMicro(c.At), c.ID)
	}
	q += ` ORDER BY updated_at DESC, id DESC LIMIT $2`
	rows, err := db.q.Query(ctx, q, args...)
	if err != nil {
		return nil, "", dbErr(err)
	}
	defer rows.Close()
	var out []*gymbro.Conversation
	for rows.Next() {
		var cv gymbro.Conversation
		if err := rows.Scan(&cv.ID, &cv.UserID, &cv.Title, &cv.CreatedAt, &cv.UpdatedAt); err != nil {
			return nil, "", dbErr(err)
		}
		cv.CreatedAt, cv.UpdatedAt = cv.CreatedAt.UTC(), cv.UpdatedAt.UTC()
		out = append(out, &cv)
	}
	if err := rows.Err(); err != nil {
		return nil, "", dbErr(err)
	}
	out, next := sqlstore.NextPage(out, limit, func(last *gymbro.Conversation) gymbro.Cursor {
		return gymbro.Cursor{At: last.UpdatedAt.UnixMicro(), ID: last.ID}
	})
	return out, next, nil
}

// ConversationMessages lists one of the user's conversations, newest first.
func (db *DB) ConversationMessages(ctx context.Context, userID, conversationID string, p gymbro.Page) ([]*gymbro.Message, string, error) {
	c, err := gymbro.DecodeCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	limit := p.Size()
	var exists bool
	if err := db.q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM conversations WHERE id = $1 AND user_id = $2)`,
		conversationID, userID).Scan(&exists); err != nil {
		return nil, "", dbErr(err)
	}
	if !exists {
		return nil, "", gymbro.ConversationNotFound()
	}
	q := `SELECT ` + messageColumns + ` FROM messages WHERE conversation_id = $1`
	args := []any{conversationID, limit + 1}
	if c != nil {
		q += ` AND (created_at, id) < ($3, $4)`
		args = append(args, time.UnixMicro(c.At), c.ID)
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT $2`
	rows, err := db.q.Query(ctx, q, args...)
	if err != nil {
		return nil, "", dbErr(err)
	}
	out, err := scanMessages(rows)
	if err != nil {
		return nil, "", dbErr(err)
	}
	out, next := sqlstore.NextPage(out, limit, func(last *gymbro.Message) gymbro.Cursor {
		return gymbro.Cursor{At: last.CreatedAt.UnixMicro(), ID: last.ID}
	})
	return out, next, nil
}

// History returns the completed exchanges of a conversation that precede
// before (all of them when before is empty), the latest limit of them,
// oldest first. A limit of zero or less returns none.
func (db *DB) History(ctx context.Context, conversationID, before string, limit int) ([]*gymbro.Message, error) {
	if limit <= 0 {
		return nil, nil
	}
	q := `SELECT ` + messageColumns + ` FROM messages WHERE conversation_id = $1 AND status = 'completed'`
	args := []any{conversationID, limit}
	if before != "" {
		var at time.Time
		err := db.q.QueryRow(ctx, `SELECT created_at FROM messages WHERE id = $1 AND conversation_id = $2`,
			before, conversationID).Scan(&at)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, gymbro.MessageNotFound()
		}
		if err != nil {
			return nil, dbErr(err)
		}
		q += ` AND (created_at, id) < ($3, $4)`
		args = append(args, at, before)
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT $2`
	rows, err := db.q.Query(ctx, q, args...)
	if err != nil {
		return nil, dbErr(err)
	}
	out, err := scanMessages(rows)
	if err != nil {
		return nil, dbErr(err)
	}
	return sqlstore.Reverse(out), nil
}

// CountRunning counts the user's queued and working exchanges.
func (db *DB) CountRunning(ctx context.Context, userID string) (int, error) {
	var n int
	err := db.q.QueryRow(ctx, `SELECT count(*) FROM messages WHERE user_id = $1 AND status IN ('queued', 'working')`,
		userID).Scan(&n)
	return n, dbErr(err)
}
