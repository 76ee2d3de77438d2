package identity_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/gymbro/gymbro-api/internal/auth"
	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/identity"
	"github.com/gymbro/gymbro-api/internal/supabase"
	"github.com/gymbro/gymbro-api/internal/supabase/emulator"
)

// supabaseAuth is a Supabase Auth server (the emulator) that counts the
// requests it receives, with the service's providers for its issuer.
type supabaseAuth struct {
	issuer   string
	client   *supabase.AuthClient
	requests atomic.Int64
	details  *supabase.IdentityProvider
	sessions *supabase.SessionChecker
}

func newSupabaseAuth(t *testing.T) *supabaseAuth {
	t.Helper()
	a := &supabaseAuth{}
	mux := http.NewServeMux()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.requests.Add(1)
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	a.issuer = srv.URL + "/auth/v1"
	em, err := emulator.Open(context.Background(), emulator.Options{Dir: t.TempDir(), Issuer: a.issuer, BcryptCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	mux.Handle("/auth/v1/", http.StripPrefix("/auth/v1", em.Handler()))
	anon, service := em.Keys()
	a.client = supabase.NewAuthClient(supabase.AuthConfig{URL: srv.URL, AnonKey: anon, ServiceRoleKey: service, HTTPClient: srv.Client()})
	a.details = supabase.NewIdentityProvider(a.client, supabase.IdentityOptions{})
	a.sessions = supabase.NewSessionChecker(supabase.SessionCheckConfig{Client: a.client, Issuer: a.issuer})
	return a
}

// signIn makes a user, signs it in and returns its verified principal and
// token.
func (a *supabaseAuth) signIn(t *testing.T, email string) (*gymbro.Principal, string) {
	t.Helper()
	ctx := context.Background()
	if _, err := a.client.CreateUser(ctx, supabase.AdminUserParams{Email: email, Password: "squat-123", EmailConfirm: true}); err != nil {
		t.Fatal(err)
	}
	s, err := a.client.SignInWithPassword(ctx, email, "squat-123")
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.New(auth.Config{Issuers: []auth.Issuer{auth.SupabaseIssuer(a.issuer[:len(a.issuer)-len("/auth/v1")], nil)}})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	p, err := v.Verify(ctx, s.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	return p, s.AccessToken
}

// TestRouterAsksOnlyTheIssuersProvider: a Supabase user is described and
// session-checked by Supabase; a principal of another issuer with the same
// sub, or of an issuer with no provider, is not found and has no session to
// check, and Supabase receives no request for it.
func TestRouterAsksOnlyTheIssuersProvider(t *testing.T) {
	ctx := context.Background()
	a := newSupabaseAuth(t)
	r := identity.NewRouter()
	r.Register(a.issuer, a.details, a.sessions)
	r.Register("https://login.example.com", nil, nil)

	p, token := a.signIn(t, "ana@example.com")
	d, err := r.UserDetails(ctx, p)
	if err != nil || d.UID != p.UID || d.Email != "ana@example.com" {
		t.Fatalf("Supabase user's details: %+v, %v", d, err)
	}
	if err := r.CheckSession(ctx, p, token); err != nil {
		t.Fatalf("Supabase session: %v", err)
	}
	if err := a.client.Logout(ctx, token); err != nil {
		t.Fatal(err)
	}

	before := a.requests.Load()
	others := []*gymbro.Principal{
		{UID: "firebase:" + p.ProviderUID, ProviderUID: p.ProviderUID, Provider: gymbro.ProviderFirebase, Issuer: "https://securetoken.google.com/gym"},
		{UID: gymbro.UserID(gymbro.ProviderOIDC, "https://login.example.com", p.ProviderUID), ProviderUID: p.ProviderUID,
			Provider: gymbro.ProviderOIDC, Issuer: "https://login.example.com", SessionID: p.SessionID},
		{UID: p.UID, ProviderUID: p.ProviderUID, Provider: gymbro.ProviderSupabase, Issuer: "https://other.supabase.co/auth/v1", SessionID: p.SessionID},
	}
	for _, o := range others {
		if _, err := r.UserDetails(ctx, o); gymbro.ErrorCode(err) != identity.CodeUserNotFound || gymbro.ErrorKind(err) != gymbro.KindNotFound {
			t.Errorf("details of %s at %s: %v, want 404 user_not_found", o.UID, o.Issuer, err)
		}
		if err := r.CheckSession(ctx, o, token); err != nil {
			t.Errorf("session of %s at %s: %v, want none to check", o.UID, o.Issuer, err)
		}
	}
	// Supabase's provider refuses another provider's principal by itself too.
	if _, err := a.details.UserDetails(ctx, others[0]); gymbro.ErrorCode(err) != identity.CodeUserNotFound {
		t.Errorf("Supabase details of a Firebase principal: %v", err)
	}
	if n := a.requests.Load() - before; n != 0 {
		t.Errorf("Supabase was asked %d times about principals of other issuers", n)
	}
	// The Supabase user's own session did end (asked under another cache
	// key: the confirmation before the sign-out is cached).
	if err := r.CheckSession(ctx, &gymbro.Principal{UID: p.UID, Provider: p.Provider, Issuer: p.Issuer, SessionID: p.SessionID + "x"}, token); gymbro.ErrorCode(err) != gymbro.CodeSessionRevoked {
		t.Errorf("signed-out session: %v, want session_revoked", err)
	}
}
