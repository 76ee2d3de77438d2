package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/gymbro/gymbro-api/internal/auth"
	"github.com/gymbro/gymbro-api/internal/auth/authtest"
	"github.com/gymbro/gymbro-api/internal/chat"
	"github.com/gymbro/gymbro-api/internal/demo"
	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/httpapi"
	"github.com/gymbro/gymbro-api/internal/inmem"
	"github.com/gymbro/gymbro-api/internal/sqlite"
	"github.com/gymbro/gymbro-api/internal/sse"
	"github.com/gymbro/gymbro-api/internal/testenv"
)

// streamServer is the real Server on SQLite, the in-process log and the
// demo model with a chunk delay longer than the heartbeat, so streams go
// idle between chunks.
type streamServer struct {
	srv    *httptest.Server
	api    *httpapi.Server
	client *http.Client
	token  string
}

func newStreamServer(t *testing.T, http2 bool) *streamServer {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "gymbro.db"))
	if err != nil {
		t.Fatal(err)
	}
	iss := authtest.NewIssuer(t)
	v := iss.Verifier(t)
	log := inmem.NewEventLog(inmem.Options{})
	svc := chat.New(chat.Options{Store: store, Log: log, Model: demo.New(demo.Options{ChunkDelay: 40 * time.Millisecond})})
	api := httpapi.New(v, svc, httpapi.Options{SSEHeartbeat: 15 * time.Millisecond, SSERetry: time.Second, Logger: discardLogger()})
	ss := &streamServer{api: api, token: iss.TokenFor(uuid.NewString(), "s@example.com", time.Hour)}
	ss.srv = httptest.NewUnstartedServer(api)
	if http2 {
		ss.srv.EnableHTTP2 = true
		ss.srv.StartTLS()
	} else {
		ss.srv.Start()
	}
	ss.client = ss.srv.Client()
	t.Cleanup(func() {
		api.CloseStreams()
		ss.srv.Close()
		_ = svc.Shutdown(ctx)
		_ = log.Close()
		_ = store.Close()
	})
	return ss
}

func (ss *streamServer) post(t *testing.T, text string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", ss.srv.URL+"/api/v1/messages", strings.NewReader(`{"text":`+strconv.Quote(text)+`}`))
	req.Header.Set("Authorization", "Bearer "+ss.token)
	req.Header.Set("Content-Type", "application/json")
	res, err := ss.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out struct {
		MessageID string `json:"message_id"`
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != 202 {
		t.Fatalf("post: %d %v", res.StatusCode, err)
	}
	return out.MessageID
}

// follow reads a stream until its end or until stopAfter events.
func (ss *streamServer) follow(t *testing.T, id string, last int64, stopAfter int) (proto int, evs []gymbro.Event, heartbeats int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", ss.srv.URL+"/api/v1/messages/"+id+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+ss.token)
	if last > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(last, 10))
	}
	res, err := ss.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" || res.Header.Get("X-Trace-Id") == "" {
		t.Fatalf("stream: %d %v", res.StatusCode, res.Header)
	}
	r := sse.NewReader(res.Body)
	for {
		ev, err := r.Next()
		if errors.Is(err, io.EOF) {
			return res.ProtoMajor, evs, heartbeats
		}
		if err != nil {
			t.Fatal(err)
		}
		if ev.Comment == "heartbeat" {
			heartbeats++
			continue
		}
		if !ev.HasID {
			continue
		}
		var d gymbro.Event
		if err := json.Unmarshal([]byte(ev.Data), &d); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, d)
		if len(evs) == stopAfter {
			return res.ProtoMajor, evs, heartbeats
		}
	}
}

// TestStreamingBothWays runs the same stream over HTTP/1.1, where idle
// streams are parked without a goroutine, and HTTP/2, where they keep the
// goroutine loop: both deliver every event once, in order, with heartbeats,
// and resume exactly.
func TestStreamingBothWays(t *testing.T) {
	for name, h2 := range map[string]bool{"http1-parked": false, "http2-loop": true} {
		t.Run(name, func(t *testing.T) {
			ss := newStreamServer(t, h2)
			id := ss.post(t, "How do I squat deeper?")
			proto, first, _ := ss.follow(t, id, 0, 4)
			if want := map[bool]int{false: 1, true: 2}[h2]; proto != want {
				t.Fatalf("protocol HTTP/%d, want HTTP/%d", proto, want)
			}
			_, rest, beats := ss.follow(t, id, first[len(first)-1].Seq, 0)
			all := append(first, rest...)
			var deltas strings.Builder
			for i, ev := range all {
				if ev.Seq != int64(i+1) {
					t.Fatalf("event %d has seq %d", i, ev.Seq)
				}
				deltas.WriteString(ev.Delta)
			}
			last := all[len(all)-1]
			if last.Type != gymbro.EventCompleted || last.Content != deltas.String() {
				t.Fatalf("last %+v, deltas %q", last, deltas.String())
			}
			if beats == 0 {
				t.Error("no heartbeat while the stream idled between chunks")
			}
		})
	}
}

// TestCloseStreamsEndsParkedStreams: shutdown ends a parked stream (the
// client sees EOF and would reconnect with Last-Event-ID).
func TestCloseStreamsEndsParkedStreams(t *testing.T) {
	ss := newStreamServer(t, false)
	id := ss.post(t, "long one [demo:slow]")
	req, _ := http.NewRequest("GET", ss.srv.URL+"/api/v1/messages/"+id+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+ss.token)
	res, err := ss.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	r := sse.NewReader(res.Body)
	for { // the replay: up to the first event, after which the stream idles
		ev, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if ev.HasID {
			break
		}
	}
	ss.api.CloseStreams()
	for {
		ev, err := r.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if ev.Type == string(gymbro.EventCompleted) {
			t.Fatal("the slow reply completed: the close did not end the stream")
		}
	}
}

// TestTokenExpiringMidStream: a token that expires while its stream is open
// does not cut the stream; reconnecting with it gets 401 token_expired, so
// the client refreshes and resumes with Last-Event-ID.
func TestTokenExpiringMidStream(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "gymbro.db"))
	if err != nil {
		t.Fatal(err)
	}
	clk := testenv.NewClock(time.Now())
	iss := authtest.NewIssuer(t)
	v, err := auth.New(auth.Config{Issuers: []auth.Issuer{auth.SupabaseIssuer(iss.URL(), nil)}, CacheSize: auth.DefaultCacheSize, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	log := inmem.NewEventLog(inmem.Options{})
	svc := chat.New(chat.Options{Store: store, Log: log, Model: demo.New(demo.Options{ChunkDelay: 30 * time.Millisecond})})
	api := httpapi.New(v, svc, httpapi.Options{Logger: discardLogger()})
	srv := httptest.NewServer(api)
	t.Cleanup(func() {
		api.CloseStreams()
		srv.Close()
		_ = svc.Shutdown(ctx)
		_ = log.Close()
		_ = store.Close()
		v.Close()
	})
	ss := &streamServer{srv: srv, api: api, client: srv.Client(), token: iss.TokenFor(uuid.NewString(), "x@example.com", 5*time.Minute)}
	id := ss.post(t, "tell me about sleep")

	req, _ := http.NewRequest("GET", srv.URL+"/api/v1/messages/"+id+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+ss.token)
	res, err := ss.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	r := sse.NewReader(res.Body)
	var n int
	var last gymbro.Event
	for {
		ev, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !ev.HasID {
			continue
		}
		if n++; n == 1 { // the stream is open: now the token expires
			clk.Advance(time.Hour)
		}
		_ = json.Unmarshal([]byte(ev.Data), &last)
	}
	if last.Type != gymbro.EventCompleted {
		t.Fatalf("the stream ended with %+v after the token expired", last)
	}
	again, err := ss.client.Do(req.Clone(ctx))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(again.Body)
	again.Body.Close()
	if again.StatusCode != 401 || !strings.Contains(string(body), `"code":"token_expired"`) {
		t.Fatalf("reconnect with the expired token: %d %s", again.StatusCode, body)
	}
}
