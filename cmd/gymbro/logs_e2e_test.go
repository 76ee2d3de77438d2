package main

import (
	"strings"
	"testing"

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
