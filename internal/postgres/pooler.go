package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// Behind a transaction-mode pooler (PgBouncer pool_mode = transaction,
// Supabase's Supavisor on port 6543) each transaction may run on another
// server connection, shared with other clients. So with WithTransactionPooler
// the store keeps no state in a session:
//
//   - no named prepared statements: pgx runs each statement with the
//     unnamed one (QueryExecModeExec), parsed anew each time, instead of
//     its statement cache (whose statements live on one server connection:
//     SQLSTATE 26000 on another, 42P05 when another client made one of the
//     same name);
//   - no search_path startup parameter (PgBouncer refuses it, and would not
//     keep it per client): the schema is set for each transaction with
//     set_config(..., true), in the same pipelined batch as its first
//     statement, so it costs a statement but no round trip;
//   - migrations take a transaction-scoped advisory lock (in any mode);
//   - nothing uses LISTEN, session advisory locks or temporary tables.

// setSearchPath makes the store's schema first for the current transaction
// (an implicit one: the statements of one pipelined batch run in one).
const setSearchPath = `SELECT set_config('search_path', $1, true)`

// poolerHint says what to set when the server turns out to be a
// transaction-mode pooler while the store was opened for a session.
const poolerHint = "the database is reached through a transaction-mode pooler (PgBouncer pool_mode = transaction, " +
	"Supabase's pooler on port 6543), which forgets prepared statements and session settings between transactions: " +
	"set GYMBRO_DATABASE_POOLER=transaction"

// WithTransactionPooler opens the store for a transaction-mode pooler:
// see above. It is also correct (a little slower: each statement is
// parsed anew) on a direct connection or a session pooler.
func WithTransactionPooler() Option { return func(o *options) { o.txPooler = true } }

// configurePooler sets pgx up for the pooler mode and watches for the
// errors of a mismatch.
func (db *DB) configurePooler(conn *pgx.ConnConfig, txPooler bool) {
	if txPooler {
		conn.DefaultQueryExecMode = pgx.QueryExecModeExec
		conn.StatementCacheCapacity, conn.DescriptionCacheCapacity = 0, 0
		if db.schema != "" {
			db.searchPath = pgx.Identifier{db.schema}.Sanitize()
		}
		return
	}
	if db.schema != "" {
		conn.RuntimeParams["search_path"] = pgx.Identifier{db.schema}.Sanitize()
	}
	next := conn.OnPgError
	conn.OnPgError = func(c *pgconn.PgConn, e *pgconn.PgError) bool {
		if isPoolerMismatch(e) {
			db.poolerMismatch()
			return false // close it: its statement cache no longer matches any server connection
		}
		return next == nil || next(c, e)
	}
}

// poolerMismatch marks the store misconfigured, so readiness fails, and
// says once what to set.
func (db *DB) poolerMismatch() {
	if db.mismatch.Swap(true) {
		return
	}
	db.logger.Error("PostgreSQL: " + poolerHint + "; until then the store fails and readiness reports it down")
}

// isPoolerMismatch reports a prepared statement of pgx's cache missing on
// the server connection (26000) or made there by another client (42P05):
// the store never names a statement itself, so only a pooler that shares
// server connections between transactions causes these.
func isPoolerMismatch(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "26000" || pgErr.Code == "42P05")
}

// poolerErr explains the failures of a store opened for a session on a
// pooler that cannot keep one: nil for any other error.
func poolerErr(err error) error {
	switch {
	case isPoolerMismatch(err):
		return gymbro.Unavailable(fmt.Errorf("%s: %w", poolerHint, err), "The store")
	case err != nil && strings.Contains(err.Error(), "unsupported startup parameter"):
		// PgBouncer, in any pool mode, refuses the search_path that
		// GYMBRO_DATABASE_SCHEMA sends when a session starts.
		return gymbro.Unavailable(fmt.Errorf("the pooler refuses the session's search_path (GYMBRO_DATABASE_SCHEMA): "+
			"set GYMBRO_DATABASE_POOLER=transaction, which sets it per transaction: %w", err), "The store")
	}
	return nil
}

// bound limits ctx to the store's timeout: a store that does not answer
// (a commit waiting for a synchronous standby that is gone, a lock wait)
// fails the call as store_timeout instead of holding its caller. pgx then
// closes the connection; the server finishes or abandons the statement
// on its own.
func (db *DB) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if db.timeout <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, db.timeout)
}

// closingRows runs after once its rows are closed: it releases what the
// rows were read under (a deadline, a pipelined batch).
type closingRows struct {
	pgx.Rows
	after []func()
}

func (r *closingRows) Close() {
	r.Rows.Close()
	for _, f := range r.after {
		f()
	}
	r.after = nil
}
