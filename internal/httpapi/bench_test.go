package httpapi_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	"github.com/gymbro/gymbro-api/internal/postgres"
	"github.com/gymbro/gymbro-api/internal/sqlite"
	"github.com/gymbro/gymbro-api/internal/sse"
	"github.com/gymbro/gymbro-api/internal/testenv"
)

// TestMain (goleak) is in openapi_test.go.

// benchServer is the real Server (ES256 verifier against a fake Supabase
// JWKS, SQLite store, in-process event log, demo model) on loopback.
type benchServer struct {
	iss   *authtest.Issuer
	store gymbro.Store
	log   *inmem.EventLog
	chat  *chat.Service
	srv   *httptest.Server
	uid   string
	token string
}

func newBenchServer(b *testing.B, cacheSize int, heartbeat time.Duration) *benchServer {
	b.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "gymbro.db"))
	if err != nil {
		b.Fatal(err)
	}
	return newBenchServerWith(b, store, cacheSize, heartbeat)
}

// newBenchServerWith is newBenchServer on the given store, which it closes.
func newBenchServerWith(b *testing.B, store gymbro.Store, cacheSize int, heartbeat time.Duration) *benchServer {
	b.Helper()
	ctx := context.Background()
	iss := authtest.NewIssuer(b)
	v, err := auth.New(auth.Config{Issuers: []auth.Issuer{auth.SupabaseIssuer(iss.URL(), nil)}, CacheSize: cacheSize})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(v.Close)
	log := inmem.NewEventLog(inmem.Options{})
	svc := chat.New(chat.Options{Store: store, Log: log, Model: demo.New(demo.Options{ChunkDelay: -1}), MaxRunning: 1000})
	s := httpapi.New(v, svc, httpapi.Options{SSEHeartbeat: heartbeat, Logger: discardLogger()})
	bs := &benchServer{iss: iss, store: store, log: log, chat: svc, srv: httptest.NewServer(s), uid: uuid.NewString()}
	bs.token = iss.TokenFor(bs.uid, "bench@example.com", time.Hour)
	b.Cleanup(func() {
		s.CloseStreams()
		bs.srv.Close()
		_ = svc.Shutdown(ctx)
		_ = log.Close()
		_ = store.Close()
	})
	return bs
}

func newClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxIdleConns: conns, DisableCompression: true}}
}

// get does one request and drains the body so the connection is reused.
func get(c *http.Client, url, token string) error {
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := c.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d", url, res.StatusCode)
	}
	return nil
}

// BenchmarkAuthOverhead measures what token verification costs a request:
// GET /api/v1/me with a valid ES256 token against GET /api/v1/healthz, both
// through the whole middleware chain, over loopback HTTP/1.1 with
// keep-alive, from parallel clients. "me" reuses one token (the app sends
// the same access token for up to an hour, so the verifier's cache answers);
// "me-uncached" disables the cache, so every request checks the signature.
// "alternating" runs the two in short alternating phases (500 requests
// each, 8 clients) and reports their throughput ratio (me/healthz): on a
// shared, loaded machine separate runs differ by 2x from noise alone, while
// alternating phases see the same load.
//
// The me/healthz ratio mixes the token check with /me's larger handler and
// body; BenchmarkRequireUser (auth_bench_internal_test.go) compares the same
// handler with and without RequireUser, which is what the authenticated
// throughput target means.
//
//	go test -run '^$' -bench BenchmarkAuthOverhead -benchtime 2s ./internal/httpapi
func BenchmarkAuthOverhead(b *testing.B) {
	run := func(b *testing.B, cache int, path string, auth bool) {
		s := newBenchServer(b, cache, 0)
		c := newClient(64)
		defer c.CloseIdleConnections()
		token := ""
		if auth {
			token = s.token
		}
		if err := get(c, s.srv.URL+path, token); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.SetParallelism(4)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := get(c, s.srv.URL+path, token); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	}
	b.Run("healthz", func(b *testing.B) { run(b, 0, "/api/v1/healthz", false) })
	b.Run("me", func(b *testing.B) { run(b, 0, "/api/v1/me", true) })
	b.Run("me-uncached", func(b *testing.B) { run(b, -1, "/api/v1/me", true) })
	b.Run("alternating", func(b *testing.B) {
		s := newBenchServer(b, 0, 0)
		c := newClient(64)
		defer c.CloseIdleConnections()
		testenv.Alternate(b, "healthz", "me", 500, func(me bool) error {
			if me {
				return get(c, s.srv.URL+"/api/v1/me", s.token)
			}
			return get(c, s.srv.URL+"/api/v1/healthz", "")
		})
	})
}

// openStream is one SSE connection made with a bare TCP socket: the request
// is written by hand and the response read synchronously, so the client
// side costs no goroutine and no buffers beyond the socket itself.
type openStream struct {
	conn net.Conn
	r    *bufio.Reader
}

// dialStream opens message id's stream and reads the response head.
func dialStream(addr, token, id string, bufSize int) (*openStream, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(conn, "GET /api/v1/messages/%s/events HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nAccept: text/event-stream\r\n\r\n", id, addr, token)
	s := &openStream{conn: conn}
	if bufSize > 0 {
		s.r = bufio.NewReaderSize(conn, bufSize)
		res, err := http.ReadResponse(s.r, nil)
		if err != nil {
			conn.Close()
			return nil, err
		}
		if res.StatusCode != http.StatusOK {
			conn.Close()
			return nil, fmt.Errorf("HTTP %d", res.StatusCode)
		}
	}
	return s, nil
}

// newMessages stores n queued exchanges of the bench user straight into the
// store, so no generation runs: their logs move only when the benchmark
// appends to them.
func (s *benchServer) newMessages(b *testing.B, n int) []string {
	b.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = uuid.NewString()
		_, _, err := s.store.CreateMessage(context.Background(), gymbro.NewMessage{
			ID: ids[i], NewConversationID: uuid.NewString(), UserID: s.uid, Provider: string(gymbro.ProviderSupabase),
			Text: "bench", Lease: gymbro.Lease{Owner: "bench", Until: time.Now().Add(time.Hour)}, Now: time.Now(),
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return ids
}

// heapAndStacks is the memory the Go runtime holds for live objects and
// goroutine stacks, after collecting garbage.
func heapAndStacks() uint64 {
	h, st := memInUse()
	return h + st
}

func memInUse() (heap, stack uint64) {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse, ms.StackInuse
}

// idleStreams is how many streams BenchmarkIdleStreamMemory holds open.
const idleStreams = 2000

// BenchmarkIdleStreamMemory opens idleStreams SSE streams on messages whose
// logs never move and reports the server's memory per open stream:
// (HeapInuse+StackInuse after − before) / streams, minus the client's share.
// Clients are bare sockets with no goroutine; their share is measured in a
// control run (the same number of loopback connections to a listener that
// only holds them), of which half (the dialing side) is subtracted. The
// heartbeat is set to a minute so nothing is written while measuring. The
// sub-benchmarks differ only in the store the server looks messages up in.
//
//	go test -run '^$' -bench BenchmarkIdleStreamMemory -benchtime 1x ./internal/httpapi
func BenchmarkIdleStreamMemory(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		benchIdleStreams(b, func() gymbro.Store {
			db, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "gymbro.db"))
			if err != nil {
				b.Fatal(err)
			}
			return db
		})
	})
	b.Run("postgres", func(b *testing.B) {
		url := testenv.PostgresURL(b)
		benchIdleStreams(b, func() gymbro.Store {
			schema := testenv.PostgresSchema(b, url, "gymbro_bench_") // dropped when b ends
			db, err := postgres.Open(context.Background(), url, postgres.WithSchema(schema))
			if err != nil {
				b.Fatal(err)
			}
			return db
		})
	})
}

func benchIdleStreams(b *testing.B, open func() gymbro.Store) {
	for range b.N {
		// Control: bare connections, both ends in this process.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		var accepted []net.Conn
		acceptDone := make(chan struct{})
		go func() {
			defer close(acceptDone)
			for range idleStreams {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				accepted = append(accepted, c)
			}
		}()
		before := heapAndStacks()
		var dialed []net.Conn
		for range idleStreams {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			dialed = append(dialed, c)
		}
		<-acceptDone
		control := float64(int64(heapAndStacks())-int64(before)) / idleStreams
		for _, c := range slices.Concat(dialed, accepted) {
			c.Close()
		}
		ln.Close()

		s := newBenchServerWith(b, open(), 0, time.Minute)
		ids := s.newMessages(b, idleStreams)
		addr := strings.TrimPrefix(s.srv.URL, "http://")
		// Warm up the verifier's cache and the server's pools.
		w, err := dialStream(addr, s.token, ids[0], 4096)
		if err != nil {
			b.Fatal(err)
		}
		w.conn.Close()
		heap0, stack0 := memInUse()
		before = heap0 + stack0
		goroutines := runtime.NumGoroutine()
		streams := make([]*openStream, 0, idleStreams)
		for _, id := range ids {
			st, err := dialStream(addr, s.token, id, 0)
			if err != nil {
				b.Fatal(err)
			}
			streams = append(streams, st)
		}
		// Wait until every handler is parked in its select: the server has
		// sent the opening retry: field on each.
		buf := make([]byte, 512)
		for _, st := range streams {
			_ = st.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			if n, err := st.conn.Read(buf); err != nil || !strings.Contains(string(buf[:n]), "retry:") {
				b.Fatalf("stream head: %q, %v", buf[:n], err)
			}
		}
		// A stream is parked a moment after its head went out, and its
		// connection's goroutine ends then: wait for them (where streams
		// are not parked, as off Linux, they never do; measure anyway).
		for end := time.Now().Add(10 * time.Second); runtime.NumGoroutine() > goroutines+16 && time.Now().Before(end); {
			runtime.Gosched()
		}
		heap1, stack1 := memInUse()
		per := func(after, before uint64) float64 { return float64(int64(after)-int64(before)) / idleStreams }
		total := per(heap1+stack1, before)
		b.ReportMetric(per(heap1, heap0), "B/stream-heap")
		b.ReportMetric(per(stack1, stack0), "B/stream-stack")
		b.ReportMetric(total, "B/stream-total")
		b.ReportMetric(control/2, "B/stream-client")
		b.ReportMetric(total-control/2, "B/stream-server")
		b.ReportMetric(0, "ns/op")
		for _, st := range streams {
			st.conn.Close()
		}
	}
}

// chunkStreams is how many live streams BenchmarkChunkLatency holds.
const chunkStreams = 1000

// BenchmarkChunkLatency measures the latency the server adds between a
// model chunk and the client: chunkStreams real SSE connections over
// loopback follow chunkStreams messages; the benchmark appends a
// content_delta to the in-process log directly (what a generation does per
// chunk) and times until the client has read it. Clients run in this
// process, so their parsing shares the 2 cores with the server.
//
//   - one: one chunk at a time to one stream (round robin) while the others
//     stay open: the latency a chunk sees on a server holding 1,000 streams.
//
//   - burst: one chunk to every stream at once, timed per stream: the worst
//     case, 1,000 replies producing a chunk in the same instant.
//
//     go test -run '^$' -bench BenchmarkChunkLatency -benchtime 3000x ./internal/httpapi
func BenchmarkChunkLatency(b *testing.B) {
	s := newBenchServer(b, 0, time.Minute)
	ids := s.newMessages(b, chunkStreams)
	addr := strings.TrimPrefix(s.srv.URL, "http://")
	appendedAt := make([]atomic.Int64, chunkStreams) // unix ns of the pending chunk
	var mu sync.Mutex
	var lat []time.Duration
	var received sync.WaitGroup
	var readers sync.WaitGroup
	streams := make([]*openStream, chunkStreams)
	for i, id := range ids {
		st, err := dialStream(addr, s.token, id, 4096)
		if err != nil {
			b.Fatal(err)
		}
		streams[i] = st
		readers.Add(1)
		go func() {
			defer readers.Done()
			r := sse.NewReader(st.r)
			for {
				ev, err := r.Next()
				if err != nil {
					return
				}
				if !ev.HasID || ev.Type != string(gymbro.EventContentDelta) {
					continue
				}
				d := time.Duration(time.Now().UnixNano() - appendedAt[i].Load())
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
				received.Done()
			}
		}()
	}
	defer func() {
		for _, st := range streams {
			st.conn.Close()
		}
		readers.Wait()
	}()
	ctx := context.Background()
	seq := make([]int64, chunkStreams)
	appendTo := func(i int) {
		appendedAt[i].Store(time.Now().UnixNano())
		seq[i]++
		if _, err := s.log.Append(ctx, gymbro.Event{MessageID: ids[i], Type: gymbro.EventContentDelta, At: time.Now(), Delta: "Squat " + strconv.FormatInt(seq[i], 10)}); err != nil {
			b.Fatal(err)
		}
	}
	// Every stream must be live (its handler watching) before timing: one
	// chunk each, waited for.
	received.Add(chunkStreams)
	for i := range chunkStreams {
		appendTo(i)
	}
	received.Wait()
	report := func(b *testing.B) {
		mu.Lock()
		defer mu.Unlock()
		slices.Sort(lat)
		if len(lat) == 0 {
			return
		}
		p := func(q float64) float64 { return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))]) / 1e3 }
		b.ReportMetric(p(0.50), "p50-µs")
		b.ReportMetric(p(0.99), "p99-µs")
		b.ReportMetric(float64(lat[len(lat)-1])/1e3, "max-µs")
		lat = lat[:0]
	}
	b.Run("one", func(b *testing.B) {
		mu.Lock()
		lat = lat[:0]
		mu.Unlock()
		i := 0
		for b.Loop() {
			received.Add(1)
			appendTo(i)
			received.Wait()
			i = (i + 1) % chunkStreams
		}
		report(b)
	})
	b.Run("burst", func(b *testing.B) {
		mu.Lock()
		lat = lat[:0]
		mu.Unlock()
		for b.Loop() {
			received.Add(chunkStreams)
			for i := range chunkStreams {
				appendTo(i)
			}
			received.Wait()
		}
		report(b)
	})
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
