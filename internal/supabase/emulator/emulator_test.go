package emulator_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/gymbro/gymbro-api/internal/supabase"
	"github.com/gymbro/gymbro-api/internal/supabase/emulator"
	"github.com/gymbro/gymbro-api/internal/testenv"
)

// server serves whichever emulator is current under /auth/v1, so a test can
// restart the emulator behind one stable URL (and issuer).
type server struct {
	srv   *httptest.Server
	clock *testenv.Clock
	dir   string

	mu sync.Mutex
	em *emulator.Emulator
}

func newServer(t testing.TB) *server {
	t.Helper()
	s := &server{clock: testenv.NewClock(time.Now().UTC()), dir: t.TempDir()}
	s.srv = httptest.NewServer(http.StripPrefix("/auth/v1", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		em := s.em
		s.mu.Unlock()
		em.Handler().ServeHTTP(w, r)
	})))
	t.Cleanup(s.srv.Close)
	s.open(t)
	t.Cleanup(func() { s.current().Close() })
	return s
}

func (s *server) open(t testing.TB) {
	t.Helper()
	em, err := emulator.Open(context.Background(), emulator.Options{
		Dir: s.dir, Issuer: s.srv.URL + "/auth/v1", BcryptCost: bcrypt.MinCost, Now: s.clock.Now,
	})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	s.mu.Lock()
	s.em = em
	s.mu.Unlock()
}

// restart closes the emulator and opens a new one on the same directory.
func (s *server) restart(t *testing.T) {
	t.Helper()
	if err := s.current().Close(); err != nil {
		t.Fatal(err)
	}
	s.open(t)
}

func (s *server) current() *emulator.Emulator {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.em
}

func (s *server) client() *supabase.AuthClient {
	anon, service := s.current().Keys()
	return supabase.NewAuthClient(supabase.AuthConfig{URL: s.srv.URL, AnonKey: anon, ServiceRoleKey: service, HTTPClient: s.srv.Client()})
}

// jwks fetches the published key set.
func (s *server) jwks(t *testing.T) (raw []byte, kids []string) {
	t.Helper()
	resp, err := s.srv.Client().Get(s.srv.URL + "/auth/v1/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ = io.ReadAll(resp.Body)
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(raw, &set); err != nil {
		t.Fatalf("JWKS %s: %v", raw, err)
	}
	for _, k := range set.Keys {
		kids = append(kids, k.Kid)
	}
	return raw, kids
}

// verify checks token against the currently published JWKS, as a relying
// party would, and returns its kid.
func (s *server) verify(t *testing.T, token string) (kid string, err error) {
	t.Helper()
	raw, _ := s.jwks(t)
	kf, err := keyfunc.NewJWKSetJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Parse(token, kf.Keyfunc, jwt.WithValidMethods([]string{"ES256"}),
		jwt.WithIssuer(s.srv.URL+"/auth/v1"), jwt.WithAudience("authenticated"), jwt.WithTimeFunc(s.clock.Now))
	if err != nil {
		return "", err
	}
	kid, _ = tok.Header["kid"].(string)
	return kid, nil
}

func signUp(t testing.TB, c *supabase.AuthClient, email, password string) *supabase.Session {
	t.Helper()
	ctx := context.Background()
	if _, err := c.CreateUser(ctx, supabase.AdminUserParams{Email: email, Password: password, EmailConfirm: true}); err != nil {
		t.Fatal(err)
	}
	s, err := c.SignInWithPassword(ctx, email, password)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRestartKeepsUsersAndKeys(t *testing.T) {
	s := newServer(t)
	ctx := context.Background()
	sess := signUp(t, s.client(), "ana@example.com", "squat-123")
	anon, service := s.current().Keys()
	if !strings.HasPrefix(anon, "sb_publishable_") || !strings.HasPrefix(service, "sb_secret_") {
		t.Errorf("generated keys %q…, %q… are not in the new format", anon[:15], service[:10])
	}

	s.restart(t)

	if a, sv := s.current().Keys(); a != anon || sv != service {
		t.Error("API keys changed across a restart")
	}
	if _, err := s.verify(t, sess.AccessToken); err != nil {
		t.Fatalf("token from before the restart: %v", err)
	}
	c := s.client()
	users, total, err := c.ListUsers(ctx, 1, 10)
	if err != nil || total != 1 || users[0].Email != "ana@example.com" {
		t.Fatalf("ListUsers = %v, %d, %v", users, total, err)
	}
	if _, err := c.GetUserByToken(ctx, sess.AccessToken); err != nil {
		t.Errorf("session lost in restart: %v", err)
	}
	if _, err := c.RefreshSession(ctx, sess.RefreshToken); err != nil {
		t.Errorf("refresh token lost in restart: %v", err)
	}
	if _, err := c.SignInWithPassword(ctx, "ana@example.com", "squat-123"); err != nil {
		t.Errorf("password lost in restart: %v", err)
	}
}

func TestKeyRotation(t *testing.T) {
	s := newServer(t)
	c := s.client()
	old := signUp(t, c, "ana@example.com", "squat-123")
	oldKid, err := s.verify(t, old.AccessToken)
	if err != nil {
		t.Fatal(err)
	}

	// Rotated from "another process": the running emulator must notice.
	newKid, err := emulator.RotateKeyInDir(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	if newKid == oldKid {
		t.Fatal("rotation kept the kid")
	}
	fresh, err := c.SignInWithPassword(context.Background(), "ana@example.com", "squat-123")
	if err != nil {
		t.Fatal(err)
	}
	if kid, err := s.verify(t, fresh.AccessToken); err != nil || kid != newKid {
		t.Errorf("new token: kid %q, %v; want %q", kid, err, newKid)
	}
	if _, err := s.verify(t, old.AccessToken); err != nil {
		t.Errorf("token signed before the rotation: %v", err)
	}
	if _, kids := s.jwks(t); len(kids) != 2 || kids[0] != newKid || kids[1] != oldKid {
		t.Errorf("JWKS kids %v, want [%s %s]", kids, newKid, oldKid)
	}
	// The emulator itself still accepts the old kid for /user.
	if _, err := c.GetUserByToken(context.Background(), old.AccessToken); err != nil {
		t.Errorf("/user with pre-rotation token: %v", err)
	}

	// In-process rotation works the same way.
	third, err := s.current().RotateKey(context.Background())
	if err != nil || third == newKid {
		t.Fatalf("RotateKey = %q, %v", third, err)
	}
	if _, kids := s.jwks(t); len(kids) != 3 || kids[0] != third {
		t.Errorf("JWKS kids %v after second rotation", kids)
	}

	// Once every token the old keys signed has expired, they are withdrawn.
	s.clock.Advance(time.Hour + 2*time.Minute)
	if _, kids := s.jwks(t); len(kids) != 1 || kids[0] != third {
		t.Errorf("JWKS kids %v after the old tokens expired, want [%s]", kids, third)
	}

	// The key file holds private keys: it must not be world-readable.
	info, err := os.Stat(filepath.Join(s.dir, "auth_signing_keys.json"))
	if err != nil || info.Mode().Perm()&0o077 != 0 {
		t.Errorf("key file mode %v, %v", info.Mode(), err)
	}
}

func TestEnsureUser(t *testing.T) {
	s := newServer(t)
	ctx := context.Background()
	em := s.current()
	id, created, err := em.EnsureUser(ctx, "Operator@Local.dev", "first-pass", map[string]any{"role": "operator"})
	if err != nil || !created || id == "" {
		t.Fatalf("EnsureUser = %q, %v, %v", id, created, err)
	}
	c := s.client()
	sess, err := c.SignInWithPassword(ctx, "operator@local.dev", "first-pass")
	if err != nil {
		t.Fatal(err)
	}
	if sess.User.UserMetadata["role"] != "operator" {
		t.Errorf("metadata %v", sess.User.UserMetadata)
	}
	again, created, err := em.EnsureUser(ctx, "operator@local.dev", "first-pass", nil)
	if err != nil || created || again != id {
		t.Fatalf("second EnsureUser = %q, %v, %v", again, created, err)
	}
	if _, err := c.RefreshSession(ctx, sess.RefreshToken); err != nil {
		t.Errorf("an unchanged password ended the session: %v", err)
	}
	if _, _, err := em.EnsureUser(ctx, "operator@local.dev", "second-pass", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SignInWithPassword(ctx, "operator@local.dev", "second-pass"); err != nil {
		t.Errorf("new password: %v", err)
	}
	if _, _, err := em.EnsureUser(ctx, "operator@local.dev", "short", nil); err == nil {
		t.Error("a 5-character password was accepted")
	}
}

func TestOpenValidates(t *testing.T) {
	for name, o := range map[string]emulator.Options{
		"no dir":      {Issuer: "http://x/auth/v1"},
		"no issuer":   {Dir: t.TempDir()},
		"one key":     {Dir: t.TempDir(), Issuer: "http://x/auth/v1", AnonKey: "a"},
		"same keys":   {Dir: t.TempDir(), Issuer: "http://x/auth/v1", AnonKey: "a", ServiceRoleKey: "a"},
		"ttl too big": {Dir: t.TempDir(), Issuer: "http://x/auth/v1", AccessTokenTTL: 30 * 24 * time.Hour},
	} {
		if em, err := emulator.Open(context.Background(), o); err == nil {
			em.Close()
			t.Errorf("%s: Open succeeded", name)
		}
	}
}

func TestHealthAndUnknownRoute(t *testing.T) {
	s := newServer(t)
	resp, err := s.srv.Client().Get(s.srv.URL + "/auth/v1/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("health %d", resp.StatusCode)
	}
	anon, _ := s.current().Keys()
	req, _ := http.NewRequest(http.MethodGet, s.srv.URL+"/auth/v1/nope", nil)
	req.Header.Set("apikey", anon)
	resp, err = s.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 || resp.Header.Get("X-Sb-Error-Code") != "not_found" {
		t.Errorf("unknown route %d %q", resp.StatusCode, resp.Header.Get("X-Sb-Error-Code"))
	}
}
