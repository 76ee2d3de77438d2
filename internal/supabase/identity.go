package supabase

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/singleflight"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// IdentityOptions tunes an IdentityProvider's cache.
type IdentityOptions struct {
	TTL        time.Duration    // how long a user is served from cache; default 60s
	MaxEntries int              // cache bound; default 10,000
	Now        func() time.Time // clock; default time.Now
}

// IdentityProvider answers gymbro.IdentityProvider from the Supabase Admin
// API. Answers are cached briefly so a burst of requests costs one Admin
// call, and concurrent misses for one user share a single call.
type IdentityProvider struct {
	client *AuthClient
	opts   IdentityOptions
	group  singleflight.Group

	mu    sync.Mutex
	cache map[string]identityEntry
}

type identityEntry struct {
	details gymbro.UserDetails
	expires time.Time
}

var _ gymbro.IdentityProvider = (*IdentityProvider)(nil)

// NewIdentityProvider returns an IdentityProvider that asks client.
func NewIdentityProvider(client *AuthClient, opts IdentityOptions) *IdentityProvider {
	if opts.TTL <= 0 {
		opts.TTL = 60 * time.Second
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = 10_000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &IdentityProvider{client: client, opts: opts, cache: map[string]identityEntry{}}
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
	now := p.opts.Now()
	p.mu.Lock()
	e, ok := p.cache[uid]
	p.mu.Unlock()
	if ok && now.Before(e.expires) {
		return cloneDetails(e.details), nil
	}
	v, err, _ := p.group.Do(uid, func() (any, error) {
		// Detached from this caller's cancellation: the call is shared by
		// every concurrent caller; the client's own timeout still bounds it.
		u, err := p.client.GetUser(context.WithoutCancel(ctx), uid)
		if err != nil {
			var ae *APIError
			if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
				return nil, gymbro.Wrap(err, gymbro.KindNotFound, AuthCodeUserNotFound, "No such user.")
			}
			return nil, err
		}
		now := p.opts.Now()
		d := userDetails(u, now)
		p.store(uid, d, now)
		return d, nil
	})
	if err != nil {
		return nil, err
	}
	return cloneDetails(v.(gymbro.UserDetails)), nil
}

// Forget drops uid from the cache, e.g. after updating that user.
func (p *IdentityProvider) Forget(uid string) {
	p.mu.Lock()
	delete(p.cache, uid)
	p.mu.Unlock()
}

func (p *IdentityProvider) store(uid string, d gymbro.UserDetails, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.cache) >= p.opts.MaxEntries {
		for k, e := range p.cache {
			if !now.Before(e.expires) {
				delete(p.cache, k)
			}
		}
	}
	// Still full of live entries: drop arbitrary ones (map order is random),
	// which bounds memory at the price of an extra lookup later.
	for k := range p.cache {
		if len(p.cache) < p.opts.MaxEntries {
			break
		}
		delete(p.cache, k)
	}
	p.cache[uid] = identityEntry{details: d, expires: now.Add(p.opts.TTL)}
}

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
