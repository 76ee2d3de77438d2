package ttlcache_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gymbro/gymbro-api/internal/testenv"
	"github.com/gymbro/gymbro-api/internal/ttlcache"
)

func TestGet(t *testing.T) {
	clock := testenv.NewClock(time.Now())
	c := ttlcache.New[string](ttlcache.Options{TTL: time.Minute, Now: clock.Now})
	var loads atomic.Int64
	release := make(chan struct{})
	load := func(context.Context) (string, error) {
		<-release
		return "v" + strconv.FormatInt(loads.Add(1), 10), nil
	}
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if v, err := c.Get(t.Context(), "k", load); err != nil || v != "v1" {
				t.Errorf("Get = %q, %v", v, err)
			}
		})
	}
	time.AfterFunc(10*time.Millisecond, func() { close(release) }) // let the callers pile up on one load
	wg.Wait()
	if n := loads.Load(); n != 1 {
		t.Errorf("10 concurrent misses loaded %d times, want 1", n)
	}
	clock.Advance(59 * time.Second)
	if v, _ := c.Get(t.Context(), "k", load); v != "v1" {
		t.Errorf("within the TTL: %q", v)
	}
	clock.Advance(time.Second)
	if v, _ := c.Get(t.Context(), "k", load); v != "v2" {
		t.Errorf("after the TTL: %q", v)
	}
	c.Forget("k")
	if v, _ := c.Get(t.Context(), "k", load); v != "v3" {
		t.Errorf("after Forget: %q", v)
	}
}

func TestGetDoesNotCacheErrors(t *testing.T) {
	c := ttlcache.New[int](ttlcache.Options{})
	boom := errors.New("boom")
	if _, err := c.Get(t.Context(), "k", func(context.Context) (int, error) { return 0, boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if v, err := c.Get(t.Context(), "k", func(context.Context) (int, error) { return 7, nil }); v != 7 || err != nil {
		t.Fatalf("after an error: %d, %v", v, err)
	}
}

// TestGetStopsWaitingWithItsCaller: a caller whose context ends gets its
// error at once; the load goes on and serves the next caller.
func TestGetStopsWaitingWithItsCaller(t *testing.T) {
	c := ttlcache.New[int](ttlcache.Options{})
	release := make(chan struct{})
	var loadErr atomic.Value
	load := func(ctx context.Context) (int, error) {
		<-release
		if ctx.Err() != nil {
			loadErr.Store(ctx.Err())
		}
		return 1, nil
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.Get(ctx, "k", load); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled caller: %v", err)
	}
	close(release)
	if v, err := c.Get(t.Context(), "k", load); v != 1 || err != nil {
		t.Fatalf("next caller: %d, %v", v, err)
	}
	if err := loadErr.Load(); err != nil {
		t.Errorf("the load saw its first caller's cancellation: %v", err)
	}
}

func TestCacheIsBounded(t *testing.T) {
	c := ttlcache.New[int](ttlcache.Options{MaxEntries: 4})
	var loads atomic.Int64
	load := func(context.Context) (int, error) { return int(loads.Add(1)), nil }
	for i := range 6 {
		if _, err := c.Get(t.Context(), strconv.Itoa(i), load); err != nil {
			t.Fatal(err)
		}
	}
	before := loads.Load()
	for i := range 6 {
		_, _ = c.Get(t.Context(), strconv.Itoa(i), load)
	}
	if loads.Load() == before {
		t.Error("no entry was evicted from a cache of 4 holding 6")
	}
}
