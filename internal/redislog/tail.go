package redislog

import (
	"sync"
	"time"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// Limits of the local tails.
const (
	maxTails      = 1024 // logs with a tail; the oldest goes first
	maxTailEvents = 32   // the first events of a reply: what its subscribers wait for
	maxTailAge    = 30 * time.Second
)

// tails keeps the first events this instance appended to the logs it began
// (the post's queued event is seq 1), so that a subscriber on this instance
// reads them from memory instead of with an XRANGE round trip, woken by
// the append itself instead of by the pub/sub hop (issue 25).
//
// A tail may answer a Read only while it is known to be the whole log: it
// holds seq 1 to n contiguously, as the append script numbered them, and
// no other writer has appended since. Every append publishes once, and the
// subscription delivers one message's notifications in the order Redis ran
// its appends, so a tail created while the subscription was live counts
// them (heard): more notifications than its own events and appends in
// flight means another instance appended, and the tail is dropped for
// good, as when one of its own appends did not get the next seq. A lost
// subscription drops every tail (its notifications may be lost too), as
// does Close. A Read a tail cannot answer goes to Redis, as before.
type tails struct {
	mu    sync.Mutex
	live  bool // the subscription is confirmed and no loss is known since
	m     map[string]*tail
	order []string      // creation order, for eviction
	age   time.Duration // a tail older than this is dropped
	hits  int64         // Reads answered, for tests
}

type tail struct {
	evs      []gymbro.Event // seq 1..len(evs)
	heard    int            // notifications heard for the message
	inflight int            // appends of this instance running
	born     time.Time
}

// init sizes the tails for logs kept ttl after their end and openTTL while
// open: a tail never outlives the log it copies.
func (ts *tails) init(ttl, openTTL time.Duration) {
	ts.m = make(map[string]*tail)
	ts.age = min(maxTailAge, ttl/2, openTTL/2)
}

// subscribed records a confirmed (re)subscription; lost, a subscription
// that may have missed notifications. Both drop every tail.
func (ts *tails) subscribed() { ts.reset(true) }
func (ts *tails) lost()       { ts.reset(false) }

func (ts *tails) reset(live bool) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.live = live
	clear(ts.m)
	ts.order = ts.order[:0]
}

// begin notes an append of this instance of ev about to run; seq is the
// seq it expects (0: the next one). The queued event begins every log: a
// tail is started for it now, empty, so that the notification of that
// first event, which may come back before the script's reply, is counted.
// Any other append to a log without a tail (recovery ending an old log,
// say) starts none: an empty tail would answer a replay from the start
// with nothing while that append is in flight.
func (ts *tails) begin(ev *gymbro.Event, seq int64) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	id := ev.MessageID
	t := ts.m[id]
	if t == nil {
		if ev.Type != gymbro.EventQueued || seq > 1 || !ts.live {
			return
		}
		if len(ts.order) >= maxTails {
			delete(ts.m, ts.order[0])
			ts.order = append(ts.order[:0], ts.order[1:]...)
		}
		t = &tail{born: time.Now()}
		ts.m[id] = t
		ts.order = append(ts.order, id)
	}
	t.inflight++
}

// appended records the outcome of an append begun with begin: seq is the
// seq the script gave ev, written whether this call wrote it. Anything but
// the tail's next seq, written now, ends the tail: a failed call may or may
// not have written, an expected seq already in the log means the log was
// rewritten, and a log without a tail did not begin here. It reports
// whether id had a tail: its readers may have been told to wait for this
// append (see read), and must be woken whatever came of it.
func (ts *tails) appended(id string, ev gymbro.Event, seq int64, written bool) (had bool) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	t := ts.m[id]
	if t == nil {
		return false
	}
	t.inflight--
	if written && seq == int64(len(t.evs))+1 && len(t.evs) < maxTailEvents && t.heard <= len(t.evs)+1+t.inflight {
		ev.Seq = seq
		t.evs = append(t.evs, ev.Clone())
		return true
	}
	delete(ts.m, id)
	return true
}

// heard counts a notification for id from the subscription; it runs before
// the watchers are woken.
func (ts *tails) heard(id string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if t := ts.m[id]; t != nil {
		t.heard++
		if t.heard > len(t.evs)+t.inflight {
			delete(ts.m, id) // another instance appended
		}
	}
}

// read answers Read from id's tail: ok false when the tail cannot (then
// Redis must). Notifications heard beyond the tail's events, as many as
// its appends in flight, are those appends (Redis may send the
// notification before the script's reply is read): a reader at the
// tail's end gets nothing yet and is woken when they land (appended),
// instead of reading them from Redis.
func (ts *tails) read(id string, after int64, max int) (evs []gymbro.Event, ok bool) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	t := ts.m[id]
	if t == nil || !ts.live {
		return nil, false
	}
	if time.Since(t.born) > ts.age {
		delete(ts.m, id) // the log's own expiry is Redis's to apply
		return nil, false
	}
	n := int64(len(t.evs))
	if after < 0 || after > n || t.heard > len(t.evs)+t.inflight {
		return nil, false
	}
	ts.hits++
	end := min(n, after+int64(max))
	evs = make([]gymbro.Event, 0, end-after)
	for _, ev := range t.evs[after:end] {
		evs = append(evs, ev.Clone())
	}
	return evs, true
}
