package redislimit_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/ratelimit"
	"github.com/gymbro/gymbro-api/internal/redislimit"
	"github.com/gymbro/gymbro-api/internal/testenv"
)

var _ ratelimit.Limiter = (*redislimit.Limiter)(nil)

func newClient(t testing.TB) *redis.Client {
	t.Helper()
	return testenv.RedisClient(t, "")
}

// uniquePrefix returns a key prefix no other test uses and deletes its keys
// when t ends.
func uniquePrefix(t testing.TB, c *redis.Client) string {
	t.Helper()
	return testenv.RedisPrefix(t, c, "gymbrotest:rl:")
}

func allow(t *testing.T, l *redislimit.Limiter, key string) (bool, time.Duration) {
	t.Helper()
	ok, wait, err := l.Allow(context.Background(), key)
	if err != nil {
		t.Fatalf("Allow(%q): %v", key, err)
	}
	return ok, wait
}

func TestSlidingWindow(t *testing.T) {
	c := newClient(t)
	slidingWindow(t, c, uniquePrefix(t, c))
}

func slidingWindow(t *testing.T, c redis.UniversalClient, prefix string) {
	clk := testenv.NewClock(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	l := redislimit.New(c, prefix, 3, time.Minute, clk.Now)

	for i := range 3 {
		if ok, _ := allow(t, l, "u1"); !ok {
			t.Fatalf("hit %d refused; want the first 3 allowed", i+1)
		}
		clk.Advance(10 * time.Second)
	}
	// Hits at 0s, 10s, 20s; now 30s: the oldest frees at 60s.
	ok, wait := allow(t, l, "u1")
	if ok {
		t.Fatal("4th hit in the window allowed")
	}
	if wait != 30*time.Second {
		t.Errorf("retryAfter = %v, want 30s (until the oldest hit leaves the window)", wait)
	}
	// Another key has its own budget.
	if ok, _ := allow(t, l, "u2"); !ok {
		t.Error("another key was refused")
	}
	// A refused hit takes nothing: at exactly 60s the oldest has left.
	clk.Advance(30 * time.Second)
	if ok, _ := allow(t, l, "u1"); !ok {
		t.Error("refused once the oldest hit left the window")
	}
	if ok, wait := allow(t, l, "u1"); ok || wait != 10*time.Second {
		t.Errorf("after refilling one unit: ok=%v wait=%v, want refused with 10s", ok, wait)
	}

	ttl, err := c.PTTL(context.Background(), prefix+"u1").Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl <= 0 || ttl > time.Minute {
		t.Errorf("key TTL = %v, want within (0, 1m] so idle users' keys expire", ttl)
	}
}

// TestSharedBudget is the fleet property: two limiters (two instances)
// sharing one Redis spend one budget, even when racing.
func TestSharedBudget(t *testing.T) {
	c1, c2 := newClient(t), newClient(t)
	sharedBudget(t, c1, c2, uniquePrefix(t, c1))
}

// sharedBudget runs two limiters, over c1 and c2, on one budget.
func sharedBudget(t *testing.T, c1, c2 redis.UniversalClient, prefix string) {
	clk := testenv.NewClock(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	a := redislimit.New(c1, prefix, 3, time.Minute, clk.Now)
	b := redislimit.New(c2, prefix, 3, time.Minute, clk.Now)

	seq := []struct {
		l    *redislimit.Limiter
		want bool
	}{{a, true}, {a, true}, {b, true}, {b, false}, {a, false}}
	for i, s := range seq {
		if ok, _ := allow(t, s.l, "user"); ok != s.want {
			t.Fatalf("hit %d: ok=%v, want %v", i+1, ok, s.want)
		}
	}

	// Racing: 40 goroutines over both limiters on a fresh key with n=10.
	const n, racers = 10, 40
	racy := "racy"
	la := redislimit.New(c1, prefix, n, time.Minute, nil) // the Redis clock
	lb := redislimit.New(c2, prefix, n, time.Minute, nil)
	var allowed atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, racers)
	for i := range racers {
		l := la
		if i%2 == 1 {
			l = lb
		}
		wg.Go(func() {
			ok, _, err := l.Allow(context.Background(), racy)
			if err != nil {
				errs <- err
				return
			}
			if ok {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := allowed.Load(); got != n {
		t.Errorf("%d of %d racing hits allowed, want exactly %d", got, racers, n)
	}
}

func TestRedisClockRetryAfter(t *testing.T) {
	c := newClient(t)
	l := redislimit.New(c, uniquePrefix(t, c), 1, time.Hour, nil)
	if ok, _ := allow(t, l, "k"); !ok {
		t.Fatal("first hit refused")
	}
	ok, wait := allow(t, l, "k")
	if ok {
		t.Fatal("second hit allowed with n=1")
	}
	if wait <= 0 || wait > time.Hour {
		t.Errorf("retryAfter = %v, want within (0, 1h]", wait)
	}
}

func TestRedisDown(t *testing.T) {
	// Port 1 on loopback: nothing listens there, so every dial is refused.
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: time.Second})
	defer c.Close()
	l := redislimit.New(c, "", 1, time.Minute, nil)
	ok, _, err := l.Allow(context.Background(), "k")
	if ok || err == nil {
		t.Fatalf("Allow with Redis down = %v, %v; want an error", ok, err)
	}
	var e *gymbro.Error
	if !errors.As(err, &e) || e.Kind != gymbro.KindUnavailable || e.Code != redislimit.CodeLimiterUnavailable {
		t.Errorf("error = %#v, want kind unavailable, code %s", err, redislimit.CodeLimiterUnavailable)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := l.Allow(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("Allow with a canceled context = %v, want context.Canceled", err)
	}
}

func TestNewPanicsOnNonsense(t *testing.T) {
	for _, tc := range []struct {
		n      int
		window time.Duration
	}{{0, time.Minute}, {1, 0}} {
		t.Run(fmt.Sprint(tc.n, tc.window), func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			redislimit.New(nil, "", tc.n, tc.window, nil)
		})
	}
}

// BenchmarkAllow measures one Allow round trip on the real Redis, with
// every hit on a distinct key (the common case: many users, few hits each).
func BenchmarkAllow(b *testing.B) {
	c := newClient(b)
	l := redislimit.New(c, uniquePrefix(b, c), 1000, time.Minute, nil)
	ctx := context.Background()
	var i atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := l.Allow(ctx, fmt.Sprint("u", i.Add(1)%1000)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
