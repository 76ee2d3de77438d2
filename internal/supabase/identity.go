package supabase

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/ttlcache"
)

// IdentityOptions tunes an IdentityProvider's cache: how long a user is
// served from it (default 60s), its bound (default 10,000) and its clock.
type IdentityOptions = ttlcache.Options

// IdentityProvider answers gymbro.IdentityProvider from the Supabase Admin
// API. Answers are cached briefly so a burst of requests costs one Admin
// call, and concurrent misses for one user share a single call.
type IdentityProvider struct {
	client *AuthClient
	now    func() time.Time
	cache  *ttlcache.Cache[gymbro.UserDetails]
}

var _ gymbro.IdentityProvider = (*IdentityProvider)(nil)

// NewIdentityProvider returns an IdentityProvider that asks client.
func NewIdentityProvider(client *AuthClient, opts IdentityOptions) *IdentityProvider {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &IdentityProvider{client: client, now: now, cache: ttlcache.New[gymbro.UserDetails](opts)}
}

// UserDetails returns the Supabase user pr names, or an *gymbro.Error of
// KindNotFound (code user_not_found) when Supabase has none. Failures to
// reach Supabase keep their KindUnavailable/KindTimeout. Only a Supabase
// principal is looked up: the sub of another provider's token names nobody
// here, whatever it looks like (an identity.Router sends each principal to
// its own issuer's provider in the first place).
func (p *IdentityProvider) UserDetails(ctx context.Context, pr *gymbro.Principal) (*gymbro.UserDetails, error) {
	if pr.Provider != gymbro.ProviderSupabase {
		return nil, gymbro.Errorf(gymbro.KindNotFound, AuthCodeUserNotFound, "No such user.")
	}
	return p.User(ctx, pr.ProviderUID)
}

// User returns the Supabase user with id uid, as UserDetails does.
func (p *IdentityProvider) User(ctx context.Context, uid string) (*gymbro.UserDetails, error) {
	if _, err := uuid.Parse(uid); err != nil {
		// Supabase user ids are UUIDs; anything else cannot exist, and asking
		// would only earn a 400.
		return nil, gymbro.Errorf(gymbro.KindNotFound, AuthCodeUserNotFound, "No such user.")
	}
	// The cache detaches the call from this caller's cancellation (it is
	// shared by every concurrent caller); the client's own timeout still
	// bounds it.
	d, err := p.cache.Get(ctx, uid, func(ctx context.Context) (gymbro.UserDetails, error) {
		u, err := p.client.GetUser(ctx, uid)
		var ae *APIError
		switch {
		case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
			return gymbro.UserDetails{}, gymbro.Wrap(err, gymbro.KindNotFound, AuthCodeUserNotFound, "No such user.")
		case err != nil:
			return gymbro.UserDetails{}, err
		}
		return userDetails(u, p.now()), nil
	})
	if err != nil {
		return nil, err
	}
	return cloneDetails(d), nil
}

// Forget drops uid from the cache, e.g. after updating that user.
func (p *IdentityProvider) Forget(uid string) { p.cache.Forget(uid) }

// userDetails is what Supabase says of u; Disabled is whether u is banned
// at now.
func userDetails(u *User, now time.Time) gymbro.UserDetails {
	d := gymbro.UserDetails{
		UID: u.ID, Email: u.Email, EmailVerified: u.EmailConfirmedAt != nil, DisplayName: displayName(u.UserMetadata),
		Phone: u.Phone, Provider: gymbro.ProviderSupabase, Disabled: u.BannedUntil != nil && u.BannedUntil.After(now),
		CreatedAt: u.CreatedAt, AppMetadata: u.AppMetadata, UserMetadata: u.UserMetadata,
	}
	for _, id := range u.Identities {
		if !slices.Contains(d.ProviderIDs, id.Provider) {
			d.ProviderIDs = append(d.ProviderIDs, id.Provider)
		}
	}
	if u.LastSignInAt != nil {
		d.LastSignInAt = *u.LastSignInAt
	}
	return d
}

// displayName is the name Supabase keeps in user metadata: display_name
// (Studio's field), or full_name and name (what OAuth providers fill).
func displayName(meta map[string]any) string {
	for _, k := range []string{"display_name", "full_name", "name"} {
		if s, ok := meta[k].(string); ok && s != "" {
			return s
		}
	}
	return ""
}

// cloneDetails copies d so a caller editing the maps cannot change the
// cached answer others get.
func cloneDetails(d gymbro.UserDetails) *gymbro.UserDetails {
	d.AppMetadata = maps.Clone(d.AppMetadata)
	d.UserMetadata = maps.Clone(d.UserMetadata)
	d.ProviderIDs = slices.Clone(d.ProviderIDs)
	return &d
}
