package firebasetest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"maps"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Google is Google's side of a production look-up, speaking the
// documented wire formats: the OAuth 2.0 token endpoint of a service
// account key (the RFC 7523 JWT bearer grant, answered with an access
// token), and Identity Toolkit's accounts:lookup
// (POST /v1/projects/{project}/accounts:lookup), which wants that token as
// its bearer. A test sets the users and how the look-ups answer; the
// service reaches it with KeyJSON as its service account key (whose
// token_uri is this server) and URL as Identity Toolkit's base URL.
type Google struct {
	*httptest.Server
	Project string
	key     *rsa.PrivateKey
	tokens  atomic.Int64
	lookups atomic.Int64

	mu         sync.Mutex
	users      map[string]map[string]any // localId → UserInfo JSON
	failLookup http.HandlerFunc
	refuseKey  bool
	scope      string // of the last grant
}

// serviceAccountKey is a service account's private key, made once: RSA
// keys are slow to generate.
var serviceAccountKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// NewGoogle starts a fake Google for project, stopped when t ends.
func NewGoogle(t testing.TB, project string) *Google {
	t.Helper()
	g := &Google{Project: project, key: serviceAccountKey(), users: map[string]map[string]any{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", g.token)
	mux.HandleFunc("POST /v1/projects/{project}/accounts:lookup", g.lookup)
	g.Server = httptest.NewServer(mux)
	t.Cleanup(g.Close)
	return g
}

// ClientEmail is the service account's address.
func (g *Google) ClientEmail() string { return "gymbro-api@" + g.Project + ".iam.gserviceaccount.com" }

// KeyJSON is the service account's key file, as the Cloud console
// downloads it, whose token_uri is this fake.
func (g *Google) KeyJSON() []byte {
	der, _ := x509.MarshalPKCS8PrivateKey(g.key)
	b, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": g.Project, "private_key_id": "key-1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": g.ClientEmail(), "client_id": "1234567890",
		"auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": g.URL + "/token",
	})
	return b
}

// SetUser stores a user as Identity Toolkit describes it (a verified
// email, a display name, password and google.com sign-ins, validSince
// 1700000000, a password hash and salt); fields given override these.
func (g *Google) SetUser(localID string, fields map[string]any) {
	u := map[string]any{
		"localId": localID, "email": localID + "@example.com", "emailVerified": true, "displayName": "Dee Lift",
		"passwordHash": "UkVEQUNURUQ=", "salt": "c2FsdHk=", "passwordUpdatedAt": 1.7e12,
		"providerUserInfo": []any{map[string]any{"providerId": "password", "rawId": localID + "@example.com"},
			map[string]any{"providerId": "google.com", "rawId": "1093"}},
		"validSince": "1700000000", "createdAt": "1700000000000", "lastLoginAt": "1700000500000",
		"lastRefreshAt": "2023-11-14T22:21:40.000Z",
	}
	maps.Copy(u, fields)
	g.mu.Lock()
	g.users[localID] = u
	g.mu.Unlock()
}

// FailLookups makes h answer every look-up that carries a good bearer
// (see ErrorAnswer); nil makes them answer again.
func (g *Google) FailLookups(h http.HandlerFunc) {
	g.mu.Lock()
	g.failLookup = h
	g.mu.Unlock()
}

// ErrorAnswer answers status with Google's error body,
// {"error": {"code", "message", "status"}}.
func ErrorAnswer(status int, message, googleStatus string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": status, "message": message, "status": googleStatus}})
	}
}

// RefuseKey makes the token endpoint refuse the key, as Google does with a
// deleted or disabled one.
func (g *Google) RefuseKey() {
	g.mu.Lock()
	g.refuseKey = true
	g.mu.Unlock()
}

// Tokens is how many access tokens were issued.
func (g *Google) Tokens() int64 { return g.tokens.Load() }

// Lookups is how many look-ups were asked (answered or not).
func (g *Google) Lookups() int64 { return g.lookups.Load() }

// Scope is the scope the last grant asked for.
func (g *Google) Scope() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.scope
}

// token checks the grant as Google does (the assertion is a JWT signed
// with the account's key, naming the account, this endpoint and a scope)
// and answers an access token.
func (g *Google) token(w http.ResponseWriter, r *http.Request) {
	claims, ok := g.checkAssertion(r)
	g.mu.Lock()
	refuse := g.refuseKey
	g.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if !ok || refuse {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":"invalid_grant","error_description":"Invalid JWT Signature."}`))
		return
	}
	scope, _ := claims["scope"].(string)
	g.mu.Lock()
	g.scope = scope
	g.mu.Unlock()
	n := g.tokens.Add(1)
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "ya29.fake-" + strconv.FormatInt(n, 10), "expires_in": 3599, "token_type": "Bearer"})
}

func (g *Google) checkAssertion(r *http.Request) (map[string]any, bool) {
	if r.ParseForm() != nil || r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		return nil, false
	}
	parts := strings.Split(r.PostForm.Get("assertion"), ".")
	if len(parts) != 3 {
		return nil, false
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, false
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(&g.key.PublicKey, crypto.SHA256, sum[:], sig) != nil {
		return nil, false
	}
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims map[string]any
	if json.Unmarshal(payload, &claims) != nil {
		return nil, false
	}
	exp, _ := claims["exp"].(float64)
	ok := claims["iss"] == g.ClientEmail() && claims["aud"] == g.URL+"/token" && time.Unix(int64(exp), 0).After(time.Now())
	return claims, ok
}

// lookup answers accounts:lookup for a bearer the token endpoint issued.
func (g *Google) lookup(w http.ResponseWriter, r *http.Request) {
	g.lookups.Add(1)
	if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ya29.fake-") {
		ErrorAnswer(http.StatusUnauthorized, "Request had invalid authentication credentials.", "UNAUTHENTICATED")(w, r)
		return
	}
	g.mu.Lock()
	fail := g.failLookup
	g.mu.Unlock()
	if fail != nil {
		fail(w, r)
		return
	}
	var req struct {
		LocalID []string `json:"localId"`
	}
	if r.PathValue("project") != g.Project || json.NewDecoder(r.Body).Decode(&req) != nil {
		ErrorAnswer(http.StatusBadRequest, "INVALID_PROJECT_ID", "INVALID_ARGUMENT")(w, r)
		return
	}
	body := map[string]any{"kind": "identitytoolkit#GetAccountInfoResponse"}
	var users []map[string]any
	g.mu.Lock()
	for _, id := range req.LocalID {
		if u, ok := g.users[id]; ok {
			users = append(users, u)
		}
	}
	g.mu.Unlock()
	if len(users) > 0 { // absent when none, as Google answers
		body["users"] = users
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	_ = json.NewEncoder(w).Encode(body)
}
