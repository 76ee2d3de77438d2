package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gymbro/gymbro-api/internal/config"
	"github.com/gymbro/gymbro-api/internal/demo"
	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/testenv"
)

// fleetEnv is what every instance of a test fleet shares: one PostgreSQL
// schema, one Redis (in mode at url) under one prefix, and the Supabase
// keys of the Auth emulator that the first instance hosts.
func fleetEnv(t *testing.T, mode, url string) map[string]string {
	t.Helper()
	pgURL := testenv.PostgresURL(t)
	return map[string]string{
		"GYMBRO_DATABASE_URL":         pgURL,
		"GYMBRO_DATABASE_SCHEMA":      testenv.PostgresSchema(t, pgURL, "gymbro_redis_"),
		"GYMBRO_REDIS_MODE":           mode,
		"GYMBRO_REDIS_URL":            url,
		"GYMBRO_REDIS_PREFIX":         testenv.UniqueName("e2e") + ":",
		"GYMBRO_RATE_LIMIT":           "1000", // on, so its script runs, but never in the way
		"GYMBRO_MAX_RUNNING_PER_USER": "100",
		"SUPABASE_ANON_KEY":           "sb_publishable_" + testenv.UniqueName(""),
		"SUPABASE_SERVICE_ROLE_KEY":   "sb_secret_" + testenv.UniqueName(""),
	}
}

func with(env map[string]string, kv ...string) map[string]string {
	out := make(map[string]string, len(env)+len(kv)/2)
	for k, v := range env {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// ready asserts that the instance's readiness says ok.
func (a *app) ready(t *testing.T) {
	t.Helper()
	r := a.do("GET", "/api/v1/readyz", "", nil)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `"status":"ok"`) {
		t.Errorf("readyz on %s: %d %s", a.url, r.status, r.body)
	}
}

// TestRedisCluster runs the service on a 3-master Redis Cluster. Given one
// node without cluster mode it refuses to start, naming the setting. In
// cluster mode, two instances share the cluster: every post on one is
// accepted and completes, and live streams on the other receive every
// event, woken by notifications that cross the cluster, and end completed.
func TestRedisCluster(t *testing.T) {
	cluster := testenv.StartRedisCluster(t)
	env := fleetEnv(t, config.RedisCluster, cluster.URL)

	t.Run("standalone mode refuses a cluster node", func(t *testing.T) {
		e := with(env, "GYMBRO_REDIS_MODE", "", "GYMBRO_REDIS_URL", "redis://"+cluster.Nodes[1].Addr,
			"GYMBRO_HTTP_ADDR", "127.0.0.1:0", "GYMBRO_DATA_DIR", t.TempDir(), "GYMBRO_LOG_LEVEL", "error")
		cfg, err := config.Load(func(k string) string { return e[k] })
		if err != nil {
			t.Fatal(err)
		}
		m := NewMain(cfg, io.Discard)
		err = m.Run(context.Background())
		m.Close()
		if err == nil || !strings.Contains(err.Error(), "GYMBRO_REDIS_MODE=cluster") {
			t.Fatalf("Run = %v, want a refusal naming GYMBRO_REDIS_MODE=cluster", err)
		}
	})

	t.Run("two instances", func(t *testing.T) {
		// Heartbeats far apart: a stream that ends without one was driven
		// by notifications alone (a heartbeat would also read the log).
		env := with(env, "GYMBRO_SSE_HEARTBEAT", "30s")
		b := startApp(t, env) // hosts the Auth emulator: the fleet's issuer
		a := startApp(t, with(env, "SUPABASE_URL", b.url))
		tok := b.userVia(b.url, env["SUPABASE_ANON_KEY"], env["SUPABASE_SERVICE_ROLE_KEY"], "cluster@example.com")
		const posts = 6
		var wg sync.WaitGroup
		for i := range posts {
			p := a.post(tok, "Plan my week, take "+strconv.Itoa(i), "")
			wg.Go(func() {
				s := b.events(tok, p.MessageID, "", 0)
				checkOrder(t, s.data, 1)
				end := s.data[len(s.data)-1]
				if end.Type != gymbro.EventCompleted || end.Content != content(s.data) || end.Content == "" {
					t.Errorf("stream of %s on B ended %s with %q; deltas %q", p.MessageID, end.Type, end.Content, content(s.data))
				}
				if s.heartbeats != 0 {
					t.Errorf("stream of %s on B needed %d heartbeats: notifications did not reach it", p.MessageID, s.heartbeats)
				}
			})
		}
		wg.Wait()
		a.ready(t)
		b.ready(t)
	})
}

// TestRedisSentinelFailover kills the Redis master while replies stream and
// posts arrive, on one instance in sentinel mode: the service follows the
// promotion, nothing answers 500, every refused post retried with its
// Idempotency-Key is accepted, every accepted message completes, and every
// replay is gap-free and ends in a terminal event carrying the stored
// reply. The first failover loses data, as asynchronous replication can:
// the replica is cut off while the replies stream, so the master it
// replaces had events it never got, and the generations write them again.
// GYMBRO_FAILOVER_ROUNDS (make test-redis-failover) adds rounds, plain
// kills and lossy ones in turn, bringing the old master back as a replica
// each time.
func TestRedisSentinelFailover(t *testing.T) {
	rounds := 1
	if v := os.Getenv("GYMBRO_FAILOVER_ROUNDS"); v != "" {
		var err error
		if rounds, err = strconv.Atoi(v); err != nil || rounds < 1 {
			t.Fatalf("GYMBRO_FAILOVER_ROUNDS=%q", v)
		}
	}
	s := testenv.StartRedisSentinel(t, 3)
	logs := &testenv.LogBuffer{}
	a := startAppLogging(t, with(fleetEnv(t, config.RedisSentinel, s.URL),
		"GYMBRO_HTTP_ADDR", "127.0.0.1:0", "GYMBRO_DATA_DIR", t.TempDir(), "GYMBRO_SSE_HEARTBEAT", "150ms",
		"GYMBRO_LOG_LEVEL", "warn", "GYMBRO_LEASE_TTL", "6s"), logs)
	f := &faults{a: a, tok: a.user("sentinel@example.com")}
	for round := 1; round <= rounds; round++ {
		lossy := round%2 == 1
		streaming := make([]*follower, 3)
		for i := range streaming {
			text := "plan "
			if lossy {
				text = demo.MarkerSlow + " plan " // still streaming when the promotion is over
			}
			streaming[i] = f.follow(f.mustPostText(t, text))
		}
		for _, st := range streaming {
			st.awaitDelta(t)
		}
		var old string
		if lossy {
			old = s.KillMasterLosingWrites(t, 2000)
		} else {
			old = s.KillMaster(t)
		}
		keys := f.postDuring(t, 2*time.Second)
		promoted := s.AwaitPromotion(t, old)
		t.Logf("round %d: master %s killed, %s promoted; %d posts meanwhile, %d refused", round, old, promoted, len(keys), f.refused)
		f.refused = 0

		accepted := f.retry(t, keys)
		for _, st := range streaming {
			st.wait(t)
			accepted = append(accepted, st.id)
			if m := f.awaitTerminal(t, st.id); m.Reply != st.content() {
				t.Errorf("reply %s streaming through the failover: stored %q, the stream got %q", st.id, m.Reply, st.content())
			}
		}
		for _, id := range accepted {
			f.replayCompletes(t, id)
		}
		if lossy && !strings.Contains(logs.String(), "the event log lost events") {
			t.Errorf("the failover lost no events (the test meant it to); logs:\n%s", logs.String())
		}
		logs.Reset()
		a.ready(t)
		s.Restart(t, old) // back as a replica of the new master, for the next round
	}
}

// mustPostText posts text with a fresh Idempotency-Key and returns the
// message id.
func (f *faults) mustPostText(t *testing.T, text string) string {
	t.Helper()
	key := f.key()
	r := f.do(t, "POST", "/api/v1/messages", map[string]string{"text": text + key}, "Idempotency-Key", key)
	if r.status != http.StatusAccepted {
		t.Fatalf("post: %d %s", r.status, r.body)
	}
	var p posted
	r.json(t, &p)
	return p.MessageID
}

// replayCompletes asserts that message id completed and that its replay
// is gap-free from seq 1, its deltas spelling the stored reply, and ends
// in the completed event carrying it.
func (f *faults) replayCompletes(t *testing.T, id string) {
	t.Helper()
	m := f.awaitTerminal(t, id)
	st := f.a.events(f.tok, id, "", 0)
	if st.status != http.StatusOK || len(st.data) == 0 {
		t.Errorf("replay of %s: status %d", id, st.status)
		return
	}
	checkOrder(t, st.data, 1)
	end := st.data[len(st.data)-1]
	if m.Status != string(gymbro.StatusCompleted) || end.Type != gymbro.EventCompleted || end.Content != m.Reply || content(st.data) != m.Reply {
		t.Errorf("message %s: stored %s %q; replay ended %s %q, deltas %q", id, m.Status, m.Reply, end.Type, end.Content, content(st.data))
	}
}
