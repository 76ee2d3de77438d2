package testusers_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/gymbro/gymbro-api/internal/auth"
	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/supabase"
	"github.com/gymbro/gymbro-api/internal/supabase/emulator"
	"github.com/gymbro/gymbro-api/internal/testenv"
	"github.com/gymbro/gymbro-api/internal/testusers"
)

// env is the Auth emulator served over real HTTP under /auth/v1, as our
// server mounts it, with an admin client, a real verifier trusting it, a
// clock and a log buffer.
type env struct {
	em       *emulator.Emulator
	srv      *httptest.Server
	admin    *supabase.AuthClient
	verifier *auth.Verifier
	clock    *testenv.Clock
	logs     *testenv.LogBuffer
	service  string // the emulator's service role key
}

// newEnv starts the emulator. wrap, when not nil, sits in front of it
// (to play another instance that wins a race).
func newEnv(t testing.TB, wrap func(em *emulator.Emulator, next http.Handler) http.Handler) *env {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	em, err := emulator.Open(context.Background(), emulator.Options{
		Dir: t.TempDir(), Issuer: srv.URL + "/auth/v1", BcryptCost: bcrypt.MinCost,
	})
	if err != nil {
		t.Fatalf("open emulator: %v", err)
	}
	t.Cleanup(func() { em.Close() })
	var h http.Handler = http.StripPrefix("/auth/v1", em.Handler())
	if wrap != nil {
		h = wrap(em, h)
	}
	mux.Handle("/auth/v1/", h)
	v, err := auth.New(auth.Config{Issuers: []auth.Issuer{auth.SupabaseIssuer(srv.URL, nil)}, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatalf("auth.New: %v", err)
	}
	t.Cleanup(v.Close)
	anon, service := em.Keys()
	return &env{
		em: em, srv: srv, verifier: v, clock: testenv.NewClock(time.Now()), logs: &testenv.LogBuffer{}, service: service,
		admin: supabase.NewAuthClient(supabase.AuthConfig{URL: srv.URL, AnonKey: anon, ServiceRoleKey: service, HTTPClient: srv.Client()}),
	}
}

// options are the development defaults against the emulator: enabled, any
// verified caller, a generous rate.
func (e *env) options() testusers.Options {
	return testusers.Options{
		Auth: e.admin, ServiceKeySet: true, Verifier: e.verifier, Enabled: true, SupabaseIssuer: e.issuer(),
		PerMinute: 1 << 20, Now: e.clock.Now,
		Logger: slog.New(slog.NewJSONHandler(e.logs, nil)),
	}
}

// issuer is the iss of the emulator's tokens.
func (e *env) issuer() string { return e.srv.URL + "/auth/v1" }

// supabaseUser makes a Supabase user with email, confirmed or not, and
// returns the principal its token would become.
func (e *env) supabaseUser(t testing.TB, email string, confirmed bool) *gymbro.Principal {
	t.Helper()
	u, err := e.admin.CreateUser(context.Background(), supabase.AdminUserParams{Email: email, Password: "correct horse", EmailConfirm: confirmed})
	if err != nil {
		t.Fatal(err)
	}
	return &gymbro.Principal{UID: u.ID, ProviderUID: u.ID, Email: email, Provider: gymbro.ProviderSupabase, Issuer: e.issuer()}
}

func (e *env) newService(t testing.TB, mutate func(*testusers.Options)) *testusers.Service {
	t.Helper()
	o := e.options()
	if mutate != nil {
		mutate(&o)
	}
	s, err := testusers.New(o)
	if err != nil {
		t.Fatalf("testusers.New: %v", err)
	}
	return s
}

// caller is a verified developer using the console.
var caller = &gymbro.Principal{UID: "3f0c1c2e-0000-4000-8000-000000000001", Email: "Dev@Example.com", Provider: gymbro.ProviderSupabase}

func create(t *testing.T, s *testusers.Service, prefix string) *gymbro.TestUser {
	t.Helper()
	u, err := s.Create(t.Context(), caller, gymbro.TestUserRequest{UsernamePrefix: prefix})
	if err != nil {
		t.Fatalf("Create(%q): %v", prefix, err)
	}
	return u
}

// newDefault is a fresh env and a service on it with default options.
func newDefault(t *testing.T) (*env, *testusers.Service) {
	t.Helper()
	e := newEnv(t, nil)
	return e, e.newService(t, nil)
}

// wantNext creates a user with prefix and fails t unless it is named want.
func wantNext(t *testing.T, s *testusers.Service, prefix, want string) {
	t.Helper()
	if got := create(t, s, prefix); got.Username != want {
		t.Errorf("Create(%q) = %s, want %s", prefix, got.Username, want)
	}
}

// wantErr checks err is a *gymbro.Error of kind and code and returns it.
func wantErr(t *testing.T, err error, kind gymbro.Kind, code string) *gymbro.Error {
	t.Helper()
	var ge *gymbro.Error
	if !errors.As(err, &ge) {
		t.Fatalf("err = %v, want *gymbro.Error %s", err, code)
	}
	if ge.Code != code || ge.Kind != kind {
		t.Fatalf("err = kind %d code %q (%v), want kind %d code %q", ge.Kind, ge.Code, err, kind, code)
	}
	return ge
}

func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
