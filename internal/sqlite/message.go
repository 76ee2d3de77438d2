package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"time"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

const messageColumns = `id, conversation_id, user_id, provider, text, reply, status,
	error_code, error_message, model, finish_reason, prompt_tokens, completion_tokens,
	total_tokens, trace_id, last_seq, created_at, updated_at, completed_at`

// The statements every exchange runs on the write connection.
const (
	qIdempotent = `SELECT id, request_hash FROM messages WHERE user_id = ? AND idempotency_key = ?`
	qInsertConv = `INSERT INTO conversations (id, user_id, title, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`
	qBumpConv   = `UPDATE conversations SET updated_at = max(updated_at, ?) WHERE id = ? AND user_id = ?`
	qInsertMsg  = `INSERT INTO messages (id, conversation_id, user_id, provider, text, status,
		trace_id, idempotency_key, request_hash, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qFinish = `UPDATE messages SET status = ?, reply = ?, error_code = ?, error_message = ?,
		model = ?, finish_reason = ?, prompt_tokens = ?, completion_tokens = ?, total_tokens = ?,
		last_seq = ?, completed_at = ?, updated_at = ?, lease_owner = NULL, lease_until = NULL
		WHERE id = ? AND status IN ('queued', 'working')
		RETURNING ` + messageColumns
	qEnqueue = `INSERT INTO outbox (id, record, next_attempt_at, created_at) VALUES (?, ?, ?, ?)`
	qGetMsg  = `SELECT ` + messageColumns + ` FROM messages WHERE id = ?`
	qStart   = `UPDATE messages SET status = 'working', lease_owner = ?, lease_until = ?, updated_at = ?
		WHERE id = ? AND status = 'queued'`
	qRenew     = `UPDATE messages SET lease_until = ? WHERE id = ? AND status = 'working' AND lease_owner = ?`
	qSaveReply = `UPDATE messages SET reply = ?, updated_at = ? WHERE id = ? AND status IN ('queued', 'working')`
)

var hotWrites = []string{qIdempotent, qInsertConv, qBumpConv, qInsertMsg, qFinish, qEnqueue, qGetMsg,
	qStart, qRenew, qSaveReply, qCountRunning}

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

var hotReads = []string{qGetMsg, qCountRunning, qHistory, qHistoryAt, qHistoryBefore,
	qConvOwned, qConvMessages, qConvMessagesAfter, qConversations, qConversationsAfter}

type scanner interface{ Scan(dest ...any) error }

func scanMessage(s scanner) (*gymbro.Message, error) {
	var (
		m                gymbro.Message
		status           string
		created, updated int64
		completed        sql.NullInt64
	)
	err := s.Scan(&m.ID, &m.ConversationID, &m.UserID, &m.Provider, &m.Text, &m.Reply, &status,
		&m.ErrorCode, &m.ErrorMessage, &m.Model, &m.FinishReason, &m.Usage.PromptTokens,
		&m.Usage.CompletionTokens, &m.Usage.TotalTokens, &m.TraceID, &m.LastSeq,
		&created, &updated, &completed)
	if err != nil {
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

// CreateMessage stores a queued exchange; see gymbro.Store. The single write
// connection serializes creates, so checking the idempotency key and
// inserting cannot interleave with a concurrent duplicate; the unique index
// stays as the backstop.
func (db *DB) CreateMessage(ctx context.Context, in gymbro.NewMessage) (*gymbro.Message, bool, error) {
	now := orNow(in.Now, db.now)
	var (
		out      *gymbro.Message
		replayed bool
	)
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		if in.IdempotencyKey != "" {
			var id, hash string
			row, err := db.queryRow(ctx, tx, qIdempotent, in.UserID, in.IdempotencyKey)
			if err != nil {
				return err
			}
			err = row.Scan(&id, &hash)
			switch {
			case err == nil:
				if hash != in.RequestHash {
					return gymbro.Errorf(gymbro.KindConflict, "idempotency_conflict",
						"The Idempotency-Key was already used with a different request.")
				}
				row, err := db.queryRow(ctx, tx, qGetMsg, id)
				if err != nil {
					return err
				}
				m, err := scanMessage(row)
				if err != nil {
					return err
				}
				out, replayed = m, true
				return nil
			case !errors.Is(err, sql.ErrNoRows):
				return err
			}
		}
		if in.MaxRunning > 0 {
			// SQLite has one writer, so this count and the insert below
			// cannot interleave with another create.
			var n int
			row, err := db.queryRow(ctx, tx, qCountRunning, in.UserID)
			if err != nil {
				return err
			}
			if err := row.Scan(&n); err != nil {
				return err
			}
			if n >= in.MaxRunning {
				return gymbro.TooManyRunning()
			}
		}
		convID := in.ConversationID
		if convID == "" {
			convID = in.NewConversationID
			_, err := db.exec(ctx, tx, qInsertConv,
				convID, in.UserID, gymbro.ConversationTitle(in.Text), micros(now), micros(now))
			if isUnique(err) {
				return gymbro.Errorf(gymbro.KindConflict, "conversation_exists", "The conversation already exists.")
			}
			if err != nil {
				return err
			}
		} else {
			res, err := db.exec(ctx, tx, qBumpConv,
				micros(now), convID, in.UserID)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 0 {
				return gymbro.ConversationNotFound()
			}
		}
		var key any
		if in.IdempotencyKey != "" {
			key = in.IdempotencyKey
		}
		_, err := db.exec(ctx, tx, qInsertMsg,
			in.ID, convID, in.UserID, in.Provider, in.Text, string(gymbro.StatusQueued),
			in.TraceID, key, in.RequestHash, micros(now), micros(now))
		if isUnique(err) {
			return gymbro.Errorf(gymbro.KindConflict, "message_exists", "The message already exists.")
		}
		if err != nil {
			return err
		}
		out = &gymbro.Message{
			ID: in.ID, ConversationID: convID, UserID: in.UserID, Provider: in.Provider,
			Text: in.Text, Status: gymbro.StatusQueued, TraceID: in.TraceID,
			CreatedAt: fromMicros(micros(now)), UpdatedAt: fromMicros(micros(now)),
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return out, replayed, nil
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

// stateErr explains why a guarded update touched no row: the message is
// missing, or in a state the caller names with code.
func stateErr(ctx context.Context, tx *sql.Tx, id, code, msg string) error {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM messages WHERE id = ?`, id).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return gymbro.MessageNotFound()
	}
	return gymbro.Errorf(gymbro.KindConflict, code, "%s", msg)
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
			return stateErr(ctx, tx, id, code, msg)
		}
		return nil
	})
}

// StartMessage moves a queued exchange to working under owner's lease.
func (db *DB) StartMessage(ctx context.Context, id, owner string, leaseUntil time.Time) error {
	return db.guardedUpdate(ctx, id, "message_not_queued", "The message is not queued.", qStart,
		owner, micros(leaseUntil), micros(db.now()), id)
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

// FinishMessage records the result and enqueues the chat record in one
// transaction, so an exchange is never finished without being synced (nor
// synced without being finished).
func (db *DB) FinishMessage(ctx context.Context, id string, r gymbro.Result) (*gymbro.Message, error) {
	if !r.Status.Terminal() {
		return nil, gymbro.Errorf(gymbro.KindInvalid, "invalid_status", "The status %q is not terminal.", r.Status)
	}
	at := micros(orNow(r.At, db.now))
	var out *gymbro.Message
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		row, err := db.queryRow(ctx, tx, qFinish,
			string(r.Status), r.Reply, r.ErrorCode, r.ErrorMessage, r.Model, r.FinishReason,
			r.Usage.PromptTokens, r.Usage.CompletionTokens, r.Usage.TotalTokens, r.LastSeq, at, at, id)
		if err != nil {
			return err
		}
		m, err := scanMessage(row)
		if errors.Is(err, sql.ErrNoRows) {
			return stateErr(ctx, tx, id, "message_terminal", "The message is already finished.")
		}
		if err != nil {
			return err
		}
		rec, err := json.Marshal(m.ChatRecord())
		if err != nil {
			return err
		}
		if _, err := db.exec(ctx, tx, qEnqueue, id, string(rec), at, at); err != nil {
			return err
		}
		out = m
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
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
	next := ""
	if len(out) > limit {
		out = out[:limit]
		last := out[limit-1]
		next = gymbro.Cursor{At: micros(last.UpdatedAt), ID: last.ID}.Encode()
	}
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
	next := ""
	if len(out) > limit {
		out = out[:limit]
		last := out[limit-1]
		next = gymbro.Cursor{At: micros(last.CreatedAt), ID: last.ID}.Encode()
	}
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
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// CountRunning counts the user's queued and working exchanges.
func (db *DB) CountRunning(ctx context.Context, userID string) (int, error) {
	var n int
	err := db.readRow(ctx, qCountRunning, userID).Scan(&n)
	return n, dbErr(err)
}
