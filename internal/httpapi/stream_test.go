package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
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
	issuer *authtest.Issuer
}

func newStreamServer(t *testing.T, http2 bool) *streamServer {
	t.Helper()
	return newStreamServerWith(t, streamSetup{http2: http2})
}

// streamSetup is what a test changes of the stream server: the defaults
// are the demo model (40 ms chunks), a 15 ms heartbeat and no stream cap.
type streamSetup struct {
	http2     bool
	model     gymbro.Model
	heartbeat time.Duration
	streams   httpapi.StreamCap
	sndbuf    int             // the server's socket send buffer, when set
	logs      io.Writer       // the server's log (info and above); discarded when nil
	metrics   httpapi.Metrics // nil: none
	trace     *chat.Trace
}

func newStreamServerWith(t *testing.T, setup streamSetup) *streamServer {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "gymbro.db"))
	if err != nil {
		t.Fatal(err)
	}
	iss := authtest.NewIssuer(t)
	v := iss.Verifier(t)
	log := inmem.NewEventLog(inmem.Options{})
	if setup.model == nil {
		setup.model = demo.New(demo.Options{ChunkDelay: 40 * time.Millisecond})
	}
	if setup.heartbeat == 0 {
		setup.heartbeat = 15 * time.Millisecond
	}
	svc := chat.New(chat.Options{Store: store, Log: log, Model: setup.model, Trace: setup.trace})
	logger := discardLogger()
	if setup.logs != nil {
		logger = slog.New(httpapi.TraceLogHandler(slog.NewTextHandler(setup.logs, nil)))
	}
	api := httpapi.New(v, svc, httpapi.Options{SSEHeartbeat: setup.heartbeat, SSERetry: time.Second, Streams: setup.streams, Logger: logger, Metrics: setup.metrics})
	ss := &streamServer{api: api, token: iss.TokenFor(uuid.NewString(), "s@example.com", time.Hour), issuer: iss}
	ss.srv = httptest.NewUnstartedServer(api)
	if setup.sndbuf > 0 {
		ss.srv.Listener = sndbufListener{ss.srv.Listener, setup.sndbuf}
	}
	if setup.http2 {
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

// sndbufListener gives every accepted connection a small send buffer, so
// a client that does not read fills it quickly.
type sndbufListener struct {
	net.Listener
	size int
}

func (l sndbufListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		err = errors.Join(err, tc.SetWriteBuffer(l.size))
	}
	return c, err
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
	res := ss.open(t, ctx, id, last)
	defer res.Body.Close()
	evs, heartbeats = readEvents(t, sse.NewReader(res.Body), stopAfter)
	return res.ProtoMajor, evs, heartbeats
}

// open opens the stream of message id after last.
func (ss *streamServer) open(t *testing.T, ctx context.Context, id string, last int64) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", ss.srv.URL+"/api/v1/messages/"+id+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+ss.token)
	if last > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(last, 10))
	}
	res, err := ss.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" || res.Header.Get("X-Trace-Id") == "" {
		res.Body.Close()
		t.Fatalf("stream: %d %v", res.StatusCode, res.Header)
	}
	return res
}

// readEvents reads events until the stream ends or stopAfter of them.
func readEvents(t *testing.T, r *sse.Reader, stopAfter int) (evs []gymbro.Event, heartbeats int) {
	t.Helper()
	for {
		ev, err := r.Next()
		if errors.Is(err, io.EOF) {
			return evs, heartbeats
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
			return evs, heartbeats
		}
	}
}

// checkWhole fails unless evs are seqs 1..n, one each, ending in
// completed with the deltas' text.
func checkWhole(t *testing.T, evs []gymbro.Event) {
	t.Helper()
	var deltas strings.Builder
	for i, ev := range evs {
		if ev.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d", i, ev.Seq)
		}
		deltas.WriteString(ev.Delta)
	}
	if len(evs) == 0 {
		t.Fatal("no events")
	}
	if last := evs[len(evs)-1]; last.Type != gymbro.EventCompleted || last.Content != deltas.String() {
		t.Fatalf("last %s (%d bytes), deltas %d bytes", last.Type, len(last.Content), deltas.Len())
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
			checkWhole(t, append(first, rest...))
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

// TestParkedStreamHangUp: a client that hangs up on a parked stream frees
// its stream slot at once, not at the next heartbeat (an hour here), so it
// can open another one straight away.
func TestParkedStreamHangUp(t *testing.T) {
	ss := newStreamServerWith(t, streamSetup{heartbeat: time.Hour, streams: httpapi.NewMemoryStreamCap(1)})
	id := ss.post(t, "long one [demo:slow]")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	res := ss.open(t, ctx, id, 0)
	if evs, _ := readEvents(t, sse.NewReader(res.Body), 1); len(evs) != 1 {
		t.Fatal("no first event")
	}
	res.Body.Close() // a body not read to its end: the connection closes
	for ss.api.OpenStreams() != 0 {
		if ctx.Err() != nil {
			t.Fatalf("%d streams still open after the client hung up", ss.api.OpenStreams())
		}
		runtime.Gosched()
	}
	again := ss.open(t, ctx, id, 1) // within the cap of one
	again.Body.Close()
}

// floodModel answers with chunks of text, as fast as they are taken, after
// its first chunk has waited for start: so the reply floods a stream that
// is already open. It closes done after its last chunk.
type floodModel struct {
	chunks      int
	start, done chan struct{}
}

func (floodModel) Name() string { return "flood" }

func (m floodModel) Stream(ctx context.Context, _ gymbro.ModelRequest, emit func(string) error) (gymbro.ModelResult, error) {
	chunk := strings.Repeat("Squat to depth, brace, drive up. ", 30) // ~1 KB
	for i := range m.chunks {
		if i == 1 {
			select {
			case <-m.start:
			case <-ctx.Done():
				return gymbro.ModelResult{}, ctx.Err()
			}
		}
		if err := emit(chunk); err != nil {
			return gymbro.ModelResult{}, err
		}
	}
	close(m.done)
	return gymbro.ModelResult{FinishReason: "stop"}, nil
}

// TestParkedStreamSlowReader: a reply far larger than the socket buffers,
// to a client that reads nothing until the reply has ended, reaches it
// whole once it reads: what a full socket did not take waits, nothing is
// dropped or repeated.
func TestParkedStreamSlowReader(t *testing.T) {
	m := floodModel{chunks: 1000, start: make(chan struct{}), done: make(chan struct{})}
	ss := newStreamServerWith(t, streamSetup{model: m, heartbeat: 20 * time.Millisecond, sndbuf: 32 << 10})
	tr := ss.client.Transport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			err = errors.Join(err, tc.SetReadBuffer(128<<10))
		}
		return c, err
	}
	defer tr.CloseIdleConnections()
	ss.client = &http.Client{Transport: tr}
	id := ss.post(t, "flood me")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	res := ss.open(t, ctx, id, 0)
	defer res.Body.Close()
	r := sse.NewReader(res.Body)
	first, _ := readEvents(t, r, 1) // the stream is open (and parked)
	close(m.start)
	// ~1 MB against ~300 KB of socket buffers (the kernel doubles what is
	// asked): wait, not reading, until the model has said it all.
	select {
	case <-m.done:
	case <-ctx.Done():
		t.Fatal("the model did not finish")
	}
	rest, _ := readEvents(t, r, 0)
	checkWhole(t, append(first, rest...))
}
