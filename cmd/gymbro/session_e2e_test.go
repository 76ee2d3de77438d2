package main

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gymbro/gymbro-api/internal/supabase"
)

// authAdmin is a Supabase Auth client with the keys of a's emulator.
func (a *app) authAdmin() *supabase.AuthClient {
	anon, service := a.main.Emulator.Keys()
	return supabase.NewAuthClient(supabase.AuthConfig{URL: a.url, AnonKey: anon, ServiceRoleKey: service})
}

// signIn signs email in (creating the user first when create is set).
func signIn(t *testing.T, c *supabase.AuthClient, email string, create bool) *supabase.Session {
	t.Helper()
	ctx := context.Background()
	if create {
		if _, err := c.CreateUser(ctx, supabase.AdminUserParams{Email: email, Password: "correct horse battery", EmailConfirm: true}); err != nil {
			t.Fatalf("create user: %v", err)
		}
	}
	s, err := c.SignInWithPassword(ctx, email, "correct horse battery")
	if err != nil {
		t.Fatalf("sign in %s: %v", email, err)
	}
	return s
}

// postStatus posts a message and returns the answer's status and code.
func (a *app) postStatus(token string) (int, string, response) {
	a.t.Helper()
	r := a.do("POST", "/api/v1/messages", token, map[string]string{"text": "still there?"})
	if r.status == http.StatusAccepted {
		return r.status, "", r
	}
	p := r.problem(a.t)
	code, _ := p["code"].(string)
	return r.status, code, r
}

// waitRevoked posts with token until the session check refuses it, which
// must happen within the check's TTL.
func (a *app) waitRevoked(token, why string) {
	a.t.Helper()
	var last response
	waitFor(a.t, why+": 401 session_revoked", func() bool {
		status, code, r := a.postStatus(token)
		last = r
		return status == http.StatusUnauthorized && code == "session_revoked"
	})
	if ch := last.header.Get("WWW-Authenticate"); !strings.Contains(ch, `error="invalid_token"`) {
		a.t.Errorf("%s: WWW-Authenticate %q", why, ch)
	}
}

// TestSessionEndsWithSignOutBanAndDelete: a signed-out, banned or deleted
// user's still-unexpired token stops posting within the check's TTL.
func TestSessionEndsWithSignOutBanAndDelete(t *testing.T) {
	a := startApp(t, map[string]string{"GYMBRO_SESSION_CHECK_TTL": "1s", "GYMBRO_MAX_RUNNING_PER_USER": "100", "GYMBRO_RATE_LIMIT": "0"})
	admin := a.authAdmin()
	ctx := context.Background()

	s := signIn(t, admin, "leaver@example.com", true)
	a.post(s.AccessToken, "hello", "")
	if err := admin.Logout(ctx, s.AccessToken); err != nil {
		t.Fatal(err)
	}
	a.waitRevoked(s.AccessToken, "after sign-out")
	// Reads are not checked in the default mode: the token is still genuine.
	if r := a.do("GET", "/api/v1/me", s.AccessToken, nil); r.status != http.StatusOK {
		t.Errorf("GET /me after sign-out: %d", r.status)
	}

	s = signIn(t, admin, "leaver@example.com", false)
	a.post(s.AccessToken, "back again", "")
	u, err := admin.GetUserByToken(ctx, s.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.UpdateUser(ctx, u.ID, supabase.AdminUserParams{BanDuration: "24h"}); err != nil {
		t.Fatal(err)
	}
	a.waitRevoked(s.AccessToken, "after a ban")
	if _, err := admin.SignInWithPassword(ctx, "leaver@example.com", "correct horse battery"); supabaseCode(err) != "user_banned" {
		t.Fatalf("sign-in while banned: %v", err)
	}
	if _, err := admin.UpdateUser(ctx, u.ID, supabase.AdminUserParams{BanDuration: "none"}); err != nil {
		t.Fatal(err)
	}
	s = signIn(t, admin, "leaver@example.com", false)
	a.post(s.AccessToken, "unbanned", "")

	if err := admin.DeleteUser(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	a.waitRevoked(s.AccessToken, "after a delete")
}

func supabaseCode(err error) string {
	var ae *supabase.APIError
	if errors.As(err, &ae) {
		return ae.Code
	}
	return ""
}

// TestSessionCheckModes: off restores the token-only behaviour; all checks
// reads and stream connections too.
func TestSessionCheckModes(t *testing.T) {
	ctx := context.Background()
	off := startApp(t, map[string]string{"GYMBRO_SESSION_CHECK": "off"})
	s := signIn(t, off.authAdmin(), "off@example.com", true)
	off.post(s.AccessToken, "hi", "")
	if err := off.authAdmin().Logout(ctx, s.AccessToken); err != nil {
		t.Fatal(err)
	}
	if status, code, _ := off.postStatus(s.AccessToken); status != http.StatusAccepted {
		t.Errorf("GYMBRO_SESSION_CHECK=off after sign-out: %d %s", status, code)
	}

	all := startApp(t, map[string]string{"GYMBRO_SESSION_CHECK": "all"})
	s = signIn(t, all.authAdmin(), "all@example.com", true)
	p := all.post(s.AccessToken, "hi", "")
	if err := all.authAdmin().Logout(ctx, s.AccessToken); err != nil {
		t.Fatal(err)
	}
	// A fresh server's cache holds this session as confirmed for the TTL
	// (30s); a new sign-in's session is asked at once.
	s2 := signIn(t, all.authAdmin(), "all@example.com", false)
	if err := all.authAdmin().Logout(ctx, s2.AccessToken); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/api/v1/me", "/api/v1/messages/" + p.MessageID + "/events"} {
		r := all.do("GET", path, s2.AccessToken, nil)
		if r.status != http.StatusUnauthorized || r.problem(t)["code"] != "session_revoked" {
			t.Errorf("GYMBRO_SESSION_CHECK=all, GET %s after sign-out: %d %s", path, r.status, r.body)
		}
	}
}

// switchableAuth is hosted Supabase Auth (the emulator behind /auth/v1)
// that can be taken down as a gateway in front of it would be (a proxy, a
// paused project): 502 with HTML, except for the key set and sign-in.
func switchableAuth(t *testing.T) (base string, down *atomic.Bool) {
	t.Helper()
	const anon, service = "sb_publishable_sess", "sb_secret_sess"
	down = new(atomic.Bool)
	mux, base, auth := hostedAuth(t, anon, service)
	mux.Handle("/auth/v1/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() && r.URL.Path != "/auth/v1/.well-known/jwks.json" && r.URL.Path != "/auth/v1/token" {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte("<html><body>502 Bad Gateway</body></html>"))
			return
		}
		auth.ServeHTTP(w, r)
	}))
	return base, down
}

var staleMetric = regexp.MustCompile(`gymbro_session_checks_total\{provider="supabase",result="stale_accepted"\} (\d+)`)

// TestSessionCheckWhileAuthIsDown: a session confirmed recently is still
// accepted (and counted) while Auth cannot answer; past the stale bound, or
// never confirmed, the answer is 503 auth_unavailable with Retry-After.
func TestSessionCheckWhileAuthIsDown(t *testing.T) {
	base, down := switchableAuth(t)
	a := startApp(t, map[string]string{
		"SUPABASE_URL": base, "SUPABASE_ANON_KEY": "sb_publishable_sess", "SUPABASE_SERVICE_ROLE_KEY": "sb_secret_sess",
		"GYMBRO_SESSION_CHECK_TTL": "1s", "GYMBRO_SESSION_CHECK_STALE": "3s", "GYMBRO_MAX_RUNNING_PER_USER": "100", "GYMBRO_RATE_LIMIT": "0",
	})
	c := supabase.NewAuthClient(supabase.AuthConfig{URL: base, AnonKey: "sb_publishable_sess", ServiceRoleKey: "sb_secret_sess"})
	known := signIn(t, c, "known@example.com", true)
	fresh := signIn(t, c, "fresh@example.com", true)
	a.post(known.AccessToken, "confirmed before the outage", "")

	down.Store(true)
	status, code, r := a.postStatus(fresh.AccessToken)
	if status != http.StatusServiceUnavailable || code != "auth_unavailable" || r.header.Get("Retry-After") == "" {
		t.Fatalf("never-confirmed session while Auth is down: %d %s Retry-After %q", status, code, r.header.Get("Retry-After"))
	}
	waitFor(t, "a stale accept", func() bool {
		status, _, _ := a.postStatus(known.AccessToken)
		m := staleMetric.FindSubmatch(a.do("GET", "/metrics", "", nil).body)
		n := 0
		if m != nil {
			n, _ = strconv.Atoi(string(m[1]))
		}
		return status == http.StatusAccepted && n > 0
	})
	waitFor(t, "503 auth_unavailable past the stale bound", func() bool {
		status, code, r := a.postStatus(known.AccessToken)
		return status == http.StatusServiceUnavailable && code == "auth_unavailable" && r.header.Get("Retry-After") != ""
	})

	down.Store(false)
	waitFor(t, "posting again once Auth is back", func() bool {
		status, _, _ := a.postStatus(known.AccessToken)
		return status == http.StatusAccepted
	})
}

// TestDevelopmentOnANetworkAddress: on a non-loopback address the console
// is not handed the operator's credentials, and the log says so.
func TestDevelopmentOnANetworkAddress(t *testing.T) {
	var logs syncBuffer
	a := startAppLogging(t, map[string]string{
		"GYMBRO_HTTP_ADDR": "0.0.0.0:0", "GYMBRO_DATA_DIR": t.TempDir(), "GYMBRO_LOG_LEVEL": "info",
	}, &logs)
	a.url = strings.Replace(a.url, "0.0.0.0", "127.0.0.1", 1)
	var cfg struct {
		DevOperator *struct{ Email, Password string } `json:"dev_operator"`
		Emulator    bool                              `json:"emulator"`
	}
	a.do("GET", "/api/v1/console/config", "", nil).json(t, &cfg)
	if cfg.DevOperator != nil || !cfg.Emulator {
		t.Fatalf("console config on 0.0.0.0: operator %+v, emulator %v", cfg.DevOperator, cfg.Emulator)
	}
	if !strings.Contains(logs.String(), "development mode on a non-loopback address") {
		t.Errorf("no start-up warning:\n%s", logs.String())
	}

	local := startApp(t, nil)
	local.do("GET", "/api/v1/console/config", "", nil).json(t, &cfg)
	if cfg.DevOperator == nil || cfg.DevOperator.Password == "" {
		t.Fatalf("console config on loopback offers no operator")
	}
}

// TestLogsCarryNoGivenSecret: keys given in the environment never reach
// the log; only what the service generated itself is printed, once.
func TestLogsCarryNoGivenSecret(t *testing.T) {
	const anon, service = "sb_publishable_given_anon_key", "sb_secret_given_service_key"
	var logs syncBuffer
	a := startAppLogging(t, map[string]string{
		"GYMBRO_HTTP_ADDR": "127.0.0.1:0", "GYMBRO_DATA_DIR": t.TempDir(), "GYMBRO_LOG_LEVEL": "debug",
		"SUPABASE_ANON_KEY": anon, "SUPABASE_SERVICE_ROLE_KEY": service,
	}, &logs)
	tok := a.user("given@example.com")
	p := a.post(tok, "hi", "")
	a.events(tok, p.MessageID, "", 0)
	a.stop()
	out := logs.String()
	for _, secret := range []string{anon, service} {
		if strings.Contains(out, secret) {
			t.Fatalf("a given key reached the log:\n%s", out)
		}
	}
	if !strings.Contains(out, "local Supabase Auth emulator") || !strings.Contains(out, "password=") {
		t.Errorf("the generated operator password is not printed:\n%s", out)
	}

	var gen syncBuffer
	b := startAppLogging(t, map[string]string{"GYMBRO_HTTP_ADDR": "127.0.0.1:0", "GYMBRO_DATA_DIR": t.TempDir(), "GYMBRO_LOG_LEVEL": "info"}, &gen)
	generated, _ := b.main.Emulator.Keys()
	if !strings.Contains(gen.String(), "anon_key="+generated) {
		t.Errorf("the generated anon key is not printed:\n%s", gen.String())
	}
}

// TestSupabaseBehindAFailingGateway: when something in front of Supabase
// Auth answers 502 with HTML, the calls that need Auth answer a documented,
// non-empty code that names the status.
func TestSupabaseBehindAFailingGateway(t *testing.T) {
	base, down := switchableAuth(t)
	a := startApp(t, map[string]string{
		"SUPABASE_URL": base, "SUPABASE_ANON_KEY": "sb_publishable_sess", "SUPABASE_SERVICE_ROLE_KEY": "sb_secret_sess",
		"GYMBRO_SESSION_CHECK": "off",
	})
	c := supabase.NewAuthClient(supabase.AuthConfig{URL: base, AnonKey: "sb_publishable_sess", ServiceRoleKey: "sb_secret_sess"})
	tok := signIn(t, c, "gw@example.com", true).AccessToken
	down.Store(true)
	for _, probe := range []struct{ method, path string }{
		{"GET", "/api/v1/me?details=true"}, {"POST", "/api/v1/llm/tests/create-mail-user"},
	} {
		r := a.do(probe.method, probe.path, tok, nil)
		p := r.problem(t)
		if r.status != http.StatusBadGateway || p["code"] != "supabase_unavailable" || !strings.Contains(p["detail"].(string), "HTTP 502") {
			t.Errorf("%s %s behind a failing gateway: %d %v", probe.method, probe.path, r.status, p)
		}
	}
}
