package httpapi

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/gymbro/gymbro-api/internal/auth/authtest"
	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/supabase"
	"github.com/gymbro/gymbro-api/internal/testenv"
)

// authBench serves the same small handler (handleHealthz) twice behind the
// middleware chain New builds: at /bare as it is, and at /authed behind the
// real RequireUser with an ES256 verifier against a fake Supabase JWKS. The
// two routes differ by RequireUser alone, so comparing them measures what
// the authenticated-throughput target means, without /me's larger handler
// and body.
type authBench struct {
	handler http.Handler
	srv     *httptest.Server
	authz   string // "Bearer <token>"
}

func newAuthBench(b *testing.B) *authBench {
	b.Helper()
	iss := authtest.NewIssuer(b)
	v := iss.Verifier(b)
	s := New(v, nil, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	mux := http.NewServeMux()
	mux.Handle("GET /bare", http.HandlerFunc(s.handleHealthz))
	mux.Handle("GET /authed", s.RequireUser(s.handleHealthz))
	mux.Handle("GET /me", s.RequireUser(s.handleMe))
	// The chain of New, around this mux instead of the route table.
	h := s.observe(s.secure(s.cors(s.limitBody(s.problems(mux)))))
	ab := &authBench{handler: h, srv: httptest.NewServer(h), authz: "Bearer " + iss.TokenFor(uuid.NewString(), "bench@example.com", time.Hour)}
	b.Cleanup(ab.srv.Close)
	return ab
}

// fetch does one GET over c and drains the body so the connection is
// reused; it fails unless the answer is want. authz is the whole
// Authorization value, built once by the caller as an app holding its
// access token would, so the client's share of the loop stays the same for
// both routes.
func (ab *authBench) fetch(c *http.Client, path, authz string, want int) error {
	req, _ := http.NewRequest("GET", ab.srv.URL+path, nil)
	if authz != "" {
		req.Header["Authorization"] = []string{authz}
	}
	res, err := c.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != want {
		return fmt.Errorf("%s: HTTP %d, want %d", path, res.StatusCode, want)
	}
	return nil
}

// BenchmarkRequireUser measures what the real RequireUser costs a request
// whose token the verifier has seen (the app reuses its access token for up
// to an hour, so this is the common case): the same healthz handler served
// at /bare and, behind RequireUser, at /authed, through the whole
// middleware chain.
//
//	go test -run '^$' -bench BenchmarkRequireUser -benchtime 2s ./internal/httpapi
//	go test -run '^$' -bench 'BenchmarkRequireUser/alternating' -benchtime 20x -count 5 ./internal/httpapi
//
// Sub-benchmarks:
//
//   - bare, authed: over loopback HTTP/1.1 with keep-alive, 8 client
//     goroutines; req/s and the client+server allocations per request.
//   - alternating: 500 bare then 500 authed requests (8 clients), repeated;
//     reports the throughput ratio authed/bare. On a shared, loaded machine
//     separate runs differ by up to 2x, alternating phases see the same load.
//   - direct-bare, direct-authed, direct-me: the chain called in-process
//     with a recorder, no network or client: the server side alone; /me is
//     handleMe behind RequireUser, for its handler's share.
func BenchmarkRequireUser(b *testing.B) {
	ab := newAuthBench(b)
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxIdleConns: 64, DisableCompression: true}}
	defer c.CloseIdleConnections()
	// Fetch the JWKS and fill the token cache; and make sure /authed does
	// check: without a token it must refuse.
	if err := ab.fetch(c, "/authed", ab.authz, http.StatusOK); err != nil {
		b.Fatal(err)
	}
	if err := ab.fetch(c, "/authed", "", http.StatusUnauthorized); err != nil {
		b.Fatal(err)
	}

	loopback := func(path, authz string) func(b *testing.B) {
		return func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(4) // 8 clients on 2 cores
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := ab.fetch(c, path, authz, http.StatusOK); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		}
	}
	b.Run("bare", loopback("/bare", ""))
	b.Run("authed", loopback("/authed", ab.authz))

	b.Run("alternating", func(b *testing.B) {
		testenv.Alternate(b, "bare", "authed", 500, func(authed bool) error {
			if authed {
				return ab.fetch(c, "/authed", ab.authz, http.StatusOK)
			}
			return ab.fetch(c, "/bare", "", http.StatusOK)
		})
	})

	direct := func(path, authz string) func(b *testing.B) {
		return func(b *testing.B) {
			req := httptest.NewRequest("GET", path, nil)
			if authz != "" {
				req.Header.Set("Authorization", authz)
			}
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				ab.handler.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("%s: HTTP %d", path, w.Code)
				}
			}
		}
	}
	b.Run("direct-bare", direct("/bare", ""))
	b.Run("direct-authed", direct("/authed", ab.authz))
	b.Run("direct-me", direct("/me", ab.authz))
}

// TestMeBody checks that handleMe, which picks the shown claims while
// encoding instead of copying them into a map, writes exactly the body that
// encoding a map of them gives: same members, same order, same escaping.
func TestMeBody(t *testing.T) {
	if !slices.IsSorted(selectedClaims) {
		t.Fatalf("selectedClaims %v are not in the order encoding/json sorts map keys", selectedClaims)
	}
	exp := time.Date(2026, 11, 22, 16, 0, 0, 123456789, time.UTC)
	// ?details=true asks Supabase's Admin API; this stands in for hosted
	// Supabase with GoTrue's GET /admin/users/{id} answer.
	uid := uuid.NewString()
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/auth/v1/admin/users/"+uid {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":%q,"aud":"authenticated","role":"authenticated","email":"a@example.com","phone":"",
			"last_sign_in_at":"2026-11-22T15:00:00.5Z","app_metadata":{"provider":"email","providers":["email"]},
			"user_metadata":{"full_name":"<Ann>"},"identities":[],"is_anonymous":false,
			"created_at":"2026-01-02T03:04:05.123456Z","updated_at":"2026-11-22T15:00:00Z"}`, uid)
	}))
	defer admin.Close()
	idp := supabase.NewIdentityProvider(supabase.NewAuthClient(supabase.AuthConfig{URL: admin.URL, ServiceRoleKey: "sb_secret_test"}), supabase.IdentityOptions{})
	for _, tc := range []struct {
		name    string
		claims  map[string]any
		details bool
	}{
		{"nil", nil, false},
		{"none selected", map[string]any{"sub": "u1", "iss": "x", "role": "authenticated"}, false},
		{"supabase", map[string]any{
			"sub": "u1", "aud": "authenticated", "exp": 1.7e9, "iat": 1.7e9 - 3600, "phone": "",
			"aal": "aal1", "amr": []any{map[string]any{"method": "password", "timestamp": 1.7e9}},
			"is_anonymous": false, "session_id": "s1",
			"app_metadata":  map[string]any{"provider": "email", "providers": []any{"email"}},
			"user_metadata": map[string]any{"name": "<b>Ann & \"Bo\"</b>\u2028", "z": nil, "a": 1},
		}, false},
		{"firebase", map[string]any{
			"aud": []any{"proj"}, "auth_time": 1.7e9, "email_verified": true, "name": "Zoë",
			"firebase": map[string]any{"sign_in_provider": "google.com", "identities": map[string]any{}},
			"picture":  "https://example.com/p.png",
		}, false},
		{"null claim", map[string]any{"name": nil, "phone": "+1"}, false},
		{"details", map[string]any{"aud": "authenticated", "exp": 1.7e9}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &gymbro.Principal{UID: uid, ProviderUID: uid, Email: "a@example.com", Provider: gymbro.ProviderSupabase, Issuer: "https://x/auth/v1", SessionID: "s1", Role: "authenticated", ExpiresAt: exp, Claims: tc.claims}
			target := "/api/v1/me"
			if tc.details {
				target += "?details=true"
			}
			r := httptest.NewRequest("GET", target, nil)
			r = r.WithContext(gymbro.NewContextWithPrincipal(r.Context(), p))
			w := httptest.NewRecorder()
			(&Server{opts: Options{Identity: idp}}).handleMe(w, r)

			// The reference: encoding/json of the view with the selected
			// claims in a map, as handleMe built it before writing it by hand.
			ref := meView{UID: p.UID, ProviderUID: p.ProviderUID, Email: p.Email, Provider: p.Provider, Issuer: p.Issuer, SessionID: p.SessionID, Role: p.Role, ExpiresAt: p.ExpiresAt, Claims: map[string]any{}}
			for _, k := range selectedClaims {
				if c, ok := p.Claims[k]; ok {
					ref.Claims[k] = c
				}
			}
			if tc.details {
				d, err := idp.User(context.Background(), uid)
				if err != nil {
					t.Fatal(err)
				}
				ref.Details = d
			}
			want := httptest.NewRecorder()
			writeJSON(want, http.StatusOK, ref)
			if w.Code != http.StatusOK || w.Body.String() != want.Body.String() {
				t.Errorf("handleMe: HTTP %d\n%s\nwant\n%s", w.Code, w.Body, want.Body)
			}
			if got, want := w.Header().Get("Content-Type"), want.Header().Get("Content-Type"); got != want {
				t.Errorf("Content-Type %q, want %q", got, want)
			}
		})
	}
}
