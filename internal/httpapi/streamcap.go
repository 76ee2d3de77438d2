package httpapi

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// CodeTooManyStreams refuses a stream beyond a user's cap (429).
const CodeTooManyStreams = "too_many_streams"

// StreamCap bounds how many SSE streams one user holds open at once, so a
// single account cannot take every file descriptor of the fleet.
// MemoryStreamCap is the single-instance implementation;
// redislimit.StreamCap counts across the fleet.
type StreamCap interface {
	// Acquire takes one of uid's stream slots and returns the function that
	// gives it back, or a *gymbro.Error with code too_many_streams.
	Acquire(ctx context.Context, uid string) (release func(), err error)
}

// TooManyStreams is the refusal of a stream over the cap.
func TooManyStreams(limit int) *gymbro.Error {
	return &gymbro.Error{Kind: gymbro.KindRateLimited, Code: CodeTooManyStreams, RetryAfter: 5 * time.Second,
		Message: "Too many event streams are open for this user (at most " + strconv.Itoa(limit) + "); close one first."}
}

// MemoryStreamCap counts streams in this process.
type MemoryStreamCap struct {
	limit int
	mu    sync.Mutex
	open  map[string]int
}

// NewMemoryStreamCap returns a cap of limit streams per user.
func NewMemoryStreamCap(limit int) *MemoryStreamCap {
	return &MemoryStreamCap{limit: limit, open: map[string]int{}}
}

// Acquire implements StreamCap.
func (c *MemoryStreamCap) Acquire(_ context.Context, uid string) (func(), error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.open[uid] >= c.limit {
		return nil, TooManyStreams(c.limit)
	}
	c.open[uid]++
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.open[uid]--; c.open[uid] <= 0 {
				delete(c.open, uid)
			}
		})
	}, nil
}

// acquireStream takes a stream slot for p, when a cap is configured.
func (s *Server) acquireStream(ctx context.Context, p *gymbro.Principal) (func(), error) {
	if s.opts.Streams == nil {
		return func() {}, nil
	}
	return s.opts.Streams.Acquire(ctx, p.UID)
}
