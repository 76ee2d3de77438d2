package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/gymbro/gymbro-api/internal/config"
	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/testenv"
)

// TestTransactionPooler runs a fleet through PgBouncer in transaction
// mode, as Supabase's transaction pooler (port 6543) is used: two
// instances started at once on a fresh database both become ready (their
// migrations and the schema's creation take turns), and posts on each
// stream to completed with no prepared-statement error. An instance left
// on the session setting behind the same pooler says what to set and
// fails readiness instead of half-working.
func TestTransactionPooler(t *testing.T) {
	db := testenv.PostgresDatabase(t, testenv.PostgresURL(t), "gymbro_pooler_")
	bouncer := testenv.StartPgBouncer(t, db, 4)
	prefix := testenv.RedisPrefix(t, testenv.RedisClient(t, ""), "pooler")
	env := map[string]string{
		"GYMBRO_DATABASE_URL":         bouncer.URL(db),
		"GYMBRO_DATABASE_POOLER":      "transaction",
		"GYMBRO_DATABASE_SCHEMA":      "gymbro",
		"GYMBRO_REDIS_URL":            testenv.RedisURL(t),
		"GYMBRO_REDIS_PREFIX":         prefix,
		"GYMBRO_RATE_LIMIT":           "0",
		"GYMBRO_MAX_RUNNING_PER_USER": "10",
	}
	apps, logs := startTogether(t, env, env)
	var wg sync.WaitGroup
	for i, a := range apps {
		if r := a.do("GET", "/api/v1/readyz", "", nil); r.status != http.StatusOK {
			t.Errorf("instance %d readyz: %d %s", i, r.status, r.body)
		}
		tok := a.user(fmt.Sprintf("pooler%d@example.com", i))
		for j := range 4 {
			wg.Go(func() {
				r := a.do("POST", "/api/v1/messages", tok, map[string]string{"text": fmt.Sprintf("squat plan %d", j)})
				if r.status != http.StatusAccepted {
					t.Errorf("instance %d post: %d %s", i, r.status, r.body)
					return
				}
				var p posted
				r.json(t, &p)
				s := a.events(tok, p.MessageID, "", 0)
				checkOrder(t, s.data, 1)
				if end := s.data[len(s.data)-1]; end.Type != gymbro.EventCompleted {
					t.Errorf("instance %d: reply ended %+v", i, end)
				}
			})
		}
	}
	wg.Wait()
	for i, l := range logs {
		if s := l.String(); strings.Contains(s, "prepared statement") || strings.Contains(s, "level=ERROR") {
			t.Errorf("instance %d logged errors:\n%s", i, s)
		}
	}

	t.Run("session setting", func(t *testing.T) {
		wrong := map[string]string{"GYMBRO_DATABASE_URL": bouncer.URL(db), "GYMBRO_REDIS_URL": testenv.RedisURL(t),
			"GYMBRO_REDIS_PREFIX": prefix, "GYMBRO_RATE_LIMIT": "0", "GYMBRO_MAX_RUNNING_PER_USER": "100"}
		misconfigured(t, wrong)
	})
}

// misconfigured starts an instance on the session setting behind a
// transaction pooler, with its tables in the database's public schema.
// Either it refuses to start, or posts meet the mismatch as 503s (never
// a 500) until readiness reports the store down; either way the setting
// to change is named.
func misconfigured(t *testing.T, env map[string]string) {
	apps, logs := startTogether(t, env)
	if apps == nil {
		return // startTogether checked the start-up error names the setting
	}
	a := apps[0]
	tok := a.user("wrong@example.com")
	waitFor(t, "readiness to report the store down", func() bool {
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				r := a.do("POST", "/api/v1/messages", tok, map[string]string{"text": "deadlift"})
				switch {
				case r.status == http.StatusAccepted:
				case r.status == http.StatusServiceUnavailable && r.header.Get("Retry-After") != "":
				default:
					t.Errorf("post behind the wrong setting: %d %s", r.status, r.body)
				}
			})
		}
		wg.Wait()
		return a.do("GET", "/api/v1/readyz", "", nil).status == http.StatusServiceUnavailable
	})
	if !strings.Contains(logs[0].String(), "set GYMBRO_DATABASE_POOLER=transaction") {
		t.Errorf("the log does not say what to set:\n%s", logs[0])
	}
}

// startTogether starts one instance per env at the same moment, as a
// fleet rolls out, each logging into its own buffer, and fails t unless
// all start. An instance that refuses to start is accepted only when its
// error says to set GYMBRO_DATABASE_POOLER=transaction (then nil is
// returned).
func startTogether(t *testing.T, envs ...map[string]string) ([]*app, []*testenv.LogBuffer) {
	t.Helper()
	mains := make([]*Main, len(envs))
	logs := make([]*testenv.LogBuffer, len(envs))
	errs := make([]error, len(envs))
	var wg sync.WaitGroup
	for i, env := range envs {
		full := map[string]string{"GYMBRO_HTTP_ADDR": "127.0.0.1:0", "GYMBRO_DATA_DIR": t.TempDir(),
			"GYMBRO_SSE_HEARTBEAT": "150ms", "GYMBRO_LOG_LEVEL": "warn"}
		for k, v := range env {
			full[k] = v
		}
		cfg, err := config.Load(func(k string) string { return full[k] })
		if err != nil {
			t.Fatalf("config: %v", err)
		}
		logs[i] = &testenv.LogBuffer{}
		mains[i] = NewMain(cfg, logs[i])
		wg.Go(func() { errs[i] = mains[i].Run(context.Background()) })
	}
	wg.Wait()
	apps := make([]*app, len(envs))
	for i, m := range mains {
		if errs[i] != nil {
			m.Close()
			continue
		}
		a := &app{t: t, main: m, url: m.URL, http: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}}
		t.Cleanup(func() {
			if err := a.main.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		})
		apps[i] = a
	}
	for i, err := range errs {
		switch {
		case err == nil:
		case len(envs) == 1 && strings.Contains(err.Error(), "GYMBRO_DATABASE_POOLER=transaction"):
			t.Logf("refused to start, naming the setting: %v", err)
			return nil, logs
		default:
			t.Fatalf("instance %d did not start: %v\n%s", i, err, logs[i])
		}
	}
	return apps, logs
}
