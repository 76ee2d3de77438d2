// Package ratelimit is the one rate limiter of the service: a sliding-window
// log per key, for one instance. Chat messages and test users both use it;
// redislimit implements the same Limiter in Redis for a whole fleet.
package ratelimit

import (
	"context"
	"sync"
	"time"
)

// Limiter decides whether key may do one more thing now.
type Limiter interface {
	// Allow takes one unit for key; when none is left it returns false and
	// how long until one is.
	Allow(ctx context.Context, key string) (ok bool, retryAfter time.Duration, err error)
}

// Memory allows N events per key in any window-long span: exact, unlike a
// fixed window that allows twice the rate across a boundary. Each key's log
// holds at most N times; keys idle for a window are forgotten once the map
// grows past sweepAbove.
type Memory struct {
	n      int
	window time.Duration
	now    func() time.Time

	mu   sync.Mutex
	hits map[string][]time.Time
}

// sweepAbove is the map size at which idle keys' logs are dropped, so the
// map stays about as large as the set of recent callers.
const sweepAbove = 1024

// NewMemory allows n events per window per key; now defaults to time.Now.
func NewMemory(n int, window time.Duration, now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{n: n, window: window, now: now, hits: map[string][]time.Time{}}
}

// Allow implements Limiter.
func (l *Memory) Allow(_ context.Context, key string) (bool, time.Duration, error) {
	now := l.now()
	cut := now.Add(-l.window)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.hits) > sweepAbove {
		for k, ts := range l.hits {
			if len(ts) == 0 || !ts[len(ts)-1].After(cut) {
				delete(l.hits, k)
			}
		}
	}
	ts := l.hits[key]
	i := 0
	for i < len(ts) && !ts[i].After(cut) {
		i++
	}
	ts = ts[i:]
	if len(ts) >= l.n {
		l.hits[key] = ts
		return false, ts[0].Add(l.window).Sub(now), nil
	}
	l.hits[key] = append(ts, now)
	return true, 0, nil
}

// keys reports how many keys the limiter remembers (for tests).
func (l *Memory) keys() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.hits)
}
