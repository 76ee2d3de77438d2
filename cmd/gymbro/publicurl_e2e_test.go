package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/gymbro/gymbro-api/internal/auth/authtest"
)

// TestPublicURLIsNotTrusted: a development instance whose GYMBRO_PUBLIC_URL
// points at another server (a tunnel, a name the laptop no longer holds)
// writes that URL into its tokens' iss, yet reaches its own emulator in
// process: the other server's tokens, signed with its own key under the
// same iss, get 401, and it receives no request while the service checks
// keys and sessions, looks users up and makes test users. Those internal
// calls are not in the access log as if clients had made them.
func TestPublicURLIsNotTrusted(t *testing.T) {
	squatter := authtest.NewIssuer(t) // mints tokens with iss <its URL>/auth/v1
	var logs syncBuffer
	a := startAppLogging(t, map[string]string{
		"GYMBRO_HTTP_ADDR": "127.0.0.1:0", "GYMBRO_DATA_DIR": t.TempDir(), "GYMBRO_LOG_LEVEL": "info",
		"GYMBRO_PUBLIC_URL": squatter.URL(),
	}, &logs)
	if got := a.main.Emulator.Issuer(); got != squatter.Issuer() {
		t.Fatalf("the emulator's iss is %s, want the public URL's %s", got, squatter.Issuer())
	}

	forged := squatter.TokenFor(uuid.NewString(), "mallory@example.com", time.Hour)
	for _, probe := range []struct{ method, path string }{{"GET", "/api/v1/me"}, {"POST", "/api/v1/messages"}} {
		r := a.do(probe.method, probe.path, forged, map[string]string{"text": "hi"})
		if r.status != http.StatusUnauthorized {
			t.Errorf("%s %s with the other server's token: %d %s", probe.method, probe.path, r.status, r.body)
		}
	}

	tok := a.user("dev@example.com") // through this service's own listener, as the console does
	p := a.post(tok, "hi", "")       // a session check
	a.events(tok, p.MessageID, "", 0)
	if r := a.do("GET", "/api/v1/me?details=true", tok, nil); r.status != http.StatusOK || !strings.Contains(string(r.body), `"details":{`) {
		t.Fatalf("details: %d %s", r.status, r.body)
	}
	if r := a.do("POST", "/api/v1/llm/tests/create-mail-user", tok, nil); r.status != http.StatusOK { // list, create, sign in, verify
		t.Fatalf("test user: %d %s", r.status, r.body)
	}
	if r := a.do("GET", "/api/v1/readyz", "", nil); r.status != http.StatusOK {
		t.Fatalf("readyz (the key set): %d %s", r.status, r.body)
	}
	if n := squatter.Requests(); n != 0 {
		t.Fatalf("the server at GYMBRO_PUBLIC_URL received %d requests", n)
	}
	a.stop()
	for _, line := range strings.Split(logs.String(), "\n") {
		if !strings.Contains(line, "msg=request") {
			continue
		}
		// The test itself only creates users and signs in; every other
		// /auth/v1 call is the service's own.
		for _, internal := range []string{"path=/auth/v1/user ", "path=/auth/v1/.well-known/jwks.json ", "method=GET path=/auth/v1/admin/users", "method=PUT path=/auth/v1/admin/users"} {
			if strings.Contains(line, internal) {
				t.Errorf("the service's own call is logged as a client request: %s", line)
			}
		}
	}
}
