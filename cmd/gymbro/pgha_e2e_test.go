package main

import (
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/testenv"
)

// pgOutage is how long the PostgreSQL tests below keep the store away:
// short in make test, as long as the 15 s in make test-pg-ha
// (GYMBRO_PG_OUTAGE).
func pgOutage(t *testing.T) time.Duration {
	t.Helper()
	d := 3 * time.Second
	if v := os.Getenv("GYMBRO_PG_OUTAGE"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			t.Fatalf("GYMBRO_PG_OUTAGE: %v", err)
		}
	}
	return d
}

// haApp starts one instance on pair's multi-host URL (the deployment
// guide's PostgreSQL HA row) and a Redis log of its own, with bounds
// short enough for a test: a store call gives up after 2 s, a
// generation's final save after grace, a lease lapses after 4 s.
func haApp(t *testing.T, pair *testenv.PGPair, grace time.Duration) *faults {
	prefix := testenv.RedisPrefix(t, testenv.RedisClient(t, ""), "pgha")
	a := startApp(t, map[string]string{
		"GYMBRO_DATABASE_URL":         pair.URL("postgres"),
		"GYMBRO_DATABASE_SCHEMA":      "gymbro",
		"GYMBRO_DATABASE_TIMEOUT":     "2s",
		"GYMBRO_STORE_OUTAGE_GRACE":   grace.String(),
		"GYMBRO_LEASE_TTL":            "4s",
		"GYMBRO_REDIS_URL":            testenv.RedisURL(t),
		"GYMBRO_REDIS_PREFIX":         prefix,
		"GYMBRO_RATE_LIMIT":           "0",
		"GYMBRO_MAX_RUNNING_PER_USER": "1000",
	})
	return &faults{a: a, tok: a.user("ha@example.com")}
}

// TestPostgresPromotion stops the primary of a synchronous pair while
// replies stream and posts arrive, then promotes the standby, as a managed
// PostgreSQL fails over: the multi-host URL follows the promotion; no 500,
// every 503 with Retry-After; every refused post, retried with its
// Idempotency-Key, is accepted; the replies streaming across complete with
// their full text; nothing accepted is lost.
func TestPostgresPromotion(t *testing.T) {
	pair := testenv.StartPGPair(t, true)
	f := haApp(t, pair, 10*time.Second)
	streaming := f.streamThree(t)
	pair.Primary.Stop(t)
	keys := f.postDuring(t, time.Second) // the platform's (or an operator's) reaction
	pair.Standby.Promote(t)
	keys = append(keys, f.postDuring(t, pgOutage(t))...)
	accepted := f.retry(t, keys)
	f.completeWithTheirText(t, streaming)
	for _, s := range streaming {
		accepted = append(accepted, s.id)
	}
	for _, id := range accepted {
		// A post whose commit landed as the primary went down was refused
		// but stored; its retry replays it, and it ends interrupted.
		m := f.awaitTerminal(t, id)
		if m.Status != string(gymbro.StatusCompleted) && m.Status != string(gymbro.StatusInterrupted) {
			t.Errorf("%s ended %s", id, m.Status)
		}
		f.replayEndsTerminal(t, id)
	}
	t.Logf("%d posts across the promotion, %d refused", len(keys), f.refused)
}

// TestPostgresCommitsHang stops the synchronous standby, so every commit
// on the primary waits, while replies stream and posts arrive: no request
// takes over 5 s and none answers 500 (a post is refused with 503 or 504
// and Retry-After); each stream open across it ends in a terminal event
// while the standby is still away (the store behind, past the store's
// grace). Once the standby is back every refused post, retried with its
// Idempotency-Key, is accepted, and every accepted message ends terminal,
// none left working, its replay ending in a terminal event.
func TestPostgresCommitsHang(t *testing.T) {
	pair := testenv.StartPGPair(t, true)
	const grace = 3 * time.Second
	f := haApp(t, pair, grace)
	streaming := f.streamThree(t)
	pair.Standby.Stop(t)
	keys := f.postTimed(t, pgOutage(t))
	for _, s := range streaming {
		select {
		case <-s.done:
		case <-time.After(grace + 2*2*time.Second + 5*time.Second): // the grace, the attempt running at its end, slack
			t.Fatalf("the stream of %s did not end while the store was behind", s.id)
		}
		if s.err != nil {
			t.Errorf("stream of %s: %v", s.id, s.err)
		}
	}
	pair.Standby.Start(t)
	pair.AwaitStreaming(t)
	accepted := f.retry(t, keys)
	for _, s := range streaming {
		accepted = append(accepted, s.id)
	}
	for _, id := range accepted {
		m := f.awaitTerminal(t, id)
		if m.Status == string(gymbro.StatusWorking) || m.Status == string(gymbro.StatusQueued) {
			t.Errorf("%s left %s", id, m.Status)
		}
		f.replayEndsTerminal(t, id)
	}
	t.Logf("%d posts while commits hung, %d refused", len(keys), f.refused)
}

// streamThree posts three messages and follows their streams until each
// has its first chunk.
func (f *faults) streamThree(t *testing.T) []*follower {
	t.Helper()
	streaming := make([]*follower, 3)
	for i := range streaming {
		streaming[i] = f.follow(f.mustPost(t, f.key()))
	}
	for _, s := range streaming {
		s.awaitDelta(t)
	}
	return streaming
}

// completeWithTheirText checks each stream completed and the stored reply
// is what it delivered.
func (f *faults) completeWithTheirText(t *testing.T, streaming []*follower) {
	t.Helper()
	for _, s := range streaming {
		s.wait(t)
		m := f.awaitTerminal(t, s.id)
		if m.Status != string(gymbro.StatusCompleted) || m.Reply != s.content() {
			t.Errorf("reply %s streaming across ended %s with %q; the stream got %q", s.id, m.Status, m.Reply, s.content())
		}
	}
}

// postTimed is postDuring that also fails t for a request held over 5 s,
// and accepts a 504 (store_timeout) only with Retry-After.
func (f *faults) postTimed(t *testing.T, d time.Duration) (keys []string) {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		key := f.key()
		start := time.Now()
		r := f.post(t, key)
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("a post took %v", took)
		}
		switch r.status {
		case http.StatusAccepted:
		case http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			if r.header.Get("Retry-After") == "" {
				t.Errorf("post answered %d without Retry-After", r.status)
			}
			f.refused++
		default:
			t.Errorf("post while commits hang: %d %s", r.status, r.body)
		}
		keys = append(keys, key)
		<-time.After(100 * time.Millisecond) // a client's pace
	}
	return keys
}
