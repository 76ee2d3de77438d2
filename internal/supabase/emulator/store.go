package emulator

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver: no cgo in the binary

	"github.com/gymbro/gymbro-api/internal/datadir"
)

const schema = `
CREATE TABLE IF NOT EXISTS users (
	id                 TEXT PRIMARY KEY,
	aud                TEXT NOT NULL,
	role               TEXT NOT NULL,
	email              TEXT NOT NULL DEFAULT '',
	phone              TEXT NOT NULL DEFAULT '',
	encrypted_password TEXT NOT NULL,
	email_confirmed_at INTEGER,
	last_sign_in_at    INTEGER,
	app_metadata       TEXT NOT NULL DEFAULT '{}',
	user_metadata      TEXT NOT NULL DEFAULT '{}',
	created_at         INTEGER NOT NULL,
	updated_at         INTEGER NOT NULL,
	banned_until       INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS users_email ON users(email) WHERE email <> '';
CREATE INDEX IF NOT EXISTS users_created ON users(created_at);
CREATE TABLE IF NOT EXISTS sessions (
	id           TEXT PRIMARY KEY,
	user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	signed_in_at INTEGER NOT NULL,
	created_at   INTEGER NOT NULL,
	updated_at   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions(user_id);
CREATE TABLE IF NOT EXISTS refresh_tokens (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	token      TEXT NOT NULL UNIQUE,
	session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
	parent     TEXT NOT NULL DEFAULT '',
	revoked    INTEGER NOT NULL DEFAULT 0,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS refresh_tokens_session ON refresh_tokens(session_id);
`

// openDB opens auth.db in dir in WAL mode with foreign keys on (sessions and
// refresh tokens cascade from their user). One connection serialises writes,
// which is plenty for a development emulator and rules out SQLITE_BUSY on
// read-then-write transactions.
func openDB(ctx context.Context, dir string) (*sql.DB, error) {
	q := url.Values{}
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "synchronous(NORMAL)")
	path := filepath.Join(dir, "auth.db")
	if err := datadir.PrepareSQLite(path); err != nil { // 0600, and so its WAL and SHM
		return nil, fmt.Errorf("emulator: open auth.db: %w", err)
	}
	dsn := "file:" + path + "?" + q.Encode()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("emulator: open auth.db: %w", err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("emulator: migrate auth.db: %w", err)
	}
	if err := addBannedUntil(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("emulator: migrate auth.db: %w", err)
	}
	return db, nil
}

// addBannedUntil adds users.banned_until to an auth.db made before bans
// were emulated.
func addBannedUntil(ctx context.Context, db *sql.DB) error {
	var n int
	err := db.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info('users') WHERE name = 'banned_until'`).Scan(&n)
	if err != nil || n > 0 {
		return err
	}
	_, err = db.ExecContext(ctx, `ALTER TABLE users ADD COLUMN banned_until INTEGER`)
	return err
}

// user is one row of users.
type user struct {
	ID               string
	Aud              string
	Role             string
	Email            string
	Phone            string
	PasswordHash     string
	EmailConfirmedAt *time.Time
	LastSignInAt     *time.Time
	AppMetadata      map[string]any
	UserMetadata     map[string]any
	CreatedAt        time.Time
	UpdatedAt        time.Time
	BannedUntil      *time.Time // set by the Admin API's ban_duration
}

// bannedAt reports whether u is banned at now, as Supabase Auth's
// User.IsBanned does.
func (u *user) bannedAt(now time.Time) bool {
	return u.BannedUntil != nil && now.Before(*u.BannedUntil)
}

// errNoRows is returned by the lookups below for a missing row.
var errNoRows = sql.ErrNoRows

// querier is what *sql.DB and *sql.Tx share.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

const userColumns = `id, aud, role, email, phone, encrypted_password, email_confirmed_at,
	last_sign_in_at, app_metadata, user_metadata, created_at, updated_at, banned_until`

type scanner interface{ Scan(dest ...any) error }

func scanUser(s scanner) (*user, error) {
	var (
		u                    user
		confirmed, lastLogin sql.NullInt64
		banned               sql.NullInt64
		appMeta, userMeta    string
		created, updated     int64
	)
	if err := s.Scan(&u.ID, &u.Aud, &u.Role, &u.Email, &u.Phone, &u.PasswordHash, &confirmed,
		&lastLogin, &appMeta, &userMeta, &created, &updated, &banned); err != nil {
		return nil, err
	}
	u.EmailConfirmedAt, u.LastSignInAt, u.BannedUntil = fromNull(confirmed), fromNull(lastLogin), fromNull(banned)
	u.CreatedAt, u.UpdatedAt = fromMicro(created), fromMicro(updated)
	if err := json.Unmarshal([]byte(appMeta), &u.AppMetadata); err != nil {
		return nil, fmt.Errorf("decode app_metadata: %w", err)
	}
	if err := json.Unmarshal([]byte(userMeta), &u.UserMetadata); err != nil {
		return nil, fmt.Errorf("decode user_metadata: %w", err)
	}
	if u.AppMetadata == nil {
		u.AppMetadata = map[string]any{}
	}
	if u.UserMetadata == nil {
		u.UserMetadata = map[string]any{}
	}
	return &u, nil
}

func getUserByID(ctx context.Context, q querier, id string) (*user, error) {
	return scanUser(q.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = ?`, id))
}

func getUserByEmail(ctx context.Context, q querier, email string) (*user, error) {
	return scanUser(q.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE email = ?`, email))
}

// metadataJSON is u's app and user metadata as the JSON the columns hold.
func metadataJSON(u *user) (app, um string, err error) {
	a, err := json.Marshal(u.AppMetadata)
	if err != nil {
		return "", "", err
	}
	m, err := json.Marshal(u.UserMetadata)
	if err != nil {
		return "", "", err
	}
	return string(a), string(m), nil
}

func insertUser(ctx context.Context, q querier, u *user) error {
	app, um, err := metadataJSON(u)
	if err != nil {
		return err
	}
	_, err = q.ExecContext(ctx, `INSERT INTO users (`+userColumns+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		u.ID, u.Aud, u.Role, u.Email, u.Phone, u.PasswordHash, toNull(u.EmailConfirmedAt),
		toNull(u.LastSignInAt), app, um, toMicro(u.CreatedAt), toMicro(u.UpdatedAt), toNull(u.BannedUntil))
	return err
}

func updateUser(ctx context.Context, q querier, u *user) error {
	app, um, err := metadataJSON(u)
	if err != nil {
		return err
	}
	_, err = q.ExecContext(ctx, `UPDATE users SET aud=?, role=?, email=?, phone=?, encrypted_password=?,
		email_confirmed_at=?, last_sign_in_at=?, app_metadata=?, user_metadata=?, updated_at=?, banned_until=? WHERE id=?`,
		u.Aud, u.Role, u.Email, u.Phone, u.PasswordHash, toNull(u.EmailConfirmedAt), toNull(u.LastSignInAt),
		app, um, toMicro(u.UpdatedAt), toNull(u.BannedUntil), u.ID)
	return err
}

// isUniqueViolation reports whether err is SQLite's UNIQUE constraint
// failure (extended code 2067), matched on text to avoid importing the
// driver's internals.
func isUniqueViolation(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// session is one row of sessions.
type session struct {
	ID         string
	UserID     string
	SignedInAt time.Time
}

func getSession(ctx context.Context, q querier, id string) (*session, error) {
	var s session
	var at int64
	err := q.QueryRowContext(ctx, `SELECT id, user_id, signed_in_at FROM sessions WHERE id = ?`, id).Scan(&s.ID, &s.UserID, &at)
	if err != nil {
		return nil, err
	}
	s.SignedInAt = fromMicro(at)
	return &s, nil
}

// refreshToken is one row of refresh_tokens.
type refreshToken struct {
	ID        int64
	Token     string
	SessionID string
	Parent    string
	Revoked   bool
	UpdatedAt time.Time
}

func getRefreshToken(ctx context.Context, q querier, token string) (*refreshToken, error) {
	var rt refreshToken
	var updated int64
	err := q.QueryRowContext(ctx, `SELECT id, token, session_id, parent, revoked, updated_at
		FROM refresh_tokens WHERE token = ?`, token).Scan(&rt.ID, &rt.Token, &rt.SessionID, &rt.Parent, &rt.Revoked, &updated)
	if err != nil {
		return nil, err
	}
	rt.UpdatedAt = fromMicro(updated)
	return &rt, nil
}

// activeRefreshToken returns the session's newest unrevoked token.
func activeRefreshToken(ctx context.Context, q querier, sessionID string) (*refreshToken, error) {
	var token string
	err := q.QueryRowContext(ctx, `SELECT token FROM refresh_tokens WHERE session_id = ? AND revoked = 0
		ORDER BY id DESC LIMIT 1`, sessionID).Scan(&token)
	if err != nil {
		return nil, err
	}
	return getRefreshToken(ctx, q, token)
}

func insertRefreshToken(ctx context.Context, q querier, sessionID, parent string, now time.Time) (string, error) {
	token := randomString(16)
	_, err := q.ExecContext(ctx, `INSERT INTO refresh_tokens (token, session_id, parent, created_at, updated_at)
		VALUES (?,?,?,?,?)`, token, sessionID, parent, toMicro(now), toMicro(now))
	return token, err
}

func inTx(ctx context.Context, db *sql.DB, fn func(tx *sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		var he *httpError
		if errors.As(err, &he) && he.commit {
			if cerr := tx.Commit(); cerr != nil {
				return cerr
			}
			return err
		}
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

func toMicro(t time.Time) int64 { return t.UnixMicro() }

func fromMicro(v int64) time.Time { return time.UnixMicro(v).UTC() }

func toNull(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMicro()
}

func fromNull(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMicro(v.Int64)
	return &t
}
