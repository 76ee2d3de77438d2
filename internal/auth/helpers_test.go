package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/testenv"
)

// t0 is the fixed start of every test clock.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newClock() *testenv.Clock { return testenv.NewClock(t0) }

// testKey is a signing key with its public JWK.
type testKey struct {
	kid    string
	method jwt.SigningMethod
	priv   crypto.Signer
	jwk    map[string]any
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func newECKey(t testing.TB, kid string) *testKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := priv.PublicKey.Bytes()
	return &testKey{kid: kid, method: jwt.SigningMethodES256, priv: priv, jwk: map[string]any{
		"kty": "EC", "crv": "P-256", "x": b64(pub[1:33]), "y": b64(pub[33:65]),
		"kid": kid, "alg": "ES256", "use": "sig", "key_ops": []string{"verify"},
	}}
}

// RSA key generation is slow; the tests share a few keys, each published
// under whatever kid a test gives it.
var rsaKeys = sync.OnceValue(func() []*rsa.PrivateKey {
	keys := make([]*rsa.PrivateKey, 4)
	for i := range keys {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		keys[i] = k
	}
	return keys
})

func newRSAKey(t testing.TB, kid string, n int) *testKey {
	t.Helper()
	return rsaKeyFrom(rsaKeys()[n], kid)
}

func rsaKeyFrom(priv *rsa.PrivateKey, kid string) *testKey {
	return &testKey{kid: kid, method: jwt.SigningMethodRS256, priv: priv, jwk: map[string]any{
		"kty": "RSA", "n": b64(priv.N.Bytes()), "e": b64(big.NewInt(int64(priv.E)).Bytes()),
		"kid": kid, "alg": "RS256", "use": "sig",
	}}
}

// sign signs claims with k; header members given override the defaults (alg
// of k, typ JWT, kid of k), and a nil one is left out.
func (k *testKey) sign(t testing.TB, claims jwt.MapClaims, header map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(k.method, claims)
	tok.Header["kid"] = k.kid
	for name, v := range header {
		if v == nil {
			delete(tok.Header, name)
		} else {
			tok.Header[name] = v
		}
	}
	s, err := tok.SignedString(k.priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rawToken assembles a token from JSON header and claims and a signature,
// for the shapes no signer makes.
func rawToken(header, claims string, sig []byte) string {
	return b64([]byte(header)) + "." + b64([]byte(claims)) + "." + b64(sig)
}

func hs256(t testing.TB, secret []byte, claims jwt.MapClaims, header map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	for name, v := range header {
		tok.Header[name] = v
	}
	s, err := tok.SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// jwksServer is an issuer's JWKS endpoint whose answers a test controls.
type jwksServer struct {
	*httptest.Server
	requests atomic.Int64

	mu           sync.Mutex
	keys         []map[string]any
	raw          []byte // served instead of keys when set
	status       int
	cacheControl string
	delay        time.Duration
}

func newJWKSServer(t testing.TB, keys ...*testKey) *jwksServer {
	t.Helper()
	s := &jwksServer{status: http.StatusOK}
	s.setKeys(keys...)
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) serve(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	s.mu.Lock()
	status, cc, delay, raw := s.status, s.cacheControl, s.delay, s.raw
	body, _ := json.Marshal(map[string]any{"keys": s.keys})
	s.mu.Unlock()
	if raw != nil {
		body = raw
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	if cc != "" {
		w.Header().Set("Cache-Control", cc)
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (s *jwksServer) setKeys(keys ...*testKey) {
	jwks := make([]map[string]any, len(keys))
	for i, k := range keys {
		jwks[i] = k.jwk
	}
	s.setJWKs(jwks...)
}

func (s *jwksServer) setJWKs(jwks ...map[string]any) {
	s.mu.Lock()
	s.keys = jwks
	s.mu.Unlock()
}

func (s *jwksServer) set(f func(s *jwksServer)) {
	s.mu.Lock()
	f(s)
	s.mu.Unlock()
}

func (s *jwksServer) fetches() int { return int(s.requests.Load()) }

// logLines splits the log output in b into lines.
func logLines(b *testenv.LogBuffer) []string {
	s := strings.TrimSpace(b.String())
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

const (
	firebaseProject = "gymbro-test"
	firebaseIss     = "https://securetoken.google.com/" + firebaseProject
	testCooldown    = 30 * time.Second
)

var hmacSecret = []byte("super-secret-jwt-token-with-at-least-32-characters-long")

// fixture is a verifier trusting a Supabase project (ES256 and RS256 keys in
// its JWKS, and the legacy HS256 secret) and a Firebase project (RS256),
// on a settable clock, logging into a buffer.
type fixture struct {
	clock    *testenv.Clock
	logs     *testenv.LogBuffer
	v        *Verifier
	supa     *jwksServer
	fb       *jwksServer
	supaIss  string
	sbES     *testKey // kid sb-es
	sbRS     *testKey // kid sb-rs
	fbRS     *testKey // kid fb-rs
	fbShared *testKey // kid "shared", also a kid of the Supabase set with another key
	sbShared *testKey
}

func newFixture(t testing.TB, change ...func(*Config)) *fixture {
	t.Helper()
	f := &fixture{
		clock:    newClock(),
		logs:     &testenv.LogBuffer{},
		sbES:     newECKey(t, "sb-es"),
		sbRS:     newRSAKey(t, "sb-rs", 0),
		fbRS:     newRSAKey(t, "fb-rs", 1),
		fbShared: newRSAKey(t, "shared", 2),
		sbShared: newRSAKey(t, "shared", 3),
	}
	f.supa = newJWKSServer(t, f.sbES, f.sbRS, f.sbShared)
	f.fb = newJWKSServer(t, f.fbRS, f.fbShared)
	f.supaIss = f.supa.URL + "/auth/v1"
	cfg := Config{
		Issuers: []Issuer{
			SupabaseIssuer(f.supa.URL, hmacSecret),
			FirebaseIssuer(firebaseProject, f.fb.URL+"/jwks"),
		},
		CacheSize:       DefaultCacheSize,
		RefreshCooldown: testCooldown,
		FetchTimeout:    2 * time.Second,
		Now:             f.clock.Now,
		Logger:          slog.New(slog.NewTextHandler(f.logs, nil)),
	}
	for _, c := range change {
		c(&cfg)
	}
	v, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	f.v = v
	return f
}

// subject is the Supabase user id of a test's user called name: a UUID,
// as Supabase issues (and the verifier requires), the same for one name.
func subject(name string) string {
	if canonicalUUID(name) {
		return name
	}
	return uuid.NewSHA1(uuid.NameSpaceOID, []byte(name)).String()
}

// supabaseClaims are the claims of a Supabase access token for the user
// called sub (its sub claim is subject(sub)).
func (f *fixture) supabaseClaims(sub string) jwt.MapClaims {
	now := f.clock.Now()
	return jwt.MapClaims{
		"iss":          f.supaIss,
		"aud":          "authenticated",
		"sub":          subject(sub),
		"email":        sub + "@example.com",
		"phone":        "",
		"role":         "authenticated",
		"aal":          "aal1",
		"amr":          []any{map[string]any{"method": "password", "timestamp": now.Unix()}},
		"session_id":   "7b0d5ad4-0c52-4a8e-9d55-5c8f2b4a0e11",
		"is_anonymous": false,
		"app_metadata": map[string]any{"provider": "email", "providers": []any{"email"}},
		"iat":          now.Unix(),
		"exp":          now.Add(time.Hour).Unix(),
	}
}

// firebaseClaims are the claims of a Firebase ID token for sub.
func (f *fixture) firebaseClaims(sub string) jwt.MapClaims {
	now := f.clock.Now()
	return jwt.MapClaims{
		"iss":            firebaseIss,
		"aud":            firebaseProject,
		"auth_time":      now.Add(-5 * time.Minute).Unix(),
		"user_id":        sub,
		"sub":            sub,
		"iat":            now.Unix(),
		"exp":            now.Add(time.Hour).Unix(),
		"email":          sub + "@example.com",
		"email_verified": true,
		"firebase":       map[string]any{"identities": map[string]any{}, "sign_in_provider": "password"},
	}
}

// with returns a copy of c with the given claims set; nil removes one.
func with(c jwt.MapClaims, kv ...any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

// wantError checks that err is a *gymbro.Error of the kind and code, whose
// message does not hold the token.
func wantError(t testing.TB, err error, kind gymbro.Kind, code, token string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s", code)
	}
	e, ok := err.(*gymbro.Error)
	if !ok {
		t.Fatalf("got %T %v, want *gymbro.Error", err, err)
	}
	if e.Code != code || e.Kind != kind {
		t.Fatalf("got code %q kind %d (%v), want %q kind %d", e.Code, e.Kind, err, code, kind)
	}
	if e.Message == "" {
		t.Fatalf("error %q has no message", code)
	}
	if token != "" && (strings.Contains(e.Message, token) || strings.Contains(e.Error(), token)) {
		t.Fatalf("error %q holds the token", code)
	}
}

func wantCode(t testing.TB, err error, code string) {
	t.Helper()
	kind := gymbro.KindUnauthenticated
	if code == CodeKeysUnavailable {
		kind = gymbro.KindUnavailable
	}
	wantError(t, err, kind, code, "")
}

func mustVerify(t testing.TB, v *Verifier, token string) *gymbro.Principal {
	t.Helper()
	p, err := v.Verify(t.Context(), token)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return p
}
