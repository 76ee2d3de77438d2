package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/gymbro/gymbro-api/internal/auth/authtest"
	"github.com/gymbro/gymbro-api/internal/chat"
	"github.com/gymbro/gymbro-api/internal/demo"
	"github.com/gymbro/gymbro-api/internal/httpapi"
	"github.com/gymbro/gymbro-api/internal/inmem"
	"github.com/gymbro/gymbro-api/internal/sqlite"
)

// startServer runs the real HTTP API (SQLite, in-process log, demo coach
// with chunkDelay) trusting a fake Supabase issuer, and writes a tokens file
// for users users.
func startServer(t *testing.T, chunkDelay time.Duration, users int) (url, tokens string) {
	t.Helper()
	ctx := context.Background()
	iss := authtest.NewIssuer(t)
	v := iss.Verifier(t)
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "gymbro.db"))
	if err != nil {
		t.Fatal(err)
	}
	log := inmem.NewEventLog(inmem.Options{})
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := chat.New(chat.Options{Store: store, Log: log, Model: demo.New(demo.Options{ChunkDelay: chunkDelay}), Logger: logger})
	s := httpapi.New(v, svc, httpapi.Options{Logger: logger, SSEHeartbeat: 100 * time.Millisecond})
	srv := httptest.NewServer(s)
	t.Cleanup(func() {
		_ = svc.Shutdown(ctx)
		s.CloseStreams()
		srv.Close()
		_ = log.Close()
		_ = store.Close()
	})
	return srv.URL, tokenFile(t, iss, users)
}

func runLoad(t *testing.T, args ...string) *Summary {
	t.Helper()
	var out, errOut bytes.Buffer
	if err := run(append(args, "-json", "-progress", "200ms"), &out, &errOut, func(string) string { return "" }); err != nil {
		t.Fatalf("run: %v\n%s", err, errOut.String())
	}
	var s Summary
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		t.Fatalf("summary %s: %v", out.String(), err)
	}
	return &s
}

// TestChatModeAgainstRealServer drives the real API with half the streams
// dropping mid-reply: every stream that finished must have been checked
// whole (no loss, no duplicate, deltas adding up), through reconnects; a
// drop just before the end may go without its reconnect.
func TestChatModeAgainstRealServer(t *testing.T) {
	url, tokens := startServer(t, 2*time.Millisecond, 4)
	s := runLoad(t, "-url", url, "-tokens", tokens, "-duration", "1500ms", "-think", "10ms", "-drop", "0.5", "-heartbeat", "100ms")
	if s.Users != 4 || s.Completed == 0 || s.Posts == 0 || s.EndToEnd.Count == 0 || s.TimeToFirstDelta.Count == 0 {
		t.Fatalf("nothing measured: %+v", s)
	}
	for _, k := range []string{"events_lost", "events_duplicated", "content_mismatch", "http_errors", "streams_unfinished", "bad_events", "stream_resets"} {
		if s.Counts[k] != 0 {
			t.Errorf("%s = %d; counts %v", k, s.Counts[k], s.Counts)
		}
	}
	if s.Counts["drops"] == 0 || s.Counts["reconnects"] < s.Counts["drops"]-int64(s.Users) {
		t.Errorf("drops %d, reconnects %d", s.Counts["drops"], s.Counts["reconnects"])
	}
	if s.Counts["terminal_completed"] != s.Completed {
		t.Errorf("completed %d, terminal_completed %d", s.Completed, s.Counts["terminal_completed"])
	}
}

// TestPostModeAgainstRealServer posts as fast as the real API takes posts
// from users whose replies take a while: the running cap refuses some
// (429 with Retry-After), and those are sent again with their key.
func TestPostModeAgainstRealServer(t *testing.T) {
	url, tokens := startServer(t, 20*time.Millisecond, 3)
	s := runLoad(t, "-url", url, "-tokens", tokens, "-mode", "post", "-duration", "1500ms")
	if s.Posts < 3 || int64(s.PostLatency.Count) != s.Posts || s.Completed != 0 {
		t.Fatalf("posts %d, latencies %d, streams %d", s.Posts, s.PostLatency.Count, s.Completed)
	}
	if s.Counts["http_429"] == 0 || s.Counts["http_errors"] != s.Counts["http_429"] {
		t.Errorf("the running cap refused nothing, or something else failed: %v", s.Counts)
	}
}

// TestIdleModeReadsProcessMemory holds streams open against the server in
// this process and reads its memory from /proc.
func TestIdleModeReadsProcessMemory(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skipf("reading memory from /proc is Linux-only; this is %s", runtime.GOOS)
	}
	url, tokens := startServer(t, 20*time.Millisecond, 2)
	s := runLoad(t, "-url", url, "-tokens", tokens, "-mode", "idle", "-streams", "20", "-duration", "1s", "-pid", strconv.Itoa(os.Getpid()))
	if s.Idle == nil || s.Idle.Source != "proc" || s.Idle.Baseline.RSS == 0 || s.Idle.Peak.Open == 0 {
		t.Fatalf("idle summary %+v", s.Idle)
	}
	if s.Counts["events_lost"] != 0 || s.Counts["events_duplicated"] != 0 || s.Counts["http_errors"] != 0 {
		t.Errorf("counts %v", s.Counts)
	}
}

func TestFlagsRefuseNonLoopback(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run([]string{"-url", "http://192.0.2.1:8080", "-tokens", "x"}, &out, &errOut, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("err %v", err)
	}
}

// tokenFile writes a token a line for users users of iss, as -tokens reads
// them, and returns its path.
func tokenFile(t *testing.T, iss *authtest.Issuer, users int) string {
	t.Helper()
	var b strings.Builder
	for range users {
		b.WriteString(iss.TokenFor(uuid.NewString(), "load@example.com", time.Hour) + "\n")
	}
	path := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
