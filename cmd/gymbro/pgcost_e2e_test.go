package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/gymbro/gymbro-api/internal/config"
	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/sse"
	"github.com/gymbro/gymbro-api/internal/supabase"
	"github.com/gymbro/gymbro-api/internal/testenv"
)

// BenchmarkExchangeCost counts what exchanges cost PostgreSQL, on a server
// of the benchmark's own with pg_stat_statements: b.N exchanges, one at a
// time (a post with its Idempotency-Key, every other one continuing the
// previous conversation, its stream read to completed), then the sync
// outbox drained. Per exchange it reports the statements the server ran
// for the service (BEGIN, COMMIT and the foreign-key checks included, and
// the outbox worker's and recovery's polls of those seconds) and, through
// PgBouncer in transaction mode, the round trips (PgBouncer's query count:
// one per pipelined batch) and transactions; the statements by query go
// to the benchmark's log.
//
//	go test -run '^$' -bench BenchmarkExchangeCost -benchtime 40x -v ./cmd/gymbro
func BenchmarkExchangeCost(b *testing.B) {
	for _, pooler := range []string{"session", "transaction"} {
		b.Run(pooler, func(b *testing.B) {
			srv := testenv.StartPGServer(b, "shared_preload_libraries=pg_stat_statements", "pg_stat_statements.track=all")
			srv.Exec(b, "CREATE EXTENSION pg_stat_statements")
			url, bouncerURL := srv.URL("postgres"), ""
			if pooler == "transaction" {
				bouncer := testenv.StartPgBouncer(b, url, 4)
				url, bouncerURL = bouncer.URL(url), bouncer.URL(srv.URL("pgbouncer"))
			}
			c := newCostClient(b, map[string]string{
				"GYMBRO_DATABASE_URL": url, "GYMBRO_DATABASE_POOLER": pooler, "GYMBRO_DATABASE_SCHEMA": "gymbro",
				"GYMBRO_REDIS_URL": testenv.RedisURL(b), "GYMBRO_REDIS_PREFIX": testenv.RedisPrefix(b, testenv.RedisClient(b, ""), "cost"),
				"GYMBRO_RATE_LIMIT": "0",
			})
			for i := range 3 {
				c.exchange(b, fmt.Sprintf("warm-%d", i), "")
			}
			c.drain(b)
			srv.Exec(b, "SELECT pg_stat_statements_reset()")
			before := readCost(b, srv.URL("postgres"), bouncerURL)
			conv := ""
			for i := 0; b.Loop(); i++ {
				next := c.exchange(b, fmt.Sprintf("k-%d", i), conv)
				if conv == "" {
					conv = next
				} else {
					conv = ""
				}
			}
			c.drain(b)
			after := readCost(b, srv.URL("postgres"), bouncerURL)
			n := float64(b.N)
			b.ReportMetric(float64(after.statements)/n, "statements/exchange")
			if bouncerURL != "" {
				b.ReportMetric(float64(after.queries-before.queries)/n, "round-trips/exchange")
				b.ReportMetric(float64(after.xacts-before.xacts)/n, "transactions/exchange")
			}
			for _, q := range after.byQuery {
				b.Log(q)
			}
		})
	}
}

// costClient is one service and one user, driven over HTTP.
type costClient struct {
	m   *Main
	tok string
}

// newCostClient starts an instance configured by env (on free ports, in a
// temporary data directory, logging errors only) and signs a user in.
func newCostClient(b *testing.B, env map[string]string) *costClient {
	env["GYMBRO_HTTP_ADDR"], env["GYMBRO_DATA_DIR"], env["GYMBRO_LOG_LEVEL"] = "127.0.0.1:0", b.TempDir(), "error"
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		b.Fatal(err)
	}
	m := NewMain(cfg, io.Discard)
	if err := m.Run(context.Background()); err != nil {
		m.Close()
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	anon, service := m.Emulator.Keys()
	auth := supabase.NewAuthClient(supabase.AuthConfig{URL: m.URL, AnonKey: anon, ServiceRoleKey: service})
	ctx := context.Background()
	if _, err := auth.CreateUser(ctx, supabase.AdminUserParams{Email: "cost@example.com", Password: "correct horse battery", EmailConfirm: true}); err != nil {
		b.Fatal(err)
	}
	s, err := auth.SignInWithPassword(ctx, "cost@example.com", "correct horse battery")
	if err != nil {
		b.Fatal(err)
	}
	return &costClient{m: m, tok: s.AccessToken}
}

// exchange posts text under key (in conversation conv when set), reads
// its stream to completed and returns the conversation.
func (c *costClient) exchange(b *testing.B, key, conv string) string {
	body, _ := json.Marshal(map[string]string{"text": "squat plan " + key, "conversation_id": conv})
	if conv == "" {
		body, _ = json.Marshal(map[string]string{"text": "squat plan " + key})
	}
	req, _ := http.NewRequest("POST", c.m.URL+"/api/v1/messages", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+c.tok)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	var p posted
	err = json.NewDecoder(res.Body).Decode(&p)
	res.Body.Close()
	if err != nil || res.StatusCode != http.StatusAccepted {
		b.Fatalf("post: %d %v", res.StatusCode, err)
	}
	req, _ = http.NewRequest("GET", c.m.URL+p.EventsURL, nil)
	req.Header.Set("Authorization", "Bearer "+c.tok)
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	r := sse.NewReader(res.Body)
	for {
		ev, err := r.Next()
		if err != nil {
			b.Fatalf("stream of %s: %v", p.MessageID, err)
		}
		if gymbro.EventType(ev.Type).Terminal() {
			if ev.Type != string(gymbro.EventCompleted) {
				b.Fatalf("%s ended %s: %s", p.MessageID, ev.Type, ev.Data)
			}
			return p.ConversationID
		}
	}
}

// drain waits until the sync outbox has delivered everything.
func (c *costClient) drain(b *testing.B) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := c.m.Store.OutboxStats(context.Background())
		if err == nil && st.Pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("the outbox did not drain: %+v, %v", st, err)
		}
		<-time.After(20 * time.Millisecond)
	}
}

// exchangeCost is what the server and PgBouncer counted.
type exchangeCost struct {
	statements     int64
	byQuery        []string
	queries, xacts int64 // PgBouncer's, for the pooled database
}

func readCost(b *testing.B, serverURL, bouncerURL string) exchangeCost {
	ctx := context.Background()
	var c exchangeCost
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT calls, left(regexp_replace(query, '\s+', ' ', 'g'), 100) FROM pg_stat_statements
		WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'postgres') AND query NOT LIKE '%pg_stat_statements%'
		ORDER BY calls DESC`)
	if err != nil {
		b.Fatal(err)
	}
	for rows.Next() {
		var (
			n int64
			q string
		)
		if err := rows.Scan(&n, &q); err != nil {
			b.Fatal(err)
		}
		c.statements += n
		c.byQuery = append(c.byQuery, fmt.Sprintf("%6d %s", n, q))
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	if bouncerURL != "" {
		c.queries, c.xacts = bouncerStats(b, bouncerURL)
	}
	return c
}

// bouncerStats reads PgBouncer's total query and transaction counts for
// database postgres from its admin console (simple protocol only).
func bouncerStats(b *testing.B, adminURL string) (queries, xacts int64) {
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(adminURL)
	if err != nil {
		b.Fatal(err)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SHOW STATS")
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			b.Fatal(err)
		}
		row := map[string]any{}
		for i, f := range rows.FieldDescriptions() {
			row[f.Name] = vals[i]
		}
		if row["database"] == "postgres" {
			return toInt(row["total_query_count"]), toInt(row["total_xact_count"])
		}
	}
	b.Fatal("PgBouncer has no stats for database postgres")
	return 0, 0
}

// toInt reads one of PgBouncer's counters (numeric, or int8 in some
// versions).
func toInt(v any) int64 {
	switch n := v.(type) {
	case int64:
		return n
	case pgtype.Numeric:
		i, _ := n.Int64Value()
		return i.Int64
	}
	return 0
}
