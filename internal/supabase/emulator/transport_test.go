package emulator_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/gymbro/gymbro-api/internal/auth"
	"github.com/gymbro/gymbro-api/internal/supabase"
	"github.com/gymbro/gymbro-api/internal/supabase/emulator"
)

// TestTransportServesTheIssuerInProcess: with the issuer at a URL where
// another server answers, the Admin API, sign-in, /user and the key set
// all reach the emulator in process (that server receives nothing, and a
// verifier accepts the emulator's tokens), while other URLs, a look-alike
// path included, go out through the next transport.
func TestTransportServesTheIssuerInProcess(t *testing.T) {
	var foreign atomic.Int64
	squatter := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		foreign.Add(1)
		http.Error(w, "not the emulator", http.StatusTeapot)
	}))
	defer squatter.Close()
	em, err := emulator.Open(context.Background(), emulator.Options{Dir: t.TempDir(), Issuer: squatter.URL + "/auth/v1", BcryptCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	hc := &http.Client{Transport: em.Transport(nil)}
	anon, service := em.Keys()
	c := supabase.NewAuthClient(supabase.AuthConfig{URL: squatter.URL, AnonKey: anon, ServiceRoleKey: service, HTTPClient: hc})
	ctx := context.Background()
	s := signUp(t, c, "ana@example.com", "correct horse")
	if u, err := c.GetUserByToken(ctx, s.AccessToken); err != nil || u.Email != "ana@example.com" {
		t.Fatalf("GET /user in process: %+v, %v", u, err)
	}
	v, err := auth.New(auth.Config{Issuers: []auth.Issuer{auth.SupabaseIssuer(squatter.URL, nil)}, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if _, err := v.Verify(ctx, s.AccessToken); err != nil {
		t.Fatalf("the emulator's key set in process: %v", err)
	}
	if n := foreign.Load(); n != 0 {
		t.Fatalf("the server at the issuer's URL received %d requests", n)
	}
	for _, path := range []string{"/auth/v1x/user", "/other"} {
		res, err := hc.Get(squatter.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusTeapot {
			t.Errorf("GET %s: %d, want the other server's answer", path, res.StatusCode)
		}
	}
	if n := foreign.Load(); n != 2 {
		t.Errorf("the other server received %d requests, want 2", n)
	}
	res, err := hc.Get(squatter.URL + "/auth/v1/health")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/json" || !strings.Contains(string(body), "GoTrue") {
		t.Errorf("in-process answer: %d %v %s", res.StatusCode, res.Header, body)
	}
}

// TestUnknownEmailTakesAsLongAsAWrongPassword: the median time of a
// sign-in with an unknown email is within a factor of the median of one
// with a wrong password (without the decoy comparison it was about fifty
// times shorter at this cost, more at the default). Medians of
// alternating tries keep the comparison robust on a shared machine; cost 6
// keeps bcrypt well above the rest of the work, yet the test short under
// the race detector.
func TestUnknownEmailTakesAsLongAsAWrongPassword(t *testing.T) {
	em, err := emulator.Open(context.Background(), emulator.Options{Dir: t.TempDir(), Issuer: "http://127.0.0.1:1/auth/v1", BcryptCost: 6})
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	if _, _, err := em.EnsureUser(context.Background(), "ana@example.com", "correct horse", nil); err != nil {
		t.Fatal(err)
	}
	anon, _ := em.Keys()
	signIn := func(email string) time.Duration {
		r := httptest.NewRequest("POST", "/token?grant_type=password", strings.NewReader(`{"email":"`+email+`","password":"wrong horse"}`))
		r.Header.Set("apikey", anon)
		w := httptest.NewRecorder()
		start := time.Now()
		em.Handler().ServeHTTP(w, r)
		d := time.Since(start)
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "invalid_credentials") {
			t.Fatalf("%s: %d %s", email, w.Code, w.Body)
		}
		return d
	}
	signIn("warm-up@example.com") // makes the decoy hash once
	var known, unknown []time.Duration
	for range 5 {
		known = append(known, signIn("ana@example.com"))
		unknown = append(unknown, signIn("nobody@example.com"))
	}
	mk, mu := median(known), median(unknown)
	if ratio := float64(mu) / float64(mk); ratio < 0.33 || ratio > 3 {
		t.Errorf("median sign-in: unknown email %v, wrong password %v (ratio %.2f); want them alike", mu, mk, ratio)
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// TestFilesArePrivate: in a data directory that is 0755 already, every file
// the emulator writes (auth.db and its WAL and SHM, the signing and API
// keys) is 0600, rotated keys too; a directory it creates is 0700.
func TestFilesArePrivate(t *testing.T) {
	parent := t.TempDir()
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(parent, "data")
	em, err := emulator.Open(context.Background(), emulator.Options{Dir: dir, Issuer: "http://127.0.0.1:1/auth/v1", BcryptCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	if _, _, err := em.EnsureUser(context.Background(), "ana@example.com", "correct horse", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := emulator.RotateKeyInDir(dir); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("data directory: %v %v, want 0700", fi.Mode().Perm(), err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		fi, _ := e.Info()
		names = append(names, e.Name())
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s is %v, want 0600", e.Name(), fi.Mode().Perm())
		}
	}
	for _, want := range []string{"auth.db", "auth.db-wal", "auth.db-shm", "auth_signing_keys.json", "auth_api_keys.json"} {
		if !slices.Contains(names, want) {
			t.Errorf("no %s among %v", want, names)
		}
	}
}

// TestRotateKeyCreatesTheDirectory: on a fresh machine the command makes
// the data directory (0700) instead of failing.
func TestRotateKeyCreatesTheDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "fresh", "data")
	if _, err := emulator.RotateKeyInDir(dir); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "auth_signing_keys.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v", err)
	}
}
