package testusers_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gymbro/gymbro-api/internal/auth"
	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/mailapi"
	"github.com/gymbro/gymbro-api/internal/supabase"
	"github.com/gymbro/gymbro-api/internal/testusers"
)

func TestGuards(t *testing.T) {
	e := newEnv(t, nil)
	admin := &gymbro.Principal{UID: "3f0c1c2e-0000-4000-8000-0000000000a1", Provider: gymbro.ProviderSupabase, Issuer: e.issuer()}
	adminByEmail := e.supabaseUser(t, "Ops@GymBro.Cloud", true)
	prod := func(o *testusers.Options) {
		o.Production = true
		o.Admins = []string{" " + admin.UID + " ", "ops@gymbro.cloud", ""}
	}
	tests := []struct {
		name     string
		mutate   func(*testusers.Options)
		caller   *gymbro.Principal
		prefix   string
		kind     gymbro.Kind
		code     string
		inMesage string
	}{
		{name: "disabled", mutate: func(o *testusers.Options) { o.Enabled = false }, caller: caller, prefix: "gymbro-test",
			kind: gymbro.KindForbidden, code: testusers.CodeDisabled, inMesage: "GYMBRO_TEST_USERS_ENABLED=true"},
		{name: "disabled beats no caller", mutate: func(o *testusers.Options) { o.Enabled = false }, caller: nil, prefix: "bad",
			kind: gymbro.KindForbidden, code: testusers.CodeDisabled},
		{name: "no caller", caller: nil, prefix: "gymbro-test", kind: gymbro.KindUnauthenticated, code: "token_missing"},
		{name: "caller without uid", caller: &gymbro.Principal{}, prefix: "gymbro-test", kind: gymbro.KindUnauthenticated, code: "token_missing"},
		{name: "production, not an operator", mutate: prod, caller: caller, prefix: "gymbro-test",
			kind: gymbro.KindForbidden, code: testusers.CodeNotOperator, inMesage: "GYMBRO_TEST_USERS_ADMINS"},
		{name: "not an operator beats a bad prefix", mutate: prod, caller: caller, prefix: "root",
			kind: gymbro.KindForbidden, code: testusers.CodeNotOperator},
		{name: "other prefix", caller: caller, prefix: "admin", kind: gymbro.KindUnprocessable, code: testusers.CodePrefixNotAllowed, inMesage: "gymbro-test"},
		{name: "one digit", caller: caller, prefix: "gymbro-test-1", kind: gymbro.KindUnprocessable, code: testusers.CodePrefixNotAllowed},
		{name: "padded number", caller: caller, prefix: "gymbro-test-001", kind: gymbro.KindUnprocessable, code: testusers.CodePrefixNotAllowed},
		{name: "zero", caller: caller, prefix: "gymbro-test-00", kind: gymbro.KindUnprocessable, code: testusers.CodePrefixNotAllowed},
		{name: "trailing dash", caller: caller, prefix: "gymbro-test-", kind: gymbro.KindUnprocessable, code: testusers.CodePrefixNotAllowed},
		{name: "letters", caller: caller, prefix: "gymbro-test-ab", kind: gymbro.KindUnprocessable, code: testusers.CodePrefixNotAllowed},
		{name: "email", caller: caller, prefix: "gymbro-test-01@evil.com", kind: gymbro.KindUnprocessable, code: testusers.CodePrefixNotAllowed},
		{name: "too many digits", caller: caller, prefix: "gymbro-test-99999999999999999999", kind: gymbro.KindUnprocessable, code: testusers.CodePrefixNotAllowed},
		{name: "control characters are not echoed", caller: caller, prefix: "x\x1b[31m", kind: gymbro.KindUnprocessable, code: testusers.CodePrefixNotAllowed, inMesage: "that name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := e.newService(t, tt.mutate)
			res, err := s.Create(t.Context(), tt.caller, gymbro.TestUserRequest{UsernamePrefix: tt.prefix})
			if res != nil {
				t.Errorf("got a user %s", res.Username)
			}
			ge := wantErr(t, err, tt.kind, tt.code)
			if !strings.Contains(ge.Message, tt.inMesage) {
				t.Errorf("message %q lacks %q", ge.Message, tt.inMesage)
			}
		})
	}
	users, _, err := e.admin.ListUsers(t.Context(), 1, 10)
	if err != nil || len(users) != 1 { // the operator's own account
		t.Errorf("refused calls created %d users (%v)", len(users)-1, err)
	}

	// Operators, by uid or by email in any case, pass in production.
	s := e.newService(t, prod)
	for _, p := range []*gymbro.Principal{admin, adminByEmail} {
		if _, err := s.Create(t.Context(), p, gymbro.TestUserRequest{UsernamePrefix: "gymbro-test"}); err != nil {
			t.Errorf("operator %s: %v", p.UID, err)
		}
	}
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t, nil)
	// No service key: calls that pass the rate limit stop right after it,
	// which shows the order of the two guards too.
	s := e.newService(t, func(o *testusers.Options) { o.PerMinute = 2; o.Auth = nil })
	call := func(p *gymbro.Principal) error {
		_, err := s.Create(t.Context(), p, gymbro.TestUserRequest{UsernamePrefix: "gymbro-test"})
		return err
	}
	wantErr(t, call(caller), gymbro.KindUnavailable, testusers.CodeServiceKeyMissing)
	e.clock.Advance(10 * time.Second)
	wantErr(t, call(caller), gymbro.KindUnavailable, testusers.CodeServiceKeyMissing)
	e.clock.Advance(10 * time.Second)
	ge := wantErr(t, call(caller), gymbro.KindRateLimited, gymbro.CodeRateLimited)
	if ge.RetryAfter != 40*time.Second {
		t.Errorf("RetryAfter = %v, want 40s (the first call leaves the window at 60s)", ge.RetryAfter)
	}
	// Another caller has their own window.
	wantErr(t, call(&gymbro.Principal{UID: "someone-else"}), gymbro.KindUnavailable, testusers.CodeServiceKeyMissing)

	e.clock.Advance(40 * time.Second) // the first call leaves the window
	wantErr(t, call(caller), gymbro.KindUnavailable, testusers.CodeServiceKeyMissing)
	ge = wantErr(t, call(caller), gymbro.KindRateLimited, gymbro.CodeRateLimited)
	if ge.RetryAfter != 10*time.Second {
		t.Errorf("RetryAfter = %v, want 10s", ge.RetryAfter)
	}
}

func TestRateLimitSkipsRefusedPrefixes(t *testing.T) {
	e := newEnv(t, nil)
	s := e.newService(t, func(o *testusers.Options) { o.PerMinute = 1; o.Auth = nil })
	for range 3 {
		_, err := s.Create(t.Context(), caller, gymbro.TestUserRequest{UsernamePrefix: "nope"})
		wantErr(t, err, gymbro.KindUnprocessable, testusers.CodePrefixNotAllowed)
	}
	_, err := s.Create(t.Context(), caller, gymbro.TestUserRequest{UsernamePrefix: "gymbro-test"})
	wantErr(t, err, gymbro.KindUnavailable, testusers.CodeServiceKeyMissing)
}

func TestServiceRoleKeyMissing(t *testing.T) {
	e := newEnv(t, nil)
	for name, mutate := range map[string]func(*testusers.Options){
		"no client":      func(o *testusers.Options) { o.Auth = nil },
		"no service key": func(o *testusers.Options) { o.ServiceKeySet = false },
	} {
		t.Run(name, func(t *testing.T) {
			s := e.newService(t, mutate)
			_, err := s.Create(t.Context(), caller, gymbro.TestUserRequest{UsernamePrefix: "gymbro-test"})
			ge := wantErr(t, err, gymbro.KindUnavailable, testusers.CodeServiceKeyMissing)
			if !strings.Contains(ge.Message, "SUPABASE_SERVICE_ROLE_KEY") {
				t.Errorf("message %q is not actionable", ge.Message)
			}
		})
	}
}

func TestSupabaseUnavailable(t *testing.T) {
	e := newEnv(t, nil)
	s := e.newService(t, func(o *testusers.Options) {
		o.Auth = supabase.NewAuthClient(supabase.AuthConfig{URL: closedPort(t), AnonKey: "anon", ServiceRoleKey: "sb_secret_x"})
	})
	_, err := s.Create(t.Context(), caller, gymbro.TestUserRequest{UsernamePrefix: "gymbro-test"})
	ge := wantErr(t, err, gymbro.KindUnavailable, testusers.CodeSupabaseUnavailable)
	if !strings.Contains(ge.Message, "SUPABASE_URL") {
		t.Errorf("message = %q", ge.Message)
	}
}

// fakeAuth speaks Supabase Auth's wire format for the two calls a create
// makes: an empty user list, then the given error answer to the create.
func fakeAuth(t *testing.T, status int, header http.Header, body string) *supabase.AuthClient {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodGet && r.URL.Path == "/auth/v1/admin/users" {
			w.Header().Set("X-Total-Count", "0")
			_, _ = w.Write([]byte(`{"users":[],"aud":"authenticated"}`))
			return
		}
		for k, v := range header {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return supabase.NewAuthClient(supabase.AuthConfig{URL: srv.URL, AnonKey: "anon", ServiceRoleKey: "sb_secret_fake", HTTPClient: srv.Client()})
}

func TestSupabaseRejected(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		name   string
		status int
		header http.Header
		body   string
		want   string
	}{
		{name: "legacy shape", status: 422, header: http.Header{"X-Sb-Error-Code": {"weak_password"}},
			body: `{"code":422,"error_code":"weak_password","msg":"Password should be at least 6 characters","weak_password":{"reasons":["length"]}}`,
			want: "Supabase Auth said weak_password: Password should be at least 6 characters"},
		{name: "2024-01-01 shape", status: 422,
			body: `{"code":"weak_password","message":"Password should be at least 6 characters"}`,
			want: "Supabase Auth said weak_password: Password should be at least 6 characters"},
		{name: "not admin", status: 403, body: `{"code":403,"error_code":"not_admin","msg":"User not allowed"}`,
			want: "Supabase Auth said not_admin: User not allowed (check SUPABASE_SERVICE_ROLE_KEY)"},
		{name: "gateway", status: 401, body: `{"message":"Invalid API key","hint":"Double check your Supabase anon or service_role API key."}`,
			want: "Invalid API key (check SUPABASE_SERVICE_ROLE_KEY and SUPABASE_ANON_KEY)"},
		{name: "unreadable", status: 200, body: `<html>`, want: "cannot read"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := e.newService(t, func(o *testusers.Options) { o.Auth = fakeAuth(t, tt.status, tt.header, tt.body) })
			_, err := s.Create(t.Context(), caller, gymbro.TestUserRequest{UsernamePrefix: "gymbro-test"})
			ge := wantErr(t, err, gymbro.KindUpstream, testusers.CodeSupabaseRejected)
			if !strings.Contains(ge.Message, tt.want) {
				t.Errorf("message %q lacks %q", ge.Message, tt.want)
			}
		})
	}
}

func TestSupabaseRejectsAWrongServiceKey(t *testing.T) {
	e := newEnv(t, nil)
	anon, _ := e.em.Keys()
	s := e.newService(t, func(o *testusers.Options) {
		o.Auth = supabase.NewAuthClient(supabase.AuthConfig{URL: e.srv.URL, AnonKey: anon, ServiceRoleKey: "sb_secret_wrong", HTTPClient: e.srv.Client()})
	})
	_, err := s.Create(t.Context(), caller, gymbro.TestUserRequest{UsernamePrefix: "gymbro-test"})
	ge := wantErr(t, err, gymbro.KindUpstream, testusers.CodeSupabaseRejected)
	if !strings.Contains(ge.Message, "SUPABASE_SERVICE_ROLE_KEY") {
		t.Errorf("message = %q", ge.Message)
	}
	if strings.Contains(err.Error(), "sb_secret_wrong") {
		t.Error("the error carries the key")
	}
}

func TestTokenUnverifiable(t *testing.T) {
	e := newEnv(t, nil)
	// A verifier for another project: the emulator's tokens name an issuer
	// it does not know, as when SUPABASE_URL points at the wrong project.
	other, err := auth.New(auth.Config{Issuers: []auth.Issuer{auth.SupabaseIssuer("https://other.supabase.co", nil)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Close)
	s := e.newService(t, func(o *testusers.Options) { o.Verifier = other })
	_, err = s.Create(t.Context(), caller, gymbro.TestUserRequest{UsernamePrefix: "gymbro-test"})
	ge := wantErr(t, err, gymbro.KindUpstream, testusers.CodeTokenUnverifiable)
	if !containsAll(ge.Message, "issuer_unknown", "SUPABASE_URL") {
		t.Errorf("message = %q", ge.Message)
	}
}

// fakeMailSlurp speaks MailSlurp's inbox API: POST /inboxes with x-api-key,
// 201 and an Inbox JSON; 401 {"message"} on a wrong key.
func fakeMailSlurp(t *testing.T, key string, status int) (mailapi.Provider, *atomic.Int32) {
	t.Helper()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		switch {
		case status != 0:
			w.WriteHeader(status)
			_, _ = w.Write([]byte(`{"message":"Something went wrong"}`))
		case r.Method != http.MethodPost || r.URL.Path != "/inboxes":
			w.WriteHeader(http.StatusNotFound)
		case r.Header.Get("x-api-key") != key:
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"message":"Invalid API KEY"}`))
		default:
			w.WriteHeader(http.StatusCreated)
			_ = json.NewEncoder(w).Encode(map[string]any{
				"id": "inbox-id", "emailAddress": "Inbox" + string(rune('a'+n)) + "@mailslurp.biz", "inboxType": "HTTP_INBOX",
			})
		}
	}))
	t.Cleanup(srv.Close)
	p, err := mailapi.NewMailSlurp(mailapi.MailSlurpOptions{BaseURL: srv.URL, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return p, &calls
}

const mailKey = "ms-key-do-not-log-0123456789"

func TestMailInbox(t *testing.T) {
	e := newEnv(t, nil)
	provider, calls := fakeMailSlurp(t, mailKey, 0)
	s := e.newService(t, func(o *testusers.Options) { o.Mail = provider })

	u, err := s.Create(t.Context(), caller, gymbro.TestUserRequest{UsernamePrefix: "gymbro-test", MailAPIKey: mailKey})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if u.Email != "inboxb@mailslurp.biz" || u.Username != "gymbro-test-01" {
		t.Errorf("got %s <%s>, want gymbro-test-01 <inboxb@mailslurp.biz>", u.Username, u.Email)
	}
	if p, err := e.verifier.Verify(t.Context(), u.AccessToken); err != nil || p.UID != u.UserID {
		t.Errorf("Verify: %v %v", p, err)
	}
	// The name lives in metadata, so it still counts as taken…
	wantNext(t, s, "gymbro-test", "gymbro-test-02")
	// …and a full-name reuse finds the inbox user without a new inbox.
	again, err := s.Create(t.Context(), caller, gymbro.TestUserRequest{UsernamePrefix: "gymbro-test-01", MailAPIKey: mailKey})
	if err != nil {
		t.Fatal(err)
	}
	if !again.Reused || again.UserID != u.UserID || again.Email != u.Email {
		t.Errorf("reuse = %+v", again)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("mail API calls = %d, want 1", n)
	}
	if strings.Contains(e.logs.String(), mailKey) {
		t.Error("the mail API key is in the log")
	}
}

func TestMailAPIFailed(t *testing.T) {
	e := newEnv(t, nil)
	for name, tc := range map[string]struct {
		status int
		key    string
		want   string
	}{
		"key refused":  {key: "wrong-key", want: "refused"},
		"server error": {status: 500, key: mailKey, want: "HTTP 500"},
	} {
		t.Run(name, func(t *testing.T) {
			provider, _ := fakeMailSlurp(t, mailKey, tc.status)
			s := e.newService(t, func(o *testusers.Options) { o.Mail = provider })
			_, err := s.Create(t.Context(), caller, gymbro.TestUserRequest{UsernamePrefix: "gymbro-test", MailAPIKey: tc.key})
			ge := wantErr(t, err, gymbro.KindUpstream, testusers.CodeMailAPIFailed)
			if !strings.Contains(ge.Message, tc.want) {
				t.Errorf("message = %q", ge.Message)
			}
			if strings.Contains(err.Error(), tc.key) {
				t.Error("the error carries the key")
			}
		})
	}
	users, _, err := e.admin.ListUsers(t.Context(), 1, 10)
	if err != nil || len(users) != 0 {
		t.Errorf("users = %d (%v), want none", len(users), err)
	}
}

func TestMailKeyWithoutMailAPI(t *testing.T) {
	_, s := newDefault(t)
	_, err := s.Create(t.Context(), caller, gymbro.TestUserRequest{UsernamePrefix: "gymbro-test", MailAPIKey: mailKey})
	wantErr(t, err, gymbro.KindUnprocessable, testusers.CodeMailAPINotConfigured)
}

func TestAuditLog(t *testing.T) {
	e, s := newDefault(t)
	u := create(t, s, "gymbro-test")
	again := create(t, s, "gymbro-test-01")
	_, err := s.Create(t.Context(), caller, gymbro.TestUserRequest{UsernamePrefix: "nope", MailAPIKey: mailKey})
	wantErr(t, err, gymbro.KindUnprocessable, testusers.CodePrefixNotAllowed)

	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(e.logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 3 {
		t.Fatalf("log lines = %d, want one per call (3):\n%s", len(lines), e.logs)
	}
	want := []struct {
		username, outcome string
		reused            bool
	}{{"gymbro-test-01", "ok", false}, {"gymbro-test-01", "ok", true}, {"", testusers.CodePrefixNotAllowed, false}}
	for i, w := range want {
		l := lines[i]
		if l["msg"] != "test user" || l["level"] != "INFO" || l["caller"] != caller.UID ||
			l["username"] != w.username || l["outcome"] != w.outcome || l["reused"] != w.reused {
			t.Errorf("line %d = %v, want username %q outcome %q reused %v", i, l, w.username, w.outcome, w.reused)
		}
	}
	logs := e.logs.String()
	for _, secret := range []string{u.Password, u.AccessToken, u.RefreshToken, again.Password, again.AccessToken, again.RefreshToken, mailKey, e.service} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds a secret (%d chars)", len(secret))
		}
	}
}

func TestCallerCancellation(t *testing.T) {
	e, s := newDefault(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := s.Create(ctx, caller, gymbro.TestUserRequest{UsernamePrefix: "gymbro-test"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if !strings.Contains(e.logs.String(), `"outcome":"canceled"`) {
		t.Errorf("audit line = %s", e.logs)
	}
}

func TestNewValidates(t *testing.T) {
	e := newEnv(t, nil)
	bad := map[string]func(*testusers.Options){
		"no verifier":             func(o *testusers.Options) { o.Verifier = nil },
		"production, no admins":   func(o *testusers.Options) { o.Production = true; o.Admins = []string{" "} },
		"prefix ending in digits": func(o *testusers.Options) { o.Prefixes = []string{"gymbro-test-01"} },
		"prefix with a space":     func(o *testusers.Options) { o.Prefixes = []string{"gym bro"} },
		"prefix with @":           func(o *testusers.Options) { o.Prefixes = []string{"a@b"} },
		"domain without a dot":    func(o *testusers.Options) { o.EmailDomain = "localhost" },
		"domain with @":           func(o *testusers.Options) { o.EmailDomain = "x@y.z" },
		"negative rate":           func(o *testusers.Options) { o.PerMinute = -1 },
	}
	for name, mutate := range bad {
		o := e.options()
		mutate(&o)
		if _, err := testusers.New(o); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
	// Disabled, nothing else is needed.
	if _, err := testusers.New(testusers.Options{Production: true}); err != nil {
		t.Errorf("disabled: %v", err)
	}
}
