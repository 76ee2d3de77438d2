package httpapi

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gymbro/gymbro-api/internal/chat"
	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// An SSE stream spends almost all its life idle, waiting for the next
// chunk. Served the plain net/http way, each one keeps a goroutine (its
// stack grown by the request path) and the connection's read and write
// buffers: about 40 KB here, against a target of 20 KiB. The parker holds
// idle HTTP/1 streams instead as a hijacked connection and a small struct,
// and runs a short-lived goroutine only while there is something to write:
// an append (heard through gymbro.AppendNotifier, one callback for all
// streams) or a heartbeat (one ticker for all streams).

// maxServing bounds the goroutines writing to parked streams at once, so a
// burst of appends or heartbeats to thousands of streams cannot spawn
// thousands of them: the streams wait in a queue instead, a pointer each,
// where a goroutine apiece (even one blocked on a semaphore) held a stack
// that the process kept long after (about 1 KB per stream in RSS at
// 20,000 streams, each heartbeat round).
const maxServing = 256

// maxBeatTick bounds the heartbeat ticker's period: how late a parked
// stream's heartbeat may go out.
const maxBeatTick = 100 * time.Millisecond

type parker struct {
	s   *Server
	log gymbro.EventLog

	mu      sync.Mutex
	byMsg   map[string]map[*parked]struct{}
	started bool
	closed  bool
	stop    func() // unregisters the append listener
	quit    chan struct{}
	queue   []*parked      // streams owed a write, waiting for a worker
	workers int            // goroutines serving the queue
	wg      sync.WaitGroup // the ticker and every serving goroutine
}

// parked is one idle stream. Fields after mu's comment are guarded by the
// parker's mu.
type parked struct {
	conn    net.Conn
	id      string
	p       *gymbro.Principal
	release func() // gives the user's stream slot back

	// guarded by parker.mu
	last    int64     // seq of the last event written
	due     time.Time // next heartbeat
	stalled bool      // nothing written since the last heartbeat
	busy    bool      // a goroutine is serving it
	again   bool      // notified while busy: serve once more
	beat    bool      // the serving goroutine owes a heartbeat
}

func newParker(s *Server, log gymbro.EventLog) *parker {
	return &parker{s: s, log: log, byMsg: map[string]map[*parked]struct{}{}, quit: make(chan struct{})}
}

// canPark reports whether r's stream can be parked: HTTP/1 (HTTP/2
// streams cannot be hijacked) and an event log that calls back on appends.
func (k *parker) canPark(r *http.Request) bool {
	_, ok := k.log.(gymbro.AppendNotifier)
	return ok && r.ProtoMajor == 1
}

// park takes over conn, whose response head and replay are already
// written, until the stream's terminal event or shutdown.
func (k *parker) park(conn net.Conn, id string, p *gymbro.Principal, last int64, release func()) bool {
	// A copy of the id: the request's is a slice of its whole request line.
	id = strings.Clone(id)
	pk := &parked{conn: conn, id: id, p: p, last: last, release: release, due: time.Now().Add(k.s.opts.SSEHeartbeat)}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return false
	}
	if !k.started {
		k.started = true
		k.stop = k.log.(gymbro.AppendNotifier).OnAppend(k.notify)
		k.wg.Add(1)
		go k.tick()
	}
	set := k.byMsg[id]
	if set == nil {
		set = map[*parked]struct{}{}
		k.byMsg[id] = set
	}
	set[pk] = struct{}{}
	// An append may have landed between the replay and now: look once.
	k.serveLocked(pk, false)
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
		for _, set := range k.byMsg {
			for pk := range set {
				k.serveLocked(pk, false)
			}
		}
		return
	}
	for pk := range k.byMsg[messageID] {
		k.serveLocked(pk, false)
	}
}

// tick sends heartbeats: one ticker for every parked stream.
func (k *parker) tick() {
	defer k.wg.Done()
	// A heartbeat goes out at most one tick late: 1/16 of the interval,
	// and never more than 100 ms (at the 15 s default a second-long tick
	// made heartbeats up to a second late). Each tick costs a scan of the
	// parked streams, a few microseconds per thousand.
	every := min(max(k.s.opts.SSEHeartbeat/16, 10*time.Millisecond), maxBeatTick)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-k.quit:
			return
		case now := <-t.C:
			k.mu.Lock()
			for _, set := range k.byMsg {
				for pk := range set {
					if !pk.busy && !now.Before(pk.due) {
						// Keep the cadence rather than drift by a tick each time.
						if pk.due = pk.due.Add(k.s.opts.SSEHeartbeat); pk.due.Before(now) {
							pk.due = now.Add(k.s.opts.SSEHeartbeat)
						}
						k.serveLocked(pk, true)
					}
				}
			}
			k.mu.Unlock()
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

// serve writes what pk is owed, then parks it again (or ends it).
func (k *parker) serve(pk *parked) {
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	sw := connWriter(pk.conn)
	for {
		k.mu.Lock()
		last, beat, stalled, closing := pk.last, pk.beat, pk.stalled, k.closed
		pk.again, pk.beat = false, false
		k.mu.Unlock()

		done, wrote, read := k.drain(ctx, sw, pk.id, &last)
		if !done && !closing && beat {
			if stalled && !wrote && read {
				// As in the goroutine loop: the store is the source of truth
				// when a terminal append was lost (and only a log read to
				// its end shows that it was).
				if m, err := k.s.chat.Message(ctx, pk.p, pk.id); err == nil && m.Status.Terminal() && m.LastSeq > last {
					sw.event(chat.TerminalEvent(m))
					done = true
				}
			}
			if !done {
				sw.printf(": heartbeat\n\n")
			}
		}
		sw.flush()
		k.mu.Lock()
		pk.last = last
		if wrote {
			pk.stalled = false
		} else if beat {
			pk.stalled = true
		}
		if done || closing || sw.err != nil {
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

// drain writes the log's events after *last; done reports the terminal
// one, read that the log could be read to its end.
func (k *parker) drain(ctx context.Context, sw *sseWriter, id string, last *int64) (done, wrote, read bool) {
	for {
		evs, err := k.log.Read(ctx, id, *last, readBatch)
		if err != nil {
			k.s.logger.Warn("read event log", "message_id", id, "err", err)
			return false, wrote, false // the next notification or heartbeat retries
		}
		for _, ev := range evs {
			sw.event(ev)
			*last, wrote = ev.Seq, true
			if ev.Type.Terminal() {
				return true, true, true
			}
		}
		if len(evs) < readBatch || sw.err != nil {
			return false, wrote, true
		}
	}
}

func (k *parker) removeLocked(pk *parked) {
	set := k.byMsg[pk.id]
	delete(set, pk)
	if len(set) == 0 {
		delete(k.byMsg, pk.id)
	}
	pk.conn.Close()
	k.s.streamClosed()
	pk.release()
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
	close(k.quit)
	for _, set := range k.byMsg {
		for pk := range set {
			k.serveLocked(pk, false)
		}
	}
	k.mu.Unlock()
	k.wg.Wait()
}

// len reports how many streams are parked.
func (k *parker) len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := 0
	for _, set := range k.byMsg {
		n += len(set)
	}
	return n
}
