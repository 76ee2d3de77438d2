package supabase

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// Session-check defaults.
const (
	DefaultSessionCheckTTL   = 30 * time.Second
	DefaultSessionCheckStale = 10 * time.Minute
	// sessionOutageRetry is how long an unanswered check is remembered, and
	// the Retry-After of auth_unavailable: an Auth server that is down is
	// asked at most this often per session.
	sessionOutageRetry = 5 * time.Second
	// sessionCheckTimeout bounds one GET /user, whoever waits for it.
	sessionCheckTimeout = 5 * time.Second
	defaultMaxSessions  = 100_000
)

// revokingCodes are the answers of GET /user that mean the session is over
// for good or for now: signed out (or its refresh-token family revoked),
// timed out, a banned or a deleted user. Anything else that is not a 200
// (a gateway's 401 for a bad apikey, 429, 5xx) says nothing about the
// session and is treated as an outage, never as a sign-out of every user.
var revokingCodes = map[string]bool{
	AuthCodeSessionNotFound: true,
	"session_expired":       true,
	AuthCodeUserBanned:      true,
	AuthCodeUserNotFound:    true,
}

// SessionResult names the outcome of one check (asked or cached) for metrics.
type SessionResult string

// Outcomes of a session check that asked Auth or fell back without it.
const (
	SessionConfirmed   SessionResult = "confirmed"
	SessionRevoked     SessionResult = "revoked"
	SessionStale       SessionResult = "stale_accepted"
	SessionUnavailable SessionResult = "unavailable"
)

// SessionCheckConfig configures a SessionChecker.
type SessionCheckConfig struct {
	Client *AuthClient // calls GET /auth/v1/user with the anon key as apikey
	Issuer string      // only Supabase tokens of this issuer are checked
	// TTL is how long an answer (either way) is reused; default 30s.
	TTL time.Duration
	// Stale is how long after its last confirmation a session is still
	// accepted while Auth cannot be reached; default 10m.
	Stale       time.Duration
	MaxSessions int // bound of the cache; default 100,000
	Now         func() time.Time
	Logger      *slog.Logger
	Observe     func(SessionResult) // optional, for metrics
}

// sessionEntry is what the checker remembers of one session.
type sessionEntry struct {
	checkedAt   time.Time
	confirmedAt time.Time     // zero when Auth never confirmed it
	refusal     *gymbro.Error // set when Auth said the session is over
	outage      bool          // the last ask got no usable answer
}

// SessionChecker asks Supabase Auth whether a token's session is live, as
// Supabase's own clients do with GET /auth/v1/user, and caches each answer
// per session_id: a session's first costly request pays one round trip,
// later ones a map look-up. It implements gymbro.SessionChecker.
type SessionChecker struct {
	cfg    SessionCheckConfig
	flight singleflight.Group

	mu       sync.Mutex
	sessions map[string]sessionEntry
}

// NewSessionChecker returns a checker with cfg's defaults filled in.
func NewSessionChecker(cfg SessionCheckConfig) *SessionChecker {
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultSessionCheckTTL
	}
	if cfg.Stale <= 0 {
		cfg.Stale = DefaultSessionCheckStale
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = defaultMaxSessions
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Observe == nil {
		cfg.Observe = func(SessionResult) {}
	}
	return &SessionChecker{cfg: cfg, sessions: make(map[string]sessionEntry)}
}

// CheckSession implements gymbro.SessionChecker. Tokens of other providers
// or issuers (Firebase, OIDC) are not checked: they have no session API.
func (c *SessionChecker) CheckSession(ctx context.Context, p *gymbro.Principal, token string) error {
	if p == nil || p.Provider != gymbro.ProviderSupabase || p.Issuer != c.cfg.Issuer {
		return nil
	}
	key := sessionKey(p, token)
	if e, ok := c.cached(key, c.cfg.Now()); ok {
		return c.judge(e, c.cfg.Now())
	}
	ch := c.flight.DoChan(key, func() (any, error) {
		return c.ask(context.WithoutCancel(ctx), key, p, token), nil
	})
	select {
	case r := <-ch:
		return c.judge(r.Val.(sessionEntry), c.cfg.Now())
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sessionKey is the uid and the session_id, or a digest of the token for a
// token that has none, so that no token is kept in memory. The uid keeps
// one user's answer from ever serving another's token.
func sessionKey(p *gymbro.Principal, token string) string {
	if p.SessionID != "" {
		return p.UID + "/" + p.SessionID
	}
	sum := sha256.Sum256([]byte(token))
	return "token:" + hex.EncodeToString(sum[:16])
}

// cached returns the entry for key while it is fresh: TTL for an answer,
// sessionOutageRetry for an outage.
func (c *SessionChecker) cached(key string, now time.Time) (sessionEntry, bool) {
	c.mu.Lock()
	e, ok := c.sessions[key]
	c.mu.Unlock()
	if !ok {
		return e, false
	}
	fresh := c.cfg.TTL
	if e.outage {
		fresh = min(fresh, sessionOutageRetry)
	}
	return e, now.Sub(e.checkedAt) < fresh
}

// ask calls GET /user once and records the answer.
func (c *SessionChecker) ask(ctx context.Context, key string, p *gymbro.Principal, token string) sessionEntry {
	ctx, cancel := context.WithTimeout(ctx, sessionCheckTimeout)
	defer cancel()
	now := c.cfg.Now()
	u, err := c.cfg.Client.GetUserByToken(ctx, token)
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.sessions[key]
	e.checkedAt = now
	switch code, revoked := revocation(err); {
	case err == nil && u.ID == p.UID:
		e.confirmedAt, e.refusal, e.outage = now, nil, false
	case err == nil || revoked:
		e.refusal, e.outage = sessionRevoked(code), false
	default:
		e.outage = true
		stale := !e.confirmedAt.IsZero() && now.Sub(e.confirmedAt) <= c.cfg.Stale
		c.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "auth: Supabase Auth cannot confirm a session",
			slog.Bool("accepted_as_confirmed_recently", stale), slog.String("err", err.Error()))
	}
	c.store(key, e, now)
	return e
}

// revocation reports whether err is Auth saying the session is over, and
// Auth's code for it.
func revocation(err error) (string, bool) {
	var ae *APIError
	if errors.As(err, &ae) && revokingCodes[ae.Code] {
		return ae.Code, true
	}
	return "", false
}

// judge turns an entry into the answer of CheckSession, and counts it.
func (c *SessionChecker) judge(e sessionEntry, now time.Time) error {
	result, err := SessionConfirmed, error(nil)
	switch {
	case e.refusal != nil:
		result, err = SessionRevoked, e.refusal
	case !e.outage:
	case !e.confirmedAt.IsZero() && now.Sub(e.confirmedAt) <= c.cfg.Stale:
		result = SessionStale
	default:
		result, err = SessionUnavailable, authUnavailable()
	}
	c.cfg.Observe(result)
	return err
}

// store saves e under key, making room first when the cache is full:
// entries no answer can use any more go, then arbitrary ones.
func (c *SessionChecker) store(key string, e sessionEntry, now time.Time) {
	if _, ok := c.sessions[key]; !ok && len(c.sessions) >= c.cfg.MaxSessions {
		keep := max(c.cfg.TTL, c.cfg.Stale)
		for k, old := range c.sessions {
			if now.Sub(old.checkedAt) > keep {
				delete(c.sessions, k)
			}
		}
		for k := range c.sessions {
			if len(c.sessions) < c.cfg.MaxSessions*9/10 {
				break
			}
			delete(c.sessions, k)
		}
	}
	c.sessions[key] = e
}

// sessionRevoked is the refusal of a token whose session is over.
func sessionRevoked(authCode string) *gymbro.Error {
	msg := "This session has ended (signed out, or the user was banned or deleted); sign in again."
	if authCode == AuthCodeUserBanned {
		msg = "This user is banned; sign in again when the ban is lifted."
	}
	return &gymbro.Error{Kind: gymbro.KindUnauthenticated, Code: gymbro.CodeSessionRevoked, Message: msg}
}

// authUnavailable is the answer when the session cannot be confirmed.
func authUnavailable() *gymbro.Error {
	return &gymbro.Error{Kind: gymbro.KindUnavailable, Code: gymbro.CodeAuthUnavailable, RetryAfter: sessionOutageRetry,
		Message: "Supabase Auth cannot confirm the session right now; retry later."}
}
