package main

import (
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gymbro/gymbro-api/internal/auth/authtest"
	"github.com/gymbro/gymbro-api/internal/firebase/firebasetest"
	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/testenv"
)

// firebaseEmulator is the Firebase Auth emulator (npm firebase-tools) this
// package's tests share: it takes seconds of CPU to start.
var firebaseEmulator firebasetest.Shared

// firebasePassword is every Firebase test user's password: it must never
// appear in an answer or a log line (the emulator's look-up answer holds it
// in clear, in passwordHash).
const firebasePassword = "deadlift-300-secret"

// firebaseEnv is a development instance's environment with the Firebase
// Auth emulator at host (none when empty) beside the local Supabase Auth
// emulator, with session checks that see a sign-out within a second.
func firebaseEnv(t *testing.T, host string) map[string]string {
	env := appEnv(t, map[string]string{
		"GYMBRO_LOG_LEVEL": "debug", "FIREBASE_PROJECT_ID": firebasetest.ProjectID,
		"GYMBRO_SESSION_CHECK_TTL": "1s", "GYMBRO_MAX_RUNNING_PER_USER": "100", "GYMBRO_RATE_LIMIT": "0",
	})
	if host != "" {
		env["FIREBASE_AUTH_EMULATOR_HOST"] = host
	}
	return env
}

func firebaseUser(name, displayName string) firebasetest.User {
	return firebasetest.User{Email: testenv.UniqueName(name) + "@example.com", Password: firebasePassword, DisplayName: displayName}
}

// meBody is the body of GET /api/v1/me(?details=true).
type meBody struct {
	UID         string              `json:"uid"`
	ProviderUID string              `json:"provider_uid"`
	Provider    string              `json:"provider"`
	Email       string              `json:"email"`
	Details     *gymbro.UserDetails `json:"details"`
}

func (a *app) me(token string, details bool) meBody {
	a.t.Helper()
	path := "/api/v1/me"
	if details {
		path += "?details=true"
	}
	r := a.do("GET", path, token, nil)
	if r.status != http.StatusOK {
		a.t.Fatalf("GET %s: %d %s", path, r.status, r.body)
	}
	if s := string(r.body); strings.Contains(s, firebasePassword) || strings.Contains(s, "fakeHash") || strings.Contains(s, "passwordHash") {
		a.t.Errorf("GET %s shows the password: %s", path, s)
	}
	var m meBody
	r.json(a.t, &m)
	return m
}

// converse posts text and reads its stream to the end, which must be
// completed.
func (a *app) converse(token, text string) {
	a.t.Helper()
	p := a.post(token, text, "")
	s := a.events(token, p.MessageID, "", 0)
	checkOrder(a.t, s.data, 1)
	if last := s.data[len(s.data)-1]; last.Type != gymbro.EventCompleted || last.Content == "" {
		a.t.Fatalf("stream ended with %+v", last)
	}
}

// TestFirebaseEmulatorUsers: an older app build's users, signed up with
// the official JS client against Google's Auth emulator, use the service
// as Supabase users do, beside them in the same development instance: /me,
// a message streamed to completed, their details (never the password, in
// answers or logs); disabling, revoking or deleting them ends their
// session within the check's TTL; readiness asks the emulator.
func TestFirebaseEmulatorUsers(t *testing.T) {
	emu := firebaseEmulator.Get(t)
	users := []firebasetest.User{
		firebaseUser("ada", "Ada Lovelace"), firebaseUser("disabled", ""), firebaseUser("revoked", ""), firebaseUser("deleted", ""),
	}
	sessions := emu.SignUp(t, users...)
	var logs syncBuffer
	a := startAppLogging(t, firebaseEnv(t, emu.Host), &logs)

	ada := sessions[0]
	m := a.me(ada.IDToken, false)
	if m.Provider != gymbro.ProviderFirebase || m.UID != "firebase:"+ada.UID || m.ProviderUID != ada.UID || m.Email != users[0].Email {
		t.Errorf("/me: %+v, want the Firebase user %s", m, ada.UID)
	}
	a.converse(ada.IDToken, "Plan my first deadlift session")
	d := a.me(ada.IDToken, true).Details
	if d == nil || d.UID != m.UID || d.Email != users[0].Email || d.DisplayName != "Ada Lovelace" || d.Provider != gymbro.ProviderFirebase ||
		!slices.Equal(d.ProviderIDs, []string{"password"}) || d.EmailVerified || d.Disabled || d.CreatedAt.IsZero() {
		t.Errorf("/me?details=true: %+v", d)
	}

	// A Supabase user of the local emulator, beside them.
	supa := a.user("supa@example.com")
	if m := a.me(supa, true); m.Provider != gymbro.ProviderSupabase || m.Details == nil || m.Details.Email != "supa@example.com" {
		t.Errorf("the Supabase user's /me?details=true: %+v", m)
	}
	a.converse(supa, "And mine?")

	if r := a.do("GET", "/api/v1/readyz", "", nil); r.status != http.StatusOK {
		t.Errorf("readyz with the emulator up: %d %s", r.status, r.body)
	}

	// Each of the others posts once (their session is confirmed), then an
	// operator acts with the Admin SDK's calls.
	for _, s := range sessions[1:] {
		a.post(s.IDToken, "hello", "")
	}
	emu.Disable(t, sessions[1].UID)
	// Firebase compares seconds: a revocation in the second of the sign-in
	// would not revoke it.
	emu.RevokeTokens(t, sessions[2].UID, time.Now().Add(time.Second))
	emu.Delete(t, sessions[3].UID)
	a.waitRevoked(sessions[1].IDToken, "a disabled Firebase user")
	a.waitRevoked(sessions[2].IDToken, "a Firebase user whose tokens were revoked")
	a.waitRevoked(sessions[3].IDToken, "a deleted Firebase user")
	if status, code, _ := a.postStatus(ada.IDToken); status != http.StatusAccepted {
		t.Errorf("a Firebase user left alone: %d %s", status, code)
	}
	if n := metricValue(t, a, `gymbro_session_checks_total{provider="firebase",result="revoked"}`); n < 3 {
		t.Errorf("%v Firebase sessions counted revoked, want at least 3", n)
	}

	a.stop()
	if l := logs.String(); strings.Contains(l, firebasePassword) || strings.Contains(l, "fakeHash") || !strings.Contains(l, "Firebase Auth emulator") {
		t.Errorf("logs show a password, or do not say the emulator is trusted:\n%s", l)
	}
}

// TestFirebaseEmulatorTokensNeedTheVariable: without
// FIREBASE_AUTH_EMULATOR_HOST the emulator's unsigned token is refused
// (no key is fetched for it); production refuses to start with the
// variable; with the variable pointing at a closed port, readiness is 503.
func TestFirebaseEmulatorTokensNeedTheVariable(t *testing.T) {
	emu := firebaseEmulator.Get(t)
	s := emu.SignUp(t, firebaseUser("unsigned", ""))[0]
	keys := authtest.NewRSAKeys(t)
	env := firebaseEnv(t, "")
	env["FIREBASE_JWKS_URL"] = keys.JWKSURL()
	a := startApp(t, env)
	r := a.do("GET", "/api/v1/me", s.IDToken, nil)
	if r.status != http.StatusUnauthorized || r.problem(t)["code"] != "algorithm_not_allowed" {
		t.Errorf("an emulator token without FIREBASE_AUTH_EMULATOR_HOST: %d %s", r.status, r.body)
	}
	if n := keys.Requests(); n > 1 { // the key set may be fetched once at start, never for this token
		t.Errorf("%d key set requests", n)
	}

	code, _, errs := runCLI(t, map[string]string{
		"GYMBRO_ENV": "production", "GYMBRO_DATA_DIR": t.TempDir(), "FIREBASE_PROJECT_ID": firebasetest.ProjectID,
		"FIREBASE_AUTH_EMULATOR_HOST": emu.Host, "GYMBRO_SESSION_CHECK": "off",
	}, "serve")
	if code != 2 || !strings.Contains(errs, "FIREBASE_AUTH_EMULATOR_HOST must not be set in production") {
		t.Errorf("production with the emulator: exit %d, %s", code, errs)
	}

	closed := startApp(t, firebaseEnv(t, freeAddr(t)))
	r = closed.do("GET", "/api/v1/readyz", "", nil)
	var ready struct {
		Checks map[string]struct{ Status string } `json:"checks"`
	}
	r.json(t, &ready)
	if r.status != http.StatusServiceUnavailable || ready.Checks["jwks"].Status != "down" {
		t.Errorf("readyz with the emulator's port closed: %d %s", r.status, r.body)
	}
}

// TestFirebaseProduction: in production, Firebase users' details and
// session checks come from Identity Toolkit (a fake Google speaking its
// wire format), as the service account through golang.org/x/oauth2, and a
// look-up that fails follows the outage rules: a session confirmed within
// the stale window stands, others get 503 auth_unavailable with
// Retry-After, and the service recovers when Google does.
func TestFirebaseProduction(t *testing.T) {
	const project = "gymbro-prod"
	g := firebasetest.NewGoogle(t, project)
	keys := authtest.NewRSAKeys(t)
	var logs syncBuffer
	a := startAppSetup(t, appEnv(t, map[string]string{
		"GYMBRO_ENV": "production", "GYMBRO_LOG_LEVEL": "debug",
		"FIREBASE_PROJECT_ID": project, "FIREBASE_JWKS_URL": keys.JWKSURL(), "FIREBASE_SERVICE_ACCOUNT_JSON": string(g.KeyJSON()),
		"GYMBRO_AI_PROVIDER": "demo", "GYMBRO_SESSION_CHECK": "all", "GYMBRO_SESSION_CHECK_TTL": "1s", "GYMBRO_SESSION_CHECK_STALE": "3s",
		"GYMBRO_MAX_RUNNING_PER_USER": "100", "GYMBRO_RATE_LIMIT": "0",
	}), &logs, func(m *Main) { m.IdentityToolkitURL = g.URL })
	token := func(sub string) string { return keys.FirebaseToken(project, sub, sub+"@example.com", true) }
	g.SetUser("dee", nil)
	g.SetUser("dis", map[string]any{"disabled": true})
	g.SetUser("rev", map[string]any{"validSince": strconv.FormatInt(time.Now().Unix(), 10)}) // signed in an hour ago
	g.SetUser("new", nil)

	dee := token("dee")
	if m := a.me(dee, true); m.UID != "firebase:dee" || m.Details == nil || m.Details.Email != "dee@example.com" ||
		m.Details.DisplayName != "Dee Lift" || !m.Details.EmailVerified || !slices.Equal(m.Details.ProviderIDs, []string{"password", "google.com"}) {
		t.Errorf("/me?details=true: %+v", m)
	}
	a.converse(dee, "Plan my week")
	for _, sub := range []string{"dis", "rev", "ghost"} {
		status, code, _ := a.postStatus(token(sub))
		if status != http.StatusUnauthorized || code != "session_revoked" {
			t.Errorf("%s: %d %s, want 401 session_revoked", sub, status, code)
		}
	}
	if n := g.Tokens(); n != 1 || g.Lookups() < 4 {
		t.Errorf("%d access tokens for %d look-ups, want one, reused", n, g.Lookups())
	}

	g.FailLookups(firebasetest.ErrorAnswer(http.StatusServiceUnavailable, "The service is currently unavailable.", "UNAVAILABLE"))
	r := a.do("GET", "/api/v1/me", token("new"), nil)
	if r.status != http.StatusServiceUnavailable || r.problem(t)["code"] != "auth_unavailable" || r.header.Get("Retry-After") == "" {
		t.Errorf("a session never confirmed, Google down: %d %s", r.status, r.body)
	}
	stale := `gymbro_session_checks_total{provider="firebase",result="stale_accepted"}`
	waitFor(t, "a stale accept", func() bool {
		return a.do("GET", "/api/v1/me", dee, nil).status == http.StatusOK && metricValue(t, a, stale) > 0
	})
	waitFor(t, "503 auth_unavailable past the stale window", func() bool {
		r := a.do("GET", "/api/v1/me", dee, nil)
		return r.status == http.StatusServiceUnavailable && r.problem(t)["code"] == "auth_unavailable" && r.header.Get("Retry-After") != ""
	})
	g.FailLookups(nil)
	waitFor(t, "the session confirmed once Google is back", func() bool {
		return a.do("GET", "/api/v1/me", dee, nil).status == http.StatusOK
	})

	a.stop()
	if l := logs.String(); strings.Contains(l, "PRIVATE KEY") || strings.Contains(l, "ya29.") || !strings.Contains(l, "Firebase Auth cannot confirm a session") {
		t.Errorf("logs show the key or an access token, or not the outage:\n%s", l)
	}
}

// metricValue is the value of one series of a's /metrics, 0 when absent.
func metricValue(t *testing.T, a *app, series string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindSubmatch(a.do("GET", "/metrics", "", nil).body)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}
