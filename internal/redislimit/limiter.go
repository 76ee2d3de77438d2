// Package redislimit is the fleet-wide rate limiter: one sliding-window
// budget per key kept in Redis, so every instance behind the load balancer
// spends from the same allowance. It implements ratelimit.Limiter; the
// in-process ratelimit.Memory remains the single-instance default.
package redislimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/outage"
)

// CodeLimiterUnavailable is the error code when Redis cannot be asked.
const CodeLimiterUnavailable = "rate_limiter_unavailable"

// DefaultPrefix starts every key when New is given an empty prefix. It is
// distinct from the event log's "gymbro:" keys so a FLUSH of one never
// guesses at the other's layout.
const DefaultPrefix = "gymbro:ratelimit:"

// script is a sliding-window log: the key is a sorted set of the times
// (in microseconds) of the hits inside the window. Run atomically by Redis,
// so two instances racing for the last unit cannot both take it (the
// check-then-act race a GET/INCR pair from the client would have).
//
// KEYS[1] the key; ARGV[1] now in µs, or "" to use the Redis server's clock
// (one clock for the whole fleet, immune to skew between instances);
// ARGV[2] the window in µs; ARGV[3] the limit; ARGV[4] a unique member.
// Returns {1, 0} when allowed, {0, µs until a unit frees} otherwise.
const script = `
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
  return {1, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = tonumber(oldest[2]) + window - now
if wait < 1 then wait = 1 end
return {0, wait}
`

var allowScript = redis.NewScript(script)

// Limiter allows at most n events per window per key across every process
// that shares its Redis and prefix. It is safe for concurrent use.
type Limiter struct {
	client redis.UniversalClient
	prefix string
	n      int
	window time.Duration
	now    func() time.Time

	id  string        // this limiter's random id, so members never collide across instances
	seq atomic.Uint64 // and a counter, so they never collide within one
}

// New returns a Limiter allowing n events per window per key, keeping its
// keys under prefix (DefaultPrefix when empty). now is the clock; nil uses
// the Redis server's clock, which is what a fleet should use. It panics on
// n < 1 or window < 1ms, which are programming errors.
func New(client redis.UniversalClient, prefix string, n int, window time.Duration, now func() time.Time) *Limiter {
	if n < 1 || window < time.Millisecond {
		panic("redislimit: n must be at least 1 and window at least 1ms")
	}
	if prefix == "" {
		prefix = DefaultPrefix
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return &Limiter{client: client, prefix: prefix, n: n, window: window, now: now, id: hex.EncodeToString(b)}
}

// Allow implements ratelimit.Limiter: it takes one unit for key, or reports how
// long until one frees. A Redis failure is a *gymbro.Error of kind
// unavailable with code rate_limiter_unavailable: failing closed keeps a
// broken Redis from turning into unmetered model spend.
func (l *Limiter) Allow(ctx context.Context, key string) (bool, time.Duration, error) {
	now := ""
	if l.now != nil {
		now = strconv.FormatInt(l.now().UnixMicro(), 10)
	}
	member := l.id + "-" + strconv.FormatUint(l.seq.Add(1), 10)
	res, err := allowScript.Run(ctx, l.client, []string{l.prefix + key},
		now, l.window.Microseconds(), l.n, member).Int64Slice()
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(err, ctxErr) {
			return false, 0, err
		}
		return false, 0, &gymbro.Error{Kind: gymbro.KindUnavailable, Code: CodeLimiterUnavailable,
			Message: "The rate limiter is unavailable; try again shortly.", RetryAfter: outage.RetryAfter,
			Err: fmt.Errorf("redislimit: allow: %w", err)}
	}
	if len(res) != 2 {
		return false, 0, fmt.Errorf("redislimit: unexpected script reply %v", res)
	}
	if res[0] == 1 {
		return true, 0, nil
	}
	return false, time.Duration(res[1]) * time.Microsecond, nil
}
