package httpapi

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gymbro/gymbro-api/internal/chat"
	"github.com/gymbro/gymbro-api/internal/epoll"
	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// An SSE stream spends almost all its life idle, waiting for the next
// chunk. Served the plain net/http way, each one keeps a goroutine (its
// stack grown by the request path) and the connection's read and write
// buffers: about 40 KB here. The parker holds idle HTTP/1 streams instead
// as a bare socket in one epoll set (package epoll: no goroutine, no
// buffer, not even Go's poller entry) and a small struct, and runs a
// short-lived goroutine only while there is something to write: an append
// (heard through gymbro.AppendNotifier, one callback for all streams) or a
// heartbeat. One goroutine waits on the epoll set: it ends the streams of
// clients that hang up, resumes writes that filled a socket, and schedules
// the heartbeats.

// maxServing bounds the goroutines writing to parked streams at once, so a
// burst of appends or heartbeats to thousands of streams cannot spawn
// thousands of them: the streams wait in a queue instead, a pointer each,
// where a goroutine apiece (even one blocked on a semaphore) held a stack
// that the process kept long after (about 1 KB per stream in RSS at
// 20,000 streams, each heartbeat round).
const maxServing = 256

// maxBeatTick bounds how often the loop looks for heartbeats due: how late
// a parked stream's heartbeat may go out.
const maxBeatTick = 100 * time.Millisecond

type parker struct {
	s     *Server
	log   gymbro.EventLog
	epoch time.Time // parked.due counts from it

	mu      sync.Mutex
	set     *epoll.Set         // made by the first park
	byKey   map[uint64]*parked // every parked stream, by its epoll key
	byMsg   map[string]*parked // each message's streams: a list through parked.next
	nextKey uint64
	closed  bool
	stop    func()         // unregisters the append listener
	queue   []*parked      // streams owed a write, waiting for a worker
	workers int            // goroutines serving the queue
	wg      sync.WaitGroup // the loop and every serving goroutine
}

// parked is one idle stream; end writes its access-log line when it ends.
// Fields after the comment are guarded by the parker's mu.
type parked struct {
	fd      int
	key     uint64 // in the epoll set; never reused
	id      string // the message
	uid     string // its user's, to look the message up in the store
	release func() // gives the user's stream slot back
	end     func(bytes, lastEventID int64)

	// guarded by parker.mu
	prev    *parked // in byMsg's list
	next    *parked
	last    int64         // seq of the last event written (or in unsent)
	sent    int64         // body bytes written, for the access log
	due     time.Duration // next heartbeat, since parker.epoch
	unsent  []byte        // what a full socket did not take yet
	since   time.Duration // when a write last made progress on unsent, since parker.epoch
	stalled bool          // nothing written since the last heartbeat
	ending  bool          // the terminal event is in unsent: end once it is out
	busy    bool          // a goroutine is serving it
	again   bool          // notified while busy: serve once more
	beat    bool          // the serving goroutine owes a heartbeat
	left    bool          // the client hung up: out of the epoll set, to be ended
}

func newParker(s *Server, log gymbro.EventLog) *parker {
	return &parker{s: s, log: log, epoch: time.Now(), byKey: map[uint64]*parked{}, byMsg: map[string]*parked{}}
}

// canPark reports whether r's stream can be parked: HTTP/1 without TLS
// (HTTP/2 streams cannot be hijacked, a TLS connection has no bare
// socket), on Linux, with an event log that calls back on appends.
func (k *parker) canPark(r *http.Request) bool {
	_, ok := k.log.(gymbro.AppendNotifier)
	return ok && epoll.Supported && r.ProtoMajor == 1 && r.TLS == nil
}

func (k *parker) now() time.Duration { return time.Since(k.epoch) }

// park takes over conn, whose response head and replay (sent bytes of
// body) are already written, until the stream's terminal event, the
// client's hang-up or shutdown; then it calls end, once. It reports false,
// conn untouched and end not called, when it cannot: shutdown has begun,
// or the process is out of descriptors.
func (k *parker) park(conn net.Conn, id string, uid string, last, sent int64, release func(), end func(bytes, lastEventID int64)) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed || !k.startLocked() {
		return false
	}
	fd, err := epoll.Dup(conn)
	if err != nil {
		k.s.logger.Warn("park stream", "err", err)
		return false
	}
	k.nextKey++
	// Copies: the request's id is a slice of its whole request line, the
	// principal's uid of its whole decoded token.
	pk := &parked{fd: fd, key: k.nextKey, id: strings.Clone(id), uid: strings.Clone(uid), last: last, sent: sent, release: release, end: end,
		due: k.now() + k.s.opts.SSEHeartbeat}
	if err := k.set.Add(fd, pk.key); err != nil {
		epoll.Close(fd)
		k.s.logger.Warn("park stream", "err", err)
		return false
	}
	conn.Close() // the duplicate in the set keeps the connection
	k.byKey[pk.key] = pk
	if head := k.byMsg[pk.id]; head != nil {
		pk.id, pk.next, head.prev = head.id, head, pk
	}
	k.byMsg[pk.id] = pk
	// An append may have landed between the replay and now: look once.
	k.serveLocked(pk, false)
	return true
}

// startLocked makes the epoll set, listens to appends and starts the loop,
// on the first park.
func (k *parker) startLocked() bool {
	if k.set != nil {
		return true
	}
	set, err := epoll.New()
	if err != nil {
		k.s.logger.Warn("park stream", "err", err)
		return false
	}
	k.set = set
	k.stop = k.log.(gymbro.AppendNotifier).OnAppend(k.notify)
	k.wg.Add(1)
	go k.loop()
	return true
}

// notify is the append listener; it must not block.
func (k *parker) notify(messageID string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return
	}
	if messageID == "" { // any log may have grown
		for _, pk := range k.byKey {
			k.serveLocked(pk, false)
		}
		return
	}
	for pk := k.byMsg[messageID]; pk != nil; pk = pk.next {
		k.serveLocked(pk, false)
	}
}

// loop waits on the epoll set until shutdown: it ends the streams whose
// clients hung up, serves again those whose full socket can take more, and
// every tick sends the heartbeats due and drops clients that stopped
// reading. A heartbeat goes out at most one tick late: 1/16 of the
// interval, and never more than 100 ms (at the 15 s default a second-long
// tick made heartbeats up to a second late). Each tick costs a scan of the
// parked streams, a few microseconds per thousand.
func (k *parker) loop() {
	defer k.wg.Done()
	every := min(max(k.s.opts.SSEHeartbeat/16, 10*time.Millisecond), maxBeatTick)
	next := k.now() + every
	evs := make([]epoll.Event, 256)
	for {
		n, err := k.set.Wait(evs, next-k.now())
		if err != nil {
			// Not expected (EBADF, EINVAL): keep ticking, without
			// spinning on the error.
			k.s.logger.Error("epoll wait", "err", err)
			time.Sleep(max(next-k.now(), 0))
		}
		k.mu.Lock()
		if k.closed {
			k.mu.Unlock()
			return
		}
		for _, ev := range evs[:n] {
			pk := k.byKey[ev.Key]
			switch {
			case pk == nil || pk.left: // ended since Wait returned, or ending
			case ev.Hangup || ev.Readable && !epoll.Discard(pk.fd):
				k.leaveLocked(pk)
			case ev.Writable:
				k.serveLocked(pk, false)
			}
		}
		if now := k.now(); now >= next {
			k.tickLocked(now)
			next = now + every
		}
		k.mu.Unlock()
	}
}

// tickLocked queues the heartbeats due and ends the streams whose client
// has not taken a write for writeTimeout (a phone in a tunnel).
func (k *parker) tickLocked(now time.Duration) {
	beat := k.s.opts.SSEHeartbeat
	for _, pk := range k.byKey {
		switch {
		case pk.busy:
		case pk.unsent != nil:
			if now-pk.since > writeTimeout {
				k.removeLocked(pk)
			}
		case now >= pk.due:
			// Keep the cadence rather than drift by a tick each time.
			if pk.due += beat; pk.due < now {
				pk.due = now + beat
			}
			k.serveLocked(pk, true)
		}
	}
}

// serveLocked queues pk for a worker unless one already serves it, in
// which case that one serves again when it is done. It starts a worker
// when fewer than maxServing run.
func (k *parker) serveLocked(pk *parked, beat bool) {
	if beat {
		pk.beat = true
	}
	if pk.busy {
		pk.again = true
		return
	}
	pk.busy = true
	k.queue = append(k.queue, pk)
	if k.workers < maxServing {
		k.workers++
		k.wg.Add(1)
		go k.work()
	}
}

// work serves queued streams until the queue is empty.
func (k *parker) work() {
	defer k.wg.Done()
	for {
		k.mu.Lock()
		if len(k.queue) == 0 {
			k.queue = nil // drop the backing array a burst grew
			k.workers--
			k.mu.Unlock()
			return
		}
		pk := k.queue[0]
		k.queue[0] = nil
		k.queue = k.queue[1:]
		k.mu.Unlock()
		k.serve(pk)
	}
}

// serve writes what pk is owed, then parks it again or ends it. A socket
// that did not take everything keeps the rest in unsent and gets nothing
// new until it has taken that (the log keeps the events meanwhile).
func (k *parker) serve(pk *parked) {
	sw := &sseWriter{}
	for {
		k.mu.Lock()
		last, beat, stalled, ending, left, closing := pk.last, pk.beat, pk.stalled, pk.ending, pk.left, k.closed
		sw.buf = append(sw.buf[:0], pk.unsent...)
		stuck := pk.unsent != nil
		pk.again, pk.beat, pk.unsent = false, false, nil
		k.mu.Unlock()

		wrote := false
		if !stuck && !ending && !left {
			ending, wrote = k.compose(sw, pk, &last, beat && !closing, stalled)
		}
		var err error
		n := 0
		if !left {
			if sw.delta {
				k.s.chat.Trace().Mark(pk.id, chat.StepFirstDeltaWritten)
				sw.delta = false
			}
			n, err = epoll.Write(pk.fd, sw.buf)
		}

		k.mu.Lock()
		pk.last, pk.ending = last, ending
		pk.sent += int64(n)
		if wrote {
			pk.stalled = false
		} else if beat {
			pk.stalled = true
		}
		if rest := sw.buf[n:]; err == nil && len(rest) > 0 {
			pk.unsent = bytes.Clone(rest)
			if !stuck || n > 0 { // the write timeout counts from the last progress
				pk.since = k.now()
			}
		}
		if err == nil && stuck != (pk.unsent != nil) {
			// Hear when a full socket drains; stop hearing it once it has.
			err = k.set.Writable(pk.fd, pk.key, pk.unsent != nil)
		}
		if err != nil || pk.left || closing || (pk.ending && pk.unsent == nil) {
			// At shutdown what the socket did not take is dropped: the
			// client resumes elsewhere with Last-Event-ID.
			k.removeLocked(pk)
			k.mu.Unlock()
			return
		}
		if k.closed {
			// Shutdown began during this pass, maybe after its read: one
			// more pass delivers what the log holds now (the interrupted
			// generations' last events), then ends the stream.
			k.mu.Unlock()
			continue
		}
		if !pk.again {
			pk.busy = false
			k.mu.Unlock()
			return
		}
		k.mu.Unlock()
	}
}

// compose buffers what the log holds after *last and, when beat, a
// heartbeat; ending reports the terminal event, wrote that an event was
// buffered.
func (k *parker) compose(sw *sseWriter, pk *parked, last *int64, beat, stalled bool) (ending, wrote bool) {
	// Per pass: a stream notified while it is served is served again by
	// the same goroutine, for as long as its reply keeps coming.
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	before := *last
	ending, read := k.s.drainRead(ctx, sw, k.log, pk.id, last)
	wrote = *last != before
	if ending || !beat {
		return ending, wrote
	}
	if stalled && !wrote && read {
		// As in followLive: the store is the source of truth when a
		// terminal append was lost (and only a log read to its end shows
		// that it was).
		p := &gymbro.Principal{UID: pk.uid}
		if m, err := k.s.chat.Message(ctx, p, pk.id); err == nil && m.Status.Terminal() && m.LastSeq > *last {
			sw.event(chat.TerminalEvent(m))
			return true, true
		}
	}
	sw.printf(": heartbeat\n\n")
	return false, wrote
}

// leaveLocked ends pk once its client hung up: at once, or when the
// goroutine serving it is done. Either way it leaves the set now, so a
// hang-up, which epoll reports until the socket is closed, is heard once.
func (k *parker) leaveLocked(pk *parked) {
	if !pk.busy {
		k.removeLocked(pk)
		return
	}
	pk.left = true
	k.unwatchLocked(pk)
}

func (k *parker) unwatchLocked(pk *parked) {
	if err := k.set.Remove(pk.fd); err != nil {
		k.s.logger.Warn("unpark stream", "err", err)
	}
}

func (k *parker) removeLocked(pk *parked) {
	if !pk.left {
		k.unwatchLocked(pk)
	}
	delete(k.byKey, pk.key)
	switch {
	case pk.prev != nil:
		pk.prev.next = pk.next
	case pk.next != nil:
		k.byMsg[pk.id] = pk.next
	default:
		delete(k.byMsg, pk.id)
	}
	if pk.next != nil {
		pk.next.prev = pk.prev
	}
	pk.prev, pk.next = nil, nil
	epoll.Close(pk.fd)
	k.s.streamClosed()
	pk.release()
	pk.end(pk.sent, pk.last)
}

// close ends every parked stream: each gets what its log already holds
// (generations were interrupted just before), then its connection closes
// and the client reconnects elsewhere with Last-Event-ID.
func (k *parker) close() {
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return
	}
	k.closed = true
	if k.stop != nil {
		k.stop()
	}
	for _, pk := range k.byKey {
		k.serveLocked(pk, false)
	}
	set := k.set
	k.mu.Unlock()
	if set != nil {
		set.Wake()
	}
	k.wg.Wait()
	if set != nil {
		set.Close()
	}
}

// len reports how many streams are parked.
func (k *parker) len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.byKey)
}
