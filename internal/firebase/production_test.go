package firebase_test

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gymbro/gymbro-api/internal/firebase"
	"github.com/gymbro/gymbro-api/internal/firebase/firebasetest"
	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/sessioncheck"
	"github.com/gymbro/gymbro-api/internal/testenv"
	"github.com/gymbro/gymbro-api/internal/ttlcache"
)

const prodProject = "gymbro-prod"

// prodClient is a production client (service account, Identity Toolkit)
// whose Google is g.
func prodClient(t *testing.T, g *firebasetest.Google) *firebase.Client {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	c, err := firebase.NewClient(firebase.Config{ProjectID: g.Project, ServiceAccountJSON: g.KeyJSON(), BaseURL: g.URL,
		HTTPClient: &http.Client{Transport: tr}, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func prodPrincipal(sub string, authTime int64) *gymbro.Principal {
	return &gymbro.Principal{UID: "firebase:" + sub, ProviderUID: sub, Provider: gymbro.ProviderFirebase,
		Issuer: "https://securetoken.google.com/" + prodProject, AuthTime: time.Unix(authTime, 0)}
}

// TestProductionLookup: a lookup authenticates as the service account
// through golang.org/x/oauth2 (a JWT grant at the key's token_uri, its
// token reused) and returns what the Supabase path returns, never the
// password hash or salt.
func TestProductionLookup(t *testing.T) {
	g := firebasetest.NewGoogle(t, prodProject)
	g.SetUser("dee", nil)
	g.SetUser("eve", map[string]any{"disabled": true, "emailVerified": false, "phoneNumber": "+15555550100"})
	c := prodClient(t, g)
	ip := firebase.NewIdentityProvider(c, ttlcache.Options{})

	d, err := ip.UserDetails(t.Context(), prodPrincipal("dee", 0))
	if err != nil {
		t.Fatal(err)
	}
	want := &gymbro.UserDetails{UID: "firebase:dee", Email: "dee@example.com", EmailVerified: true, DisplayName: "Dee Lift",
		Provider: gymbro.ProviderFirebase, ProviderIDs: []string{"password", "google.com"},
		CreatedAt: time.UnixMilli(1700000000000).UTC(), LastSignInAt: time.UnixMilli(1700000500000).UTC()}
	if diff := cmp.Diff(want, d); diff != "" {
		t.Errorf("details (-want +got):\n%s", diff)
	}
	b, _ := json.Marshal(d)
	if strings.Contains(string(b), "UkVEQUNURUQ") || strings.Contains(string(b), "c2FsdHk") {
		t.Errorf("details carry the password hash or salt: %s", b)
	}
	d.ProviderIDs[0] = "changed by a caller"
	if again, _ := ip.UserDetails(t.Context(), prodPrincipal("dee", 0)); again.ProviderIDs[0] != "password" || g.Lookups() != 1 {
		t.Errorf("the cached answer: %+v after %d lookups", again, g.Lookups())
	}

	e, err := ip.UserDetails(t.Context(), prodPrincipal("eve", 0))
	if err != nil || !e.Disabled || e.EmailVerified || e.Phone != "+15555550100" {
		t.Errorf("disabled user: %+v, %v", e, err)
	}
	if n := g.Tokens(); n != 1 {
		t.Errorf("%d access tokens for two lookups, want 1 (reused until it expires)", n)
	}
	if scope := g.Scope(); scope != firebase.Scope {
		t.Errorf("the grant asked for scope %q", scope)
	}
}

// TestProductionLookupFailures: each way a lookup can fail has its kind
// and code, and no error shows the key or an access token.
func TestProductionLookupFailures(t *testing.T) {
	tests := []struct {
		name  string
		setup func(g *firebasetest.Google)
		kind  gymbro.Kind
		code  string
	}{
		{"no such user (users absent)", nil, gymbro.KindNotFound, firebase.CodeUserNotFound},
		{"USER_NOT_FOUND", func(g *firebasetest.Google) {
			g.FailLookups(firebasetest.ErrorAnswer(400, "USER_NOT_FOUND", "INVALID_ARGUMENT"))
		}, gymbro.KindNotFound, firebase.CodeUserNotFound},
		{"Identity Toolkit down", func(g *firebasetest.Google) {
			g.FailLookups(firebasetest.ErrorAnswer(503, "The service is currently unavailable.", "UNAVAILABLE"))
		},
			gymbro.KindUnavailable, firebase.CodeFirebaseUnavailable},
		{"rate limited", func(g *firebasetest.Google) {
			g.FailLookups(firebasetest.ErrorAnswer(429, "QUOTA_EXCEEDED : Exceeded quota", "RESOURCE_EXHAUSTED"))
		},
			gymbro.KindUnavailable, firebase.CodeFirebaseUnavailable},
		{"permission denied", func(g *firebasetest.Google) {
			g.FailLookups(firebasetest.ErrorAnswer(403, "Caller does not have required permission to use project gymbro-prod.", "PERMISSION_DENIED"))
		}, gymbro.KindUpstream, firebase.CodeFirebaseRejected},
		{"an answer that is no JSON", func(g *firebasetest.Google) {
			g.FailLookups(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("<html>hi</html>")) })
		}, gymbro.KindUpstream, firebase.CodeFirebaseRejected},
		{"the key refused", func(g *firebasetest.Google) { g.RefuseKey() }, gymbro.KindUpstream, firebase.CodeFirebaseRejected},
		{"Google unreachable", func(g *firebasetest.Google) { g.Close() }, gymbro.KindUnavailable, firebase.CodeFirebaseUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := firebasetest.NewGoogle(t, prodProject)
			c := prodClient(t, g)
			if tt.setup != nil {
				tt.setup(g)
			}
			_, err := c.Lookup(t.Context(), "ghost")
			if gymbro.ErrorKind(err) != tt.kind || gymbro.ErrorCode(err) != tt.code {
				t.Fatalf("err = %v, want kind %d code %s", err, tt.kind, tt.code)
			}
			if s := err.Error() + gymbro.ErrorMessage(err); strings.Contains(s, "ya29.") || strings.Contains(s, "PRIVATE KEY") {
				t.Errorf("the error shows a secret: %s", s)
			}
		})
	}
}

// TestProductionSessionChecks: disabled, deleted and revoked users are
// refused; a sign-in after a revocation is not; a failing lookup follows
// the outage rules (a recent confirmation stands within the stale window,
// otherwise 503 auth_unavailable with Retry-After), and a lookup Google
// refuses is an outage too, never a sign-out of everyone.
func TestProductionSessionChecks(t *testing.T) {
	g := firebasetest.NewGoogle(t, prodProject)
	clock := testenv.NewClock(time.Now())
	var results sync.Map
	var logs testenv.LogBuffer
	sc := firebase.NewSessionChecker(firebase.SessionCheckConfig{
		Client: prodClient(t, g), Issuer: "https://securetoken.google.com/" + prodProject,
		Cache: sessioncheck.Config{TTL: 30 * time.Second, Stale: 10 * time.Minute, Now: clock.Now,
			Logger: slog.New(slog.NewTextHandler(&logs, nil)),
			Observe: func(r sessioncheck.Result) {
				n, _ := results.LoadOrStore(r, new(atomic.Int64))
				n.(*atomic.Int64).Add(1)
			}},
	})
	check := func(p *gymbro.Principal) error { return sc.CheckSession(t.Context(), p, "unused") }
	g.SetUser("dee", nil) // validSince 1700000000
	g.SetUser("dis", map[string]any{"disabled": true})

	signIn := prodPrincipal("dee", 1700000100)
	if err := check(signIn); err != nil {
		t.Fatalf("live user: %v", err)
	}
	wantCode(t, check(prodPrincipal("dis", 1700000100)), gymbro.CodeSessionRevoked)
	wantCode(t, check(prodPrincipal("ghost", 1700000100)), gymbro.CodeSessionRevoked)
	wantCode(t, check(prodPrincipal("dee", 0)), gymbro.CodeSessionRevoked) // no auth_time: fail closed

	g.SetUser("dee", map[string]any{"validSince": "1700000200"}) // the Admin SDK's revokeRefreshTokens
	if err := check(signIn); err != nil {
		t.Fatalf("within the TTL the revocation is not seen yet: %v", err)
	}
	clock.Advance(30 * time.Second)
	wantCode(t, check(signIn), gymbro.CodeSessionRevoked)
	later := prodPrincipal("dee", 1700000200) // Firebase compares seconds: the same second stands
	if err := check(later); err != nil {
		t.Fatalf("a sign-in after the revocation: %v", err)
	}

	g.FailLookups(firebasetest.ErrorAnswer(503, "backend error", "UNAVAILABLE"))
	clock.Advance(time.Minute)
	if err := check(later); err != nil {
		t.Errorf("confirmed a minute ago, Google down: %v", err)
	}
	wantUnavailable(t, check(prodPrincipal("dee", 1700000300)))
	clock.Advance(10 * time.Minute)
	wantUnavailable(t, check(later))

	g.FailLookups(firebasetest.ErrorAnswer(403, "Caller does not have required permission", "PERMISSION_DENIED"))
	wantUnavailable(t, check(prodPrincipal("dee", 1700000400)))
	g.FailLookups(nil)
	clock.Advance(sessioncheck.OutageRetry)
	if err := check(later); err != nil {
		t.Errorf("Google back: %v", err)
	}

	lookups := g.Lookups()
	if err := check(&gymbro.Principal{UID: "u", Provider: gymbro.ProviderSupabase, Issuer: "https://x.supabase.co/auth/v1"}); err != nil ||
		g.Lookups() != lookups {
		t.Errorf("a Supabase principal: %v, %d lookups", err, g.Lookups()-lookups)
	}
	for r, want := range map[sessioncheck.Result]int64{sessioncheck.Stale: 1, sessioncheck.Unavailable: 3, sessioncheck.Revoked: 4} {
		if n, _ := results.Load(r); n == nil || n.(*atomic.Int64).Load() != want {
			t.Errorf("%s counted %v times, want %d", r, n, want)
		}
	}
	if l := logs.String(); !strings.Contains(l, "Firebase Auth cannot confirm a session") || strings.Contains(l, "ya29.") {
		t.Errorf("logs: %s", l)
	}
}

func wantUnavailable(t *testing.T, err error) {
	t.Helper()
	var ge *gymbro.Error
	if !errors.As(err, &ge) || ge.Kind != gymbro.KindUnavailable || ge.Code != gymbro.CodeAuthUnavailable || ge.RetryAfter <= 0 {
		t.Fatalf("err = %v, want 503 auth_unavailable with Retry-After", err)
	}
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if gymbro.ErrorCode(err) != code {
		t.Fatalf("err = %v, want code %s", err, code)
	}
}

func TestNewClient(t *testing.T) {
	g := firebasetest.NewGoogle(t, prodProject)
	userCreds := []byte(`{"type":"authorized_user","client_id":"x","client_secret":"y","refresh_token":"z"}`)
	for _, c := range []struct {
		name string
		cfg  firebase.Config
		ok   bool
	}{
		{"service account", firebase.Config{ProjectID: "p", ServiceAccountJSON: g.KeyJSON()}, true},
		{"emulator", firebase.Config{ProjectID: "demo-p", EmulatorHost: "127.0.0.1:9099"}, true},
		{"no project", firebase.Config{ServiceAccountJSON: g.KeyJSON()}, false},
		{"no credentials", firebase.Config{ProjectID: "p"}, false},
		{"a user's credentials", firebase.Config{ProjectID: "p", ServiceAccountJSON: userCreds}, false},
		{"not JSON", firebase.Config{ProjectID: "p", ServiceAccountJSON: []byte("-----BEGIN PRIVATE KEY-----")}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := firebase.NewClient(c.cfg)
			if (err == nil) != c.ok {
				t.Fatalf("NewClient: %v, want ok %v", err, c.ok)
			}
			if err != nil && strings.Contains(err.Error(), "client_secret") {
				t.Errorf("the error shows the credentials: %v", err)
			}
		})
	}
	var logs testenv.LogBuffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("firebase", "cfg", firebase.Config{ProjectID: "p", ServiceAccountJSON: g.KeyJSON()})
	if strings.Contains(logs.String(), "PRIVATE") || !strings.Contains(logs.String(), "service_account=true") {
		t.Errorf("log line: %s", logs.String())
	}
}
