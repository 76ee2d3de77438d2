package main

import (
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/testenv"
)

// TestDependencyCutsLoseNothing runs one instance on PostgreSQL and Redis,
// each reached through a proxy the test cuts (every connection reset, new
// ones refused) for a couple of seconds, twice each, while clients post
// and follow streams: no 500, every 503 and 429 with Retry-After, a refused
// post retried with its Idempotency-Key completes, the replies streaming
// through the cut complete with their full text, and every accepted
// message ends terminal, its replayed stream ending in a terminal event.
func TestDependencyCutsLoseNothing(t *testing.T) {
	pgURL, redisURL := testenv.PostgresURL(t), testenv.RedisURL(t)
	pg, pgProxied := testenv.Proxied(t, pgURL)
	rd, redisProxied := testenv.Proxied(t, redisURL)
	schema := testenv.PostgresSchema(t, pgURL, "gymbro_fault_")
	a := startApp(t, map[string]string{
		"GYMBRO_DATABASE_URL":         pgProxied,
		"GYMBRO_DATABASE_SCHEMA":      schema,
		"GYMBRO_REDIS_URL":            redisProxied,
		"GYMBRO_REDIS_PREFIX":         testenv.UniqueName("fault") + ":",
		"GYMBRO_RATE_LIMIT":           "0",
		"GYMBRO_MAX_RUNNING_PER_USER": "50",
		"GYMBRO_LEASE_TTL":            "6s",
	})
	f := &faults{a: a, tok: a.user("faults@example.com")}
	// make test-faults cuts for 8 s, as a managed database's failover takes.
	d := 2 * time.Second
	if v := os.Getenv("GYMBRO_FAULT_CUT"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			t.Fatalf("GYMBRO_FAULT_CUT: %v", err)
		}
	}
	for round := 1; round <= 2; round++ {
		for _, cut := range []struct {
			name  string
			proxy *testenv.Proxy
		}{{"postgres", pg}, {"redis", rd}} {
			t.Logf("round %d: cutting %s for %v", round, cut.name, d)
			f.cut(t, cut.proxy, d)
		}
	}
}

// faults drives clients through dependency cuts.
type faults struct {
	a       *app
	tok     string
	seq     int
	refused int // posts answered 503 in this cut
}

// cut starts three replies, cuts the dependency for d while posting, then
// checks everything the issue asks for.
func (f *faults) cut(t *testing.T, proxy *testenv.Proxy, d time.Duration) {
	streaming := make([]*follower, 3)
	for i := range streaming {
		id := f.mustPost(t, f.key())
		streaming[i] = f.follow(id)
	}
	for _, s := range streaming {
		s.awaitDelta(t)
	}
	proxy.Cut()
	keys := f.postDuring(t, d)
	proxy.Restore()

	accepted := f.retry(t, keys)
	for _, s := range streaming {
		s.wait(t)
		m := f.awaitTerminal(t, s.id)
		if m.Status != string(gymbro.StatusCompleted) || m.Reply != s.content() {
			t.Errorf("reply %s streaming through the cut ended %s with %q; the stream got %q", s.id, m.Status, m.Reply, s.content())
		}
		accepted = append(accepted, s.id)
	}
	for _, id := range accepted {
		f.awaitTerminal(t, id)
		f.replayEndsTerminal(t, id)
	}
	t.Logf("%d posts during the cut, %d refused", len(keys), f.refused)
	f.refused = 0
}

func (f *faults) key() string {
	f.seq++
	return fmt.Sprintf("fault-%d-%d", time.Now().UnixNano(), f.seq)
}

// do sends one request and checks the outage rules on its answer.
func (f *faults) do(t *testing.T, method, path string, body any, headers ...string) response {
	t.Helper()
	r := f.a.do(method, path, f.tok, body, headers...)
	if r.status >= 500 && r.status != http.StatusServiceUnavailable && r.status != http.StatusGatewayTimeout {
		t.Errorf("%s %s answered %d: %s", method, path, r.status, r.body)
	}
	if (r.status == http.StatusServiceUnavailable || r.status == http.StatusTooManyRequests) && r.header.Get("Retry-After") == "" {
		t.Errorf("%s %s answered %d without Retry-After", method, path, r.status)
	}
	return r
}

func (f *faults) post(t *testing.T, key string) response {
	return f.do(t, "POST", "/api/v1/messages", map[string]string{"text": "plan " + key}, "Idempotency-Key", key)
}

func (f *faults) mustPost(t *testing.T, key string) string {
	t.Helper()
	r := f.post(t, key)
	if r.status != http.StatusAccepted {
		t.Fatalf("post before the cut: %d %s", r.status, r.body)
	}
	var p posted
	r.json(t, &p)
	return p.MessageID
}

// postDuring posts a new message every 100 ms for d and returns their keys:
// each is then posted again, a retry of a refused one or a replay of an
// accepted one.
func (f *faults) postDuring(t *testing.T, d time.Duration) (keys []string) {
	end := time.After(d)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		key := f.key()
		switch r := f.post(t, key); r.status {
		case http.StatusAccepted:
		case http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			f.refused++
		default:
			t.Errorf("post during the cut: %d %s", r.status, r.body)
		}
		keys = append(keys, key)
		select {
		case <-end:
			return keys
		case <-tick.C:
		}
	}
}

// retry posts each key again until it is accepted and returns the ids.
func (f *faults) retry(t *testing.T, keys []string) (ids []string) {
	for _, key := range keys {
		var p posted
		waitFor(t, "a retried post to be accepted", func() bool {
			r := f.post(t, key)
			if r.status != http.StatusAccepted {
				return false
			}
			r.json(t, &p)
			return true
		})
		if p.Status == string(gymbro.StatusFailed) {
			t.Errorf("retry of %s replayed a failed exchange", key)
		}
		ids = append(ids, p.MessageID)
	}
	return ids
}

type messageView struct {
	Status string `json:"status"`
	Reply  string `json:"reply"`
}

func (f *faults) awaitTerminal(t *testing.T, id string) messageView {
	t.Helper()
	var m messageView
	waitFor(t, "message "+id+" to end", func() bool {
		r := f.do(t, "GET", "/api/v1/messages/"+id, nil)
		if r.status != http.StatusOK {
			return false
		}
		r.json(t, &m)
		return gymbro.Status(m.Status).Terminal()
	})
	return m
}

func (f *faults) replayEndsTerminal(t *testing.T, id string) {
	t.Helper()
	s := f.a.events(f.tok, id, "", 0)
	if s.status != http.StatusOK || len(s.data) == 0 || !s.data[len(s.data)-1].Type.Terminal() {
		t.Errorf("replay of %s: status %d, events %v", id, s.status, types(s.data))
	}
}
