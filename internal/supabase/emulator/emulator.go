package emulator

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/gymbro/gymbro-api/internal/datadir"
)

// Options configures an Emulator.
type Options struct {
	// Dir is the data directory: auth.db, the signing keys and any generated
	// API keys live there. It is created (0700) if missing.
	Dir string
	// Issuer is the iss of every access token: the public URL the emulator is
	// mounted at, e.g. http://127.0.0.1:8080/auth/v1.
	Issuer string
	// AnonKey and ServiceRoleKey are the API keys clients send in apikey.
	// Leave both empty to generate sb_publishable_… and sb_secret_… keys once
	// and keep them in Dir.
	AnonKey        string
	ServiceRoleKey string
	// AccessTokenTTL is the lifetime of access tokens; default 1h as in
	// Supabase.
	AccessTokenTTL time.Duration
	// BcryptCost is the cost of password hashes; default bcrypt.DefaultCost.
	// Tests lower it to bcrypt.MinCost.
	BcryptCost int
	// SignInsPerMinute limits password grants per client address; default
	// DefaultSignInsPerMinute. Beyond it: 429 over_request_rate_limit.
	SignInsPerMinute int
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives failures that are answered with a 500; default discards.
	Logger *slog.Logger
}

// LogValue keeps the API keys out of logs.
func (o Options) LogValue() slog.Value {
	return slog.GroupValue(slog.String("dir", o.Dir), slog.String("issuer", o.Issuer),
		slog.Duration("access_token_ttl", o.AccessTokenTTL))
}

// Defaults the emulator shares with a default Supabase Auth server.
const (
	defaultAccessTokenTTL = time.Hour
	refreshReuseInterval  = 10 * time.Second // GOTRUE_SECURITY_REFRESH_TOKEN_REUSE_INTERVAL
	minPasswordLength     = 6                // GOTRUE_PASSWORD_MIN_LENGTH
	audience              = "authenticated"
)

// Emulator is a Supabase-Auth-compatible server for local development: the
// Admin users API, the password and refresh-token grants, /user, /logout and
// the JWKS, with ES256 tokens. It keeps users and sessions in SQLite. It is
// for development and tests only: it has no rate limits, no e-mail, no MFA,
// and it stores refresh tokens in clear. The caller must never mount it in
// production.
type Emulator struct {
	opts    Options
	db      *sql.DB
	keys    *keyring
	anon    string
	service string
	log     *slog.Logger
	handler http.Handler
	signIns *signInLimiter
	// decoy is a hash of no one's password at the users' cost: a sign-in
	// with an unknown email is compared with it, so that it takes as long as
	// a wrong password and timing tells no one which emails have accounts.
	decoy func() []byte
	// compare checks a password against a hash: bcrypt's (tests count it).
	compare func(hash, password []byte) error
}

// Open opens (creating when needed) the emulator's state in opts.Dir.
func Open(ctx context.Context, opts Options) (*Emulator, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	opts.Issuer = strings.TrimRight(opts.Issuer, "/")
	if err := datadir.Create(opts.Dir); err != nil {
		return nil, fmt.Errorf("emulator: %w", err)
	}
	e := &Emulator{opts: opts, log: opts.Logger, anon: opts.AnonKey, service: opts.ServiceRoleKey,
		signIns: newSignInLimiter(opts.SignInsPerMinute), compare: bcrypt.CompareHashAndPassword}
	e.decoy = sync.OnceValue(func() []byte {
		h, err := bcrypt.GenerateFromPassword([]byte(randomString(32)), opts.BcryptCost)
		if err != nil {
			panic(err) // only for a cost out of range, which Open's callers never give
		}
		return h
	})
	if e.anon == "" {
		k, err := loadOrCreateAPIKeys(opts.Dir)
		if err != nil {
			return nil, err
		}
		e.anon, e.service = k.Anon, k.Service
	}
	kr, err := openKeyring(opts.Dir, opts.Now())
	if err != nil {
		return nil, err
	}
	e.keys = kr
	db, err := openDB(ctx, opts.Dir)
	if err != nil {
		return nil, err
	}
	e.db = db
	e.handler = e.routes()
	return e, nil
}

// check refuses options Open cannot work with and fills in the defaults.
func (opts *Options) check() error {
	if opts.Dir == "" {
		return errors.New("emulator: Options.Dir is required")
	}
	if opts.Issuer == "" {
		return errors.New("emulator: Options.Issuer is required")
	}
	if (opts.AnonKey == "") != (opts.ServiceRoleKey == "") {
		return errors.New("emulator: set both AnonKey and ServiceRoleKey, or neither")
	}
	if opts.AnonKey != "" && opts.AnonKey == opts.ServiceRoleKey {
		return errors.New("emulator: AnonKey and ServiceRoleKey must differ")
	}
	if opts.AccessTokenTTL <= 0 {
		opts.AccessTokenTTL = defaultAccessTokenTTL
	}
	if opts.AccessTokenTTL >= retiredKeyRetention {
		return errors.New("emulator: AccessTokenTTL must be shorter than a week")
	}
	if opts.BcryptCost == 0 {
		opts.BcryptCost = bcrypt.DefaultCost
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Close closes the database.
func (e *Emulator) Close() error { return e.db.Close() }

// Keys returns the API keys clients must send in apikey: the anon
// (publishable) key and the service-role (secret) key.
func (e *Emulator) Keys() (anon, service string) { return e.anon, e.service }

// Issuer returns the iss of the tokens the emulator signs.
func (e *Emulator) Issuer() string { return e.opts.Issuer }

// Handler returns the HTTP API, with routes relative to /auth/v1: mount it
// with http.StripPrefix("/auth/v1", h).
func (e *Emulator) Handler() http.Handler { return e.handler }

// RotateKey retires the current signing key and signs with a new one from
// now on, returning the new kid. The retired key stays in the JWKS until its
// tokens have expired.
func (e *Emulator) RotateKey(ctx context.Context) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	kid, err := rotateKeyFile(e.keys.path, e.opts.Now())
	if err != nil {
		return "", err
	}
	if err := e.keys.reload(true); err != nil {
		return "", err
	}
	return kid, nil
}

// EnsureUser makes sure a confirmed user with email and password exists, for
// the development operator account. An existing user keeps its id and
// metadata; its password is reset (ending its sessions) only when it no
// longer matches. created reports whether the user was new.
func (e *Emulator) EnsureUser(ctx context.Context, email, password string, metadata map[string]any) (id string, created bool, err error) {
	email, herr := normalizeEmail(email)
	if herr != nil {
		return "", false, herr
	}
	if len(password) < minPasswordLength {
		return "", false, weakPassword()
	}
	err = inTx(ctx, e.db, func(tx *sql.Tx) error {
		u, err := getUserByEmail(ctx, tx, email)
		switch {
		case errors.Is(err, errNoRows):
			confirm := true
			u, err := e.newUser(email, "", &password, confirm, metadata, nil)
			if err != nil {
				return err
			}
			if err := insertUser(ctx, tx, u); err != nil {
				return err
			}
			id, created = u.ID, true
			return nil
		case err != nil:
			return err
		}
		id = u.ID
		if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) == nil {
			return nil
		}
		hash, err := bcrypt.GenerateFromPassword([]byte(password), e.opts.BcryptCost)
		if err != nil {
			return err
		}
		u.PasswordHash, u.UpdatedAt = string(hash), e.now()
		if u.EmailConfirmedAt == nil {
			t := e.now()
			u.EmailConfirmedAt = &t
		}
		if err := updateUser(ctx, tx, u); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = ?`, u.ID)
		return err
	})
	if err != nil {
		return "", false, fmt.Errorf("emulator: ensure user: %w", err)
	}
	return id, created, nil
}

func (e *Emulator) now() time.Time { return e.opts.Now().UTC().Truncate(time.Microsecond) }

// newUser builds a user the way Supabase Auth's admin create does: a random
// password when none is given, app_metadata naming the email provider,
// merged with the caller's.
func (e *Emulator) newUser(email, phone string, password *string, confirm bool, userMeta, appMeta map[string]any) (*user, error) {
	pw := randomString(64)
	if password != nil && *password != "" {
		pw = *password
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(pw), e.opts.BcryptCost)
	if err != nil {
		return nil, fmt.Errorf("hash password: %w", err)
	}
	now := e.now()
	providers := []any{}
	if email != "" {
		providers = append(providers, "email")
	}
	if phone != "" {
		providers = append(providers, "phone")
	}
	u := &user{
		ID: uuid.NewString(), Aud: audience, Role: "authenticated", Email: email, Phone: phone,
		PasswordHash: string(hash),
		AppMetadata:  map[string]any{"provider": providers[0], "providers": providers},
		UserMetadata: map[string]any{},
		CreatedAt:    now, UpdatedAt: now,
	}
	mergeMetadata(u.AppMetadata, appMeta)
	mergeMetadata(u.UserMetadata, userMeta)
	if confirm {
		u.EmailConfirmedAt = &now
	}
	return u, nil
}

// mergeMetadata applies updates the way Supabase Auth does: each key is set,
// and a key set to null is removed.
func mergeMetadata(dst, updates map[string]any) {
	for k, v := range updates {
		if v == nil {
			delete(dst, k)
		} else {
			dst[k] = v
		}
	}
}

// normalizeEmail lower-cases and trims email, as Supabase Auth stores it, so
// that Ana@X.io and ana@x.io are one account.
func normalizeEmail(email string) (string, *httpError) {
	email = strings.ToLower(strings.TrimSpace(email))
	at := strings.LastIndexByte(email, '@')
	if len(email) > 255 || at < 1 || at == len(email)-1 || strings.ContainsAny(email, " \t\r\n<>,;\"") {
		return "", newError(http.StatusBadRequest, "email_address_invalid", "Unable to validate email address: invalid format")
	}
	return email, nil
}

func weakPassword() *httpError {
	e := newError(http.StatusUnprocessableEntity, "weak_password",
		fmt.Sprintf("Password should be at least %d characters.", minPasswordLength))
	e.reasons = []string{"length"}
	return e
}

func cloneMap(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return maps.Clone(m)
}
