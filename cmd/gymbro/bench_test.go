package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/gymbro/gymbro-api/internal/auth/authtest"
	"github.com/gymbro/gymbro-api/internal/chat"
	"github.com/gymbro/gymbro-api/internal/demo"
	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/httpapi"
	"github.com/gymbro/gymbro-api/internal/inmem"
	"github.com/gymbro/gymbro-api/internal/postgres"
	"github.com/gymbro/gymbro-api/internal/sqlite"
	"github.com/gymbro/gymbro-api/internal/testenv"
)

// benchUsers is how many users post in BenchmarkPostMessage, taking turns
// post by post: enough that per-user work (the running cap's bookkeeping)
// does not serialize them, and that each user has a few replies running,
// as under a real cap, rather than hundreds (16 users, one per client, made
// the running count that every post reads grow with b.N).
const benchUsers = 1024

// BenchmarkPostMessage measures the accept path of POST /api/v1/messages
// over loopback HTTP with keep-alive: verify the ES256 token, store the
// exchange, append `queued`, start the generation, answer 202. It wires the
// parts as Main does (the store, the in-process log, chat.Service, the
// httpapi Server and its middleware), except that the token issuer is a
// fake Supabase JWKS and the demo coach pauses an hour after its first
// chunk, so generations stay parked instead of competing for the store; the
// running cap is raised, and every generation is interrupted and persisted
// at the end, outside the timer. Because nothing finishes, each user's
// running count grows through the run (b.N/benchUsers at the end).
//
// The -capped variants are the service as a client meets it: the running
// cap in force (3 per user, the default), an Idempotency-Key on every post
// (a post refused by the cap is sent again with its key until accepted),
// and a demo coach without pauses, so every reply is generated, finished
// and stored (with its outbox record) during the run.
//
//	go test -run '^$' -bench BenchmarkPostMessage -benchtime 4000x ./cmd/gymbro
func BenchmarkPostMessage(b *testing.B) {
	for _, capped := range []bool{false, true} {
		suffix := map[bool]string{false: "", true: "-capped"}[capped]
		b.Run("sqlite"+suffix, func(b *testing.B) {
			db, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "gymbro.db"))
			if err != nil {
				b.Fatal(err)
			}
			benchPost(b, db, capped)
		})
		b.Run("postgres"+suffix, func(b *testing.B) { benchPost(b, benchPostgres(b), capped) })
	}
}

// benchPostgres opens a store in a schema of its own, dropped at the end.
func benchPostgres(b *testing.B) gymbro.Store {
	url := testenv.PostgresURL(b)
	schema := testenv.PostgresSchema(b, url, "gymbro_bench_") // dropped when b ends, after benchPost closed the store
	db, err := postgres.Open(context.Background(), url, postgres.WithSchema(schema), postgres.WithMaxConns(16))
	if err != nil {
		b.Fatal(err)
	}
	return db
}

// benchPost posts b.N messages from parallel clients; it closes store.
func benchPost(b *testing.B, store gymbro.Store, capped bool) {
	ctx := context.Background()
	iss := authtest.NewIssuer(b)
	v := iss.Verifier(b)
	log := inmem.NewEventLog(inmem.Options{})
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	opts := chat.Options{Store: store, Log: log, Model: demo.New(demo.Options{ChunkDelay: time.Hour}), MaxRunning: 1 << 20, Logger: logger}
	if capped {
		opts.Model, opts.MaxRunning = demo.New(demo.Options{ChunkDelay: -1}), 3
	}
	svc := chat.New(opts)
	s := httpapi.New(v, svc, httpapi.Options{Logger: logger})
	srv := httptest.NewServer(s)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
	tokens := make([]string, benchUsers)
	for i := range tokens {
		tokens[i] = iss.TokenFor(uuid.NewString(), "bench@example.com", time.Hour)
	}
	body := []byte(`{"text":"How should I squat with good form?"}`)
	post := func(token string) bool {
		key := uuid.NewString()
		for {
			req, _ := http.NewRequest("POST", srv.URL+"/api/v1/messages", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Idempotency-Key", key)
			res, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return false
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			switch {
			case res.StatusCode == http.StatusAccepted:
				return true
			case res.StatusCode == http.StatusTooManyRequests && capped:
				runtime.Gosched() // the cap: a reply of this user is still being written; send again
			default:
				b.Errorf("POST: HTTP %d", res.StatusCode)
				return false
			}
		}
	}
	for _, t := range tokens { // warm the token cache and the connections
		post(t)
	}

	b.ReportAllocs()
	b.SetParallelism(benchParallelism()) // clients per core (default 4: 8 clients on 2 cores)
	b.ResetTimer()
	var turn atomic.Int64 // the users take turns, post by post
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !post(tokens[turn.Add(1)%int64(len(tokens))]) {
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "posts/s")

	// Interrupt every parked generation (each persists its end) and close.
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := svc.Shutdown(sctx); err != nil {
		b.Errorf("shutdown: %v", err)
	}
	s.CloseStreams()
	srv.Close()
	client.CloseIdleConnections()
	_ = log.Close()
	if err := store.Close(); err != nil {
		b.Errorf("close store: %v", err)
	}
}

// benchParallelism is the clients per core of BenchmarkPostMessage:
// GYMBRO_BENCH_CLIENTS_PER_CORE, default 4 (8 clients on 2 cores, as the
// figures in docs/benchmarks.md were taken unless they say otherwise).
func benchParallelism() int {
	if n, err := strconv.Atoi(os.Getenv("GYMBRO_BENCH_CLIENTS_PER_CORE")); err == nil && n > 0 {
		return n
	}
	return 4
}
