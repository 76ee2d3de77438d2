package supabase_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/supabase"
	"github.com/gymbro/gymbro-api/internal/supabase/emulator"
	"github.com/gymbro/gymbro-api/internal/testenv"
)

func newClock() *testenv.Clock { return testenv.NewClock(time.Now().UTC()) }

// env is the emulator served over real HTTP under /auth/v1, as our server
// mounts it, with clients pointed at it.
type env struct {
	em       *emulator.Emulator
	srv      *httptest.Server
	clock    *testenv.Clock
	client   *supabase.AuthClient // no X-Supabase-Api-Version: the legacy error shape
	client24 *supabase.AuthClient // X-Supabase-Api-Version: 2024-01-01
	anon     string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	clk := newClock()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	em, err := emulator.Open(context.Background(), emulator.Options{
		Dir: t.TempDir(), Issuer: srv.URL + "/auth/v1", BcryptCost: bcrypt.MinCost, Now: clk.Now,
	})
	if err != nil {
		t.Fatalf("open emulator: %v", err)
	}
	t.Cleanup(func() { em.Close() })
	mux.Handle("/auth/v1/", http.StripPrefix("/auth/v1", em.Handler()))
	anon, service := em.Keys()
	cfg := supabase.AuthConfig{URL: srv.URL, AnonKey: anon, ServiceRoleKey: service, HTTPClient: srv.Client()}
	cfg24 := cfg
	cfg24.APIVersion = "2024-01-01"
	return &env{em: em, srv: srv, clock: clk, client: supabase.NewAuthClient(cfg), client24: supabase.NewAuthClient(cfg24), anon: anon}
}

func (e *env) createUser(t *testing.T, email, password string) *supabase.User {
	t.Helper()
	u, err := e.client.CreateUser(context.Background(), supabase.AdminUserParams{Email: email, Password: password, EmailConfirm: true})
	if err != nil {
		t.Fatalf("create %s: %v", email, err)
	}
	return u
}

func (e *env) signIn(t *testing.T, email, password string) *supabase.Session {
	t.Helper()
	s, err := e.client.SignInWithPassword(context.Background(), email, password)
	if err != nil {
		t.Fatalf("sign in %s: %v", email, err)
	}
	return s
}

// wantAPIError asserts err is an *APIError with status and code.
func wantAPIError(t *testing.T, err error, status int, code string) *supabase.APIError {
	t.Helper()
	var ae *supabase.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v, want *APIError %d %s", err, status, code)
	}
	if ae.Status != status || ae.Code != code {
		t.Fatalf("APIError = %d %q (%s), want %d %q", ae.Status, ae.Code, ae.Message, status, code)
	}
	return ae
}

// claims decodes a token's payload without verifying it.
func claims(t testing.TB, token string) jwt.MapClaims {
	t.Helper()
	c := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(token, c); err != nil {
		t.Fatalf("parse token: %v", err)
	}
	return c
}

func TestCreateUser(t *testing.T) {
	e := newEnv(t)
	u, err := e.client.CreateUser(context.Background(), supabase.AdminUserParams{
		Email: "  Ana@Example.COM ", Password: "squat-123", EmailConfirm: true,
		UserMetadata: map[string]any{"name": "Ana"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := uuid.Parse(u.ID); err != nil {
		t.Errorf("id %q is not a UUID", u.ID)
	}
	if u.Email != "ana@example.com" || u.Aud != "authenticated" || u.Role != "authenticated" {
		t.Errorf("user = %q %q %q", u.Email, u.Aud, u.Role)
	}
	if u.EmailConfirmedAt == nil || u.UserMetadata["name"] != "Ana" || u.AppMetadata["provider"] != "email" {
		t.Errorf("user = %+v", u)
	}
	got, err := e.client.GetUser(context.Background(), u.ID)
	if err != nil || got.Email != u.Email || !got.CreatedAt.Equal(u.CreatedAt) {
		t.Fatalf("GetUser = %+v, %v", got, err)
	}
	_, err = e.client.CreateUser(context.Background(), supabase.AdminUserParams{Email: "b@example.com", Password: "12345"})
	wantAPIError(t, err, 422, supabase.AuthCodeWeakPassword)
	_, err = e.client.GetUser(context.Background(), uuid.NewString())
	wantAPIError(t, err, 404, supabase.AuthCodeUserNotFound)
	if err := e.client.DeleteUser(context.Background(), u.ID); err != nil {
		t.Fatal(err)
	}
	_, err = e.client.GetUser(context.Background(), u.ID)
	wantAPIError(t, err, 404, supabase.AuthCodeUserNotFound)
}

func TestDuplicateEmail(t *testing.T) {
	e := newEnv(t)
	e.createUser(t, "ana@example.com", "squat-123")
	for _, c := range []struct {
		name   string
		client *supabase.AuthClient
		email  string
	}{
		{"legacy shape", e.client, "ana@example.com"},
		{"legacy shape, capitals", e.client, "ANA@Example.com"},
		{"2024-01-01 shape", e.client24, "ana@example.com"},
		{"2024-01-01 shape, capitals", e.client24, "Ana@EXAMPLE.com"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.client.CreateUser(context.Background(), supabase.AdminUserParams{Email: c.email, Password: "squat-123"})
			ae := wantAPIError(t, err, 422, supabase.AuthCodeEmailExists)
			if ae.Message == "" {
				t.Error("empty message")
			}
			if k := gymbro.ErrorKind(err); k != gymbro.KindUnprocessable {
				t.Errorf("kind = %v, want KindUnprocessable", k)
			}
		})
	}
}

func TestListUsersPages(t *testing.T) {
	e := newEnv(t)
	want := map[string]bool{}
	for _, email := range []string{"a@x.io", "b@x.io", "c@x.io", "d@x.io", "e@x.io"} {
		want[e.createUser(t, email, "squat-123").ID] = true
		e.clock.Advance(time.Second)
	}
	seen := map[string]bool{}
	var first []supabase.User
	for page, wantLen := range map[int]int{1: 2, 2: 2, 3: 1, 4: 0} {
		users, total, err := e.client.ListUsers(context.Background(), page, 2)
		if err != nil {
			t.Fatal(err)
		}
		if total != 5 || len(users) != wantLen {
			t.Errorf("page %d: %d users, total %d; want %d, 5", page, len(users), total, wantLen)
		}
		for _, u := range users {
			seen[u.ID] = true
		}
		if page == 1 {
			first = users
		}
	}
	if len(seen) != len(want) {
		t.Errorf("pages held %d distinct users, want %d", len(seen), len(want))
	}
	if len(first) == 2 && first[0].Email != "e@x.io" {
		t.Errorf("page 1 starts with %s, want the newest (e@x.io)", first[0].Email)
	}

	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/auth/v1/admin/users?page=1&per_page=2", nil)
	_, service := e.em.Keys()
	req.Header.Set("apikey", service)
	req.Header.Set("Authorization", "Bearer "+service)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Aud string `json:"aud"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	link := resp.Header.Get("Link")
	if body.Aud != "authenticated" || !strings.Contains(link, `page=2&per_page=2>; rel="next"`) || !strings.Contains(link, `page=3&per_page=2>; rel="last"`) {
		t.Errorf("aud %q, Link %q", body.Aud, link)
	}
}

func TestPasswordGrant(t *testing.T) {
	e := newEnv(t)
	u := e.createUser(t, "ana@example.com", "squat-123")
	s := e.signIn(t, "ANA@example.com", "squat-123")
	if s.TokenType != "bearer" || s.ExpiresIn != 3600 || s.User.ID != u.ID || s.User.LastSignInAt == nil {
		t.Errorf("session = %+v", s)
	}
	if len(s.RefreshToken) == 0 || len(s.RefreshToken) > 32 {
		t.Errorf("refresh token length %d, want a short opaque string", len(s.RefreshToken))
	}
	c := claims(t, s.AccessToken)
	if exp, _ := c["exp"].(float64); int64(exp) != s.ExpiresAt {
		t.Errorf("expires_at %d, exp %v", s.ExpiresAt, c["exp"])
	}
	if s.ExpiresAt != e.clock.Now().Add(time.Hour).Unix() {
		t.Errorf("expires_at %d, want now+1h", s.ExpiresAt)
	}

	_, errWrong := e.client.SignInWithPassword(context.Background(), "ana@example.com", "wrong-pass")
	_, errUnknown := e.client24.SignInWithPassword(context.Background(), "nobody@example.com", "squat-123")
	a := wantAPIError(t, errWrong, 400, supabase.AuthCodeInvalidCredentials)
	b := wantAPIError(t, errUnknown, 400, supabase.AuthCodeInvalidCredentials)
	if a.Message != b.Message {
		t.Errorf("messages differ (%q, %q): an attacker could tell which emails exist", a.Message, b.Message)
	}

	unconfirmed, err := e.client.CreateUser(context.Background(), supabase.AdminUserParams{Email: "new@example.com", Password: "squat-123"})
	if err != nil || unconfirmed.EmailConfirmedAt != nil {
		t.Fatalf("create unconfirmed = %+v, %v", unconfirmed, err)
	}
	_, err = e.client.SignInWithPassword(context.Background(), "new@example.com", "squat-123")
	wantAPIError(t, err, 400, supabase.AuthCodeEmailNotConfirmed)
}

func TestUpdatePasswordEndsSessions(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	u := e.createUser(t, "ana@example.com", "old-pass")
	old := e.signIn(t, "ana@example.com", "old-pass")

	_, err := e.client.UpdateUser(ctx, u.ID, supabase.AdminUserParams{Password: "abc"})
	wantAPIError(t, err, 422, supabase.AuthCodeWeakPassword)
	updated, err := e.client.UpdateUser(ctx, u.ID, supabase.AdminUserParams{Password: "new-pass", UserMetadata: map[string]any{"plan": "pro"}})
	if err != nil {
		t.Fatal(err)
	}
	if updated.UserMetadata["plan"] != "pro" {
		t.Errorf("user_metadata = %v", updated.UserMetadata)
	}
	_, err = e.client.SignInWithPassword(ctx, "ana@example.com", "old-pass")
	wantAPIError(t, err, 400, supabase.AuthCodeInvalidCredentials)
	e.signIn(t, "ana@example.com", "new-pass")
	_, err = e.client.RefreshSession(ctx, old.RefreshToken)
	wantAPIError(t, err, 400, supabase.AuthCodeRefreshTokenNotFound)
	_, err = e.client.GetUserByToken(ctx, old.AccessToken)
	wantAPIError(t, err, 403, supabase.AuthCodeSessionNotFound)

	other := e.createUser(t, "bo@example.com", "squat-123")
	_, err = e.client24.UpdateUser(ctx, other.ID, supabase.AdminUserParams{Email: "ANA@example.com"})
	wantAPIError(t, err, 422, supabase.AuthCodeEmailExists)
}

func TestRefreshRotation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.createUser(t, "ana@example.com", "squat-123")
	s1 := e.signIn(t, "ana@example.com", "squat-123")
	sid := claims(t, s1.AccessToken)["session_id"]

	e.clock.Advance(time.Minute)
	s2, err := e.client.RefreshSession(ctx, s1.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if s2.RefreshToken == s1.RefreshToken || s2.AccessToken == s1.AccessToken {
		t.Error("refresh did not rotate the tokens")
	}
	if got := claims(t, s2.AccessToken)["session_id"]; got != sid {
		t.Errorf("session_id %v, want %v", got, sid)
	}
	if s2.ExpiresAt != e.clock.Now().Add(time.Hour).Unix() {
		t.Errorf("expires_at %d not renewed", s2.ExpiresAt)
	}

	// Within the 10 s reuse interval the parent still works and yields the
	// current child rather than forking the session.
	e.clock.Advance(9 * time.Second)
	again, err := e.client.RefreshSession(ctx, s1.RefreshToken)
	if err != nil {
		t.Fatalf("parent within reuse interval: %v", err)
	}
	if again.RefreshToken != s2.RefreshToken {
		t.Errorf("reuse returned %q, want the current child %q", again.RefreshToken, s2.RefreshToken)
	}

	// After it, the parent is a replay: refused, and the family revoked.
	e.clock.Advance(2 * time.Second)
	_, err = e.client.RefreshSession(ctx, s1.RefreshToken)
	wantAPIError(t, err, 400, supabase.AuthCodeRefreshTokenAlreadyUsed)
	_, err = e.client.RefreshSession(ctx, s2.RefreshToken)
	wantAPIError(t, err, 400, supabase.AuthCodeRefreshTokenAlreadyUsed)

	_, err = e.client24.RefreshSession(ctx, "no-such-token")
	wantAPIError(t, err, 400, supabase.AuthCodeRefreshTokenNotFound)
}

func TestGetUserAndLogout(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	u := e.createUser(t, "ana@example.com", "squat-123")
	s := e.signIn(t, "ana@example.com", "squat-123")
	got, err := e.client.GetUserByToken(ctx, s.AccessToken)
	if err != nil || got.ID != u.ID || got.Email != "ana@example.com" {
		t.Fatalf("GetUserByToken = %+v, %v", got, err)
	}
	_, err = e.client.GetUserByToken(ctx, "not-a-jwt")
	wantAPIError(t, err, 403, supabase.AuthCodeBadJWT)

	if err := e.client.Logout(ctx, s.AccessToken); err != nil {
		t.Fatal(err)
	}
	_, err = e.client.RefreshSession(ctx, s.RefreshToken)
	wantAPIError(t, err, 400, supabase.AuthCodeRefreshTokenNotFound)
	_, err = e.client.GetUserByToken(ctx, s.AccessToken)
	wantAPIError(t, err, 403, supabase.AuthCodeSessionNotFound)
}

// TestBanAndDelete checks what session checks rely on: a ban makes /user
// and the grants refuse the user until it is lifted, and a deleted user's
// token fails /user.
func TestBanAndDelete(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	u := e.createUser(t, "bo@example.com", "squat-123")
	s := e.signIn(t, "bo@example.com", "squat-123")

	if _, err := e.client.UpdateUser(ctx, u.ID, supabase.AdminUserParams{BanDuration: "1h"}); err != nil {
		t.Fatal(err)
	}
	_, err := e.client.GetUserByToken(ctx, s.AccessToken)
	wantAPIError(t, err, 403, supabase.AuthCodeUserBanned)
	_, err = e.client.SignInWithPassword(ctx, "bo@example.com", "squat-123")
	wantAPIError(t, err, 400, supabase.AuthCodeUserBanned)
	_, err = e.client.RefreshSession(ctx, s.RefreshToken)
	wantAPIError(t, err, 400, supabase.AuthCodeUserBanned)
	got, err := e.client.GetUser(ctx, u.ID)
	if err != nil || got.BannedUntil == nil || !got.BannedUntil.After(e.clock.Now()) {
		t.Fatalf("admin view of the banned user: %+v, %v", got, err)
	}
	_, err = e.client.UpdateUser(ctx, u.ID, supabase.AdminUserParams{BanDuration: "forever"})
	wantAPIError(t, err, 400, "validation_failed")

	// A ban ends on its own, or when lifted with "none".
	e.clock.Advance(time.Hour)
	if _, err := e.client.GetUserByToken(ctx, s.AccessToken); err != nil {
		t.Fatalf("after the ban ran out: %v", err)
	}
	if _, err := e.client.UpdateUser(ctx, u.ID, supabase.AdminUserParams{BanDuration: "876000h"}); err != nil {
		t.Fatal(err)
	}
	_, err = e.client.GetUserByToken(ctx, s.AccessToken)
	wantAPIError(t, err, 403, supabase.AuthCodeUserBanned)
	if _, err := e.client.UpdateUser(ctx, u.ID, supabase.AdminUserParams{BanDuration: "none"}); err != nil {
		t.Fatal(err)
	}
	fresh := e.signIn(t, "bo@example.com", "squat-123")

	if err := e.client.DeleteUser(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	_, err = e.client.GetUserByToken(ctx, fresh.AccessToken)
	wantAPIError(t, err, 403, supabase.AuthCodeUserNotFound)
}

func TestAdminAuthErrors(t *testing.T) {
	e := newEnv(t)
	e.createUser(t, "ana@example.com", "squat-123")
	user := e.signIn(t, "ana@example.com", "squat-123")
	_, service := e.em.Keys()
	for _, c := range []struct {
		name, apikey, auth string
		version            string
		status             int
		code               string
	}{
		{"no bearer", e.anon, "", "", 401, "no_authorization"},
		{"no bearer, 2024 shape", e.anon, "", "2024-01-01", 401, "no_authorization"},
		{"user token", e.anon, "Bearer " + user.AccessToken, "", 403, "not_admin"},
		{"anon key", e.anon, "Bearer " + e.anon, "2024-01-01", 403, "not_admin"},
		{"not a JWT", e.anon, "Bearer not.a-jwt", "", 403, "bad_jwt"},
		{"no apikey", "", "Bearer " + service, "", 401, "no_api_key"},
		{"wrong apikey", "sb_secret_nope", "Bearer " + service, "", 401, "invalid_api_key"},
		{"service key", service, "Bearer " + service, "", 200, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/auth/v1/admin/users", nil)
			if c.apikey != "" {
				req.Header.Set("apikey", c.apikey)
			}
			if c.auth != "" {
				req.Header.Set("Authorization", c.auth)
			}
			if c.version != "" {
				req.Header.Set("X-Supabase-Api-Version", c.version)
			}
			resp, err := e.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != c.status || resp.Header.Get("X-Sb-Error-Code") != c.code {
				t.Fatalf("%d %q %s, want %d %q", resp.StatusCode, resp.Header.Get("X-Sb-Error-Code"), body, c.status, c.code)
			}
			if c.status == 200 || c.code == "no_api_key" || c.code == "invalid_api_key" {
				return
			}
			var legacy struct {
				Code      any    `json:"code"`
				ErrorCode string `json:"error_code"`
				Msg       string `json:"msg"`
				Message   string `json:"message"`
			}
			if err := json.Unmarshal(body, &legacy); err != nil {
				t.Fatal(err)
			}
			if c.version == "" && (legacy.Code != float64(c.status) || legacy.ErrorCode != c.code || legacy.Msg == "") {
				t.Errorf("legacy body %s", body)
			}
			if c.version != "" && (legacy.Code != c.code || legacy.Message == "") {
				t.Errorf("2024-01-01 body %s", body)
			}
			if strings.Contains(string(body), service) || strings.Contains(string(body), user.AccessToken) {
				t.Error("error body echoes a credential")
			}
		})
	}
}

func TestJWKSVerifiesTokens(t *testing.T) {
	e := newEnv(t)
	u, err := e.client.CreateUser(context.Background(), supabase.AdminUserParams{
		Email: "ana@example.com", Password: "squat-123", EmailConfirm: true, UserMetadata: map[string]any{"name": "Ana"},
	})
	if err != nil {
		t.Fatal(err)
	}
	s := e.signIn(t, "ana@example.com", "squat-123")

	resp, err := e.srv.Client().Get(e.srv.URL + "/auth/v1/.well-known/jwks.json") // no apikey needed
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Cache-Control"), "max-age=600") {
		t.Fatalf("JWKS %d, Cache-Control %q", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(raw, &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("JWKS %s: %v", raw, err)
	}
	k := set.Keys[0]
	if k["alg"] != "ES256" || k["use"] != "sig" || k["kid"] == "" || k["d"] != nil {
		t.Errorf("JWK %v", k)
	}
	if ops, _ := k["key_ops"].([]any); len(ops) != 1 || ops[0] != "verify" {
		t.Errorf("key_ops %v", k["key_ops"])
	}

	kf, err := keyfunc.NewJWKSetJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	c := jwt.MapClaims{}
	tok, err := jwt.ParseWithClaims(s.AccessToken, c, kf.Keyfunc,
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithIssuer(e.srv.URL+"/auth/v1"),
		jwt.WithAudience("authenticated"), jwt.WithExpirationRequired(), jwt.WithTimeFunc(e.clock.Now))
	if err != nil {
		t.Fatalf("verify with JWKS: %v", err)
	}
	if tok.Header["kid"] != k["kid"] {
		t.Errorf("kid %v, JWKS kid %v", tok.Header["kid"], k["kid"])
	}
	if c["aud"] != "authenticated" {
		t.Errorf("aud %#v, want the string Supabase sends", c["aud"])
	}
	for name, want := range map[string]any{
		"sub": u.ID, "email": "ana@example.com", "phone": "", "role": "authenticated", "aal": "aal1", "is_anonymous": false,
	} {
		if c[name] != want {
			t.Errorf("%s = %#v, want %#v", name, c[name], want)
		}
	}
	if _, err := uuid.Parse(c["session_id"].(string)); err != nil {
		t.Errorf("session_id %v", c["session_id"])
	}
	amr, _ := c["amr"].([]any)
	if len(amr) != 1 || amr[0].(map[string]any)["method"] != "password" || amr[0].(map[string]any)["timestamp"] == nil {
		t.Errorf("amr %v", c["amr"])
	}
	app, _ := c["app_metadata"].(map[string]any)
	if app["provider"] != "email" || len(app["providers"].([]any)) != 1 {
		t.Errorf("app_metadata %v", app)
	}
	if um, _ := c["user_metadata"].(map[string]any); um["name"] != "Ana" {
		t.Errorf("user_metadata %v", c["user_metadata"])
	}
	if iat, _ := c["iat"].(float64); int64(iat) != e.clock.Now().Unix() {
		t.Errorf("iat %v", c["iat"])
	}
}

func TestIdentityProvider(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	u, err := e.client.CreateUser(ctx, supabase.AdminUserParams{
		Email: "ana@example.com", Password: "squat-123", EmailConfirm: true, UserMetadata: map[string]any{"name": "Ana"},
	})
	if err != nil {
		t.Fatal(err)
	}
	p := supabase.NewIdentityProvider(e.client, supabase.IdentityOptions{TTL: time.Minute, Now: e.clock.Now})
	d, err := p.User(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.UID != u.ID || d.Email != "ana@example.com" || d.Provider != gymbro.ProviderSupabase || d.UserMetadata["name"] != "Ana" {
		t.Errorf("details = %+v", d)
	}
	if d.DisplayName != "Ana" || !d.EmailVerified || d.Disabled || !slices.Equal(d.ProviderIDs, []string{"email"}) {
		t.Errorf("display name, verified email, disabled, provider ids: %+v", d)
	}
	banned, err := e.client.CreateUser(ctx, supabase.AdminUserParams{Email: "ban@example.com", Password: "squat-123"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.UpdateUser(ctx, banned.ID, supabase.AdminUserParams{BanDuration: "24h"}); err != nil {
		t.Fatal(err)
	}
	if d, err := p.User(ctx, banned.ID); err != nil || !d.Disabled || d.EmailVerified {
		t.Errorf("banned, unconfirmed user: %+v, %v", d, err)
	}
	d.UserMetadata["name"] = "changed by a caller"

	if err := e.client.DeleteUser(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	cached, err := p.User(ctx, u.ID)
	if err != nil || cached.UserMetadata["name"] != "Ana" {
		t.Fatalf("within TTL: %+v, %v (want the cached, unmodified user)", cached, err)
	}
	e.clock.Advance(time.Minute + time.Second)
	_, err = p.User(ctx, u.ID)
	if gymbro.ErrorKind(err) != gymbro.KindNotFound || gymbro.ErrorCode(err) != "user_not_found" {
		t.Errorf("after TTL: %v, want KindNotFound user_not_found", err)
	}
	_, err = p.User(ctx, "not-a-uuid")
	if gymbro.ErrorKind(err) != gymbro.KindNotFound {
		t.Errorf("bad uid: %v", err)
	}
}

func TestIdentityProviderBounded(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	p := supabase.NewIdentityProvider(e.client, supabase.IdentityOptions{MaxEntries: 2, Now: e.clock.Now})
	var ids []string
	for _, email := range []string{"a@x.io", "b@x.io", "c@x.io"} {
		ids = append(ids, e.createUser(t, email, "squat-123").ID)
	}
	for _, id := range ids {
		if _, err := p.User(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	// Deleting every user shows which answers came from the cache: at most
	// MaxEntries of them.
	for _, id := range ids {
		if err := e.client.DeleteUser(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	hits := 0
	for _, id := range ids {
		if _, err := p.User(ctx, id); err == nil {
			hits++
		}
	}
	if hits > 2 {
		t.Errorf("%d cached users, bound is 2", hits)
	}
}

// TestPasswordGrantRateLimit: like Supabase Auth, the emulator limits
// sign-ins per client address, and answers 429 over_request_rate_limit.
func TestPasswordGrantRateLimit(t *testing.T) {
	e := newEnv(t)
	e.createUser(t, "many@example.com", "squat-123")
	ctx := context.Background()
	var err error
	for i := 0; i <= emulator.DefaultSignInsPerMinute && err == nil; i++ {
		_, err = e.client.SignInWithPassword(ctx, "many@example.com", "wrong-password")
		if err != nil && supabaseCode(err) == "invalid_credentials" {
			err = nil
		}
	}
	wantAPIError(t, err, 429, "over_request_rate_limit")
	e.clock.Advance(time.Minute)
	e.signIn(t, "many@example.com", "squat-123")
}

func supabaseCode(err error) string {
	var ae *supabase.APIError
	if errors.As(err, &ae) {
		return ae.Code
	}
	return ""
}
