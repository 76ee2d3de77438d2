// Package inmem is the in-process event log: the single-instance default
// behind gymbro.EventLog. Every message's log is a slice of events guarded
// by one of a fixed set of shard locks, so a thousand concurrent streams do
// not queue on one mutex, and a watcher is nothing but a one-slot channel.
package inmem

import (
	"context"
	"hash/maphash"
	"sync"
	"time"

	"github.com/gymbro/gymbro-api/internal/eventlog"
	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// CodeLogClosed is the code of the KindConflict error Append returns once a
// message's log has ended with a terminal event.
const CodeLogClosed = gymbro.CodeLogClosed

// Defaults for Options fields left zero.
const (
	DefaultTTL     = eventlog.DefaultTTL
	DefaultOpenTTL = eventlog.DefaultOpenTTL
)

// shardCount is a power of two comfortably above the core count of the
// machines we run on; more shards cost a few hundred bytes each.
const shardCount = 64

// Options configures an EventLog. The zero value is usable.
type Options struct {
	// TTL is how long a log stays readable after its terminal event, so a
	// client that reconnects shortly after the end still replays it.
	// Default DefaultTTL.
	TTL time.Duration

	// OpenTTL bounds how long a log without a terminal event is kept after
	// its last append, so a generation that died without ending its log
	// does not hold memory until restart. Default DefaultOpenTTL.
	OpenTTL time.Duration

	// Now is the clock, injected so tests can step past a TTL without
	// sleeping. Default time.Now.
	Now func() time.Time

	// SweepEvery is how often the janitor drops expired logs. Zero means
	// TTL/4 (at least one second); negative disables the janitor, leaving
	// expiry to reads and explicit Sweep calls.
	SweepEvery time.Duration
}

// EventLog is an in-process gymbro.EventLog. Create it with NewEventLog and
// stop its janitor with Close.
type EventLog struct {
	ttl     time.Duration
	openTTL time.Duration
	now     func() time.Time
	seed    maphash.Seed
	shards  [shardCount]shard

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}

	listeners eventlog.Listeners
}

type shard struct {
	mu   sync.Mutex
	logs map[string]*msgLog
	_    [48]byte // keep neighbouring shard locks off one cache line
}

// msgLog is one message's log. Fields are guarded by the owning shard's mu.
type msgLog struct {
	events   []gymbro.Event
	closedAt time.Time // zero while open
	lastAt   time.Time // time of the last append, for OpenTTL
	watchers map[*watcher]struct{}
}

// watcher is deliberately tiny: the product target is at most 20 KiB per
// idle stream, and the SSE handler already holds a goroutine and buffers.
type watcher struct {
	ch chan struct{}
}

var (
	_ gymbro.EventLog       = (*EventLog)(nil)
	_ gymbro.AppendNotifier = (*EventLog)(nil)
)

// NewEventLog returns an empty EventLog and, unless opts.SweepEvery is
// negative, starts the one janitor goroutine that Close stops.
func NewEventLog(opts Options) *EventLog {
	l := &EventLog{
		seed: maphash.MakeSeed(),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	l.ttl, l.openTTL, l.now = eventlog.Retention(opts.TTL, opts.OpenTTL, opts.Now)
	for i := range l.shards {
		l.shards[i].logs = make(map[string]*msgLog)
	}
	every := opts.SweepEvery
	if every == 0 {
		every = max(l.ttl/4, time.Second)
	}
	if every < 0 {
		close(l.done)
		return l
	}
	go l.janitor(every)
	return l
}

func (l *EventLog) janitor(every time.Duration) {
	defer close(l.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			l.Sweep()
		case <-l.stop:
			return
		}
	}
}

func (l *EventLog) shardOf(messageID string) *shard {
	return &l.shards[maphash.String(l.seed, messageID)&(shardCount-1)]
}

// Append implements gymbro.EventLog. It never blocks on I/O, so ctx is not
// consulted: a terminal event appended while a request is being torn down
// must still land.
func (l *EventLog) Append(_ context.Context, ev gymbro.Event) (gymbro.Event, error) {
	if err := ev.Validate(); err != nil {
		return gymbro.Event{}, err
	}
	now := l.now()
	ev.At = now.UTC().Round(0)
	// Events are shared with every reader; copy what the caller could still
	// mutate through a pointer.
	ev = ev.Clone()

	ev, err := l.store(ev, now)
	if err != nil {
		return gymbro.Event{}, err
	}
	// Outside the shard lock: listeners may read the log.
	l.listeners.Notify(ev.MessageID)
	return ev, nil
}

// store assigns ev its seq and keeps it, under its shard's lock.
func (l *EventLog) store(ev gymbro.Event, now time.Time) (gymbro.Event, error) {
	s := l.shardOf(ev.MessageID)
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.logs[ev.MessageID]
	if m == nil {
		m = &msgLog{}
		s.logs[ev.MessageID] = m
	} else if l.expired(m, now) {
		m.reset()
	}
	if !m.closedAt.IsZero() {
		return gymbro.Event{}, gymbro.Errorf(gymbro.KindConflict, CodeLogClosed,
			"The message's event log has already ended.")
	}
	ev.Seq = int64(len(m.events)) + 1
	m.events = append(m.events, ev)
	m.lastAt = now
	if ev.Type.Terminal() {
		m.closedAt = now
	}
	for w := range m.watchers {
		select {
		case w.ch <- struct{}{}:
		default: // a signal is already pending; the reader will see this event too
		}
	}
	return ev, nil
}

// OnAppend implements gymbro.AppendNotifier.
func (l *EventLog) OnAppend(fn func(messageID string)) (stop func()) { return l.listeners.Add(fn) }

// Read implements gymbro.EventLog. The events returned share nothing that
// a later Append changes.
func (l *EventLog) Read(_ context.Context, messageID string, after int64, max int) ([]gymbro.Event, error) {
	if max <= 0 {
		return nil, gymbro.Errorf(gymbro.KindInvalid, gymbro.CodeValidation,
			"max must be positive.")
	}
	after = maxInt64(after, 0)
	s := l.shardOf(messageID)
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.logs[messageID]
	if m == nil || after >= int64(len(m.events)) {
		return nil, nil
	}
	if l.expired(m, l.now()) {
		l.drop(s, messageID, m)
		return nil, nil
	}
	evs := m.events[after:]
	if len(evs) > max {
		evs = evs[:max]
	}
	return append([]gymbro.Event(nil), evs...), nil
}

// Watch implements gymbro.EventLog. The channel is never closed; after
// stop it simply receives nothing more. Calling stop twice is harmless.
func (l *EventLog) Watch(messageID string) (<-chan struct{}, func()) {
	w := &watcher{ch: make(chan struct{}, 1)}
	s := l.shardOf(messageID)
	s.mu.Lock()
	m := s.logs[messageID]
	if m == nil {
		m = &msgLog{}
		s.logs[messageID] = m
	}
	if m.watchers == nil {
		m.watchers = make(map[*watcher]struct{}, 1)
	}
	m.watchers[w] = struct{}{}
	s.mu.Unlock()

	var once sync.Once
	return w.ch, func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			delete(m.watchers, w)
			// The map may have been replaced if the log expired and was
			// dropped while watched; only clean up the entry we joined.
			if s.logs[messageID] == m && len(m.watchers) == 0 && len(m.events) == 0 {
				delete(s.logs, messageID)
			}
		})
	}
}

// Sweep drops every expired log now. The janitor calls it periodically;
// tests call it after moving the injected clock.
func (l *EventLog) Sweep() {
	now := l.now()
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		for id, m := range s.logs {
			if l.expired(m, now) {
				l.drop(s, id, m)
			}
		}
		s.mu.Unlock()
	}
}

// Len reports how many message logs are held, expired or not; for tests
// and metrics.
func (l *EventLog) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.logs)
		s.mu.Unlock()
	}
	return n
}

// Ping implements gymbro.EventLog; an in-process log is always available.
func (l *EventLog) Ping(context.Context) error { return nil }

// Close stops the janitor and waits for it. The log stays usable, without
// periodic sweeping; Close may be called more than once.
func (l *EventLog) Close() error {
	l.stopOnce.Do(func() { close(l.stop) })
	<-l.done
	return nil
}

// expired reports whether m has outlived its TTL: TTL after its terminal
// event, or OpenTTL after its last append while still open.
func (l *EventLog) expired(m *msgLog, now time.Time) bool {
	if len(m.events) == 0 {
		return false
	}
	if !m.closedAt.IsZero() {
		return !now.Before(m.closedAt.Add(l.ttl))
	}
	return !now.Before(m.lastAt.Add(l.openTTL))
}

// drop forgets an expired log. A log that still has watchers keeps its
// entry, emptied, so their stop functions find it; it then reads as a log
// that never existed.
func (l *EventLog) drop(s *shard, id string, m *msgLog) {
	if len(m.watchers) > 0 {
		m.reset()
		return
	}
	delete(s.logs, id)
}

func (m *msgLog) reset() {
	m.events = nil
	m.closedAt = time.Time{}
	m.lastAt = time.Time{}
}

func maxInt64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}
