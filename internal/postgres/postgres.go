// Package postgres is the gymbro.Store for scale-out: PostgreSQL (for
// example the Supabase database) through pgx's connection pool. Several
// instances share it; row locks and SKIP LOCKED keep them from stepping on
// each other.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/outage"
	"github.com/gymbro/gymbro-api/internal/sqlmigrate"
	"github.com/gymbro/gymbro-api/internal/sqlstore"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

var _ gymbro.Store = (*DB)(nil)

// DB is a gymbro.Store on PostgreSQL.
type DB struct {
	pool   *pgxpool.Pool
	q      retrying // single statements on pool
	schema string
	now    func() time.Time
}

type options struct {
	schema   string
	now      func() time.Time
	maxConns int32
}

// Option configures Open.
type Option func(*options)

// WithSchema keeps every table in schema (created if missing) by putting it
// first on the search_path; tests use a unique one each, and a shared
// database (Supabase's) can keep ours apart from public.
func WithSchema(schema string) Option { return func(o *options) { o.schema = schema } }

// WithNow sets the clock the store uses where it stamps time itself (lease
// and reply updates, redriven outbox items). The default is time.Now.
func WithNow(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithMaxConns caps the pool; the default is pgxpool's (max(4, NumCPU)).
func WithMaxConns(n int32) Option { return func(o *options) { o.maxConns = n } }

// Open connects to the database at url (a postgres:// URL or key=value DSN)
// and applies pending migrations.
func Open(ctx context.Context, url string, opts ...Option) (*DB, error) {
	o := options{now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// The parse error may quote the URL, password included: keep it out.
		return nil, gymbro.Errorf(gymbro.KindInvalid, "invalid_database_url", "The database URL is not valid.")
	}
	if o.schema != "" {
		cfg.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{o.schema}.Sanitize()
	}
	if o.maxConns > 0 {
		cfg.MaxConns = o.maxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, dbErr(err)
	}
	db := &DB{pool: pool, q: retrying{pool}, schema: o.schema, now: o.now}
	if o.schema != "" {
		if _, err := pool.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{o.schema}.Sanitize()); err != nil {
			pool.Close()
			return nil, dbErr(err)
		}
	}
	if err := db.Migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return db, nil
}

// Migrate applies the embedded migrations that schema_migrations does not
// list yet. A session advisory lock, keyed by the schema, lets instances
// that start together take turns instead of racing on CREATE TABLE.
func (db *DB) Migrate(ctx context.Context) error {
	migs, err := sqlmigrate.Load(migrationFS, "migrations")
	if err != nil {
		return err
	}
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return dbErr(err)
	}
	defer conn.Release()
	const lockKey = `SELECT hashtextextended('gymbro_migrate:' || current_schema(), 0)`
	var key int64
	if err := conn.QueryRow(ctx, lockKey).Scan(&key); err != nil {
		return dbErr(err)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, key); err != nil {
		return dbErr(err)
	}
	defer func() {
		// Unlock even when ctx has ended, or the lock outlives this call on
		// the pooled connection.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, `SELECT pg_advisory_unlock($1)`, key); err != nil {
			conn.Conn().Close(uctx) // drop the session, and the lock with it
		}
	}()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return dbErr(err)
	}
	for _, m := range migs {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			var n int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM schema_migrations WHERE version = $1`, m.Version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("migration %d: %w", m.Version, err)
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, m.Version)
			return err
		})
		if err != nil {
			return dbErr(err)
		}
	}
	return nil
}

// Ping reports whether the database answers.
func (db *DB) Ping(ctx context.Context) error {
	return dbErr(db.pool.Ping(ctx))
}

// Close closes the pool, waiting for connections in use to be released.
func (db *DB) Close() error {
	db.pool.Close()
	return nil
}

// tx runs fn in a transaction, committing when fn returns nil. A
// transaction that failed before anything reached the server (a pooled
// connection that died while idle: pgconn.SafeToRetry) is run once more on
// a fresh connection, so one dead connection costs the client nothing.
func (db *DB) tx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	err := pgx.BeginFunc(ctx, db.pool, fn)
	if err != nil && pgconn.SafeToRetry(err) && ctx.Err() == nil {
		err = pgx.BeginFunc(ctx, db.pool, fn)
	}
	return dbErr(err)
}

// dbErr classifies a driver failure; see sqlstore.Err.
func dbErr(err error) error { return sqlstore.Err(err, pgconn.Timeout, outage.Is) }

// isUnique reports whether err is a unique_violation.
func isUnique(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// ts is how times go in: UTC, cut to the microsecond PostgreSQL keeps, so
// what is read back is Equal to what was written (PostgreSQL would round).
func ts(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// retrying runs single statements on the pool, each once more on a fresh
// connection when it failed before reaching the server (a pooled
// connection that died since its last use: pgconn.SafeToRetry), as tx
// does for transactions. pgxpool itself pings only connections idle for
// over a second.
type retrying struct{ pool *pgxpool.Pool }

func (r retrying) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	tag, err := r.pool.Exec(ctx, sql, args...)
	if err != nil && pgconn.SafeToRetry(err) && ctx.Err() == nil {
		tag, err = r.pool.Exec(ctx, sql, args...)
	}
	return tag, err
}

func (r retrying) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	rows, err := r.pool.Query(ctx, sql, args...)
	if err != nil && pgconn.SafeToRetry(err) && ctx.Err() == nil {
		rows, err = r.pool.Query(ctx, sql, args...)
	}
	return rows, err
}

// QueryRow is Query for one row, with pgx's QueryRow semantics.
func (r retrying) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, err := r.Query(ctx, sql, args...)
	return firstRow{rows, err}
}

type firstRow struct {
	rows pgx.Rows
	err  error
}

func (f firstRow) Scan(dest ...any) error {
	if f.err != nil {
		return f.err
	}
	defer f.rows.Close()
	if !f.rows.Next() {
		if err := f.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := f.rows.Scan(dest...); err != nil {
		return err
	}
	f.rows.Close()
	return f.rows.Err()
}
