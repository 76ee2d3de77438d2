package testusers

import (
	"sync"
	"time"
)

// limiter is a sliding-window log per key: a caller may make per calls in
// any window-long span. Exact, unlike a fixed window that allows twice the
// rate across a boundary; the log is at most per entries per caller.
type limiter struct {
	mu     sync.Mutex
	per    int
	window time.Duration
	hits   map[string][]time.Time
}

func newLimiter(per int, window time.Duration) *limiter {
	return &limiter{per: per, window: window, hits: map[string][]time.Time{}}
}

// sweepAbove is the map size at which idle callers' logs are dropped, so
// the map stays as large as the set of recent callers.
const sweepAbove = 1024

// allow records a call by key at now, or reports how long until one is
// allowed.
func (l *limiter) allow(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	cut := now.Add(-l.window)
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
	if len(ts) >= l.per {
		l.hits[key] = ts
		return false, ts[0].Add(l.window).Sub(now)
	}
	l.hits[key] = append(ts, now)
	return true, 0
}
