package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/sqlstore"
)

const messageColumns = `id, conversation_id, user_id, provider, text, reply, status,
	error_code, error_message, model, finish_reason, prompt_tokens, completion_tokens,
	total_tokens, trace_id, last_seq, created_at, updated_at, completed_at`

// The statements every exchange runs on the write connection.
const (
	qPrior      = `SELECT ` + messageColumns + `, request_hash FROM messages WHERE user_id = ? AND idempotency_key = ?`
	qInsertConv = `INSERT INTO conversations (id, user_id, title, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`
	qBumpConv   = `UPDATE conversations SET updated_at = max(updated_at, ?) WHERE id = ? AND user_id = ?`
	qInsertMsg  = `INSERT INTO messages (id, conversation_id, user_id, provider, text, status,
		trace_id, idempotency_key, request_hash, created_at, updated_at, lease_owner, lease_until)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qFinish = `UPDATE messages SET status = ?, reply = ?, error_code = ?, error_message = ?,
		model = ?, finish_reason = ?, prompt_tokens = ?, completion_tokens = ?, total_tokens = ?,
		last_seq = ?, completed_at = ?, updated_at = ?, lease_owner = NULL, lease_until = NULL
		WHERE id = ? AND status IN ('queued', 'working') AND user_id = ? AND conversation_id = ?
		AND provider = ? AND text = ? AND trace_id = ? AND created_at = ?`
	qEnqueue   = `INSERT INTO outbox (id, record, next_attempt_at, created_at) VALUES (?, ?, ?, ?)`
	qAddTokens = `INSERT INTO token_usage (user_id, day, tokens) VALUES (?, ?, ?)
		ON CONFLICT (user_id, day) DO UPDATE SET tokens = tokens + excluded.tokens`
	qTokensUsed = `SELECT coalesce(sum(tokens), 0) FROM token_usage WHERE user_id = ? AND day = ?`
	qGetMsg     = `SELECT ` + messageColumns + ` FROM messages WHERE id = ?`
	qRenew      = `UPDATE messages SET lease_until = ? WHERE id = ? AND status = 'working' AND lease_owner = ?`
	qSaveReply  = `UPDATE messages SET reply = ?, updated_at = ? WHERE id = ? AND status IN ('queued', 'working')`
)

var hotWrites = []string{qPrior, qInsertConv, qBumpConv, qInsertMsg, qFinish, qEnqueue, qAddTokens, qTokensUsed,
	qGetMsg, qRenew, qSaveReply, qCountRunning, qClaim, qAck}

// The reads of the request paths and of every generation, one constant per
// shape (a cursor or a before bound is a different statement), prepared
// once on the read pool.
const (
	qCountRunning = `SELECT count(*) FROM messages WHERE user_id = ? AND status IN ('queued', 'working')`
	qHistory      = `SELECT ` + messageColumns + ` FROM messages WHERE conversation_id = ? AND status = 'completed'
		ORDER BY created_at DESC, id DESC LIMIT ?`
	qHistoryAt     = `SELECT created_at FROM messages WHERE id = ? AND conversation_id = ?`
	qHistoryBefore = `SELECT ` + messageColumns + ` FROM messages WHERE conversation_id = ? AND status = 'completed'
		AND (created_at < ? OR (created_at = ? AND id < ?))
		ORDER BY created_at DESC, id DESC LIMIT ?`
	qConvOwned    = `SELECT count(*) FROM conversations WHERE id = ? AND user_id = ?`
	qConvMessages = `SELECT ` + messageColumns + ` FROM messages WHERE conversation_id = ?
		ORDER BY created_at DESC, id DESC LIMIT ?`
	qConvMessagesAfter = `SELECT ` + messageColumns + ` FROM messages WHERE conversation_id = ?
		AND (created_at < ? OR (created_at = ? AND id < ?))
		ORDER BY created_at DESC, id DESC LIMIT ?`
	qConversations = `SELECT id, user_id, title, created_at, updated_at FROM conversations WHERE user_id = ?
		ORDER BY updated_at DESC, id DESC LIMIT ?`
	qConversationsAfter = `SELECT id, user_id, title, created_at, updated_at FROM conversations WHERE user_id = ?
		AND (updated_at < ? OR (updated_at = ? AND id < ?))
		ORDER BY updated_at DESC, id DESC LIMIT ?`
)

var hotReads = []string{qGetMsg, qCountRunning, qTokensUsed, qHistory, qHistoryAt, qHistoryBefore,
	qConvOwned, qConvMessages, qConvMessagesAfter, qConversations, qConversationsAfter}

type scanner interface{ Scan(dest ...any) error }

// scanMessage reads messageColumns, then any extra columns into extra.
func scanMessage(s scanner, extra ...any) (*gymbro.Message, error) {
	var (
		m                gymbro.Message
		status           string
		created, updated int64
		completed        sql.NullInt64
	)
	dest := append([]any{&m.ID, &m.ConversationID, &m.UserID, &m.Provider, &m.Text, &m.Reply, &status,
		&m.ErrorCode, &m.ErrorMessage, &m.Model, &m.FinishReason, &m.Usage.PromptTokens,
		&m.Usage.CompletionTokens, &m.Usage.TotalTokens, &m.TraceID, &m.LastSeq,
		&created, &updated, &completed}, extra...)
	if err := s.Scan(dest...); err != nil {
		return nil, err
	}
	m.Status = gymbro.Status(status)
	m.CreatedAt = fromMicros(created)
	m.UpdatedAt = fromMicros(updated)
	m.CompletedAt = nullMicros(completed)
	return &m, nil
}

func scanMessages(rows *sql.Rows) ([]*gymbro.Message, error) {
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

func (db *DB) getMessage(ctx context.Context, id string) (*gymbro.Message, error) {
	m, err := scanMessage(db.readRow(ctx, qGetMsg, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, gymbro.MessageNotFound()
	}
	return m, err
}

// CreateMessage stores a new exchange, taken by its generation; see
// gymbro.Store and sqlstore.CreateMessage, which decides. The single write
// connection serializes creates, so the admission's reads and the insert
// cannot interleave with a concurrent create; the unique indexes stay as
// the backstop.
func (db *DB) CreateMessage(ctx context.Context, in gymbro.NewMessage) (*gymbro.Message, bool, error) {
	var (
		out      *gymbro.Message
		replayed bool
	)
	err := db.writeTx(ctx, func(tx *sql.Tx) (err error) {
		out, replayed, err = sqlstore.CreateMessage(ctx, createTx{db, tx}, in, fromMicros(micros(orNow(in.Now, db.now))))
		return err
	})
	if err != nil {
		return nil, false, err
	}
	return out, replayed, nil
}

// createTx is SQLite's half of the create-message transaction.
type createTx struct {
	db *DB
	tx *sql.Tx
}

// Create reads the admission and, when sqlstore.Admits, inserts.
func (c createTx) Create(ctx context.Context, in gymbro.NewMessage, r sqlstore.Row) (sqlstore.Admission, sqlstore.Outcome, error) {
	a, err := c.admit(ctx, in)
	if err != nil || !sqlstore.Admits(in, a) {
		return a, sqlstore.NotAdmitted, err
	}
	outcome, err := c.insert(ctx, r)
	return a, outcome, err
}

func (c createTx) admit(ctx context.Context, in gymbro.NewMessage) (sqlstore.Admission, error) {
	var a sqlstore.Admission
	if in.IdempotencyKey != "" {
		m, err := c.scanOne(ctx, qPrior, []any{&a.PriorHash}, in.UserID, in.IdempotencyKey)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return a, err
		}
		a.Prior = m
	}
	if in.MaxRunning > 0 {
		if err := c.scalar(ctx, &a.Running, qCountRunning, in.UserID); err != nil {
			return a, err
		}
	}
	if in.DailyTokens > 0 {
		if err := c.scalar(ctx, &a.TokensUsed, qTokensUsed, in.UserID, gymbro.UsageDay(in.Now)); err != nil {
			return a, err
		}
	}
	return a, nil
}

func (c createTx) insert(ctx context.Context, r sqlstore.Row) (sqlstore.Outcome, error) {
	m := r.Message
	at := micros(m.CreatedAt)
	if r.NewConversation {
		_, err := c.db.exec(ctx, c.tx, qInsertConv, m.ConversationID, m.UserID, r.Title, at, at)
		if isUnique(err) {
			return sqlstore.ConversationExists, nil
		}
		if err != nil {
			return 0, err
		}
	} else {
		res, err := c.db.exec(ctx, c.tx, qBumpConv, at, m.ConversationID, m.UserID)
		if err != nil {
			return 0, err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return sqlstore.ConversationMissing, err
		}
	}
	var key any
	if r.IdempotencyKey != "" {
		key = r.IdempotencyKey
	}
	_, err := c.db.exec(ctx, c.tx, qInsertMsg, m.ID, m.ConversationID, m.UserID, m.Provider, m.Text,
		string(m.Status), m.TraceID, key, r.RequestHash, at, at, r.Lease.Owner, micros(r.Lease.Until))
	if isUnique(err) {
		return sqlstore.MessageExists, nil
	}
	return sqlstore.Inserted, err
}

// scanOne reads one message row of query, then the extra columns.
func (c createTx) scanOne(ctx context.Context, query string, extra []any, args ...any) (*gymbro.Message, error) {
	row, err := c.db.queryRow(ctx, c.tx, query, args...)
	if err != nil {
		return nil, err
	}
	return scanMessage(row, extra...)
}

// scalar reads the one value of query into dest.
func (c createTx) scalar(ctx context.Context, dest any, query string, args ...any) error {
	row, err := c.db.queryRow(ctx, c.tx, query, args...)
	if err != nil {
		return err
	}
	return row.Scan(dest)
}

// Message returns the user's exchange; another user's reads as missing so
// ids cannot be probed (OWASP API1:2023, broken object level authorization).
func (db *DB) Message(ctx context.Context, userID, id string) (*gymbro.Message, error) {
	m, err := db.getMessage(ctx, id)
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
	m, err := db.getMessage(ctx, id)
	return m, dbErr(err)
}

func exists(ctx context.Context, tx *sql.Tx, id string) (bool, error) {
	var n int
	err := tx.QueryRowContext(ctx, `SELECT count(*) FROM messages WHERE id = ?`, id).Scan(&n)
	return n > 0, err
}

func (db *DB) guardedUpdate(ctx context.Context, id, code, msg, query string, args ...any) error {
	return db.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := db.exec(ctx, tx, query, args...)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			return sqlstore.StateError(ctx, func(ctx context.Context, id string) (bool, error) { return exists(ctx, tx, id) },
				id, code, msg)
		}
		return nil
	})
}

// RenewLease extends owner's lease on a working exchange.
func (db *DB) RenewLease(ctx context.Context, id, owner string, leaseUntil time.Time) error {
	return db.guardedUpdate(ctx, id, "lease_lost", "The lease on the message is lost.", qRenew,
		micros(leaseUntil), id, owner)
}

// SaveReply checkpoints the partial reply of a running exchange.
func (db *DB) SaveReply(ctx context.Context, id, reply string) error {
	return db.guardedUpdate(ctx, id, "message_terminal", "The message is already finished.", qSaveReply,
		reply, micros(db.now()), id)
}

// FinishMessage records the result, its outbox record and the user's
// tokens in one transaction; see sqlstore.FinishMessage.
func (db *DB) FinishMessage(ctx context.Context, m *gymbro.Message, r gymbro.Result) (*gymbro.Message, error) {
	var out *gymbro.Message
	err := db.writeTx(ctx, func(tx *sql.Tx) (err error) {
		out, err = sqlstore.FinishMessage(ctx, finishTx{db, tx}, m, r, fromMicros(micros(orNow(r.At, db.now))))
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// finishTx is SQLite's half of the finish-message transaction.
type finishTx struct {
	db *DB
	tx *sql.Tx
}

func (f finishTx) Finish(ctx context.Context, m *gymbro.Message, record []byte, day string, tokens int64) (bool, error) {
	at := micros(m.UpdatedAt)
	res, err := f.db.exec(ctx, f.tx, qFinish,
		string(m.Status), m.Reply, m.ErrorCode, m.ErrorMessage, m.Model, m.FinishReason,
		m.Usage.PromptTokens, m.Usage.CompletionTokens, m.Usage.TotalTokens, m.LastSeq, at, at,
		m.ID, m.UserID, m.ConversationID, m.Provider, m.Text, m.TraceID, micros(m.CreatedAt))
	if err != nil {
		return false, err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return false, err
	}
	if _, err := f.db.exec(ctx, f.tx, qEnqueue, m.ID, string(record), at, at); err != nil {
		return false, err
	}
	if tokens > 0 {
		if _, err := f.db.exec(ctx, f.tx, qAddTokens, m.UserID, day, tokens); err != nil {
			return false, err
		}
	}
	return true, nil
}

func (f finishTx) Stored(ctx context.Context, id string) (*gymbro.Message, error) {
	row, err := f.db.queryRow(ctx, f.tx, qGetMsg, id)
	if err != nil {
		return nil, err
	}
	m, err := scanMessage(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return m, err
}

// TokensUsed returns what the user's exchanges used on day; see gymbro.UsageLedger.
func (db *DB) TokensUsed(ctx context.Context, userID, day string) (int64, error) {
	var n int64
	err := db.readRow(ctx, qTokensUsed, userID, day).Scan(&n)
	return n, dbErr(err)
}

// ChargeTokens adds tokens to the user's count for day; see gymbro.UsageLedger.
func (db *DB) ChargeTokens(ctx context.Context, userID, day string, tokens int64) error {
	if tokens <= 0 {
		return nil
	}
	return db.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := db.exec(ctx, tx, qAddTokens, userID, day, tokens)
		return err
	})
}

// DiscardMessage deletes an exchange owner holds, and its conversation
// when it holds no other; see gymbro.Store.
func (db *DB) DiscardMessage(ctx context.Context, id, owner string) error {
	return db.writeTx(ctx, func(tx *sql.Tx) error {
		var convID string
		err := tx.QueryRowContext(ctx, `DELETE FROM messages WHERE id = ? AND status = 'working' AND lease_owner = ?
			RETURNING conversation_id`, id, owner).Scan(&convID)
		if errors.Is(err, sql.ErrNoRows) {
			return sqlstore.StateError(ctx, func(ctx context.Context, id string) (bool, error) { return exists(ctx, tx, id) },
				id, "message_not_held", "The message is finished or held by another instance.")
		}
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM conversations WHERE id = ?
			AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = conversations.id)`, convID)
		return err
	})
}

// ExpiredLeases returns running exchanges nobody holds a live lease on.
func (db *DB) ExpiredLeases(ctx context.Context, now time.Time, limit int) ([]*gymbro.Message, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := db.read.QueryContext(ctx, `SELECT `+messageColumns+` FROM messages
		WHERE status IN ('queued', 'working')
		AND ((lease_until IS NOT NULL AND lease_until < ?1) OR (lease_until IS NULL AND created_at < ?1))
		ORDER BY created_at, id LIMIT ?2`, micros(now), limit)
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
	var rows *sql.Rows
	if c != nil {
		rows, err = db.readQuery(ctx, qConversationsAfter, userID, c.At, c.At, c.ID, limit+1)
	} else {
		rows, err = db.readQuery(ctx, qConversations, userID, limit+1)
	}
	if err != nil {
		return nil, "", dbErr(err)
	}
	defer rows.Close()
	var out []*gymbro.Conversation
	for rows.Next() {
		var (
			cv               gymbro.Conversation
			created, updated int64
		)
		if err := rows.Scan(&cv.ID, &cv.UserID, &cv.Title, &created, &updated); err != nil {
			return nil, "", dbErr(err)
		}
		cv.CreatedAt, cv.UpdatedAt = fromMicros(created), fromMicros(updated)
		out = append(out, &cv)
	}
	if err := rows.Err(); err != nil {
		return nil, "", dbErr(err)
	}
	out, next := sqlstore.NextPage(out, limit, func(last *gymbro.Conversation) gymbro.Cursor {
		return gymbro.Cursor{At: micros(last.UpdatedAt), ID: last.ID}
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
	var n int
	if err := db.readRow(ctx, qConvOwned, conversationID, userID).Scan(&n); err != nil {
		return nil, "", dbErr(err)
	}
	if n == 0 {
		return nil, "", gymbro.ConversationNotFound()
	}
	var rows *sql.Rows
	if c != nil {
		rows, err = db.readQuery(ctx, qConvMessagesAfter, conversationID, c.At, c.At, c.ID, limit+1)
	} else {
		rows, err = db.readQuery(ctx, qConvMessages, conversationID, limit+1)
	}
	if err != nil {
		return nil, "", dbErr(err)
	}
	out, err := scanMessages(rows)
	if err != nil {
		return nil, "", dbErr(err)
	}
	out, next := sqlstore.NextPage(out, limit, func(last *gymbro.Message) gymbro.Cursor {
		return gymbro.Cursor{At: micros(last.CreatedAt), ID: last.ID}
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
	var (
		rows *sql.Rows
		err  error
	)
	if before != "" {
		var at int64
		err = db.readRow(ctx, qHistoryAt, before, conversationID).Scan(&at)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, gymbro.MessageNotFound()
		}
		if err != nil {
			return nil, dbErr(err)
		}
		rows, err = db.readQuery(ctx, qHistoryBefore, conversationID, at, at, before, limit)
	} else {
		rows, err = db.readQuery(ctx, qHistory, conversationID, limit)
	}
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
	err := db.readRow(ctx, qCountRunning, userID).Scan(&n)
	return n, dbErr(err)
}
