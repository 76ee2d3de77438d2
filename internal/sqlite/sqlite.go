// Package sqlite is the embedded gymbro.Store: one SQLite file in the data
// directory, through the pure-Go modernc.org/sqlite driver (no cgo).
//
// SQLite admits one writer at a time, so every write goes through a pool of
// exactly one connection: writers queue in Go instead of spinning on
// SQLITE_BUSY. Reads use a separate pool; in WAL mode they never block on, or
// are blocked by, the writer.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/gymbro/gymbro-api/internal/datadir"
	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/sqlmigrate"
	"github.com/gymbro/gymbro-api/internal/sqlstore"
	sqlite3 "modernc.org/sqlite"
	sqlite3lib "modernc.org/sqlite/lib"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

var _ gymbro.Store = (*DB)(nil)

// DB is a gymbro.Store on one SQLite file.
type DB struct {
	write *sql.DB // exactly one connection: SQLite's single writer
	read  *sql.DB // WAL readers
	now   func() time.Time

	stmts map[string]*sql.Stmt // prepared on the write connection, by query
	reads map[string]*sql.Stmt // prepared on the read pool, by query
	ckpt  *checkpointer        // nil until Open has migrated and prepared
}

type options struct {
	now             func() time.Time
	readConns       int
	busyTimeout     time.Duration
	checkpointEvery int
	checkpointIdle  time.Duration
}

// Option configures Open.
type Option func(*options)

// WithNow sets the clock the store uses where it stamps time itself (lease
// and reply updates, redriven outbox items). The default is time.Now.
func WithNow(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithReadConns sets the size of the read pool; the default is
// max(4, 2×GOMAXPROCS).
func WithReadConns(n int) Option { return func(o *options) { o.readConns = n } }

// WithBusyTimeout sets how long a connection waits for a lock that another
// process holds before failing with SQLITE_BUSY; the default is 5s.
func WithBusyTimeout(d time.Duration) Option { return func(o *options) { o.busyTimeout = d } }

// WithCheckpoint sets how many commits pass between the background
// checkpointer's PASSIVE checkpoints (default 64) and how long the store
// must be idle before it truncates the WAL (default 1s); see checkpointer.
func WithCheckpoint(every int, idle time.Duration) Option {
	return func(o *options) { o.checkpointEvery, o.checkpointIdle = every, idle }
}

// Open opens (creating if needed) the SQLite database at path and applies
// pending migrations. The path must not contain '?'.
func Open(ctx context.Context, path string, opts ...Option) (*DB, error) {
	o := options{now: time.Now, readConns: max(4, 2*runtime.GOMAXPROCS(0)), busyTimeout: 5 * time.Second,
		checkpointEvery: 64, checkpointIdle: time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	o.checkpointEvery = max(1, o.checkpointEvery)
	if o.checkpointIdle <= 0 {
		o.checkpointIdle = time.Second
	}
	if path == "" || strings.Contains(path, "?") {
		return nil, gymbro.Errorf(gymbro.KindInvalid, "invalid_path", "The SQLite path %q is not usable.", path)
	}
	// The file is made (or kept) 0600 before SQLite opens it: SQLite gives
	// the -wal and -shm files it creates the database file's mode. A path
	// that cannot be opened at all fails here, named, and not as an outage
	// to retry: no retry creates a missing directory or grants access.
	if err := datadir.PrepareSQLite(path); err != nil {
		return nil, gymbro.Wrap(err, gymbro.KindInvalid, "invalid_path", "The SQLite database cannot be opened") // err names the path
	}
	// IMMEDIATE takes the write lock at BEGIN, so a transaction that reads
	// and then writes cannot fail half-way with SQLITE_BUSY when another
	// process holds the file. Its commits never checkpoint: the
	// checkpointer does, off their path.
	write, err := openWrite(ctx, dsn(path, o.busyTimeout, url.Values{"_txlock": {"immediate"}, "_pragma": {"wal_autocheckpoint(0)"}}))
	if err != nil {
		return nil, err
	}
	read, err := sql.Open("sqlite", dsn(path, o.busyTimeout, url.Values{"_pragma": {"query_only(1)"}}))
	if err != nil {
		write.Close()
		return nil, dbErr(err)
	}
	read.SetMaxOpenConns(o.readConns)
	read.SetMaxIdleConns(o.readConns)
	read.SetConnMaxIdleTime(0)

	db := &DB{write: write, read: read, now: o.now, stmts: map[string]*sql.Stmt{}, reads: map[string]*sql.Stmt{}}
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if err := db.prepare(ctx); err != nil {
		db.Close()
		return nil, err
	}
	ckpt, err := sql.Open("sqlite", dsn(path, o.busyTimeout, nil))
	if err != nil {
		db.Close()
		return nil, dbErr(err)
	}
	ckpt.SetMaxOpenConns(1)
	ckpt.SetMaxIdleConns(1)
	ckpt.SetConnMaxIdleTime(0)
	db.ckpt = newCheckpointer(ckpt, write, o.checkpointEvery, o.checkpointIdle)
	return db, nil
}

// dsn is the data source name of path with the pragmas every connection
// takes, then extra.
func dsn(path string, busyTimeout time.Duration, extra url.Values) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(busyTimeout.Milliseconds(), 10)+")")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "journal_mode(WAL)")
	// NORMAL is durable across application crashes in WAL mode; only a power
	// loss may drop the last transactions (sqlite.org/pragma.html#pragma_synchronous).
	q.Add("_pragma", "synchronous(NORMAL)")
	for k, vs := range extra {
		for _, v := range vs {
			q.Add(k, v)
		}
	}
	return path + "?" + q.Encode()
}

// openWrite opens the one write connection. It creates the file and
// switches it to WAL before the readers open it.
func openWrite(ctx context.Context, dsn string) (*sql.DB, error) {
	write, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, dbErr(err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)
	if err := write.PingContext(ctx); err != nil {
		write.Close()
		return nil, dbErr(err)
	}
	return write, nil
}

// Migrate applies the embedded migrations that schema_migrations does not
// list yet, each in its own transaction. Running it again is a no-op.
func (db *DB) Migrate(ctx context.Context) error {
	if _, err := db.write.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at INTEGER NOT NULL
	)`); err != nil {
		return dbErr(err)
	}
	migs, err := sqlmigrate.Load(migrationFS, "migrations")
	if err != nil {
		return err
	}
	for _, m := range migs {
		err := db.writeTx(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, m.Version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
				return fmt.Errorf("migration %d: %w", m.Version, err)
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, m.Version, micros(db.now()))
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Ping reports whether both pools can reach the file.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.read.PingContext(ctx); err != nil {
		return dbErr(err)
	}
	var one int
	if err := db.read.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return dbErr(err)
	}
	return nil
}

// Close stops the checkpointer and closes both pools. A WAL checkpoint
// runs as the last connection closes, leaving a self-contained file behind.
func (db *DB) Close() error {
	var cerr error
	if db.ckpt != nil {
		cerr = db.ckpt.close()
	}
	for _, st := range db.stmts {
		st.Close()
	}
	for _, st := range db.reads {
		st.Close()
	}
	rerr := db.read.Close()
	werr := db.write.Close()
	return errors.Join(cerr, rerr, werr)
}

// writeTx runs fn in a transaction on the write connection, committing when
// fn returns nil.
func (db *DB) writeTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return dbErr(err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return dbErr(err)
	}
	if err := tx.Commit(); err != nil {
		return dbErr(err)
	}
	if db.ckpt != nil {
		db.ckpt.committed()
	}
	return nil
}

// stmt returns query bound to tx: the statement prepared at Open when it
// is one of the hot ones, else a one-off. Parsing SQL is a large share of a
// small write's cost in SQLite, so the writes every exchange makes are
// compiled once. The map is read-only after Open.
func (db *DB) stmt(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	if st, ok := db.stmts[query]; ok {
		return tx.StmtContext(ctx, st), nil
	}
	return tx.PrepareContext(ctx, query)
}

// prepare compiles the hot write statements on the write connection and
// the hot read statements on the read pool. A read *sql.Stmt belongs to the
// pool, not to one connection: database/sql prepares it again on each
// connection the first time that connection runs it, and keeps it there.
func (db *DB) prepare(ctx context.Context) error {
	for _, q := range hotWrites {
		st, err := db.write.PrepareContext(ctx, q)
		if err != nil {
			return dbErr(err)
		}
		db.stmts[q] = st
	}
	for _, q := range hotReads {
		st, err := db.read.PrepareContext(ctx, q)
		if err != nil {
			return dbErr(err)
		}
		db.reads[q] = st
	}
	return nil
}

// readQuery runs one of the hotReads on the read pool through its prepared
// statement. Outside a transaction database/sql would otherwise prepare, run
// and finalize the SQL on every call, and with the pure-Go driver that parse
// is a large share of a small read (a profile of the POST benchmark put
// 13.7 % of all CPU in statement preparation). A query missing from
// hotReads is a programming error, reported rather than run unprepared so
// the contract tests catch it.
func (db *DB) readQuery(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, ok := db.reads[query]
	if !ok {
		return nil, errUnprepared()
	}
	return st.QueryContext(ctx, args...)
}

// readRow is readQuery for a single row; its Scan reports the error.
func (db *DB) readRow(ctx context.Context, query string, args ...any) scanner {
	st, ok := db.reads[query]
	if !ok {
		return errRow{errUnprepared()}
	}
	return st.QueryRowContext(ctx, args...)
}

// errRow is a row whose Scan fails with err.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

func errUnprepared() error {
	return gymbro.Errorf(gymbro.KindInternal, gymbro.CodeInternal, "A read statement was not prepared.")
}

// exec runs a cached statement in tx.
func (db *DB) exec(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	st, err := db.stmt(ctx, tx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

// queryRow runs a cached single-row query in tx.
func (db *DB) queryRow(ctx context.Context, tx *sql.Tx, query string, args ...any) (*sql.Row, error) {
	st, err := db.stmt(ctx, tx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryRowContext(ctx, args...), nil
}

// dbErr classifies a driver failure; see sqlstore.Err.
func dbErr(err error) error {
	return sqlstore.Err(err, func(error) bool { return false }, unavailable)
}

// unavailable: the file is locked by another process past the busy
// timeout, cannot be opened, or the disk is full or failing.
func unavailable(err error) bool {
	if se, ok := errors.AsType[*sqlite3.Error](err); ok {
		switch se.Code() & 0xff {
		case sqlite3lib.SQLITE_BUSY, sqlite3lib.SQLITE_LOCKED, sqlite3lib.SQLITE_CANTOPEN, sqlite3lib.SQLITE_FULL, sqlite3lib.SQLITE_IOERR:
			return true
		}
	}
	return errors.Is(err, sql.ErrConnDone)
}

// isUnique reports whether err is a UNIQUE or PRIMARY KEY violation.
func isUnique(err error) bool {
	var se *sqlite3.Error
	if errors.As(err, &se) {
		c := se.Code()
		return c == sqlite3lib.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3lib.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

// micros is how times are stored: UTC microseconds since the epoch.
func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

func nullMicros(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMicros(v.Int64)
	return &t
}
