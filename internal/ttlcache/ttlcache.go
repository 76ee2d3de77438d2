// Package ttlcache keeps the answers of a slow look-up for a short while:
// a bounded map whose entries live for a TTL, and one look-up in flight
// per key, shared by every caller that asks meanwhile. It is what an
// identity provider puts in front of its provider's API, so that a burst
// of requests for one user costs one call.
package ttlcache

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Options tunes a Cache.
type Options struct {
	TTL        time.Duration    // how long an answer is served; default 60s
	MaxEntries int              // bound of the cache; default 10,000
	Now        func() time.Time // clock; default time.Now
}

// Cache maps keys to values of type V. It is safe for concurrent use.
type Cache[V any] struct {
	opts  Options
	group singleflight.Group

	mu      sync.Mutex
	entries map[string]entry[V]
}

type entry[V any] struct {
	value   V
	expires time.Time
}

// New returns an empty cache with opts' defaults filled in.
func New[V any](opts Options) *Cache[V] {
	if opts.TTL <= 0 {
		opts.TTL = 60 * time.Second
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = 10_000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Cache[V]{opts: opts, entries: make(map[string]entry[V])}
}

// Get returns key's value while it is fresh, or loads it. The load is
// shared by concurrent callers and detached from ctx's cancellation (so
// bound it with a timeout of its own); a caller whose ctx ends stops
// waiting with ctx's error. Errors are not cached. The value is shared:
// copy what a caller may change.
func (c *Cache[V]) Get(ctx context.Context, key string, load func(context.Context) (V, error)) (V, error) {
	if v, ok := c.fresh(key); ok {
		return v, nil
	}
	ch := c.group.DoChan(key, func() (any, error) {
		// A load that ended between the look-up above and this one has
		// just stored its value: use it rather than load again.
		if v, ok := c.fresh(key); ok {
			return v, nil
		}
		v, err := load(context.WithoutCancel(ctx))
		if err == nil {
			c.store(key, v, c.opts.Now())
		}
		return v, err
	})
	select {
	case r := <-ch:
		v, _ := r.Val.(V)
		return v, r.Err
	case <-ctx.Done():
		var zero V
		return zero, ctx.Err()
	}
}

// fresh returns key's value while it has not expired.
func (c *Cache[V]) fresh(key string) (V, bool) {
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if ok && c.opts.Now().Before(e.expires) {
		return e.value, true
	}
	var zero V
	return zero, false
}

// Forget drops key, e.g. after changing what it names.
func (c *Cache[V]) Forget(key string) {
	c.mu.Lock()
	delete(c.entries, key)
	c.mu.Unlock()
}

// store saves v under key, making room first when the cache is full:
// expired entries go, then arbitrary ones (map order is random), which
// bounds memory at the price of a look-up later.
func (c *Cache[V]) store(key string, v V, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[key]; !ok && len(c.entries) >= c.opts.MaxEntries {
		for k, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, k)
			}
		}
		for k := range c.entries {
			if len(c.entries) < c.opts.MaxEntries {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[key] = entry[V]{value: v, expires: now.Add(c.opts.TTL)}
}
