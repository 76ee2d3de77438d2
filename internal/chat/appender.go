package chat

import (
	"context"
	"log/slog"
	"strings"
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
//
// Redis replicates asynchronously, so a failover can also lose the last
// events the old master acknowledged. With a log that appends at an
// expected seq (seqAppender) every append says which seq it must get; when
// the log holds fewer events, the appender writes the lost ones again from
// its copy (sentCopy) before the new one, so a subscriber never sees a gap
// and a replay holds every event once. A retried append whose first try
// did land is not written twice either.
type appender struct {
	log      gymbro.EventLog
	at       seqAppender // log, when it appends at a seq; nil otherwise
	syncer   syncer      // log, when it can sync; nil otherwise
	grace    time.Duration
	maxBytes int
	now      func() time.Time
	obs      Observer // may be nil
	logger   *slog.Logger

	seq       int64 // of the last event appended
	sent      sentCopy
	held      []gymbro.Event
	heldBytes int
	down      time.Time // when the outage began; zero when the log is up
	failures  int
	nextTry   time.Time
}

// seqAppender is an event log that appends an event only at the seq its
// writer expects, and reports the seq of its last event: less than the
// expected seq minus one when it lost events (nothing is then written),
// the expected seq or more once the event is in the log.
type seqAppender interface {
	AppendAt(ctx context.Context, ev gymbro.Event, seq int64) (last int64, err error)
}

// syncer is an event log that reports its last seq for a message once its
// replicas hold the log too (redislog.EventLog.Sync), so that a failover
// after it cannot lose what the writer saw there.
type syncer interface {
	Sync(ctx context.Context, messageID string) (last int64, err error)
}

// newAppender returns the appender of m's generation, whose queued event
// (seq 1) Post appended.
func (s *Service) newAppender(m *gymbro.Message) *appender {
	a := &appender{log: s.log, grace: s.opts.EventLogGrace, maxBytes: s.opts.MaxHeldBytes, now: s.opts.Now,
		obs: s.opts.Observer, logger: s.logger, seq: 1}
	if at, ok := s.log.(seqAppender); ok {
		a.at = at
		a.syncer, _ = s.log.(syncer)
		a.sent = sentCopy{id: m.ID, max: s.opts.MaxHeldBytes}
		a.sent.add(queuedEvent(m))
	}
	return a
}

// queuedEvent is the event that opens every exchange's log.
func queuedEvent(m *gymbro.Message) gymbro.Event {
	return gymbro.Event{MessageID: m.ID, Type: gymbro.EventQueued, ConversationID: m.ConversationID, Status: gymbro.StatusQueued}
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
// until the grace ends or ctx does. Then, with a log that syncs, it makes
// sure the log holds every event appended, writing again what a failover
// lost meanwhile, and that the log's replicas hold it too: the terminal
// event follows, and if a failover loses that one, subscribers rebuild it
// from the store at the seq after these.
func (a *appender) Flush(ctx context.Context) error {
	for {
		for len(a.held) > 0 {
			if err := backoff.Sleep(ctx, a.nextTry.Sub(a.now())); err != nil {
				return err
			}
			if err := a.drain(ctx); err != nil {
				return err
			}
		}
		// Not canceled by shutdown: a reply that completed stays completed.
		err := a.sync(context.WithoutCancel(ctx))
		if err == nil || !isOutage(err) {
			return err
		}
		a.failed()
		if err := a.check(); err != nil {
			return err
		}
		if err := backoff.Sleep(ctx, a.nextTry.Sub(a.now())); err != nil {
			return err
		}
	}
}

// sync waits until the log and its replicas hold every event appended,
// writing again what the log lost.
func (a *appender) sync(ctx context.Context) error {
	if a.syncer == nil {
		return nil
	}
	for range 2 {
		last, err := a.syncer.Sync(ctx, a.sent.id)
		if err != nil {
			return err
		}
		if last >= a.seq {
			a.down, a.failures = time.Time{}, 0
			return nil
		}
		if err := a.rewrite(ctx, last); err != nil {
			return err
		}
	}
	return errLostAgain
}

// write appends ev as the next event; at an expected seq when the log can,
// first writing again what the log lost.
func (a *appender) write(ctx context.Context, ev gymbro.Event) error {
	if a.at == nil {
		out, err := a.log.Append(ctx, ev)
		if err == nil {
			a.seq = out.Seq
		}
		return err
	}
	next := a.seq + 1
	last, err := a.at.AppendAt(ctx, ev, next)
	if err == nil && last < next {
		if err = a.rewrite(ctx, last); err == nil {
			if last, err = a.at.AppendAt(ctx, ev, next); err == nil && last < next {
				err = errLostAgain
			}
		}
	}
	if err != nil {
		return err
	}
	a.seq = next
	a.sent.add(ev)
	return nil
}

// rewrite appends again, from the copy, the events after last that the log
// lost. Losing them again (another failover) is an outage, retried with
// back-off; a copy dropped for its size cannot rewrite, and the generation
// ends with what the store holds.
func (a *appender) rewrite(ctx context.Context, last int64) error {
	a.logger.Warn("the event log lost events (a failover?); writing them again",
		"message_id", a.sent.id, "from_seq", last+1, "to_seq", a.seq)
	for seq := last + 1; seq <= a.seq; seq++ {
		ev, ok := a.sent.event(seq)
		if !ok {
			return errCopyDropped
		}
		got, err := a.at.AppendAt(ctx, ev, seq)
		if err != nil {
			return err
		}
		if got < seq {
			return errLostAgain
		}
	}
	return nil
}

var (
	errLostAgain   = gymbro.Errorf(gymbro.KindUnavailable, gymbro.CodeUnavailable, "The event log lost events again while they were written anew.")
	errCopyDropped = gymbro.Errorf(gymbro.KindInternal, gymbro.CodeUnavailable, "The event log lost part of this reply; send the message again.")
)

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

// sentCopy is a generation's copy of the events it has in the log, from
// the queued event (seq 1) on, for writing again those a failover lost.
// Plain deltas, nearly every event, are kept as where they end in the
// reply's text, kept once: the copy costs about the reply plus 4 bytes an
// event, and other events are kept whole. Past max bytes it is dropped.
type sentCopy struct {
	id         string // the message
	text       strings.Builder
	ends       []int32                // by seq-1: where the event's delta ends in text
	whole      map[int64]gymbro.Event // the events that are not plain deltas, by seq
	wholeBytes int
	max        int
	dropped    bool
}

func (c *sentCopy) add(ev gymbro.Event) {
	if c.dropped {
		return
	}
	seq := int64(len(c.ends)) + 1
	if ev == (gymbro.Event{MessageID: ev.MessageID, Type: gymbro.EventContentDelta, Delta: ev.Delta}) {
		c.text.WriteString(ev.Delta)
	} else {
		if c.whole == nil {
			c.whole = make(map[int64]gymbro.Event, 4)
		}
		c.whole[seq] = ev
		c.wholeBytes += eventSize(ev)
	}
	c.ends = append(c.ends, int32(c.text.Len()))
	if c.text.Len()+4*len(c.ends)+c.wholeBytes > c.max {
		*c = sentCopy{id: c.id, dropped: true}
	}
}

// event returns the event appended as seq, if the copy holds it.
func (c *sentCopy) event(seq int64) (gymbro.Event, bool) {
	if c.dropped || seq < 1 || seq > int64(len(c.ends)) {
		return gymbro.Event{}, false
	}
	if ev, ok := c.whole[seq]; ok {
		return ev, true
	}
	start := int32(0)
	if seq > 1 {
		start = c.ends[seq-2]
	}
	return gymbro.Event{MessageID: c.id, Type: gymbro.EventContentDelta, Delta: c.text.String()[start:c.ends[seq-1]]}, true
}
