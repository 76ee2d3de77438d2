package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

const messageColumns = `id, conversation_id, user_id, provider, text, reply, status,
	error_code, error_message, model, finish_reason, prompt_tokens, completion_tokens,
	total_tokens, trace_id, last_seq, created_at, updated_at, completed_at`

func scanMessage(row pgx.Row) (*gymbro.Message, error) {
	var (
		m      gymbro.Message
		status string
	)
	err := row.Scan(&m.ID, &m.ConversationID, &m.UserID, &m.Provider, &m.Text, &m.Reply, &status,
		&m.ErrorCode, &m.ErrorMessage, &m.Model, &m.FinishReason, &m.Usage.PromptTokens,
		&m.Usage.CompletionTokens, &m.Usage.TotalTokens, &m.TraceID, &m.LastSeq,
		&m.CreatedAt, &m.UpdatedAt, &m.CompletedAt)
	if err != nil {
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

// CreateMessage stores a queued exchange; see gymbro.Store. Creates with the
// same idempotency key take turns on a transaction-scoped advisory lock, so
// the loser of a race sees the winner's row and replays it instead of
// failing on the unique index (which stays as the backstop).
func (db *DB) CreateMessage(ctx context.Context, in gymbro.NewMessage) (*gymbro.Message, bool, error) {
	now := ts(orNow(in.Now, db.now))
	var (
		out      *gymbro.Message
		replayed bool
	)
	err := db.tx(ctx, func(tx pgx.Tx) error {
		if in.IdempotencyKey != "" {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`,
				"gymbro_idem:"+in.UserID+"\x1f"+in.IdempotencyKey); err != nil {
				return err
			}
			var id, hash string
			err := tx.QueryRow(ctx, `SELECT id, request_hash FROM messages WHERE user_id = $1 AND idempotency_key = $2`,
				in.UserID, in.IdempotencyKey).Scan(&id, &hash)
			switch {
			case err == nil:
				if hash != in.RequestHash {
					return gymbro.Errorf(gymbro.KindConflict, "idempotency_conflict",
						"The Idempotency-Key was already used with a different request.")
				}
				m, err := getMessage(ctx, tx, id)
				if err != nil {
					return err
				}
				out, replayed = m, true
				return nil
			case !errors.Is(err, pgx.ErrNoRows):
				return err
			}
		}
		if in.MaxRunning > 0 {
			// One user's creates take turns on this lock, so two instances
			// cannot both count n-1 and both insert.
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, "gymbro_running:"+in.UserID); err != nil {
				return err
			}
			var n int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM messages WHERE user_id = $1 AND status IN ('queued', 'working')`, in.UserID).Scan(&n); err != nil {
				return err
			}
			if n >= in.MaxRunning {
				return gymbro.TooManyRunning()
			}
		}
		convID := in.ConversationID
		if convID == "" {
			convID = in.NewConversationID
			_, err := tx.Exec(ctx, `INSERT INTO conversations (id, user_id, title, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)`,
				convID, in.UserID, gymbro.ConversationTitle(in.Text), now)
			if isUnique(err) {
				return gymbro.Errorf(gymbro.KindConflict, "conversation_exists", "The conversation already exists.")
			}
			if err != nil {
				return err
			}
		} else {
			tag, err := tx.Exec(ctx, `UPDATE conversations SET updated_at = greatest(updated_at, $1) WHERE id = $2 AND user_id = $3`,
				now, convID, in.UserID)
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				return gymbro.ConversationNotFound()
			}
		}
		var key *string
		if in.IdempotencyKey != "" {
			key = &in.IdempotencyKey
		}
		_, err := tx.Exec(ctx, `INSERT INTO messages (id, conversation_id, user_id, provider, text, status,
			trace_id, idempotency_key, request_hash, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)`,
			in.ID, convID, in.UserID, in.Provider, in.Text, string(gymbro.StatusQueued),
			in.TraceID, key, in.RequestHash, now)
		if isUnique(err) {
			return gymbro.Errorf(gymbro.KindConflict, "message_exists", "The message already exists.")
		}
		if err != nil {
			return err
		}
		out = &gymbro.Message{
			ID: in.ID, ConversationID: convID, UserID: in.UserID, Provider: in.Provider,
			Text: in.Text, Status: gymbro.StatusQueued, TraceID: in.TraceID,
			CreatedAt: now, UpdatedAt: now,
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
	m, err := getMessage(ctx, db.pool, id)
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
	m, err := getMessage(ctx, db.pool, id)
	return m, dbErr(err)
}

// stateErr explains why a guarded update touched no row: the message is
// missing, or in a state the caller names with code.
func stateErr(ctx context.Context, q querier, id, code, msg string) error {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM messages WHERE id = $1)`, id).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		return gymbro.MessageNotFound()
	}
	return gymbro.Errorf(gymbro.KindConflict, code, "%s", msg)
}

// guardedUpdate runs one UPDATE whose WHERE encodes the allowed state; the
// row lock it takes makes check and change one step.
func (db *DB) guardedUpdate(ctx context.Context, id, code, msg, query string, args ...any) error {
	tag, err := db.pool.Exec(ctx, query, args...)
	if err != nil {
		return dbErr(err)
	}
	if tag.RowsAffected() == 0 {
		return dbErr(stateErr(ctx, db.pool, id, code, msg))
	}
	return nil
}

// StartMessage moves a queued exchange to working under owner's lease.
func (db *DB) StartMessage(ctx context.Context, id, owner string, leaseUntil time.Time) error {
	return db.guardedUpdate(ctx, id, "message_not_queued", "The message is not queued.",
		`UPDATE messages SET status = 'working', lease_owner = $1, lease_until = $2, updated_at = $3
		WHERE id = $4 AND status = 'queued'`,
		owner, ts(leaseUntil), ts(db.now()), id)
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

// FinishMessage records the result and enqueues the chat record in one
// transaction, so an exchange is never finished without being synced (nor
// synced without being finished).
func (db *DB) FinishMessage(ctx context.Context, id string, r gymbro.Result) (*gymbro.Message, error) {
	if !r.Status.Terminal() {
		return nil, gymbro.Errorf(gymbro.KindInvalid, "invalid_status", "The status %q is not terminal.", r.Status)
	}
	at := ts(orNow(r.At, db.now))
	var out *gymbro.Message
	err := db.tx(ctx, func(tx pgx.Tx) error {
		m, err := scanMessage(tx.QueryRow(ctx, `UPDATE messages SET status = $1, reply = $2, error_code = $3,
			error_message = $4, model = $5, finish_reason = $6, prompt_tokens = $7, completion_tokens = $8,
			total_tokens = $9, last_seq = $10, completed_at = $11, updated_at = $11,
			lease_owner = NULL, lease_until = NULL
			WHERE id = $12 AND status IN ('queued', 'working')
			RETURNING `+messageColumns,
			string(r.Status), r.Reply, r.ErrorCode, r.ErrorMessage, r.Model, r.FinishReason,
			r.Usage.PromptTokens, r.Usage.CompletionTokens, r.Usage.TotalTokens, r.LastSeq, at, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return stateErr(ctx, tx, id, "message_terminal", "The message is already finished.")
		}
		if err != nil {
			return err
		}
		rec, err := json.Marshal(m.ChatRecord())
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO outbox (id, record, next_attempt_at, created_at) VALUES ($1, $2, $3, $3)`,
			id, string(rec), at); err != nil {
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
	rows, err := db.pool.Query(ctx, `SELECT `+messageColumns+` FROM messages
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
	rows, err := db.pool.Query(ctx, q, args...)
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
	next := ""
	if len(out) > limit {
		out = out[:limit]
		last := out[limit-1]
		next = gymbro.Cursor{At: last.UpdatedAt.UnixMicro(), ID: last.ID}.Encode()
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
	var exists bool
	if err := db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM conversations WHERE id = $1 AND user_id = $2)`,
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
	rows, err := db.pool.Query(ctx, q, args...)
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
		next = gymbro.Cursor{At: last.CreatedAt.UnixMicro(), ID: last.ID}.Encode()
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
	q := `SELECT ` + messageColumns + ` FROM messages WHERE conversation_id = $1 AND status = 'completed'`
	args := []any{conversationID, limit}
	if before != "" {
		var at time.Time
		err := db.pool.QueryRow(ctx, `SELECT created_at FROM messages WHERE id = $1 AND conversation_id = $2`,
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
	rows, err := db.pool.Query(ctx, q, args...)
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
	err := db.pool.QueryRow(ctx, `SELECT count(*) FROM messages WHERE user_id = $1 AND status IN ('queued', 'working')`,
		userID).Scan(&n)
	return n, dbErr(err)
}
