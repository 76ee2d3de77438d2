package supabase

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"time"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/sessioncheck"
)

// Session-check defaults.
const (
	DefaultSessionCheckTTL   = sessioncheck.DefaultTTL
	DefaultSessionCheckStale = sessioncheck.DefaultStale
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
type SessionResult = sessioncheck.Result

// Outcomes of a session check that asked Auth or fell back without it.
const (
	SessionConfirmed   = sessioncheck.Confirmed
	SessionRevoked     = sessioncheck.Revoked
	SessionStale       = sessioncheck.Stale
	SessionUnavailable = sessioncheck.Unavailable
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

// SessionChecker asks Supabase Auth whether a token's session is live, as
// Supabase's own clients do with GET /auth/v1/user, and caches each answer
// per session_id (see package sessioncheck for the cache and the outage
// rules). It implements gymbro.SessionChecker.
type SessionChecker struct {
	cfg   SessionCheckConfig
	cache *sessioncheck.Cache
}

// NewSessionChecker returns a checker with cfg's defaults filled in.
func NewSessionChecker(cfg SessionCheckConfig) *SessionChecker {
	return &SessionChecker{cfg: cfg, cache: sessioncheck.New(sessioncheck.Config{
		Provider: "Supabase Auth", TTL: cfg.TTL, Stale: cfg.Stale, MaxEntries: cfg.MaxSessions,
		Now: cfg.Now, Logger: cfg.Logger, Observe: cfg.Observe,
	})}
}

// CheckSession implements gymbro.SessionChecker. Tokens of other providers
// or issuers (Firebase, OIDC) are not checked here.
func (c *SessionChecker) CheckSession(ctx context.Context, p *gymbro.Principal, token string) error {
	if p == nil || p.Provider != gymbro.ProviderSupabase || p.Issuer != c.cfg.Issuer {
		return nil
	}
	return c.cache.Check(ctx, sessionKey(p, token), func(ctx context.Context) (*gymbro.Error, error) {
		u, err := c.cfg.Client.GetUserByToken(ctx, token)
		switch code, revoked := revocation(err); {
		case err == nil && u.ID == p.UID:
			return nil, nil
		case err == nil || revoked:
			return sessionRevoked(code), nil
		default:
			return nil, err
		}
	})
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

// revocation reports whether err is Auth saying the session is over, and
// Auth's code for it.
func revocation(err error) (string, bool) {
	var ae *APIError
	if errors.As(err, &ae) && revokingCodes[ae.Code] {
		return ae.Code, true
	}
	return "", false
}

// sessionRevoked is the refusal of a token whose session is over.
func sessionRevoked(authCode string) *gymbro.Error {
	msg := "This session has ended (signed out, or the user was banned or deleted); sign in again."
	if authCode == AuthCodeUserBanned {
		msg = "This user is banned; sign in again when the ban is lifted."
	}
	return &gymbro.Error{Kind: gymbro.KindUnauthenticated, Code: gymbro.CodeSessionRevoked, Message: msg}
}
