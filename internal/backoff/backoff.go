// Package backoff is the one retry schedule of the service: exponential
// steps from Base, capped at Max, spread with jitter so that clients which
// failed together do not retry together, and a wait that ends with its
// context. Every retry loop (the sync worker, the model client, a
// generation's event appends and its final save) takes its delays here.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Jitter is how a step is spread.
type Jitter int

const (
	// Equal waits half the step plus a random part of the other half: never
	// near zero, so an outage cannot become a hot loop.
	Equal Jitter = iota
	// Full waits a random part of the whole step (uniform in [0, step)):
	// the widest spread, for many items that failed at one instant.
	Full
	// None waits the step exactly.
	None
)

// Policy is a retry schedule. The zero Policy waits 100 ms, doubling to
// 30 s, with equal jitter.
type Policy struct {
	Base, Max time.Duration
	Jitter    Jitter
	// Rand returns a number in [0, 1); nil uses math/rand/v2. Tests fix it.
	Rand func() float64
}

// Step is the n-th step before jitter: Base·2^(n-1), capped at Max. n
// below 1 counts as 1.
func (p Policy) Step(n int) time.Duration {
	base, ceiling := p.Base, p.Max
	if base <= 0 {
		base = 100 * time.Millisecond
	}
	if ceiling <= 0 {
		ceiling = 30 * time.Second
	}
	n = max(n, 1)
	if n > 40 || base<<(n-1) > ceiling || base<<(n-1) <= 0 {
		return ceiling
	}
	return base << (n - 1)
}

// Delay is how long to wait before the retry that follows the n-th failure
// in a row.
func (p Policy) Delay(n int) time.Duration {
	d := p.Step(n)
	r := p.Rand
	if r == nil {
		r = rand.Float64
	}
	switch p.Jitter {
	case Full:
		return time.Duration(r() * float64(d))
	case None:
		return d
	default:
		return d/2 + time.Duration(r()*float64(d/2))
	}
}

// Sleep waits d or until ctx ends, whichever is first, and then returns
// ctx's error (nil when d passed).
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
