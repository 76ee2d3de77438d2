package supabase_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/supabase"
	"github.com/gymbro/gymbro-api/internal/supabase/emulator"
	"github.com/gymbro/gymbro-api/internal/testenv"
)

// sessionEnv is the emulator behind a front that counts GET /user and can
// answer it like a gateway in an outage.
type sessionEnv struct {
	client  *supabase.AuthClient
	issuer  string
	clock   *testenv.Clock
	asks    atomic.Int64
	down    atomic.Bool
	checker *supabase.SessionChecker
	results sync.Map // SessionResult → *atomic.Int64
}

func newSessionEnv(t testing.TB, maxSessions int) *sessionEnv {
	t.Helper()
	e := &sessionEnv{clock: testenv.NewClock(time.Now().UTC())}
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	e.issuer = srv.URL + "/auth/v1"
	em, err := emulator.Open(context.Background(), emulator.Options{Dir: t.TempDir(), Issuer: e.issuer, BcryptCost: bcrypt.MinCost, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	auth := http.StripPrefix("/auth/v1", em.Handler())
	mux.Handle("/auth/v1/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/auth/v1/user" {
			e.asks.Add(1)
			if e.down.Load() {
				http.Error(w, "upstream connect error", http.StatusServiceUnavailable)
				return
			}
		}
		auth.ServeHTTP(w, r)
	}))
	anon, service := em.Keys()
	e.client = supabase.NewAuthClient(supabase.AuthConfig{URL: srv.URL, AnonKey: anon, ServiceRoleKey: service, HTTPClient: srv.Client()})
	e.checker = supabase.NewSessionChecker(supabase.SessionCheckConfig{
		Client: e.client, Issuer: e.issuer, TTL: 30 * time.Second, Stale: 10 * time.Minute,
		MaxSessions: maxSessions, Now: e.clock.Now,
		Observe: func(r supabase.SessionResult) {
			n, _ := e.results.LoadOrStore(r, new(atomic.Int64))
			n.(*atomic.Int64).Add(1)
		},
	})
	return e
}

func (e *sessionEnv) count(r supabase.SessionResult) int64 {
	n, ok := e.results.Load(r)
	if !ok {
		return 0
	}
	return n.(*atomic.Int64).Load()
}

// session signs a new user in and returns its principal and token.
func (e *sessionEnv) session(t testing.TB, email string) (*gymbro.Principal, string) {
	t.Helper()
	ctx := context.Background()
	u, err := e.client.CreateUser(ctx, supabase.AdminUserParams{Email: email, Password: "squat-123", EmailConfirm: true})
	if err != nil {
		t.Fatal(err)
	}
	s, err := e.client.SignInWithPassword(ctx, email, "squat-123")
	if err != nil {
		t.Fatal(err)
	}
	c := claims(t, s.AccessToken)
	sid, _ := c["session_id"].(string)
	return &gymbro.Principal{UID: u.ID, Provider: gymbro.ProviderSupabase, Issuer: e.issuer, SessionID: sid}, s.AccessToken
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if gymbro.ErrorCode(err) != code {
		t.Fatalf("err = %v, want code %s", err, code)
	}
}

func TestSessionCheckCachesAndSharesOneAsk(t *testing.T) {
	e := newSessionEnv(t, 0)
	p, tok := e.session(t, "many@example.com")
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if err := e.checker.CheckSession(context.Background(), p, tok); err != nil {
				t.Errorf("CheckSession: %v", err)
			}
		})
	}
	wg.Wait()
	if n := e.asks.Load(); n != 1 {
		t.Fatalf("50 concurrent checks asked Auth %d times, want 1", n)
	}
	// Within the TTL a sign-out is not seen; after it, it is, and the
	// refusal is cached too.
	if err := e.client.Logout(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	if err := e.checker.CheckSession(t.Context(), p, tok); err != nil {
		t.Fatalf("within the TTL: %v", err)
	}
	e.clock.Advance(30 * time.Second)
	err := e.checker.CheckSession(t.Context(), p, tok)
	wantCode(t, err, gymbro.CodeSessionRevoked)
	if gymbro.ErrorKind(err) != gymbro.KindUnauthenticated {
		t.Errorf("kind %v", gymbro.ErrorKind(err))
	}
	_ = e.checker.CheckSession(t.Context(), p, tok)
	if n := e.asks.Load(); n != 2 {
		t.Errorf("Auth asked %d times, want 2", n)
	}
	if e.count(supabase.SessionRevoked) != 2 {
		t.Errorf("revoked counted %d times", e.count(supabase.SessionRevoked))
	}
}

func TestSessionCheckSkipsOtherIssuers(t *testing.T) {
	e := newSessionEnv(t, 0)
	for _, p := range []*gymbro.Principal{
		{UID: "u", Provider: gymbro.ProviderFirebase, Issuer: "https://securetoken.google.com/x"},
		{UID: "u", Provider: gymbro.ProviderSupabase, Issuer: "https://other.supabase.co/auth/v1", SessionID: "s"},
	} {
		if err := e.checker.CheckSession(t.Context(), p, "token"); err != nil {
			t.Errorf("%s: %v", p.Issuer, err)
		}
	}
	if e.asks.Load() != 0 {
		t.Error("Auth was asked about another issuer's token")
	}
}

func TestSessionCheckDuringAnOutage(t *testing.T) {
	e := newSessionEnv(t, 0)
	p, tok := e.session(t, "known@example.com")
	never, neverTok := e.session(t, "never@example.com")
	if err := e.checker.CheckSession(t.Context(), p, tok); err != nil {
		t.Fatal(err)
	}
	e.down.Store(true)
	e.clock.Advance(time.Minute)
	if err := e.checker.CheckSession(t.Context(), p, tok); err != nil {
		t.Fatalf("confirmed a minute ago, Auth down: %v", err)
	}
	if e.count(supabase.SessionStale) != 1 {
		t.Errorf("stale accepts counted: %d", e.count(supabase.SessionStale))
	}
	err := e.checker.CheckSession(t.Context(), never, neverTok)
	wantCode(t, err, gymbro.CodeAuthUnavailable)
	var ge *gymbro.Error
	if !errors.As(err, &ge) || ge.Kind != gymbro.KindUnavailable || ge.RetryAfter <= 0 {
		t.Errorf("auth_unavailable: %+v", ge)
	}
	// The outage answer is remembered briefly, so a down Auth is not asked
	// on every request.
	asks := e.asks.Load()
	_ = e.checker.CheckSession(t.Context(), never, neverTok)
	if e.asks.Load() != asks {
		t.Error("Auth asked again at once during an outage")
	}
	e.clock.Advance(10 * time.Minute)
	wantCode(t, e.checker.CheckSession(t.Context(), p, tok), gymbro.CodeAuthUnavailable)
	e.down.Store(false)
	e.clock.Advance(5 * time.Second)
	if err := e.checker.CheckSession(t.Context(), p, tok); err != nil {
		t.Fatalf("Auth back: %v", err)
	}
}

func TestSessionCheckCacheIsBounded(t *testing.T) {
	e := newSessionEnv(t, 4)
	var ps []*gymbro.Principal
	var toks []string
	for _, email := range []string{"a@x.io", "b@x.io", "c@x.io", "d@x.io", "e@x.io", "f@x.io"} {
		p, tok := e.session(t, email)
		ps, toks = append(ps, p), append(toks, tok)
		if err := e.checker.CheckSession(t.Context(), p, tok); err != nil {
			t.Fatal(err)
		}
	}
	// Six sessions through a cache of four: some were evicted and are
	// asked again; none is wrongly refused.
	asks := e.asks.Load()
	for i := range ps {
		if err := e.checker.CheckSession(t.Context(), ps[i], toks[i]); err != nil {
			t.Fatal(err)
		}
	}
	if e.asks.Load() == asks {
		t.Error("no session was evicted from a cache of 4 holding 6")
	}
}

// BenchmarkSessionCheck: a session's first write pays one GET /user (here
// to the emulator over loopback); the following ones a map look-up.
func BenchmarkSessionCheck(b *testing.B) {
	e := newSessionEnv(b, 0)
	p, tok := e.session(b, "bench@example.com")
	b.Run("first", func(b *testing.B) {
		for b.Loop() {
			c := supabase.NewSessionChecker(supabase.SessionCheckConfig{Client: e.client, Issuer: e.issuer})
			if err := c.CheckSession(context.Background(), p, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		if err := e.checker.CheckSession(context.Background(), p, tok); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if err := e.checker.CheckSession(context.Background(), p, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
}
