// Package sessioncheck is what every issuer's session check shares: a
// bounded cache of answers per session, one question in flight per
// session, and the outage policy. A provider (Supabase Auth's GET /user,
// Firebase's accounts:lookup) only says how to ask and what its answer
// means; this package decides how long an answer holds, what a session
// confirmed a little while ago may do while the provider cannot be reached
// (stale_accepted), and when to give up with 503 auth_unavailable.
package sessioncheck

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// Defaults of Config.
const (
	DefaultTTL   = 30 * time.Second
	DefaultStale = 10 * time.Minute
	// OutageRetry is how long an unanswered check is remembered, and the
	// Retry-After of auth_unavailable: a provider that is down is asked at
	// most this often per session.
	OutageRetry = 5 * time.Second
	// askTimeout bounds one question to the provider, whoever waits for it.
	askTimeout        = 5 * time.Second
	defaultMaxEntries = 100_000
)

// Result names the outcome of one check (asked or cached) for metrics.
type Result string

// Outcomes of a session check that asked the provider or fell back
// without it.
const (
	Confirmed   Result = "confirmed"
	Revoked     Result = "revoked"
	Stale       Result = "stale_accepted"
	Unavailable Result = "unavailable"
)

// Config configures a Cache.
type Config struct {
	// Provider names the provider in log lines and in auth_unavailable's
	// message, e.g. "Supabase Auth".
	Provider string
	// TTL is how long an answer (either way) is reused; default 30s.
	TTL time.Duration
	// Stale is how long after its last confirmation a session is still
	// accepted while the provider cannot be reached; default 10m.
	Stale      time.Duration
	MaxEntries int // bound of the cache; default 100,000
	Now        func() time.Time
	Logger     *slog.Logger
	Observe    func(Result) // optional, for metrics
}

// Ask asks the provider once about a session. It returns a nil refusal
// and a nil error when the session is live, a refusal (code
// session_revoked) when it is over, and an error when the provider gave no
// answer that says either: that is an outage, never a sign-out.
type Ask func(ctx context.Context) (refusal *gymbro.Error, err error)

// entry is what the cache remembers of one session.
type entry struct {
	checkedAt   time.Time
	confirmedAt time.Time     // zero when the provider never confirmed it
	refusal     *gymbro.Error // set when the provider said the session is over
	outage      bool          // the last ask got no usable answer
}

// Cache holds the answers of a provider's session checks, keyed by
// session: a session's first costly request pays one round trip, later
// ones a map look-up. It is safe for concurrent use.
type Cache struct {
	cfg    Config
	flight singleflight.Group

	mu      sync.Mutex
	entries map[string]entry
}

// New returns a cache with cfg's defaults filled in.
func New(cfg Config) *Cache {
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Stale <= 0 {
		cfg.Stale = DefaultStale
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = defaultMaxEntries
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Observe == nil {
		cfg.Observe = func(Result) {}
	}
	return &Cache{cfg: cfg, entries: make(map[string]entry)}
}

// Check answers for the session key: nil when it is live (or was
// confirmed within the stale window while the provider cannot answer),
// the refusal when it is over, and auth_unavailable otherwise. It asks
// only when no fresh answer is cached, and concurrent checks of one
// session share one ask, which the first caller's cancellation does not
// end.
func (c *Cache) Check(ctx context.Context, key string, ask Ask) error {
	if e, ok := c.cached(key, c.cfg.Now()); ok {
		return c.judge(e, c.cfg.Now())
	}
	ch := c.flight.DoChan(key, func() (any, error) {
		// A flight that ended between the look-up above and this one has
		// just stored an answer: use it rather than ask again.
		if e, ok := c.cached(key, c.cfg.Now()); ok {
			return e, nil
		}
		return c.ask(context.WithoutCancel(ctx), key, ask), nil
	})
	select {
	case r := <-ch:
		return c.judge(r.Val.(entry), c.cfg.Now())
	case <-ctx.Done():
		return ctx.Err()
	}
}

// cached returns the entry for key while it is fresh: TTL for an answer,
// OutageRetry for an outage.
func (c *Cache) cached(key string, now time.Time) (entry, bool) {
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if !ok {
		return e, false
	}
	fresh := c.cfg.TTL
	if e.outage {
		fresh = min(fresh, OutageRetry)
	}
	return e, now.Sub(e.checkedAt) < fresh
}

// ask asks the provider once and records the answer.
func (c *Cache) ask(ctx context.Context, key string, ask Ask) entry {
	ctx, cancel := context.WithTimeout(ctx, askTimeout)
	defer cancel()
	now := c.cfg.Now()
	refusal, err := ask(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[key]
	e.checkedAt = now
	switch {
	case err != nil:
		e.outage = true
		stale := !e.confirmedAt.IsZero() && now.Sub(e.confirmedAt) <= c.cfg.Stale
		c.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "auth: "+c.cfg.Provider+" cannot confirm a session",
			slog.Bool("accepted_as_confirmed_recently", stale), slog.String("err", err.Error()))
	case refusal != nil:
		e.refusal, e.outage = refusal, false
	default:
		e.confirmedAt, e.refusal, e.outage = now, nil, false
	}
	c.store(key, e, now)
	return e
}

// judge turns an entry into the answer of Check, and counts it.
func (c *Cache) judge(e entry, now time.Time) error {
	result, err := Confirmed, error(nil)
	switch {
	case e.refusal != nil:
		result, err = Revoked, e.refusal
	case !e.outage:
	case !e.confirmedAt.IsZero() && now.Sub(e.confirmedAt) <= c.cfg.Stale:
		result = Stale
	default:
		result, err = Unavailable, c.unavailable()
	}
	c.cfg.Observe(result)
	return err
}

// store saves e under key, making room first when the cache is full:
// entries no answer can use any more go, then arbitrary ones.
func (c *Cache) store(key string, e entry, now time.Time) {
	if _, ok := c.entries[key]; !ok && len(c.entries) >= c.cfg.MaxEntries {
		keep := max(c.cfg.TTL, c.cfg.Stale)
		for k, old := range c.entries {
			if now.Sub(old.checkedAt) > keep {
				delete(c.entries, k)
			}
		}
		for k := range c.entries {
			if len(c.entries) < c.cfg.MaxEntries*9/10 {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[key] = e
}

// unavailable is the answer when the session cannot be confirmed.
func (c *Cache) unavailable() *gymbro.Error {
	return &gymbro.Error{Kind: gymbro.KindUnavailable, Code: gymbro.CodeAuthUnavailable, RetryAfter: OutageRetry,
		Message: c.cfg.Provider + " cannot confirm the session right now; retry later."}
}
