package firebase

import (
	"context"
	"strconv"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/sessioncheck"
)

// SessionCheckConfig configures a SessionChecker.
type SessionCheckConfig struct {
	Client *Client
	Issuer string // only Firebase tokens of this issuer are checked
	// Cache tunes the answers' cache and the outage rules (TTL, stale
	// window, bound, clock, logger, metrics); its Provider is set here.
	Cache sessioncheck.Config
}

// SessionChecker confirms that a Firebase user's tokens still stand, as
// the Admin SDKs' verifyIdToken(checkRevoked) does: the user exists, is
// not disabled, and their tokens were not revoked after the token's
// sign-in (validSince later than auth_time). Firebase ID tokens name no
// session, so a sign-in (uid and auth_time, which refreshed tokens keep) is
// the session; its answers are cached and an outage handled by package
// sessioncheck. It implements gymbro.SessionChecker.
type SessionChecker struct {
	cfg   SessionCheckConfig
	cache *sessioncheck.Cache
}

// NewSessionChecker returns a checker with cfg's defaults filled in.
func NewSessionChecker(cfg SessionCheckConfig) *SessionChecker {
	cfg.Cache.Provider = "Firebase Auth"
	return &SessionChecker{cfg: cfg, cache: sessioncheck.New(cfg.Cache)}
}

// CheckSession implements gymbro.SessionChecker. Tokens of other providers
// or issuers are not checked here. A principal without an auth time (which
// the verifier never lets through for Firebase) counts as signed in before
// any revocation: refused.
func (c *SessionChecker) CheckSession(ctx context.Context, p *gymbro.Principal, _ string) error {
	if p == nil || p.Provider != gymbro.ProviderFirebase || p.Issuer != c.cfg.Issuer {
		return nil
	}
	key := p.ProviderUID + "@" + strconv.FormatInt(p.AuthTime.Unix(), 10)
	return c.cache.Check(ctx, key, func(ctx context.Context) (*gymbro.Error, error) {
		u, err := c.cfg.Client.Lookup(ctx, p.ProviderUID)
		switch {
		case gymbro.ErrorCode(err) == CodeUserNotFound:
			return sessionRevoked("This user no longer exists; sign in with another account."), nil
		case err != nil:
			return nil, err
		case u.Disabled:
			return sessionRevoked("This user is disabled; sign in again when it is enabled."), nil
		case p.AuthTime.IsZero() || p.AuthTime.Unix() < u.ValidSince:
			return sessionRevoked("This user's sessions were revoked (signed out everywhere); sign in again."), nil
		}
		return nil, nil
	})
}

// sessionRevoked is the refusal of a token whose sign-in no longer stands.
func sessionRevoked(msg string) *gymbro.Error {
	return &gymbro.Error{Kind: gymbro.KindUnauthenticated, Code: gymbro.CodeSessionRevoked, Message: msg}
}
