package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"time"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/sqlstore"
)

// The outbox worker's claim and acknowledgement run after every exchange,
// so they are among the statements prepared at Open (hotWrites): the
// acknowledgement takes its ids as one JSON array to have a fixed text.
const (
	qClaim = `UPDATE outbox SET attempts = attempts + 1, lease_owner = ?1, lease_until = ?2
			WHERE id IN (
				SELECT id FROM outbox
				WHERE state = 'pending' AND next_attempt_at <= ?3 AND (lease_until IS NULL OR lease_until <= ?3)
				ORDER BY next_attempt_at, id LIMIT ?4)
			RETURNING id, record, attempts, created_at, last_error, next_attempt_at`
	qAck = `DELETE FROM outbox WHERE id IN (SELECT value FROM json_each(?))`
)

// ClaimOutbox leases due pending items to owner. The single write
// connection makes select-and-lease atomic with respect to every other
// claimer using this file.
func (db *DB) ClaimOutbox(ctx context.Context, owner string, now, leaseUntil time.Time, limit int) ([]gymbro.OutboxItem, error) {
	if limit <= 0 {
		return nil, nil
	}
	var out []gymbro.OutboxItem
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		st, err := db.stmt(ctx, tx, qClaim)
		if err != nil {
			return err
		}
		rows, err := st.QueryContext(ctx, owner, micros(leaseUntil), micros(now), limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		var cs []sqlstore.Claimed
		for rows.Next() {
			var (
				c            sqlstore.Claimed
				rec          string
				created, due int64
			)
			if err := rows.Scan(&c.Item.ID, &rec, &c.Item.Attempts, &created, &c.Item.LastError, &due); err != nil {
				return err
			}
			if err := c.DecodeRecord([]byte(rec)); err != nil {
				return err
			}
			c.Item.CreatedAt, c.Due = fromMicros(created), fromMicros(due)
			cs = append(cs, c)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		out = sqlstore.InDueOrder(cs)
		return nil
	})
	return out, err
}

// AckOutbox deletes delivered items; unknown ids are ignored.
func (db *DB) AckOutbox(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	list, err := json.Marshal(ids)
	if err != nil {
		return err
	}
	return db.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := db.exec(ctx, tx, qAck, string(list))
		return err
	})
}

func (db *DB) outboxUpdate(ctx context.Context, query string, args ...any) error {
	return db.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, query, args...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return gymbro.OutboxItemNotFound()
		}
		return nil
	})
}

// RetryOutbox releases an item to be tried again at next.
func (db *DB) RetryOutbox(ctx context.Context, id string, next time.Time, lastErr string) error {
	return db.outboxUpdate(ctx, `UPDATE outbox SET next_attempt_at = ?, last_error = ?, lease_owner = NULL, lease_until = NULL
		WHERE id = ?`, micros(next), lastErr, id)
}

// BuryOutbox parks an item as dead with the reason.
func (db *DB) BuryOutbox(ctx context.Context, id, reason string) error {
	return db.outboxUpdate(ctx, `UPDATE outbox SET state = 'dead', last_error = ?, lease_owner = NULL, lease_until = NULL
		WHERE id = ?`, reason, id)
}

// RedriveOutbox makes every dead item pending and due now. Attempts restart
// from zero so the worker's backoff and its give-up limit start afresh.
func (db *DB) RedriveOutbox(ctx context.Context) (int, error) {
	var n int64
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?,
			lease_owner = NULL, lease_until = NULL WHERE state = 'dead'`, micros(db.now()))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

// OutboxStats counts pending and dead items.
func (db *DB) OutboxStats(ctx context.Context) (gymbro.OutboxStats, error) {
	var (
		s      gymbro.OutboxStats
		oldest sql.NullInt64
	)
	err := db.read.QueryRowContext(ctx, `SELECT
		count(*) FILTER (WHERE state = 'pending'),
		count(*) FILTER (WHERE state = 'dead'),
		min(created_at) FILTER (WHERE state = 'pending')
		FROM outbox`).Scan(&s.Pending, &s.Dead, &oldest)
	if err != nil {
		return s, dbErr(err)
	}
	if oldest.Valid {
		s.OldestPending = fromMicros(oldest.Int64)
	}
	return s, nil
}
