// Package authtest is a fake Supabase Auth issuer for tests: an httptest
// server that publishes one ES256 key the way Supabase does, and mints
// Supabase-shaped access tokens signed with it. A verifier configured with
// auth.SupabaseIssuer(iss.URL(), nil) accepts them.
//
//	iss := authtest.NewIssuer(t)
//	v, _ := auth.New(auth.Config{Issuers: []auth.Issuer{auth.SupabaseIssuer(iss.URL(), nil)}})
//	req.Header.Set("Authorization", "Bearer "+iss.TokenFor(uuid.NewString(), "a@example.com", time.Hour))
//
// RSAKeys is the same for the issuers that sign RS256 tokens: Firebase
// (whose keys Google publishes) and most OpenID Connect providers.
package authtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"maps"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gymbro/gymbro-api/internal/auth"
)

// JWKSPath is where Supabase Auth publishes its keys, below the project URL.
const JWKSPath = "/auth/v1/.well-known/jwks.json"

// Issuer is a fake Supabase project's Auth server.
type Issuer struct {
	t        testing.TB
	srv      *httptest.Server
	key      *ecdsa.PrivateKey
	kid      string
	requests atomic.Int64 // of the JWKS
	all      atomic.Int64 // of anything
}

// NewIssuer starts a fake issuer with a fresh ES256 key; it stops when the
// test ends.
func NewIssuer(t testing.TB) *Issuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("authtest: generate key: %v", err)
	}
	i := &Issuer{t: t, key: key, kid: randomHex(8)}
	jwks, err := json.Marshal(map[string]any{"keys": []any{i.jwk()}})
	if err != nil {
		t.Fatalf("authtest: marshal JWKS: %v", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+JWKSPath, func(w http.ResponseWriter, r *http.Request) {
		i.requests.Add(1)
		// The headers Supabase's gateway sends with its JWKS.
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=600")
		w.Header().Set("Access-Control-Allow-Origin", "*")
		_, _ = w.Write(jwks)
	})
	i.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i.all.Add(1)
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(i.srv.Close)
	return i
}

// jwk is the public key as Supabase publishes it.
func (i *Issuer) jwk() map[string]any {
	b, err := i.key.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		i.t.Fatalf("authtest: public key: %v", err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return map[string]any{
		"kty": "EC", "crv": "P-256", "x": enc(b[1:33]), "y": enc(b[33:65]),
		"kid": i.kid, "alg": "ES256", "use": "sig", "key_ops": []string{"verify"},
	}
}

// URL is the project URL (SUPABASE_URL), without a trailing slash.
func (i *Issuer) URL() string { return i.srv.URL }

// Issuer is the iss of the tokens: URL() + "/auth/v1".
func (i *Issuer) Issuer() string { return i.srv.URL + "/auth/v1" }

// KID is the kid of the signing key.
func (i *Issuer) KID() string { return i.kid }

// JWKSRequests is how many times the JWKS was fetched.
func (i *Issuer) JWKSRequests() int { return int(i.requests.Load()) }

// Requests is how many requests of any kind the issuer's server received.
func (i *Issuer) Requests() int { return int(i.all.Load()) }

// Token mints an access token. It starts from Supabase's claims (iss, aud
// "authenticated", role "authenticated", a random session_id, aal1, iat now,
// exp in one hour) and applies claims over them; a claim set to nil is left
// out. Give at least sub.
func (i *Issuer) Token(claims map[string]any) string {
	i.t.Helper()
	now := time.Now()
	c := jwt.MapClaims{
		"iss":          i.Issuer(),
		"aud":          "authenticated",
		"role":         "authenticated",
		"aal":          "aal1",
		"amr":          []map[string]any{{"method": "password", "timestamp": now.Unix()}},
		"session_id":   randomUUID(),
		"is_anonymous": false,
		"iat":          now.Unix(),
		"exp":          now.Add(time.Hour).Unix(),
	}
	maps.Copy(c, claims)
	maps.DeleteFunc(c, func(_ string, v any) bool { return v == nil })
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, c)
	tok.Header["kid"] = i.kid
	s, err := tok.SignedString(i.key)
	if err != nil {
		i.t.Fatalf("authtest: sign: %v", err)
	}
	return s
}

// TokenFor mints an access token for user uid with the given email that
// expires after ttl.
func (i *Issuer) TokenFor(uid, email string, ttl time.Duration) string {
	i.t.Helper()
	now := time.Now()
	return i.Token(map[string]any{
		"sub":           uid,
		"email":         email,
		"phone":         "",
		"app_metadata":  map[string]any{"provider": "email", "providers": []string{"email"}},
		"user_metadata": map[string]any{"email": email, "email_verified": true},
		"iat":           now.Unix(),
		"exp":           now.Add(ttl).Unix(),
	})
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func randomUUID() string {
	h := randomHex(16)
	return h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:32]
}

// Verifier returns a verifier that trusts iss as a Supabase project, with
// the default token cache, as the service builds it; it is closed when t
// ends.
func (iss *Issuer) Verifier(t testing.TB) *auth.Verifier {
	t.Helper()
	v, err := auth.New(auth.Config{Issuers: []auth.Issuer{auth.SupabaseIssuer(iss.URL(), nil)}, CacheSize: auth.DefaultCacheSize})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

// RSAKeys is a fake JWKS endpoint publishing one RS256 key, the way Google
// publishes the keys of Firebase ID tokens and most OpenID Connect
// providers theirs; Sign mints tokens with the key. It stops when the test
// ends.
type RSAKeys struct {
	t        testing.TB
	srv      *httptest.Server
	key      *rsa.PrivateKey
	kid      string
	requests atomic.Int64
}

// NewRSAKeys starts a key set with a fresh 2048-bit RSA key.
func NewRSAKeys(t testing.TB) *RSAKeys {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("authtest: generate key: %v", err)
	}
	k := &RSAKeys{t: t, key: key, kid: randomHex(8)}
	enc := base64.RawURLEncoding.EncodeToString
	jwks, err := json.Marshal(map[string]any{"keys": []any{map[string]any{
		"kty": "RSA", "alg": "RS256", "use": "sig", "kid": k.kid,
		"n": enc(key.N.Bytes()), "e": enc(big.NewInt(int64(key.E)).Bytes()),
	}}})
	if err != nil {
		t.Fatalf("authtest: marshal JWKS: %v", err)
	}
	k.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k.requests.Add(1)
		if r.URL.Path != "/jwks" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=600")
		_, _ = w.Write(jwks)
	}))
	t.Cleanup(k.srv.Close)
	return k
}

// URL is the server's base URL, fit to be an OIDC issuer's iss.
func (k *RSAKeys) URL() string { return k.srv.URL }

// JWKSURL is where the key set is published.
func (k *RSAKeys) JWKSURL() string { return k.srv.URL + "/jwks" }

// Requests is how many requests the server received.
func (k *RSAKeys) Requests() int { return int(k.requests.Load()) }

// Sign mints an RS256 token with exactly claims (iat and exp included).
func (k *RSAKeys) Sign(claims map[string]any) string {
	k.t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims(claims))
	tok.Header["kid"] = k.kid
	s, err := tok.SignedString(k.key)
	if err != nil {
		k.t.Fatalf("authtest: sign: %v", err)
	}
	return s
}

// FirebaseToken mints a Firebase ID token of project for the user sub, with
// Firebase's claims (an email/password sign-in an hour ago, its email
// verified as given); a verifier trusts it with
// auth.FirebaseIssuer(project, k.JWKSURL()).
func (k *RSAKeys) FirebaseToken(project, sub, email string, verified bool) string {
	k.t.Helper()
	now := time.Now()
	return k.Sign(map[string]any{
		"iss": "https://securetoken.google.com/" + project, "aud": project,
		"auth_time": now.Add(-time.Hour).Unix(), "user_id": sub, "sub": sub,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"email": email, "email_verified": verified,
		"firebase": map[string]any{"identities": map[string]any{"email": []string{email}}, "sign_in_provider": "password"},
	})
}

// OIDCToken mints an ID token of the OpenID Connect issuer at k.URL() for
// sub, with audience aud and email (email_verified true).
func (k *RSAKeys) OIDCToken(aud, sub, email string) string {
	k.t.Helper()
	now := time.Now()
	return k.Sign(map[string]any{
		"iss": k.URL(), "aud": aud, "sub": sub, "email": email, "email_verified": true,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "auth_time": now.Add(-time.Minute).Unix(),
	})
}
