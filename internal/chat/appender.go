package chat

import (
	"context"
	"time"

	"github.com/gymbro/gymbro-api/internal/backoff"
	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// appendBackoff paces the retries of a generation's held events.
var appendBackoff = backoff.Policy{Base: 100 * time.Millisecond, Max: 2 * time.Second}

// appender writes one generation's events to the log, in order. While the
// log cannot be written (an outage: KindUnavailable or KindTimeout) it holds
// the events in memory and retries with back-off, so a short event-log
// outage (a Redis failover) pauses the stream instead of ending the reply:
// when the log is back every held event is appended, ids gap-free. Past the
// grace, or past the memory bound, the outage error is returned and the
// generation ends as before. It is used by one goroutine.
type appender struct {
	log      gymbro.EventLog
	grace    time.Duration
	maxBytes int
	now      func() time.Time
	obs      Observer // may be nil

	seq       int64 // of the last event appended
	held      []gymbro.Event
	heldBytes int
	down      time.Time // when the outage began; zero when the log is up
	failures  int
	nextTry   time.Time
}

func (s *Service) newAppender(seq int64) *appender {
	return &appender{log: s.log, grace: s.opts.EventLogGrace, maxBytes: s.opts.MaxHeldBytes, now: s.opts.Now,
		obs: s.opts.Observer, seq: seq}
}

// Seq is the seq of the last event appended to the log.
func (a *appender) Seq() int64 { return a.seq }

// Append appends ev after every event held before it, or holds it while
// the log is down. It fails when the outage outlasted the grace or the
// memory bound, or with any error that is not an outage (the log closed
// because someone else ended the exchange).
func (a *appender) Append(ctx context.Context, ev gymbro.Event) error {
	if len(a.held) > 0 && !a.now().Before(a.nextTry) {
		if err := a.drain(ctx); err != nil {
			return err
		}
	}
	if len(a.held) == 0 {
		err := a.write(ctx, ev)
		if err == nil || !isOutage(err) {
			return err
		}
		a.failed()
	}
	return a.hold(ev)
}

// Flush appends every held event, waiting out the outage with back-off
// until the grace ends or ctx does.
func (a *appender) Flush(ctx context.Context) error {
	for len(a.held) > 0 {
		if err := backoff.Sleep(ctx, a.nextTry.Sub(a.now())); err != nil {
			return err
		}
		if err := a.drain(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (a *appender) write(ctx context.Context, ev gymbro.Event) error {
	out, err := a.log.Append(ctx, ev)
	if err == nil {
		a.seq = out.Seq
	}
	return err
}

// drain appends held events in order until they are all written or the
// log fails again; it fails only when the outage has run out of grace.
func (a *appender) drain(ctx context.Context) error {
	if a.obs != nil {
		a.obs.AppendRetried()
	}
	for len(a.held) > 0 {
		err := a.write(ctx, a.held[0])
		if err != nil {
			if !isOutage(err) {
				return err
			}
			a.failed()
			return a.check()
		}
		a.heldBytes -= eventSize(a.held[0])
		a.held[0] = gymbro.Event{}
		a.held = a.held[1:]
		if a.obs != nil {
			a.obs.EventsHeld(-1)
		}
	}
	a.down, a.failures, a.held = time.Time{}, 0, nil
	return nil
}

func (a *appender) failed() {
	now := a.now()
	if a.down.IsZero() {
		a.down = now
	}
	a.failures++
	a.nextTry = now.Add(appendBackoff.Delay(a.failures))
}

func (a *appender) hold(ev gymbro.Event) error {
	if err := a.check(); err != nil {
		return err
	}
	n := eventSize(ev)
	if a.heldBytes+n > a.maxBytes {
		return outageOver("The event log stayed unavailable for longer than this reply could be held.")
	}
	a.held = append(a.held, ev)
	a.heldBytes += n
	if a.obs != nil {
		a.obs.EventsHeld(1)
	}
	return nil
}

// check fails once the outage has lasted longer than the grace.
func (a *appender) check() error {
	if !a.down.IsZero() && a.now().Sub(a.down) > a.grace {
		return outageOver("The event log stayed unavailable for too long.")
	}
	return nil
}

// Drop forgets the held events: the generation gave up on them.
func (a *appender) Drop() {
	if a.obs != nil && len(a.held) > 0 {
		a.obs.EventsHeld(-len(a.held))
	}
	a.held, a.heldBytes = nil, 0
}

func outageOver(msg string) error {
	return gymbro.Errorf(gymbro.KindUnavailable, gymbro.CodeUnavailable, "%s", msg)
}

// isOutage reports whether an append failed because the log is
// unreachable for now, as opposed to refusing the event.
func isOutage(err error) bool {
	switch gymbro.ErrorKind(err) {
	case gymbro.KindUnavailable, gymbro.KindTimeout:
		return true
	}
	return false
}

// eventSize approximates the memory an event holds.
func eventSize(ev gymbro.Event) int {
	return 256 + len(ev.Delta) + len(ev.Content) + len(ev.Message)
}
