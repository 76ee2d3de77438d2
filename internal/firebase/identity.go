package firebase

import (
	"context"
	"slices"
	"time"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/ttlcache"
)

// IdentityProvider answers gymbro.IdentityProvider for Firebase users from
// accounts:lookup. Answers are cached briefly (ttlcache.Options: 60s by
// default), so a burst of requests costs one lookup.
type IdentityProvider struct {
	client *Client
	cache  *ttlcache.Cache[gymbro.UserDetails]
}

var _ gymbro.IdentityProvider = (*IdentityProvider)(nil)

// NewIdentityProvider returns an IdentityProvider that asks client.
func NewIdentityProvider(client *Client, opts ttlcache.Options) *IdentityProvider {
	return &IdentityProvider{client: client, cache: ttlcache.New[gymbro.UserDetails](opts)}
}

// UserDetails returns what Firebase knows of p (looked up by its
// ProviderUID, the token's sub), or an *gymbro.Error of KindNotFound (code
// user_not_found) when Firebase has no such user. Failures to reach
// Firebase keep their KindUnavailable, KindTimeout or KindUpstream.
func (ip *IdentityProvider) UserDetails(ctx context.Context, p *gymbro.Principal) (*gymbro.UserDetails, error) {
	d, err := ip.cache.Get(ctx, p.ProviderUID, func(ctx context.Context) (gymbro.UserDetails, error) {
		u, err := ip.client.Lookup(ctx, p.ProviderUID)
		if err != nil {
			return gymbro.UserDetails{}, err
		}
		return userDetails(u, p.UID), nil
	})
	if err != nil {
		return nil, err
	}
	d.ProviderIDs = slices.Clone(d.ProviderIDs)
	return &d, nil
}

// userDetails is what this service shows of u, whose uid here is uid.
func userDetails(u *User, uid string) gymbro.UserDetails {
	d := gymbro.UserDetails{
		UID: uid, Email: u.Email, EmailVerified: u.EmailVerified, DisplayName: u.DisplayName,
		Phone: u.PhoneNumber, Provider: gymbro.ProviderFirebase, Disabled: u.Disabled,
		CreatedAt: millis(u.CreatedAt), LastSignInAt: millis(u.LastLoginAt),
	}
	for _, pi := range u.Providers {
		if pi.ProviderID != "" && !slices.Contains(d.ProviderIDs, pi.ProviderID) {
			d.ProviderIDs = append(d.ProviderIDs, pi.ProviderID)
		}
	}
	return d
}

// millis is a time Identity Toolkit gives in milliseconds; zero stays the
// zero time.
func millis(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}
