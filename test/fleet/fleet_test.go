// Package fleet is the multi-instance end-to-end test: the real gymbro
// binary, run as two processes on different ports, sharing one PostgreSQL
// database and one Redis, as they would behind a load balancer. It checks
// what only a fleet can get wrong: a stream read from the instance that is
// not generating, resuming on another, an instance dying mid-reply, and a
// rate limit that is one budget across instances.
package fleet

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/gymbro/gymbro-api/internal/supabase"
	"github.com/gymbro/gymbro-api/internal/testenv"
)

// redisDB is the Redis database the fleet uses. The event log's key prefix
// is not configurable from the environment, so the test owns a whole
// database (flushed before and after) instead of a prefix; two concurrent
// runs of this test on one machine would share it.
const redisDB = 9

// leaseTTL is short so a dead instance's generation is reaped quickly.
const leaseTTL = 3 * time.Second

// wait bounds every condition the test waits for; generous, because it is
// a failure guard, not a measurement.
const wait = 60 * time.Second

func TestFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs two servers; skipped with -short")
	}
	pgURL := testenv.PostgresURL(t)
	redisURL := fleetRedis(t, testenv.RedisURL(t))
	dbURL := freshDatabase(t, pgURL)
	bin := buildBinary(t)

	anon, service := "sb_publishable_"+randHex(12), "sb_secret_"+randHex(12)
	common := map[string]string{
		"GYMBRO_ENV":                  "development",
		"GYMBRO_HTTP_ADDR":            "127.0.0.1:0",
		"GYMBRO_DATABASE_URL":         dbURL,
		"GYMBRO_REDIS_URL":            redisURL,
		"GYMBRO_LEASE_TTL":            leaseTTL.String(),
		"GYMBRO_RATE_LIMIT":           "3",
		"GYMBRO_MAX_RUNNING_PER_USER": "20",
		"GYMBRO_SSE_HEARTBEAT":        "1s",
		"GYMBRO_AI_PROVIDER":          "demo",
		"GYMBRO_LOG_FORMAT":           "json",
		"GYMBRO_TEST_USERS_ENABLED":   "false",
		"SUPABASE_ANON_KEY":           anon,
		"SUPABASE_SERVICE_ROLE_KEY":   service,
	}
	// B hosts the Auth emulator (the issuer), so A can be killed without
	// taking the issuer with it; A trusts B as its Supabase.
	b := start(t, bin, "b", common, nil)
	a := start(t, bin, "a", common, map[string]string{"SUPABASE_URL": b.url})

	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr}
	auth := supabase.NewAuthClient(supabase.AuthConfig{URL: b.url, AnonKey: anon, ServiceRoleKey: service, HTTPClient: hc})
	user := func(email string) string {
		t.Helper()
		ctx := context.Background()
		if _, err := auth.CreateUser(ctx, supabase.AdminUserParams{Email: email, Password: "correct horse battery", EmailConfirm: true}); err != nil {
			t.Fatalf("create %s on B's emulator: %v", email, err)
		}
		s, err := auth.SignInWithPassword(ctx, email, "correct horse battery")
		if err != nil {
			t.Fatalf("sign in %s: %v", email, err)
		}
		return s.AccessToken
	}

	t.Run("one identity", func(t *testing.T) {
		tok := user("ida@example.com")
		for _, in := range []*instance{a, b} {
			r := do(t, hc, "GET", in.url+"/api/v1/me", tok, nil)
			if r.status != 200 {
				t.Fatalf("GET /me on %s: %d %s", in.name, r.status, r.body)
			}
		}
	})

	t.Run("post on A, stream from B, resume on A", func(t *testing.T) {
		tok := user("ada@example.com")
		id := post(t, hc, a, tok, "How do I squat deeper?")
		onB := stream(t, hc, b, tok, id, "", nil)
		checkGapFree(t, onB, 1)
		last := onB[len(onB)-1]
		if last.Event != "completed" {
			t.Fatalf("B's stream ended with %s: %v", last.Event, names(onB))
		}
		var done struct{ Content string }
		json.Unmarshal([]byte(last.Data), &done)
		if done.Content == "" || done.Content != deltas(onB) {
			t.Errorf("completed content %q, deltas add up to %q", done.Content, deltas(onB))
		}
		if n := strings.Count(strings.Join(names(onB), ","), "content_delta"); n < 2 {
			t.Errorf("only %d content_delta events", n)
		}

		// Resuming on A after event k gives exactly B's events after k,
		// byte for byte: both read the one log in Redis.
		k := int64(3)
		onA := stream(t, hc, a, tok, id, strconv.FormatInt(k, 10), nil)
		if fmt.Sprint(onA) != fmt.Sprint(onB[k:]) {
			t.Errorf("resume on A after %d:\n got %v\nwant %v", k, onA, onB[k:])
		}
	})

	t.Run("rate limit is one budget across instances", func(t *testing.T) {
		tok := user("rae@example.com")
		for i, in := range []*instance{a, a, b} {
			if r := do(t, hc, "POST", in.url+"/api/v1/messages", tok, map[string]string{"text": "Quick tip " + strconv.Itoa(i)}); r.status != 202 {
				t.Fatalf("post %d on %s: %d %s", i+1, in.name, r.status, r.body)
			}
		}
		r := do(t, hc, "POST", b.url+"/api/v1/messages", tok, map[string]string{"text": "One more"})
		if r.status != http.StatusTooManyRequests {
			t.Fatalf("4th post (on B): %d %s; want 429", r.status, r.body)
		}
		var p struct{ Code string }
		json.Unmarshal(r.body, &p)
		if p.Code != "rate_limited" {
			t.Errorf("4th post code %q, want rate_limited", p.Code)
		}
		if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 || s > 60 {
			t.Errorf("Retry-After %q, want 1-60 seconds", r.header.Get("Retry-After"))
		}
		// Another user is not affected.
		if r := do(t, hc, "POST", a.url+"/api/v1/messages", user("una@example.com"), map[string]string{"text": "hi"}); r.status != 202 {
			t.Errorf("another user's post: %d %s", r.status, r.body)
		}
		// The 429 shows on B's /metrics.
		m := do(t, hc, "GET", b.url+"/metrics", "", nil)
		if want := `gymbro_http_requests_total{route="POST /api/v1/messages",status="429"} 1`; m.status != 200 || !bytes.Contains(m.body, []byte(want)) {
			t.Errorf("B's /metrics (%d) lacks %s", m.status, want)
		}
	})

	t.Run("A dies mid-generation, B's subscriber gets interrupted", func(t *testing.T) {
		tok := user("kim@example.com")
		id := post(t, hc, a, tok, "Plan my week of training [demo:slow]")
		var once sync.Once
		evs := stream(t, hc, b, tok, id, "", func(e sseEvent) {
			if e.Event == "content_delta" {
				once.Do(func() { a.kill(t) }) // A is generating: it holds the lease
			}
		})
		checkGapFree(t, evs, 1)
		last := evs[len(evs)-1]
		var e struct {
			Code      string
			Retryable *bool
		}
		json.Unmarshal([]byte(last.Data), &e)
		if last.Event != "error" || e.Code != "interrupted" || e.Retryable == nil || !*e.Retryable {
			t.Fatalf("B's subscriber ended with %s %s; want error interrupted, retryable (events %v)", last.Event, last.Data, names(evs))
		}
		var m struct{ Status string }
		r := do(t, hc, "GET", b.url+"/api/v1/messages/"+id, tok, nil)
		json.Unmarshal(r.body, &m)
		if r.status != 200 || m.Status != "interrupted" {
			t.Errorf("GET message on B: %d %s", r.status, r.body)
		}
	})
}

// instance is one running gymbro process.
type instance struct {
	name string
	url  string
	cmd  *exec.Cmd
	logs *logBuffer

	mu     sync.Mutex
	exited chan struct{}
}

// start runs the binary with env (and extra) only, in an empty working
// directory so no .env file or inherited variable (OPENAI_API_KEY, say)
// changes what runs, and waits for its "listening" line.
func start(t *testing.T, bin, name string, env, extra map[string]string) *instance {
	t.Helper()
	dir := t.TempDir()
	vars := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "GYMBRO_DATA_DIR=" + filepath.Join(dir, "data"), "GYMBRO_INSTANCE_ID=fleet-" + name}
	for _, m := range []map[string]string{env, extra} {
		for k, v := range m {
			vars = append(vars, k+"="+v)
		}
	}
	in := &instance{name: name, logs: newLogBuffer(), exited: make(chan struct{})}
	in.cmd = exec.Command(bin, "serve")
	in.cmd.Dir, in.cmd.Env = dir, vars
	in.cmd.Stdout, in.cmd.Stderr = in.logs, in.logs
	if err := in.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { in.cmd.Wait(); close(in.exited) }()
	t.Cleanup(func() {
		in.stop()
		if t.Failed() {
			t.Logf("instance %s logs:\n%s", name, in.logs.String())
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	line, err := in.logs.waitFor(ctx, in.exited, `"GymBro API is listening"`)
	if err != nil {
		t.Fatalf("instance %s did not start: %v\n%s", name, err, in.logs.String())
	}
	var l struct{ URL string }
	if err := json.Unmarshal([]byte(line), &l); err != nil || l.URL == "" {
		t.Fatalf("instance %s: no url in %q", name, line)
	}
	in.url = l.URL
	return in
}

// kill ends the process at once, with no chance to clean up, as a crashed
// or evicted instance would.
func (in *instance) kill(t *testing.T) {
	if err := in.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Errorf("kill %s: %v", in.name, err)
	}
	<-in.exited
}

// stop asks for a graceful shutdown and kills the process if it is not
// gone within the deadline.
func (in *instance) stop() {
	select {
	case <-in.exited:
		return
	default:
	}
	in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-in.exited:
	case <-time.After(wait):
		in.cmd.Process.Kill()
		<-in.exited
	}
}

// logBuffer collects a process's output and wakes waiters on every write.
type logBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newLogBuffer() *logBuffer { return &logBuffer{changed: make(chan struct{})} }

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	close(l.changed)
	l.changed = make(chan struct{})
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// waitFor returns the first complete line containing s.
func (l *logBuffer) waitFor(ctx context.Context, exited <-chan struct{}, s string) (string, error) {
	for {
		l.mu.Lock()
		text, changed := l.buf.String(), l.changed
		l.mu.Unlock()
		for line := range strings.Lines(text) {
			if strings.Contains(line, s) && strings.HasSuffix(line, "\n") {
				return line, nil
			}
		}
		select {
		case <-changed:
		case <-exited:
			return "", fmt.Errorf("the process exited")
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

// buildBinary builds cmd/gymbro from the module root into a temporary
// directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	bin := filepath.Join(t.TempDir(), "gymbro")
	build := exec.Command("go", "build", "-o", bin, "./cmd/gymbro")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/gymbro: %v\n%s", err, out)
	}
	return bin
}

// freshDatabase creates a database of its own for the fleet (the store has
// no schema setting in its configuration) and drops it when t ends.
func freshDatabase(t *testing.T, adminURL string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		t.Fatalf("connect to PostgreSQL: %v", err)
	}
	name := testenv.UniqueName("gymbro_fleet_")
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		conn.Close(ctx)
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		defer conn.Close(ctx)
		// FORCE: a killed instance's connections may not be gone yet.
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(adminURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// fleetRedis returns the URL of the fleet's Redis database, flushed now and
// when t ends.
func fleetRedis(t *testing.T, base string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + strconv.Itoa(redisDB)
	opts, err := redis.ParseURL(u.String())
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	flush := func() {
		if err := c.FlushDB(context.Background()).Err(); err != nil {
			t.Errorf("FLUSHDB %d: %v", redisDB, err)
		}
	}
	flush()
	t.Cleanup(func() { flush(); c.Close() })
	return u.String()
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, hc *http.Client, method, url, token string, body any) response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func post(t *testing.T, hc *http.Client, in *instance, token, text string) string {
	t.Helper()
	r := do(t, hc, "POST", in.url+"/api/v1/messages", token, map[string]string{"text": text})
	var p struct {
		MessageID string `json:"message_id"`
	}
	json.Unmarshal(r.body, &p)
	if r.status != 202 || p.MessageID == "" {
		t.Fatalf("post on %s: %d %s", in.name, r.status, r.body)
	}
	return p.MessageID
}

// sseEvent is one event as it came over the wire.
type sseEvent struct {
	ID    int64
	Event string
	Data  string
}

// stream reads the message's SSE stream from in until the terminal event,
// calling each (when set) on every event as it arrives.
func stream(t *testing.T, hc *http.Client, in *instance, token, id, lastEventID string, each func(sseEvent)) []sseEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", in.url+"/api/v1/messages/"+id+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("stream from %s: %v", in.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("stream from %s: %d %s", in.name, resp.StatusCode, b)
	}
	var out []sseEvent
	var cur sseEvent
	var data []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.Event == "" {
				continue // the retry hint or a heartbeat
			}
			cur.Data = strings.Join(data, "\n")
			out = append(out, cur)
			if each != nil {
				each(cur)
			}
			switch cur.Event {
			case "completed", "error", "canceled":
				return out
			}
			cur, data = sseEvent{}, nil
		case strings.HasPrefix(line, "id: "):
			cur.ID, _ = strconv.ParseInt(strings.TrimPrefix(line, "id: "), 10, 64)
		case strings.HasPrefix(line, "event: "):
			cur.Event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = append(data, strings.TrimPrefix(line, "data: "))
		}
	}
	t.Fatalf("stream from %s ended without a terminal event (%v); got %v", in.name, sc.Err(), names(out))
	return nil
}

// checkGapFree fails unless ids run first, first+1, … with one terminal
// event, last.
func checkGapFree(t *testing.T, evs []sseEvent, first int64) {
	t.Helper()
	for i, e := range evs {
		if e.ID != first+int64(i) {
			t.Fatalf("event %d has id %d, want %d: %v", i, e.ID, first+int64(i), names(evs))
		}
	}
	if len(evs) > 0 && first == 1 && (evs[0].Event != "queued" || len(evs) < 2 || evs[1].Event != "working") {
		t.Errorf("stream starts %v, want queued, working", names(evs))
	}
}

func names(evs []sseEvent) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = strconv.FormatInt(e.ID, 10) + ":" + e.Event
	}
	return out
}

func deltas(evs []sseEvent) string {
	var b strings.Builder
	for _, e := range evs {
		if e.Event == "content_delta" {
			var d struct{ Delta string }
			json.Unmarshal([]byte(e.Data), &d)
			b.WriteString(d.Delta)
		}
	}
	return b.String()
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
