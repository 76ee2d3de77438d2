package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gymbro/gymbro-api/internal/config"
	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/sse"
	"github.com/gymbro/gymbro-api/internal/supabase"
)

// TestMain stops the Firebase Auth emulator (firebase_e2e_test.go) after
// the tests, then fails the package if a test left a goroutine running.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(firebaseEmulator.Main(m), goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"), goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"))
}

// app is one running service on :0 with its own data directory.
type app struct {
	t    *testing.T
	main *Main
	url  string
	http *http.Client
}

// startApp starts the real service (SQLite, in-process log, the demo model
// and the local Auth emulator unless env says otherwise).
func startApp(t *testing.T, env map[string]string) *app {
	t.Helper()
	return startAppWith(t, appEnv(t, env))
}

// appEnv is env over startApp's defaults: a free port, a data directory of
// its own, quick heartbeats, warnings only.
func appEnv(t *testing.T, env map[string]string) map[string]string {
	base := map[string]string{
		"GYMBRO_HTTP_ADDR":     "127.0.0.1:0",
		"GYMBRO_DATA_DIR":      t.TempDir(),
		"GYMBRO_SSE_HEARTBEAT": "150ms",
		"GYMBRO_LOG_LEVEL":     "warn",
	}
	maps.Copy(base, env)
	return base
}

func startAppWith(t *testing.T, env map[string]string) *app {
	t.Helper()
	return startAppLogging(t, env, io.Discard)
}

func startAppLogging(t *testing.T, env map[string]string, logs io.Writer) *app {
	t.Helper()
	return startAppSetup(t, env, logs, nil)
}

// startAppSetup is startAppLogging that lets setup, when not nil, change
// the Main before it runs.
func startAppSetup(t *testing.T, env map[string]string, logs io.Writer, setup func(*Main)) *app {
	t.Helper()
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	m := NewMain(cfg, logs)
	if setup != nil {
		setup(m)
	}
	if err := m.Run(context.Background()); err != nil {
		m.Close()
		t.Fatalf("run: %v", err)
	}
	a := &app{t: t, main: m, url: m.URL, http: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}}
	t.Cleanup(func() {
		if a.main != nil {
			if err := a.main.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		}
	})
	return a
}

func (a *app) stop() {
	a.t.Helper()
	if err := a.main.Close(); err != nil {
		a.t.Fatalf("close: %v", err)
	}
	a.main = nil
}

// user creates a user in the emulator and signs in through the same Supabase
// client code production uses, returning a real access token.
func (a *app) user(email string) string {
	a.t.Helper()
	anon, service := a.main.Emulator.Keys()
	return a.userVia(a.url, anon, service, email)
}

// userVia creates a user through the Supabase Auth at base.
func (a *app) userVia(base, anon, service, email string) string {
	a.t.Helper()
	ctx := context.Background()
	c := supabase.NewAuthClient(supabase.AuthConfig{URL: base, AnonKey: anon, ServiceRoleKey: service})
	if _, err := c.CreateUser(ctx, supabase.AdminUserParams{Email: email, Password: "correct horse battery", EmailConfirm: true}); err != nil {
		a.t.Fatalf("create user: %v", err)
	}
	s, err := c.SignInWithPassword(ctx, email, "correct horse battery")
	if err != nil {
		a.t.Fatalf("sign in: %v", err)
	}
	return s.AccessToken
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func (r response) problem(t *testing.T) map[string]any {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("content type %q, body %s", ct, r.body)
	}
	var p map[string]any
	r.json(t, &p)
	if p["request_id"] != r.header.Get("X-Trace-Id") || p["request_id"] == "" {
		t.Errorf("request_id %v, X-Trace-Id %q", p["request_id"], r.header.Get("X-Trace-Id"))
	}
	return p
}

func (a *app) do(method, path, token string, body any, headers ...string) response {
	a.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, _ := json.Marshal(b)
		rd = bytes.NewReader(data)
	}
	req, _ := http.NewRequest(method, a.url+path, rd)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i] == "Host" {
			req.Host = headers[i+1] // Go sends req.Host, not a Host header
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := a.http.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if res.Header.Get("X-Trace-Id") == "" {
		a.t.Errorf("%s %s: no X-Trace-Id", method, path)
	}
	return response{status: res.StatusCode, header: res.Header, body: data}
}

type posted struct {
	MessageID      string `json:"message_id"`
	ConversationID string `json:"conversation_id"`
	Status         string `json:"status"`
	EventsURL      string `json:"events_url"`
}

func (a *app) post(token, text, conversationID string) posted {
	a.t.Helper()
	body := map[string]string{"text": text}
	if conversationID != "" {
		body["conversation_id"] = conversationID
	}
	r := a.do("POST", "/api/v1/messages", token, body)
	if r.status != http.StatusAccepted {
		a.t.Fatalf("post: %d %s", r.status, r.body)
	}
	var p posted
	r.json(a.t, &p)
	return p
}

// stream is what one SSE connection delivered.
type stream struct {
	status     int
	header     http.Header
	retry      int
	events     []sse.Event
	data       []gymbro.Event
	heartbeats int
	resets     int
}

// events reads a message's stream to its end (or until stopAfter events,
// when > 0, after which it hangs up like a dropped phone).
func (a *app) events(token, id string, lastEventID string, stopAfter int) stream {
	a.t.Helper()
	return a.eventsNotify(token, id, lastEventID, stopAfter, nil)
}

// eventsNotify is events that closes opened once the first event arrived.
func (a *app) eventsNotify(token, id string, lastEventID string, stopAfter int, opened chan struct{}) stream {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", a.url+"/api/v1/messages/"+id+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	res, err := a.http.Do(req)
	if err != nil {
		a.t.Fatalf("events: %v", err)
	}
	defer res.Body.Close()
	s := stream{status: res.StatusCode, header: res.Header}
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		s.events = []sse.Event{{Data: string(b)}}
		return s
	}
	r := sse.NewReader(res.Body)
	for {
		ev, err := r.Next()
		if errors.Is(err, io.EOF) {
			return s
		}
		if err != nil {
			a.t.Fatalf("read stream: %v", err)
		}
		switch {
		case ev.Comment != "":
			if ev.Comment == "heartbeat" {
				s.heartbeats++
			}
			continue
		case ev.Retry != 0 && ev.Data == "" && !ev.HasID:
			s.retry = ev.Retry
			continue
		case ev.Type == "reset":
			s.resets++
			continue
		}
		var d gymbro.Event
		if err := json.Unmarshal([]byte(ev.Data), &d); err != nil {
			a.t.Fatalf("event data %q: %v", ev.Data, err)
		}
		if ev.ID != strconv.FormatInt(d.Seq, 10) || ev.Type != string(d.Type) {
			a.t.Fatalf("id %q / event %q disagree with data %+v", ev.ID, ev.Type, d)
		}
		s.events = append(s.events, ev)
		s.data = append(s.data, d)
		if opened != nil && len(s.data) == 1 {
			close(opened)
		}
		if stopAfter > 0 && len(s.data) == stopAfter {
			return s
		}
	}
}

// checkSeq asserts gap-free ids from first, for a prefix of a stream.
func checkSeq(t *testing.T, evs []gymbro.Event, first int64) {
	t.Helper()
	for i, ev := range evs {
		if ev.Seq != first+int64(i) {
			t.Fatalf("event %d has seq %d, want %d (events %v)", i, ev.Seq, first+int64(i), types(evs))
		}
	}
}

// freeAddr returns a loopback address nothing listens on, for a test that
// restarts the service on the same address (tokens name the issuer's URL).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// checkOrder asserts the DESIGN.md order and gap-free ids from first.
func checkOrder(t *testing.T, evs []gymbro.Event, first int64) {
	t.Helper()
	for i, ev := range evs {
		if ev.Seq != first+int64(i) {
			t.Fatalf("event %d has seq %d, want %d (events %v)", i, ev.Seq, first+int64(i), types(evs))
		}
	}
	if first == 1 {
		if len(evs) < 3 || evs[0].Type != gymbro.EventQueued || evs[1].Type != gymbro.EventWorking {
			t.Fatalf("order: %v", types(evs))
		}
	}
	for i, ev := range evs {
		last := i == len(evs)-1
		if ev.Type.Terminal() != last {
			t.Fatalf("terminal event not last exactly once: %v", types(evs))
		}
	}
}

func types(evs []gymbro.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = fmt.Sprintf("%d:%s", ev.Seq, ev.Type)
	}
	return out
}

func content(evs []gymbro.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		if ev.Type == gymbro.EventContentDelta {
			b.WriteString(ev.Delta)
		}
	}
	return b.String()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
