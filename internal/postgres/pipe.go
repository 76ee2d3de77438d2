package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// pipe is a transaction sent as pipelined batches: its BEGIN rides in the
// first batch and its COMMIT in the last, so a transaction of two batches
// costs two round trips instead of four. Whatever ends it otherwise (a
// decision not to write, a failed statement) is rolled back by
// pipelined.
type pipe struct {
	ctx        context.Context // the transaction's, within the store's timeout
	conn       *pgx.Conn
	searchPath string // set with BEGIN when not empty
	begun      bool
}

// send runs b inside the transaction, committing after it when commit is
// set. A failed statement skips the rest of the batch, COMMIT included.
func (p *pipe) send(b *pgx.Batch, commit bool) error {
	if !p.begun {
		first := []*pgx.QueuedQuery{{SQL: "BEGIN"}}
		if p.searchPath != "" {
			first = append(first, &pgx.QueuedQuery{SQL: setSearchPath, Arguments: []any{p.searchPath}})
		}
		b.QueuedQueries = append(first, b.QueuedQueries...)
		p.begun = true
	}
	if commit {
		b.Queue("COMMIT")
	}
	return p.conn.SendBatch(p.ctx, b).Close()
}

// pipelined runs fn as one transaction on a pooled connection, within the
// store's timeout, rolling it back unless fn's last batch committed it.
// Like tx, it runs fn once more on a fresh connection when the first try
// failed before reaching the server.
func (db *DB) pipelined(ctx context.Context, fn func(p *pipe) error) error {
	ctx, cancel := db.bound(ctx)
	defer cancel()
	err := db.pipeOnce(ctx, fn)
	if err != nil && pgconn.SafeToRetry(err) && ctx.Err() == nil {
		err = db.pipeOnce(ctx, fn)
	}
	return dbErr(err)
}

func (db *DB) pipeOnce(ctx context.Context, fn func(p *pipe) error) error {
	c, err := db.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	err = fn(&pipe{ctx: ctx, conn: c.Conn(), searchPath: db.searchPath})
	if c.Conn().PgConn().TxStatus() != 'I' {
		// Still in the transaction (or in a failed one): nothing of it stays.
		// If even the ROLLBACK fails the pool drops the connection, since
		// it is released inside a transaction.
		_, _ = c.Exec(context.WithoutCancel(ctx), "ROLLBACK")
	}
	return err
}
