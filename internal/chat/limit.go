package chat

import (
	"context"
	"sync"
	"time"
)

// MemoryLimiter is a per-key sliding-window limiter for one instance: at
// most N events per window. Redis provides the fleet-wide one.
type MemoryLimiter struct {
	n      int
	window time.Duration
	now    func() time.Time

	mu   sync.Mutex
	hits map[string][]time.Time
}

// NewMemoryLimiter allows n events per window per key; now defaults to
// time.Now.
func NewMemoryLimiter(n int, window time.Duration, now func() time.Time) *MemoryLimiter {
	if now == nil {
		now = time.Now
	}
	return &MemoryLimiter{n: n, window: window, now: now, hits: map[string][]time.Time{}}
}

// Allow implements Limiter.
func (l *MemoryLimiter) Allow(_ context.Context, key string) (bool, time.Duration, error) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.hits) > 100_000 { // bound memory: forget keys whose windows ended
		for k, h := range l.hits {
			if len(h) == 0 || now.Sub(h[len(h)-1]) >= l.window {
				delete(l.hits, k)
			}
		}
	}
	h := l.hits[key]
	i := 0
	for i < len(h) && now.Sub(h[i]) >= l.window {
		i++
	}
	h = h[i:]
	if len(h) >= l.n {
		l.hits[key] = h
		return false, h[0].Add(l.window).Sub(now), nil
	}
	l.hits[key] = append(h, now)
	return true, 0, nil
}
