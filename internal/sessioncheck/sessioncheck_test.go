package sessioncheck_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/sessioncheck"
	"github.com/gymbro/gymbro-api/internal/testenv"
)

// provider is a session authority whose answer a test sets: live, over, or
// unreachable. (The real ones, Supabase Auth and Firebase, are tested in
// their packages through this cache.)
type provider struct {
	asks    atomic.Int64
	mu      sync.Mutex
	refusal *gymbro.Error
	down    bool
}

func (p *provider) set(refusal *gymbro.Error, down bool) {
	p.mu.Lock()
	p.refusal, p.down = refusal, down
	p.mu.Unlock()
}

func (p *provider) ask(context.Context) (*gymbro.Error, error) {
	p.asks.Add(1)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return nil, errors.New("connection refused")
	}
	return p.refusal, nil
}

var over = &gymbro.Error{Kind: gymbro.KindUnauthenticated, Code: gymbro.CodeSessionRevoked, Message: "over"}

func newCache(clock *testenv.Clock, results *sync.Map, max int) *sessioncheck.Cache {
	return sessioncheck.New(sessioncheck.Config{
		Provider: "Test Auth", TTL: 30 * time.Second, Stale: 10 * time.Minute, MaxEntries: max, Now: clock.Now,
		Observe: func(r sessioncheck.Result) {
			n, _ := results.LoadOrStore(r, new(atomic.Int64))
			n.(*atomic.Int64).Add(1)
		},
	})
}

// TestCheck walks one session through the rules: answers reused for the
// TTL, one ask for concurrent checks, stale acceptance within the window
// during an outage, auth_unavailable with Retry-After beyond it, and a
// refusal cached like a confirmation.
func TestCheck(t *testing.T) {
	clock := testenv.NewClock(time.Now())
	var results sync.Map
	c := newCache(clock, &results, 0)
	p := &provider{}
	check := func() error { return c.Check(t.Context(), "s1", p.ask) }

	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if err := check(); err != nil {
				t.Errorf("live session: %v", err)
			}
		})
	}
	wg.Wait()
	if n := p.asks.Load(); n != 1 {
		t.Fatalf("20 concurrent checks asked %d times, want 1", n)
	}

	p.set(nil, true)
	clock.Advance(time.Minute)
	if err := check(); err != nil {
		t.Fatalf("confirmed a minute ago, provider down: %v", err)
	}
	_ = check() // within OutageRetry: not asked again
	if n := p.asks.Load(); n != 2 {
		t.Errorf("asked %d times, want 2 (an outage is remembered for a while)", n)
	}
	clock.Advance(10 * time.Minute)
	err := check()
	var ge *gymbro.Error
	if !errors.As(err, &ge) || ge.Code != gymbro.CodeAuthUnavailable || ge.Kind != gymbro.KindUnavailable ||
		ge.RetryAfter != sessioncheck.OutageRetry || !strings.HasPrefix(ge.Message, "Test Auth ") {
		t.Fatalf("beyond the stale window: %v", err)
	}

	p.set(over, false)
	clock.Advance(sessioncheck.OutageRetry)
	if err := check(); !errors.Is(err, error(over)) {
		t.Fatalf("session over: %v", err)
	}
	p.set(nil, false)
	if err := check(); !errors.Is(err, error(over)) {
		t.Fatalf("a refusal is cached for the TTL: %v", err)
	}
	for r, want := range map[sessioncheck.Result]int64{sessioncheck.Confirmed: 20, sessioncheck.Stale: 2, sessioncheck.Unavailable: 1, sessioncheck.Revoked: 2} {
		n, _ := results.Load(r)
		if got := n.(*atomic.Int64).Load(); got != want {
			t.Errorf("%s counted %d times, want %d", r, got, want)
		}
	}
}

// TestCheckLeavesTheAskToFinish: a caller that gives up gets its context's
// error, while the shared ask goes on for the others.
func TestCheckLeavesTheAskToFinish(t *testing.T) {
	var results sync.Map
	c := newCache(testenv.NewClock(time.Now()), &results, 0)
	release := make(chan struct{})
	started := make(chan struct{})
	slow := func(ctx context.Context) (*gymbro.Error, error) {
		close(started)
		<-release
		return nil, ctx.Err()
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- c.Check(ctx, "s1", slow) }()
	<-started
	other := make(chan error)
	go func() { other <- c.Check(t.Context(), "s1", slow) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("canceled caller: %v", err)
	}
	close(release)
	if err := <-other; err != nil {
		t.Errorf("the shared ask was canceled with the first caller: %v", err)
	}
}

func TestCacheIsBounded(t *testing.T) {
	var results sync.Map
	c := newCache(testenv.NewClock(time.Now()), &results, 4)
	p := &provider{}
	keys := []string{"a", "b", "c", "d", "e", "f"}
	for _, k := range keys {
		if err := c.Check(t.Context(), k, p.ask); err != nil {
			t.Fatal(err)
		}
	}
	asks := p.asks.Load()
	for _, k := range keys {
		if err := c.Check(t.Context(), k, p.ask); err != nil {
			t.Fatal(err)
		}
	}
	if p.asks.Load() == asks {
		t.Error("no session was evicted from a cache of 4 holding 6")
	}
}
