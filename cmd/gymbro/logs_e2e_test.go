package main

import (
	"runtime"
	"strings"
	"testing"

	"github.com/gymbro/gymbro-api/internal/auth/authtest"
	"github.com/gymbro/gymbro-api/internal/firebase/firebasetest"
	"github.com/gymbro/gymbro-api/internal/testenv"
)

// syncBuffer is a buffer safe for the server's concurrent logging.
type syncBuffer = testenv.LogBuffer

// TestLogsNeverCarryTokens checks the access log and the verifier's refusal
// line: both carry the trace id, neither carries the token.
func TestLogsNeverCarryTokens(t *testing.T) {
	var logs syncBuffer
	a := startAppLogging(t, map[string]string{
		"GYMBRO_HTTP_ADDR": "127.0.0.1:0", "GYMBRO_DATA_DIR": t.TempDir(), "GYMBRO_LOG_LEVEL": "info",
	}, &logs)
	tok := a.user("logs@example.com")
	a.do("GET", "/api/v1/me", tok, nil, "X-Trace-Id", "trace-ok")
	bad := tok[:len(tok)-6] + "AAAAAA"
	a.do("GET", "/api/v1/me?access_token="+bad, "", nil, "Authorization", "Bearer "+bad, "X-Trace-Id", "trace-bad")
	p := a.post(tok, "hi", "")
	a.events(tok, p.MessageID, "", 0)
	a.stop()

	out := logs.String()
	sig := tok[strings.LastIndex(tok, ".")+1:]
	for _, secret := range []string{tok, bad, sig, bad[strings.LastIndex(bad, ".")+1:]} {
		if strings.Contains(out, secret) {
			t.Fatalf("a token reached the logs:\n%s", out)
		}
	}
	var refusal, access bool
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "token refused") && strings.Contains(line, "trace_id=trace-bad") && strings.Contains(line, "code=signature_invalid") {
			refusal = true
		}
		if strings.Contains(line, "msg=request") && strings.Contains(line, "trace_id=trace-ok") && strings.Contains(line, "uid=") && strings.Contains(line, "status=200") {
			access = true
		}
	}
	if !refusal || !access {
		t.Fatalf("refusal line %v, access line %v in:\n%s", refusal, access, out)
	}
}

// logLine returns the one line of out holding every part, failing when
// there is not exactly one.
func logLine(t *testing.T, out string, parts ...string) string {
	t.Helper()
	var found []string
	for _, line := range strings.Split(out, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			found = append(found, line)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d lines hold %q in:\n%s", len(found), parts, out)
	}
	return found[0]
}

// TestProductionStartSaysWhatItServes: a production start names the demo
// coach it was told to serve, says of each issuer whether its keys were
// reached (and starts either way), and explains its open-file limit.
func TestProductionStartSaysWhatItServes(t *testing.T) {
	iss := authtest.NewIssuer(t)
	down := "http://" + freeAddr(t) + "/jwks"          // nothing listens there
	google := firebasetest.NewGoogle(t, "gymbro-test") // production's Firebase session checks need a service account
	var logs syncBuffer
	a := startAppLogging(t, map[string]string{
		"GYMBRO_ENV": "production", "GYMBRO_HTTP_ADDR": "127.0.0.1:0", "GYMBRO_DATA_DIR": t.TempDir(), "GYMBRO_LOG_LEVEL": "info",
		"SUPABASE_URL": iss.URL(), "SUPABASE_SERVICE_ROLE_KEY": "sb_secret_test", "SUPABASE_ANON_KEY": "sb_publishable_test",
		"FIREBASE_PROJECT_ID": "gymbro-test", "FIREBASE_JWKS_URL": down, "GYMBRO_AI_PROVIDER": "demo",
		"FIREBASE_SERVICE_ACCOUNT_JSON": string(google.KeyJSON()),
	}, &logs)
	a.stop()
	out := logs.String()

	logLine(t, out, "level=WARN", "built-in demo coach", "OPENAI_API_KEY", "GYMBRO_AI_CONFIG")
	reached := logLine(t, out, "level=INFO", "token issuer reached", "issuer="+iss.Issuer())
	missed := logLine(t, out, "level=WARN", "token issuer not reached", "keys_unavailable", "issuer=https://securetoken.google.com/gymbro-test", "connection refused")
	listening := logLine(t, out, "GymBro API is listening", "env=production")
	if strings.Index(out, reached) > strings.Index(out, listening) || strings.Index(out, missed) > strings.Index(out, listening) {
		t.Error("the issuers' lines come after \"listening\"")
	}
	if iss.JWKSRequests() != 1 {
		t.Errorf("the Supabase JWKS was fetched %d times at start, want 1", iss.JWKSRequests())
	}
	if runtime.GOOS == "linux" {
		logLine(t, out, "open-file limit (ulimit -n): each client connection, an open SSE stream included, takes one", "max_connections=")
	}
}
