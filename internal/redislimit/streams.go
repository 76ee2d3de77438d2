package redislimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/outage"
)

// DefaultStreamLease is how long a stream slot lasts unless renewed: the
// slots of an instance that died free themselves within it.
const DefaultStreamLease = time.Minute

// acquireStream takes a slot in a user's sorted set of stream leases
// (member: the stream, score: when its lease ends, in µs on the Redis
// server's clock), after dropping lapsed leases. KEYS[1] the user's key;
// ARGV[1] the cap, ARGV[2] the lease in µs, ARGV[3] the stream's member.
var acquireStream = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) / 1000))
return 1
`)

// renewStream extends a held lease (XX: never re-creates a released one).
var renewStream = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
if redis.call('ZADD', KEYS[1], 'XX', 'CH', now + tonumber(ARGV[1]), ARGV[2]) == 1 then
  redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[1]) / 1000))
end
return 1
`)

// StreamCap counts each user's open SSE streams across every instance that
// shares its Redis and prefix. Each stream holds a lease that its instance
// renews while the stream is open, so a crashed instance's streams stop
// counting within one lease. It implements httpapi.StreamCap.
type StreamCap struct {
	client   redis.UniversalClient
	prefix   string
	limit    int
	lease    time.Duration
	tooMany  func(limit int) *gymbro.Error
	id       string
	seq      atomic.Uint64
	mu       sync.Mutex
	held     map[string]string // member → key
	stop     chan struct{}
	wg       sync.WaitGroup
	stopOnce sync.Once
}

// NewStreamCap returns a cap of limit streams per user, keyed under prefix,
// with leases of lease (DefaultStreamLease when zero); tooMany builds the
// refusal. Close stops its renewals.
func NewStreamCap(client redis.UniversalClient, prefix string, limit int, lease time.Duration, tooMany func(int) *gymbro.Error) *StreamCap {
	if lease <= 0 {
		lease = DefaultStreamLease
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	c := &StreamCap{client: client, prefix: prefix, limit: limit, lease: lease, tooMany: tooMany,
		id: hex.EncodeToString(b), held: map[string]string{}, stop: make(chan struct{})}
	c.wg.Add(1)
	go c.renewLoop()
	return c
}

// Acquire implements httpapi.StreamCap. A Redis failure is unavailable
// (503 rate_limiter_unavailable): the stream itself needs the same Redis.
func (c *StreamCap) Acquire(ctx context.Context, uid string) (func(), error) {
	key := c.prefix + uid
	member := c.id + "-" + strconv.FormatUint(c.seq.Add(1), 10)
	ok, err := acquireStream.Run(ctx, c.client, []string{key}, c.limit, c.lease.Microseconds(), member).Int()
	if err != nil {
		return nil, &gymbro.Error{Kind: gymbro.KindUnavailable, Code: CodeLimiterUnavailable,
			Message: "The stream limiter is unavailable; try again shortly.", RetryAfter: outage.RetryAfter,
			Err: fmt.Errorf("redislimit: acquire stream: %w", err)}
	}
	if ok != 1 {
		return nil, c.tooMany(c.limit)
	}
	c.mu.Lock()
	c.held[member] = key
	c.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { c.release(member, key) }) }, nil
}

func (c *StreamCap) release(member, key string) {
	c.mu.Lock()
	delete(c.held, member)
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = c.client.ZRem(ctx, key, member).Err() // a lost release lapses with its lease
}

// renewLoop renews every held lease three times per lease.
func (c *StreamCap) renewLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.lease / 3)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.renew()
		}
	}
}

func (c *StreamCap) renew() {
	c.mu.Lock()
	held := make(map[string]string, len(c.held))
	for m, k := range c.held {
		held[m] = k
	}
	c.mu.Unlock()
	if len(held) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.lease/3)
	defer cancel()
	pipe := c.client.Pipeline()
	for m, k := range held {
		renewStream.Eval(ctx, pipe, []string{k}, c.lease.Microseconds(), m) // Eval: a pipeline cannot fall back from EVALSHA
	}
	_, _ = pipe.Exec(ctx) // a failed renewal is retried on the next tick
}

// Close stops renewing; leases still held lapse on their own.
func (c *StreamCap) Close() {
	c.stopOnce.Do(func() { close(c.stop) })
	c.wg.Wait()
}
