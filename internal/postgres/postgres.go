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
	"log/slog"
	"sync/atomic"
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
	pool       *pgxpool.Pool
	q          retrying // single statements on pool
	schema     string
	searchPath string // set per transaction (transaction pooler); empty: by the session, or none
	timeout    time.Duration
	now        func() time.Time
	logger     *slog.Logger
	mismatch   atomic.Bool // a transaction pooler was met in session mode
}

type options struct {
	schema   string
	now      func() time.Time
	maxConns int32
	txPooler bool
	timeout  time.Duration
	logger   *slog.Logger
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

// WithTimeout bounds every call of the store after Open (waiting for a
// pooled connection included): past d it fails as store_timeout (504,
// with Retry-After). The default is no bound.
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithLogger sets where the store reports a misconfiguration it detects;
// the default is slog.Default().
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// Open connects to the database at url (a postgres:// URL or key=value DSN;
// several hosts with target_session_attrs=read-write reach whichever is
// the primary) and applies pending migrations.
func Open(ctx context.Context, url string, opts ...Option) (*DB, error) {
	o := options{now: time.Now, logger: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// The parse error may quote the URL, password included: keep it out.
		return nil, gymbro.Errorf(gymbro.KindInvalid, "invalid_database_url", "The database URL is not valid.")
	}
	if o.maxConns > 0 {
		cfg.MaxConns = o.maxConns
	}
	db := &DB{schema: o.schema, timeout: o.timeout, now: o.now, logger: o.logger}
	db.configurePooler(cfg.ConnConfig, o.txPooler)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, dbErr(err)
	}
	db.pool = pool
	db.q = retrying{pool: pool, bound: db.bound, searchPath: db.searchPath}
	if err := db.Migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return db, nil
}

// Migrate applies the embedded migrations that schema_migrations does not
// list yet, in one transaction under a transaction-scoped advisory lock
// keyed by the schema: instances that start together (through a
// transaction pooler too, where a session lock would stay behind on a
// server connection) take turns, and each reads schema_migrations only
// once it holds the lock, so all but the first find nothing to do. The
// schema is created under the lock as well: CREATE SCHEMA IF NOT EXISTS
// is not safe against a concurrent one.
func (db *DB) Migrate(ctx context.Context) error {
	migs, err := sqlmigrate.Load(migrationFS, "migrations")
	if err != nil {
		return err
	}
	err = db.inTx(ctx, func(tx pgx.Tx) error {
		applied, err := db.lockMigrations(ctx, tx)
		if err != nil {
			return err
		}
		for _, m := range migs {
			if applied[m.Version] {
				continue
			}
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("migration %d: %w", m.Version, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, m.Version); err != nil {
				return err
			}
		}
		return nil
	})
	return dbErr(err)
}

// lockMigrations takes the migrations' lock in tx, makes the schema and
// schema_migrations if they are missing, and returns the versions applied.
func (db *DB) lockMigrations(ctx context.Context, tx pgx.Tx) (map[int]bool, error) {
	var schema *string
	if db.schema != "" {
		schema = &db.schema
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended(
		'gymbro_migrate:' || coalesce($1::text, current_schema(), ''), 0))`, schema); err != nil {
		return nil, err
	}
	if schema != nil {
		if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{db.schema}.Sanitize()); err != nil {
			return nil, err
		}
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return nil, err
	}
	rows, err := tx.Query(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return nil, err
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int])
	applied := make(map[int]bool, len(versions))
	for _, v := range versions {
		applied[v] = true
	}
	return applied, err
}

// Ping reports whether the database answers, and fails for good once the
// store met a transaction pooler it was not opened for.
func (db *DB) Ping(ctx context.Context) error {
	if db.mismatch.Load() {
		return gymbro.Unavailable(errors.New(poolerHint), "The store")
	}
	ctx, cancel := db.bound(ctx)
	defer cancel()
	return dbErr(db.pool.Ping(ctx))
}

// Close closes the pool, waiting for connections in use to be released.
func (db *DB) Close() error {
	db.pool.Close()
	return nil
}

// tx runs fn in a transaction, committing when fn returns nil, within the
// store's timeout. A transaction that failed before anything reached the
// server (a pooled connection that died while idle: pgconn.SafeToRetry) is
// run once more on a fresh connection, so one dead connection costs the
// client nothing.
func (db *DB) tx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	ctx, cancel := db.bound(ctx)
	defer cancel()
	err := db.inTx(ctx, fn)
	if err != nil && pgconn.SafeToRetry(err) && ctx.Err() == nil {
		err = db.inTx(ctx, fn)
	}
	return dbErr(err)
}

// inTx runs fn in a transaction on the store's schema.
func (db *DB) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if db.searchPath != "" {
			if _, err := tx.Exec(ctx, setSearchPath, db.searchPath); err != nil {
				return err
			}
		}
		return fn(tx)
	})
}

// dbErr classifies a driver failure; see sqlstore.Err. The errors of a
// transaction pooler met in session mode say what to set.
func dbErr(err error) error {
	if perr := poolerErr(err); perr != nil {
		return perr
	}
	return sqlstore.Err(err, pgconn.Timeout, outage.Is)
}

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

// retrying runs single statements on the pool within the store's
// timeout, each once more on a fresh connection when it failed before
// reaching the server (a pooled connection that died since its last use:
// pgconn.SafeToRetry), as tx does for transactions. pgxpool itself pings
// only connections idle for over a second. With searchPath set (a
// transaction pooler) each statement is pipelined after setSearchPath, in
// one implicit transaction and one round trip.
type retrying struct {
	pool       *pgxpool.Pool
	bound      func(context.Context) (context.Context, context.CancelFunc)
	searchPath string
}

func (r retrying) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	tag, err := r.exec(ctx, sql, args...)
	if err != nil && pgconn.SafeToRetry(err) && ctx.Err() == nil {
		tag, err = r.exec(ctx, sql, args...)
	}
	return tag, err
}

func (r retrying) exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if r.searchPath == "" {
		return r.pool.Exec(ctx, sql, args...)
	}
	var tag pgconn.CommandTag
	b := &pgx.Batch{}
	b.Queue(setSearchPath, r.searchPath)
	b.Queue(sql, args...).Exec(func(t pgconn.CommandTag) error { tag = t; return nil })
	return tag, r.pool.SendBatch(ctx, b).Close()
}

// Query runs a query whose rows must be closed within the store's
// timeout (every caller reads them at once).
func (r retrying) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	ctx, cancel := r.bound(ctx)
	rows, err := r.query(ctx, sql, args...)
	if err != nil && pgconn.SafeToRetry(err) && ctx.Err() == nil {
		rows, err = r.query(ctx, sql, args...)
	}
	if err != nil {
		cancel()
		return nil, err
	}
	if cr, ok := rows.(*closingRows); ok {
		cr.after = append(cr.after, cancel)
		return cr, nil
	}
	return &closingRows{Rows: rows, after: []func(){cancel}}, nil
}

func (r retrying) query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if r.searchPath == "" {
		return r.pool.Query(ctx, sql, args...)
	}
	b := &pgx.Batch{}
	b.Queue(setSearchPath, r.searchPath)
	b.Queue(sql, args...)
	br := r.pool.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		br.Close()
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		br.Close()
		return nil, err
	}
	return &closingRows{Rows: rows, after: []func(){func() { _ = br.Close() }}}, nil
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
