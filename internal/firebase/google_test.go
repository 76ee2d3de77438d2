package firebase_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeGoogle is Google's side of a production lookup, speaking the
// documented wire formats: the OAuth 2.0 token endpoint of a service
// account key (RFC 7523 JWT bearer grant, answered with an access token),
// and Identity Toolkit's accounts:lookup, which wants that token as its
// bearer. A test sets the users and how the lookup answers.
type fakeGoogle struct {
	*httptest.Server
	key     *rsa.PrivateKey
	project string
	tokens  atomic.Int64 // access tokens issued
	lookups atomic.Int64

	mu       sync.Mutex
	users    map[string]map[string]any // localId → UserInfo JSON
	lookupOK func(w http.ResponseWriter) bool
	tokenErr string // answer the token endpoint with this OAuth error
	grant    map[string]any
}

// serviceAccountKey is a service account's key, as the Cloud console
// downloads it: made once, RSA keys are slow to generate.
var serviceAccountKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

func newFakeGoogle(t *testing.T, project string) *fakeGoogle {
	t.Helper()
	g := &fakeGoogle{key: serviceAccountKey(), project: project, users: map[string]map[string]any{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", g.token)
	mux.HandleFunc("POST /v1/projects/{project}/accounts:lookup", g.lookup)
	g.Server = httptest.NewServer(mux)
	t.Cleanup(g.Close)
	return g
}

// keyJSON is the service account key file, whose token_uri is this fake.
func (g *fakeGoogle) keyJSON() []byte {
	der, _ := x509.MarshalPKCS8PrivateKey(g.key)
	b, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": g.project, "private_key_id": "key-1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": "gymbro-api@" + g.project + ".iam.gserviceaccount.com", "client_id": "1234567890",
		"auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": g.URL + "/token",
	})
	return b
}

// token checks the grant as Google does (the assertion is a JWT signed
// with the account's key, naming the account, this endpoint and a scope)
// and answers an access token.
func (g *fakeGoogle) token(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	tokenErr := g.tokenErr
	g.mu.Unlock()
	claims, ok := g.checkAssertion(r)
	w.Header().Set("Content-Type", "application/json")
	if !ok || tokenErr != "" {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":"invalid_grant","error_description":"Invalid JWT Signature."}`))
		return
	}
	g.mu.Lock()
	g.grant = claims
	g.mu.Unlock()
	n := g.tokens.Add(1)
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "ya29.fake-" + strconv.FormatInt(n, 10), "expires_in": 3599, "token_type": "Bearer"})
}

func (g *fakeGoogle) checkAssertion(r *http.Request) (map[string]any, bool) {
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
	ok := claims["iss"] == "gymbro-api@"+g.project+".iam.gserviceaccount.com" && claims["aud"] == g.URL+"/token" &&
		time.Unix(int64(exp), 0).After(time.Now())
	return claims, ok
}

// lookup answers accounts:lookup for a bearer the token endpoint issued.
func (g *fakeGoogle) lookup(w http.ResponseWriter, r *http.Request) {
	g.lookups.Add(1)
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ya29.fake-") {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}`))
		return
	}
	g.mu.Lock()
	answer := g.lookupOK
	g.mu.Unlock()
	if answer != nil && !answer(w) {
		return
	}
	var req struct {
		LocalID []string `json:"localId"`
	}
	if r.PathValue("project") != g.project || json.NewDecoder(r.Body).Decode(&req) != nil {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":{"code":400,"message":"INVALID_PROJECT_ID","status":"INVALID_ARGUMENT"}}`))
		return
	}
	body := map[string]any{"kind": "identitytoolkit#GetAccountInfoResponse"}
	g.mu.Lock()
	var users []map[string]any
	for _, id := range req.LocalID {
		if u, ok := g.users[id]; ok {
			users = append(users, u)
		}
	}
	g.mu.Unlock()
	if len(users) > 0 { // absent when none, as Google answers
		body["users"] = users
	}
	_ = json.NewEncoder(w).Encode(body)
}

// setUser stores a user as Identity Toolkit describes it; fields given
// override the defaults.
func (g *fakeGoogle) setUser(localID string, fields map[string]any) {
	u := map[string]any{
		"localId": localID, "email": localID + "@example.com", "emailVerified": true, "displayName": "Dee Lift",
		"passwordHash": "UkVEQUNURUQ=", "salt": "c2FsdHk=", "passwordUpdatedAt": 1.7e12,
		"providerUserInfo": []any{map[string]any{"providerId": "password", "rawId": localID + "@example.com"},
			map[string]any{"providerId": "google.com", "rawId": "1093"}},
		"validSince": "1700000000", "createdAt": "1700000000000", "lastLoginAt": "1700000500000",
		"lastRefreshAt": "2023-11-14T22:21:40.000Z",
	}
	for k, v := range fields {
		u[k] = v
	}
	g.mu.Lock()
	g.users[localID] = u
	g.mu.Unlock()
}

func (g *fakeGoogle) set(f func(g *fakeGoogle)) {
	g.mu.Lock()
	f(g)
	g.mu.Unlock()
}

// failWith makes the lookup answer status with Google's error body.
func failWith(status int, message, googleStatus string) func(w http.ResponseWriter) bool {
	return func(w http.ResponseWriter) bool {
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": status, "message": message, "status": googleStatus}})
		return false
	}
}
