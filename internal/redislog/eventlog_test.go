package redislog_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gymbro/gymbro-api/internal/eventlogtest"
	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/redislog"
	"github.com/gymbro/gymbro-api/internal/testenv"
)

// newClient connects to the test Redis; name, when set, is the connections'
// CLIENT SETNAME so a test can find and kill them.
func newClient(t testing.TB, name string) *redis.Client {
	t.Helper()
	return testenv.RedisClient(t, name)
}

// uniquePrefix returns a key prefix no other test uses, and deletes its
// keys when t ends.
func uniquePrefix(t testing.TB, c *redis.Client) string {
	t.Helper()
	return testenv.RedisPrefix(t, c, "gymbrotest:")
}

var _ eventlogtest.SeqAppender = (*redislog.EventLog)(nil)

func newLogOn(t testing.TB, c redis.UniversalClient, opts redislog.Options) *redislog.EventLog {
	t.Helper()
	l, err := redislog.New(c, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestContract(t *testing.T) {
	eventlogtest.Run(t, func(t *testing.T, ttl time.Duration, now func() time.Time) gymbro.EventLog {
		c := newClient(t, "")
		return newLogOn(t, c, redislog.Options{Prefix: uniquePrefix(t, c), TTL: ttl, Now: now})
	})
}

// TestWireFormat pins what other tools (and a future reader in another
// language) see in Redis: entry ids 0-<seq> and the SSE data as JSON.
func TestWireFormat(t *testing.T) {
	c := newClient(t, "")
	prefix := uniquePrefix(t, c)
	l := newLogOn(t, c, redislog.Options{Prefix: prefix, Now: eventlogtest.NewClock().Now})
	ctx := context.Background()
	for _, typ := range []gymbro.EventType{gymbro.EventQueued, gymbro.EventContentDelta} {
		if _, err := l.Append(ctx, gymbro.Event{MessageID: "m1", Type: typ, Delta: `say "hi"`}); err != nil {
			t.Fatal(err)
		}
	}
	msgs, err := c.XRange(ctx, prefix+"msg:{m1}:events", "(0-1", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || msgs[0].ID != "0-2" {
		t.Fatalf("XRANGE (0-1 + = %+v, want the one entry 0-2", msgs)
	}
	want := `{"message_id":"m1","seq":2,"type":"content_delta","at":"2026-03-01T12:00:00.123456789Z","delta":"say \"hi\""}`
	if got := msgs[0].Values["e"]; got != want {
		t.Errorf("stored event\n got %s\nwant %s", got, want)
	}
}

// TestExpiryIsSetOnTerminal checks the TTLs Redis will enforce, without
// waiting for them: the open stream carries OpenTTL, and a terminal event
// puts TTL on the stream and its closed mark.
func TestExpiryIsSetOnTerminal(t *testing.T) {
	c := newClient(t, "")
	prefix := uniquePrefix(t, c)
	const ttl, openTTL = time.Minute, time.Hour
	l := newLogOn(t, c, redislog.Options{Prefix: prefix, TTL: ttl, OpenTTL: openTTL})
	ctx := context.Background()
	stream, closed := prefix+"msg:{m}:events", prefix+"msg:{m}:closed"
	pttl := func(key string) time.Duration {
		t.Helper()
		d, err := c.PTTL(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if _, err := l.Append(ctx, gymbro.Event{MessageID: "m", Type: gymbro.EventQueued}); err != nil {
		t.Fatal(err)
	}
	if d := pttl(stream); d <= ttl || d > openTTL {
		t.Errorf("open stream PTTL = %v, want in (%v, %v]", d, ttl, openTTL)
	}
	if n := c.Exists(ctx, closed).Val(); n != 0 {
		t.Errorf("closed mark exists before the terminal event")
	}
	if _, err := l.Append(ctx, gymbro.Event{MessageID: "m", Type: gymbro.EventCompleted}); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{stream, closed} {
		if d := pttl(key); d <= 0 || d > ttl {
			t.Errorf("%s PTTL = %v, want in (0, %v]", key, d, ttl)
		}
	}
}

// TestCrossInstance is the scale-out case: the reply is generated on one
// instance while the client's SSE stream is served by another.
func TestCrossInstance(t *testing.T) {
	ca, cb := newClient(t, ""), newClient(t, "")
	crossInstance(t, ca, cb, uniquePrefix(t, ca))
}

// crossInstance appends on a log over ca and follows on one over cb.
func crossInstance(t *testing.T, ca, cb redis.UniversalClient, prefix string) {
	a := newLogOn(t, ca, redislog.Options{Prefix: prefix})
	b := newLogOn(t, cb, redislog.Options{Prefix: prefix})
	ctx := context.Background()

	ch, stop := b.Watch("m")
	defer stop()
	var last int64
	for i, typ := range []gymbro.EventType{gymbro.EventQueued, gymbro.EventContentDelta, gymbro.EventCompleted} {
		if _, err := a.Append(ctx, gymbro.Event{MessageID: "m", Type: typ}); err != nil {
			t.Fatal(err)
		}
		// A wake-up may be spurious (b's subscription confirming), so wait
		// until b reads the event rather than for one signal.
		deadline := time.After(10 * time.Second)
		for last < int64(i+1) {
			evs, err := b.Read(ctx, "m", last, 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) > 0 {
				last = evs[len(evs)-1].Seq
				continue
			}
			select {
			case <-ch:
			case <-deadline:
				t.Fatalf("instance b not woken for seq %d appended on a", i+1)
			}
		}
	}
	// Closed for both instances.
	_, err := b.Append(ctx, gymbro.Event{MessageID: "m", Type: gymbro.EventContentDelta})
	if gymbro.ErrorCode(err) != redislog.CodeLogClosed {
		t.Errorf("Append on b after a's terminal event: %v, want %s", err, redislog.CodeLogClosed)
	}
}

// TestReconnectWakesWatchers kills the subscriber's connection: appends
// made while it was down are never announced, so every watcher must be
// woken once the subscription is back.
func TestReconnectWakesWatchers(t *testing.T) {
	name := testenv.UniqueName("gymbrotest")
	c := newClient(t, name)
	admin := newClient(t, "")
	l := newLogOn(t, c, redislog.Options{Prefix: uniquePrefix(t, c)})
	ctx := context.Background()
	ch, stop := l.Watch("m")
	defer stop()

	// Wait for the subscription to be live: its confirmation wakes watchers.
	waitFor(t, ch, "the first subscription")
	killed := 0
	deadline := time.Now().Add(10 * time.Second)
	for killed == 0 {
		killed = killPubSub(t, admin, name)
		if killed == 0 && time.Now().After(deadline) {
			t.Fatal("no pub/sub connection to kill")
		}
	}
	waitFor(t, ch, "the subscription was killed and restored")
	// And it works again afterwards.
	if _, err := l.Append(ctx, gymbro.Event{MessageID: "m", Type: gymbro.EventQueued}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ch, "an append after reconnecting")
}

func killPubSub(t *testing.T, admin *redis.Client, name string) int {
	t.Helper()
	list, err := admin.ClientList(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	killed := 0
	for _, line := range strings.Split(list, "\n") {
		if !strings.Contains(line, " name="+name+" ") || strings.Contains(line, " sub=0 ") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if id, ok := strings.CutPrefix(f, "id="); ok {
				if err := admin.Do(context.Background(), "CLIENT", "KILL", "ID", id).Err(); err == nil {
					killed++
				}
			}
		}
	}
	return killed
}

func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("no wake-up after %s", what)
	}
}

func TestPingFailsWhenRedisIsGone(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: time.Second})
	defer c.Close()
	l, err := redislog.New(c, redislog.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	err = l.Ping(context.Background())
	if gymbro.ErrorKind(err) != gymbro.KindUnavailable {
		t.Errorf("Ping = %v, want KindUnavailable", err)
	}
	if _, err := l.Append(context.Background(), gymbro.Event{MessageID: "m", Type: gymbro.EventQueued}); gymbro.ErrorKind(err) != gymbro.KindUnavailable {
		t.Errorf("Append = %v, want KindUnavailable", err)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	if _, err := redislog.New(nil, redislog.Options{}); err == nil {
		t.Error("New(nil client) succeeded")
	}
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	if _, err := redislog.New(c, redislog.Options{Prefix: "a{b}:"}); err == nil {
		t.Error("New accepted a prefix with a hash tag")
	}
}

// BenchmarkAppend is the Redis cost of one appended event (one script
// round trip: XREVRANGE, XADD, PEXPIRE, PUBLISH).
func BenchmarkAppend(b *testing.B) {
	c := newClient(b, "")
	l := newLogOn(b, c, redislog.Options{Prefix: uniquePrefix(b, c)})
	ctx := context.Background()
	i := 0
	for b.Loop() {
		id := fmt.Sprintf("m-%d", i/1000)
		if _, err := l.Append(ctx, gymbro.Event{MessageID: id, Type: gymbro.EventContentDelta, Delta: "Squat "}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkAppendRead appends one delta and reads it back, the work per
// streamed chunk with one subscriber.
func BenchmarkAppendRead(b *testing.B) {
	c := newClient(b, "")
	eventlogtest.BenchmarkAppendRead(b, newLogOn(b, c, redislog.Options{Prefix: uniquePrefix(b, c)}))
}

// BenchmarkAppendParallel measures throughput with many generations
// appending at once over the client's pool.
func BenchmarkAppendParallel(b *testing.B) {
	c := newClient(b, "")
	l := newLogOn(b, c, redislog.Options{Prefix: uniquePrefix(b, c)})
	ctx := context.Background()
	b.RunParallel(func(pb *testing.PB) {
		id := testenv.UniqueName("m-")
		for pb.Next() {
			if _, err := l.Append(ctx, gymbro.Event{MessageID: id, Type: gymbro.EventContentDelta, Delta: "Squat "}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestQuietSubscriptionStaysLive uses a BlockFor so short that the
// subscriber times out and pings between appends; notifications must
// still arrive.
func TestQuietSubscriptionStaysLive(t *testing.T) {
	c := newClient(t, "")
	l := newLogOn(t, c, redislog.Options{Prefix: uniquePrefix(t, c), BlockFor: time.Millisecond})
	ctx := context.Background()
	ch, stop := l.Watch("m")
	defer stop()
	var last int64
	for i := range 20 {
		if _, err := l.Append(ctx, gymbro.Event{MessageID: "m", Type: gymbro.EventContentDelta}); err != nil {
			t.Fatal(err)
		}
		for last < int64(i+1) {
			waitFor(t, ch, fmt.Sprintf("append %d", i+1))
			evs, err := l.Read(ctx, "m", last, 100)
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) > 0 {
				last = evs[len(evs)-1].Seq
			}
		}
	}
}

// TestReadRefusesForeignEntries: an entry this package did not write is an
// internal error, never a half-decoded event sent to a client.
func TestReadRefusesForeignEntries(t *testing.T) {
	c := newClient(t, "")
	prefix := uniquePrefix(t, c)
	l := newLogOn(t, c, redislog.Options{Prefix: prefix})
	ctx := context.Background()
	for name, entry := range map[string]struct {
		id     string
		values map[string]any
	}{
		"not json":       {"0-1", map[string]any{"e": "{nope"}},
		"no event field": {"0-1", map[string]any{"x": "1"}},
		"not a seq id":   {"7-0", map[string]any{"e": "{}"}},
	} {
		key := prefix + "msg:{" + name + "}:events"
		if err := c.XAdd(ctx, &redis.XAddArgs{Stream: key, ID: entry.id, Values: entry.values}).Err(); err != nil {
			t.Fatal(err)
		}
		_, err := l.Read(ctx, name, 0, 10)
		if gymbro.ErrorKind(err) != gymbro.KindInternal {
			t.Errorf("%s: Read error = %v, want KindInternal", name, err)
		}
	}
}
