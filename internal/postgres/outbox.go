package postgres

import (
	"context"
	"time"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/sqlstore"
)

// ClaimOutbox leases due pending items to owner. FOR UPDATE SKIP LOCKED
// lets workers on several instances claim at once without blocking on, or
// taking, each other's rows; the lease columns then keep the items theirs
// after the transaction ends.
func (db *DB) ClaimOutbox(ctx context.Context, owner string, now, leaseUntil time.Time, limit int) ([]gymbro.OutboxItem, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := db.q.Query(ctx, `WITH due AS (
			SELECT id FROM outbox
			WHERE state = 'pending' AND next_attempt_at <= $3 AND (lease_until IS NULL OR lease_until <= $3)
			ORDER BY next_attempt_at, id
			LIMIT $4
			FOR UPDATE SKIP LOCKED)
		UPDATE outbox o SET attempts = o.attempts + 1, lease_owner = $1, lease_until = $2
		FROM due WHERE o.id = due.id
		RETURNING o.id, o.record, o.attempts, o.created_at, o.last_error, o.next_attempt_at`,
		owner, ts(leaseUntil), ts(now), limit)
	if err != nil {
		return nil, dbErr(err)
	}
	defer rows.Close()
	var cs []sqlstore.Claimed
	for rows.Next() {
		var (
			c   sqlstore.Claimed
			rec []byte
		)
		if err := rows.Scan(&c.Item.ID, &rec, &c.Item.Attempts, &c.Item.CreatedAt, &c.Item.LastError, &c.Due); err != nil {
			return nil, dbErr(err)
		}
		if err := c.DecodeRecord(rec); err != nil {
			return nil, dbErr(err)
		}
		c.Item.CreatedAt = c.Item.CreatedAt.UTC()
		cs = append(cs, c)
	}
	if err := rows.Err(); err != nil {
		return nil, dbErr(err)
	}
	return sqlstore.InDueOrder(cs), nil
}

// AckOutbox deletes delivered items; unknown ids are ignored.
func (db *DB) AckOutbox(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := db.q.Exec(ctx, `DELETE FROM outbox WHERE id = ANY($1)`, ids)
	return dbErr(err)
}

func (db *DB) outboxUpdate(ctx context.Context, query string, args ...any) error {
	tag, err := db.q.Exec(ctx, query, args...)
	if err != nil {
		return dbErr(err)
	}
	if tag.RowsAffected() == 0 {
		return gymbro.OutboxItemNotFound()
	}
	return nil
}

// RetryOutbox releases an item to be tried again at next.
func (db *DB) RetryOutbox(ctx context.Context, id string, next time.Time, lastErr string) error {
	return db.outboxUpdate(ctx, `UPDATE outbox SET next_attempt_at = $1, last_error = $2, lease_owner = NULL, lease_until = NULL
		WHERE id = $3`, ts(next), lastErr, id)
}

// BuryOutbox parks an item as dead with the reason.
func (db *DB) BuryOutbox(ctx context.Context, id, reason string) error {
	return db.outboxUpdate(ctx, `UPDATE outbox SET state = 'dead', last_error = $1, lease_owner = NULL, lease_until = NULL
		WHERE id = $2`, reason, id)
}

// RedriveOutbox makes every dead item pending and due now. Attempts restart
// from zero so the worker's backoff and its give-up limit start afresh.
func (db *DB) RedriveOutbox(ctx context.Context) (int, error) {
	tag, err := db.q.Exec(ctx, `UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = $1,
		lease_owner = NULL, lease_until = NULL WHERE state = 'dead'`, ts(db.now()))
	if err != nil {
		return 0, dbErr(err)
	}
	return int(tag.RowsAffected()), nil
}

// OutboxStats counts pending and dead items.
func (db *DB) OutboxStats(ctx context.Context) (gymbro.OutboxStats, error) {
	var (
		s      gymbro.OutboxStats
		oldest *time.Time
	)
	err := db.q.QueryRow(ctx, `SELECT
		count(*) FILTER (WHERE state = 'pending'),
		count(*) FILTER (WHERE state = 'dead'),
		min(created_at) FILTER (WHERE state = 'pending')
		FROM outbox`).Scan(&s.Pending, &s.Dead, &oldest)
	if err != nil {
		return s, dbErr(err)
	}
	if oldest != nil {
		s.OldestPending = oldest.UTC()
	}
	return s, nil
}
