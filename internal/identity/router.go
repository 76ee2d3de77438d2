// Package identity routes the questions about a user that only their
// identity provider can answer (what it knows of them, whether their
// session is still live) to the provider of the issuer that signed their
// token, and to no other: a token of one issuer never reaches another
// provider's API, whatever its sub.
package identity

import (
	"context"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// CodeUserNotFound answers details of a user whom no registered provider
// knows; Supabase's own answer for a deleted user has the same code.
const CodeUserNotFound = "user_not_found"

// Router is a gymbro.IdentityProvider and a gymbro.SessionChecker that
// hands each principal to the provider registered for its issuer. Register
// every issuer before the Router is used; it is then safe for concurrent
// use (it is never changed again).
type Router struct {
	routes map[string]route
}

type route struct {
	details  gymbro.IdentityProvider
	sessions gymbro.SessionChecker
}

var (
	_ gymbro.IdentityProvider = (*Router)(nil)
	_ gymbro.SessionChecker   = (*Router)(nil)
)

// NewRouter returns a Router with no issuer.
func NewRouter() *Router { return &Router{routes: map[string]route{}} }

// Register routes the principals of issuer (a token's exact iss) to
// details and sessions; either may be nil: that question then has no
// provider for them. Registering an issuer again replaces its providers.
func (r *Router) Register(issuer string, details gymbro.IdentityProvider, sessions gymbro.SessionChecker) {
	r.routes[issuer] = route{details: details, sessions: sessions}
}

// UserDetails asks p's issuer's provider; a principal whose issuer has no
// details provider is not found (404 user_not_found), never asked of
// another provider.
func (r *Router) UserDetails(ctx context.Context, p *gymbro.Principal) (*gymbro.UserDetails, error) {
	if d := r.routes[p.Issuer].details; d != nil {
		return d.UserDetails(ctx, p)
	}
	return nil, gymbro.Errorf(gymbro.KindNotFound, CodeUserNotFound,
		"No user details are available for users of this token's issuer.")
}

// CheckSession asks p's issuer's session checker; a principal whose issuer
// has none has no session to check (nil), as an OIDC token.
func (r *Router) CheckSession(ctx context.Context, p *gymbro.Principal, token string) error {
	if s := r.routes[p.Issuer].sessions; s != nil {
		return s.CheckSession(ctx, p, token)
	}
	return nil
}
