// Package outbox delivers the chat records that the store enqueues when an
// exchange finishes to a gymbro.ChatSink (Supabase), until each one lands.
//
// Delivery is at least once: a record is acknowledged only after the sink
// said it was written, so a crash between the two sends it again. The sink
// upserts on the record's id, so the effect is exactly once. Leases keep
// workers on several instances from sending the same record at the same
// time.
package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/gymbro/gymbro-api/internal/backoff"
	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// Options configures a Worker. Store, Sink and Owner are required.
type Options struct {
	Store gymbro.Outbox
	Sink  gymbro.ChatSink
	// Owner names this worker in leases: unique per process (e.g. the
	// instance id), so a restarted process does not mistake another's lease
	// for its own.
	Owner string
	// BatchSize is the most records sent in one request; default 100.
	BatchSize int
	// Lease is how long a claimed batch stays ours; default 30s. A worker
	// that dies mid-batch delays those records by at most this much.
	Lease time.Duration
	// Poll is the idle wait between claims that found nothing due; default
	// 1s. Notify cuts it short.
	Poll time.Duration
	// Gather is how long an idle worker that Notify woke waits before it
	// claims, so that records finished close together go in one claim and
	// the claim's write does not land just as the next exchange is being
	// stored; default 0 (claim at once).
	Gather time.Duration
	// MinBackoff and MaxBackoff bound the exponential backoff after a
	// transient failure; defaults 1s and 5m.
	MinBackoff, MaxBackoff time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Rand returns a number in [0, 1) for jitter; default math/rand/v2.
	Rand func() float64
	// After waits like time.After; tests inject it to observe and skip the
	// worker's waits. Default time.After.
	After func(time.Duration) <-chan time.Time
	// Logger receives failures; default slog.Default().
	Logger *slog.Logger
}

// Worker moves records from the outbox to the sink. Run one per process;
// several processes may share a store.
type Worker struct {
	o    Options
	wake chan struct{}
}

// NewWorker returns a worker with defaults filled in.
func NewWorker(o Options) *Worker {
	if o.BatchSize <= 0 {
		o.BatchSize = 100
	}
	if o.Lease <= 0 {
		o.Lease = 30 * time.Second
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = time.Second
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(5*time.Minute, o.MinBackoff)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	if o.After == nil {
		o.After = time.After
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Owner == "" {
		// Leases need a name; a random one is unique to this process.
		o.Owner = fmt.Sprintf("outbox-%016x", rand.Uint64())
	}
	return &Worker{o: o, wake: make(chan struct{}, 1)}
}

// Notify tells the worker a record was enqueued, so it claims at once
// instead of at the end of its idle wait. It never blocks: one pending
// nudge is as good as many.
func (w *Worker) Notify() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Stats reports the outbox's pending and dead counts, for /readyz and the CLI.
func (w *Worker) Stats(ctx context.Context) (gymbro.OutboxStats, error) {
	return w.o.Store.OutboxStats(ctx)
}

// Run delivers records until ctx ends, then returns nil. While the sink or
// the store fails it backs off exponentially (never a hot loop against a
// service that is down); when the outbox is empty it waits for Notify or
// Poll.
func (w *Worker) Run(ctx context.Context) error {
	failures := 0
	for {
		if ctx.Err() != nil {
			return nil
		}
		n, res := w.batch(ctx)
		var wait time.Duration
		var idle bool
		switch {
		case ctx.Err() != nil:
			return nil
		case res.failed:
			failures++
			wait = max(w.loopBackoff(failures), res.retryAfter)
		case n == 0:
			failures, idle, wait = 0, true, w.o.Poll
		default:
			failures = 0
			continue // more may be due right away
		}
		timer := w.o.After(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-timer:
		case <-w.wake:
			if idle && w.o.Gather > 0 {
				select {
				case <-ctx.Done():
					return nil
				case <-w.o.After(w.o.Gather):
				}
			}
			if !idle {
				// A new record does not end an outage: sit out the rest of
				// the backoff (the nudge is spent; the claim after the wait
				// finds the new record anyway).
				select {
				case <-ctx.Done():
					return nil
				case <-timer:
				}
			}
		}
	}
}

// Flush delivers what is due until nothing is, the sink fails transiently,
// or ctx ends: meant for graceful shutdown under a deadline. What it leaves
// stays in the outbox for the next start. It returns nil when the outbox
// had nothing more due, the sink's error when it stopped on a failure, and
// ctx's error when time ran out.
func (w *Worker) Flush(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, res := w.batch(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		if res.failed {
			return res.err
		}
		if n == 0 {
			return nil
		}
	}
}

// result is how a batch went, for the loop's backoff.
type result struct {
	failed     bool // transient sink failure or store failure
	retryAfter time.Duration
	err        error
}

func (r *result) fail(err error, retryAfter time.Duration) {
	r.failed = true
	r.retryAfter = max(r.retryAfter, retryAfter)
	if r.err == nil {
		r.err = err
	}
}

// batch claims and delivers one batch, returning how many it claimed.
func (w *Worker) batch(ctx context.Context) (int, result) {
	var res result
	now := w.o.Now()
	leaseUntil := now.Add(w.o.Lease)
	items, err := w.o.Store.ClaimOutbox(ctx, w.o.Owner, now, leaseUntil, w.o.BatchSize)
	if err != nil {
		if ctx.Err() == nil {
			w.o.Logger.Warn("outbox: claim failed", "owner", w.o.Owner, "code", gymbro.ErrorCode(err), "err", err)
			res.fail(err, 0)
		}
		return 0, res
	}
	if len(items) == 0 {
		return 0, res
	}
	// Stop sending a quarter-lease before it ends: past that another worker
	// may claim the records, and two senders at once is what leases prevent.
	w.deliver(ctx, items, leaseUntil.Add(-w.o.Lease/4), &res)
	return len(items), res
}

// deliver sends items; on a permanent rejection of several it bisects, so
// one bad record is isolated in O(log n) requests and the good ones still
// land; a single rejected record is buried.
func (w *Worker) deliver(ctx context.Context, items []gymbro.OutboxItem, sendBy time.Time, res *result) {
	if ctx.Err() != nil || !w.o.Now().Before(sendBy) {
		w.release(ctx, items)
		return
	}
	recs := make([]gymbro.ChatRecord, len(items))
	ids := make([]string, len(items))
	for i, it := range items {
		recs[i], ids[i] = it.Record, it.ID
	}
	err := w.o.Sink.Upsert(ctx, recs)
	switch {
	case err == nil:
		// Acknowledge even when ctx has just ended (shutdown): the records
		// are in Supabase, and an unacknowledged batch is sent again by the
		// next start.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		err := w.o.Store.AckOutbox(actx, ids)
		cancel()
		if err != nil {
			// Delivered but not acknowledged: the lease runs out and the
			// records go again, which the upsert on id absorbs.
			w.o.Logger.Warn("outbox: ack failed", "owner", w.o.Owner, "records", len(ids), "err", err)
			res.fail(err, 0)
		}
	case ctx.Err() != nil:
		w.release(ctx, items)
	case transient(err):
		var ra time.Duration
		var ge *gymbro.Error
		if errors.As(err, &ge) {
			ra = ge.RetryAfter
		}
		now := w.o.Now()
		for _, it := range items {
			next := now.Add(max(w.backoff(it.Attempts), ra))
			if err := w.o.Store.RetryOutbox(ctx, it.ID, next, err.Error()); err != nil && ctx.Err() == nil {
				w.o.Logger.Warn("outbox: reschedule failed", "id", it.ID, "err", err)
			}
		}
		w.o.Logger.Warn("outbox: delivery failed, will retry", "owner", w.o.Owner, "records", len(items),
			"code", gymbro.ErrorCode(err), "retry_after", ra, "err", err)
		res.fail(err, ra)
	case len(items) > 1:
		half := len(items) / 2
		w.deliver(ctx, items[:half], sendBy, res)
		w.deliver(ctx, items[half:], sendBy, res)
	default:
		it := items[0]
		if err := w.o.Store.BuryOutbox(ctx, it.ID, err.Error()); err != nil && ctx.Err() == nil {
			w.o.Logger.Warn("outbox: bury failed", "id", it.ID, "err", err)
		}
		w.o.Logger.Error("outbox: record rejected, parked as dead until redriven", "id", it.ID,
			"attempts", it.Attempts, "code", gymbro.ErrorCode(err), "err", err)
	}
}

// release hands items back due now, so the next claim (ours after a
// restart, or another instance's) need not wait out the lease. It runs on a
// context detached from a cancelled ctx: this is the shutdown path.
func (w *Worker) release(ctx context.Context, items []gymbro.OutboxItem) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	now := w.o.Now()
	for _, it := range items {
		if err := w.o.Store.RetryOutbox(rctx, it.ID, now, "released undelivered"); err != nil {
			w.o.Logger.Warn("outbox: release failed; the lease will expire", "id", it.ID, "err", err)
		}
	}
}

// transient reports whether the sink's error may go away by itself, as the
// gymbro.ChatSink contract defines it.
func transient(err error) bool {
	switch gymbro.ErrorKind(err) {
	case gymbro.KindUnavailable, gymbro.KindTimeout, gymbro.KindRateLimited:
		return true
	}
	return false
}

// backoff is the delay before a record's next attempt after its n-th
// failed one: full jitter below MinBackoff·2^(n-1) (capped at MaxBackoff),
// which spreads the retries of many records that failed together, so a
// recovering Supabase is not hit by the whole backlog at one instant.
func (w *Worker) backoff(attempts int) time.Duration {
	return backoff.Policy{Base: w.o.MinBackoff, Max: w.o.MaxBackoff, Jitter: backoff.Full, Rand: w.o.Rand}.Delay(attempts)
}

// loopBackoff is the worker's own pause after n failures in a row: equal
// jitter, so it is never near zero and an outage cannot become a hot loop.
func (w *Worker) loopBackoff(n int) time.Duration {
	return backoff.Policy{Base: w.o.MinBackoff, Max: w.o.MaxBackoff, Jitter: backoff.Equal, Rand: w.o.Rand}.Delay(n)
}
