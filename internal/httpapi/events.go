package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gymbro/gymbro-api/internal/chat"
	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// writeTimeout bounds one SSE write, so a client that stopped reading (a
// phone in a tunnel) frees its stream instead of pinning it forever.
const writeTimeout = 15 * time.Second

// readBatch is how many events one log read returns.
const readBatch = 256

// handleEvents serves GET /api/v1/messages/{id}/events: the message's events
// after Last-Event-ID (header, or last_event_id query for clients that cannot
// set headers), then live ones, with heartbeats, until the terminal event.
//
// The token is checked when the stream opens only: one that expires while
// the stream is open does not cut it; a reconnect with an expired token gets
// 401, so the client refreshes and resumes with Last-Event-ID.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodHead {
		// The mux routes HEAD to GET; a stream has no headers-only form.
		w.Header().Set("Allow", "GET")
		writeProblem(w, r, http.StatusMethodNotAllowed, gymbro.CodeMethodNotAllowed, "HEAD is not allowed on an event stream; use GET.", nil)
		return
	}
	ctx, p, id := r.Context(), principal(r), r.PathValue("id")
	trace := s.chat.Trace()
	trace.Mark(id, chat.StepStreamReceived)
	after, m, err := s.streamTarget(r, p, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	trace.Mark(id, chat.StepStreamFound)
	slot := s.takeStreamSlot(ctx, p)
	log := s.chat.Log()
	// Watch before the first read, so an append between them is not missed.
	wake, stop := log.Watch(id)
	defer stop()
	evs, reset, replayErr := s.replay(ctx, log, m, after)
	release, err := slot()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	trace.Mark(id, chat.StepStreamSlot)
	parked := false
	defer func() {
		if !parked {
			release()
		}
	}()
	if replayErr != nil {
		s.writeError(w, r, replayErr)
		return
	}
	trace.Mark(id, chat.StepStreamReplayed)
	setStreamHeaders(w.Header(), reset, evs)
	finished := (len(evs) > 0 && evs[len(evs)-1].Type.Terminal()) || (m.Status.Terminal() && len(evs) == 0 && !reset)
	if !finished && s.park != nil && s.park.canPark(r) && s.parkStream(w, r, id, p, after, reset, evs, release) {
		parked = true
		return
	}
	w.WriteHeader(http.StatusOK)
	s.streamOpened()
	defer s.streamClosed()
	sw := responseWriter(w)
	last := s.writeReplay(sw, id, after, reset, evs)
	if l := requestLogOf(r); l != nil {
		l.stream = true
		defer func() { l.lastEventID = last }()
	}
	if err := s.flushReplay(sw, id); err != nil || finished {
		return
	}
	last = s.followLive(ctx, sw, log, wake, p, id, last)
}

// streamTarget reads the request's Last-Event-ID and finds the message.
func (s *Server) streamTarget(r *http.Request, p *gymbro.Principal, id string) (int64, *gymbro.Message, error) {
	after, err := lastEventID(r)
	if err != nil {
		return 0, nil, err
	}
	m, err := s.chat.StreamTarget(r.Context(), p, id)
	return after, m, err
}

// takeStreamSlot starts taking a stream slot for p and returns the
// function that waits for it. A cap counted elsewhere (in Redis) is asked
// by a goroutine of its own, so its round trip overlaps the replay's read
// instead of preceding it; the caller must wait for it before returning.
func (s *Server) takeStreamSlot(ctx context.Context, p *gymbro.Principal) func() (func(), error) {
	if _, local := s.opts.Streams.(*MemoryStreamCap); local || s.opts.Streams == nil {
		release, err := s.acquireStream(ctx, p)
		return func() (func(), error) { return release, err }
	}
	type slot struct {
		release func()
		err     error
	}
	ch := make(chan slot, 1)
	go func() {
		release, err := s.acquireStream(ctx, p)
		ch <- slot{release, err}
	}()
	return func() (func(), error) {
		sl := <-ch
		return sl.release, sl.err
	}
}

// setStreamHeaders sets the SSE response headers.
func setStreamHeaders(h http.Header, reset bool, evs []gymbro.Event) {
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	if reset && len(evs) > 0 {
		h.Set("GymBro-Replay-From", strconv.FormatInt(evs[0].Seq, 10))
	}
}

// drain writes what the log holds after *last; done reports that the
// terminal event went out, read that the log could be read to its end.
func (s *Server) drain(ctx context.Context, sw *sseWriter, log gymbro.EventLog, id string, last *int64) (done bool) {
	done, _ = s.drainRead(ctx, sw, log, id, last)
	return done
}

func (s *Server) drainRead(ctx context.Context, sw *sseWriter, log gymbro.EventLog, id string, last *int64) (done, read bool) {
	for {
		evs, err := log.Read(ctx, id, *last, readBatch)
		if err != nil {
			s.logger.WarnContext(ctx, "read event log", "message_id", id, "err", err)
			return false, false // the next wake or heartbeat retries
		}
		for _, ev := range evs {
			sw.event(ev)
			*last = ev.Seq
			if ev.Type.Terminal() {
				return true, true
			}
		}
		if len(evs) < readBatch {
			return false, true
		}
	}
}

// followLive writes live events (on each wake-up) and heartbeats until the
// terminal event, the client leaving, or shutdown. It returns the seq of
// the last event written.
func (s *Server) followLive(ctx context.Context, sw *sseWriter, log gymbro.EventLog, wake <-chan struct{}, p *gymbro.Principal, id string, last int64) int64 {
	heartbeat := time.NewTimer(s.opts.SSEHeartbeat)
	defer heartbeat.Stop()
	stalled := false // no event since the last heartbeat
	for {
		select {
		case <-ctx.Done():
			return last
		case <-s.closing:
			// Shutdown: deliver what the log already holds (generations
			// were interrupted just before), then let the client reconnect
			// elsewhere with Last-Event-ID.
			s.drain(ctx, sw, log, id, &last)
			sw.flush()
			return last
		case <-heartbeat.C:
			if stalled && s.catchUp(ctx, sw, log, p, id, &last) {
				return last
			}
			stalled = true
			sw.printf(": heartbeat\n\n")
			if sw.flush() != nil {
				return last
			}
			heartbeat.Reset(s.opts.SSEHeartbeat)
		case <-wake:
			done := s.drain(ctx, sw, log, id, &last)
			stalled = false
			if s.flushTraced(sw, id) != nil || done {
				return last
			}
		}
	}
}

// catchUp runs after a whole heartbeat interval without events.
// Notifications are best effort (a pub/sub hiccup can lose one), so it reads
// the log anyway; and the store is the source of truth when a terminal
// append itself was lost. It reports that the stream is finished.
func (s *Server) catchUp(ctx context.Context, sw *sseWriter, log gymbro.EventLog, p *gymbro.Principal, id string, last *int64) bool {
	done, read := s.drainRead(ctx, sw, log, id, last)
	if done {
		sw.flush()
		return true
	}
	// Only a log read to its end proves the terminal append was lost: one
	// that could not be read may hold events the client has not seen.
	if !read {
		return false
	}
	if m, err := s.chat.Message(ctx, p, id); err == nil && m.Status.Terminal() && m.LastSeq > *last {
		t := chat.TerminalEvent(m)
		sw.event(t)
		*last = t.Seq
		sw.flush()
		return true
	}
	return false
}

// writeReplay buffers the retry hint, a reset when needed, and the replayed
// events; it returns the seq of the last one.
func (s *Server) writeReplay(sw *sseWriter, id string, after int64, reset bool, evs []gymbro.Event) int64 {
	sw.printf("retry: %d\n\n", s.opts.SSERetry.Milliseconds())
	last := after
	if reset {
		sw.reset(id, after, evs)
		last = 0 // what follows starts over
	}
	for _, ev := range evs {
		sw.event(ev)
		last = ev.Seq
	}
	return last
}

// flushReplay writes the stream's head and replay out: from then on the
// stream follows the log.
func (s *Server) flushReplay(sw *sseWriter, id string) error {
	s.chat.Trace().Mark(id, chat.StepStreamReady)
	return s.flushTraced(sw, id)
}

// flushTraced flushes sw, marking for the TTFT trace when the exchange's
// first delta goes out (before the write: a client may act on it at once).
func (s *Server) flushTraced(sw *sseWriter, id string) error {
	if sw.delta {
		s.chat.Trace().Mark(id, chat.StepFirstDeltaWritten)
	}
	return sw.flush()
}

// parkStream answers the stream on the hijacked connection (a close-
// delimited HTTP/1.1 body: no chunked framing to keep up by hand), writes
// the replay and parks it. It reports false, having written nothing, when
// the connection cannot be hijacked.
func (s *Server) parkStream(w http.ResponseWriter, r *http.Request, id string, p *gymbro.Principal, after int64, reset bool, evs []gymbro.Event, release func()) bool {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return false
	}
	// The buffered reader can only hold bytes a client pipelined after its
	// GET; an SSE client sends none, and the connection ends with the stream.
	h := w.Header().Clone()
	h.Del("Connection")
	h.Set("Connection", "close")
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	var head bytes.Buffer
	head.WriteString("HTTP/1.1 200 OK\r\n")
	_ = h.Write(&head)
	head.WriteString("\r\n")
	sw := connWriter(conn)
	sw.buf = append(sw.buf, head.Bytes()...)
	last := s.writeReplay(sw, id, after, reset, evs)
	l := requestLogOf(r)
	if l == nil {
		l = &requestLog{start: s.now()}
	}
	// For the access log: the ResponseWriter never saw the answer.
	l.status, l.stream = http.StatusOK, true
	sent := func() int64 { return max(sw.written-int64(head.Len()), 0) } // the body's bytes
	// Counted before its first byte goes out: a client that has read the
	// replay must find its stream counted (a shutdown reports it).
	s.streamOpened()
	if s.flushReplay(sw, id) != nil {
		conn.Close()
		s.streamClosed()
		release()
		l.bytes, l.lastEventID = sent(), last
		return true
	}
	if !s.park.park(conn, id, p.UID, last, sent(), release, s.detach(r, l)) {
		// Shutting down (or out of descriptors): deliver what the log
		// holds (at shutdown, the interrupted generation's last events),
		// as close does for parked streams; the client resumes with
		// Last-Event-ID.
		l.detached = false // the line is observe's again
		ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		s.drain(ctx, sw, s.chat.Log(), id, &last)
		sw.flush()
		cancel()
		conn.Close()
		s.streamClosed()
		release()
		l.bytes, l.lastEventID = sent(), last
	}
	return true
}

// replay returns the events to send first. Exactly the events after `after`
// when the log has them; otherwise (the log expired or restarted, or the
// client's id is beyond it) reset is true and the best replay is returned:
// the log from its start, or the terminal event rebuilt from the store.
func (s *Server) replay(ctx context.Context, log gymbro.EventLog, m *gymbro.Message, after int64) (evs []gymbro.Event, reset bool, err error) {
	evs, err = log.Read(ctx, m.ID, after, readBatch)
	if err != nil {
		return nil, false, err
	}
	if len(evs) > 0 {
		return evs, evs[0].Seq != after+1, nil
	}
	if after > 0 {
		// Nothing new: fine if the log holds event `after` (the client is
		// up to date), a reset otherwise.
		prev, err := log.Read(ctx, m.ID, after-1, 1)
		if err != nil {
			return nil, false, err
		}
		if len(prev) == 1 {
			return nil, false, nil
		}
	}
	// The log is empty or shorter than the client believes. Re-read the
	// exchange: it may have finished since the handler looked.
	if fresh, err := s.chat.Message(ctx, gymbro.PrincipalFromContext(ctx), m.ID); err == nil {
		*m = *fresh
	}
	if all, err := log.Read(ctx, m.ID, 0, readBatch); err != nil {
		return nil, false, err
	} else if len(all) > 0 {
		return all, true, nil
	}
	if !m.Status.Terminal() {
		return nil, after > 0, nil // not started yet, or a log lost while running: follow
	}
	t := chat.TerminalEvent(m)
	switch {
	case after == t.Seq:
		return nil, false, nil // saw it already
	case after+1 == t.Seq:
		return []gymbro.Event{t}, false, nil
	}
	return []gymbro.Event{t}, true, nil
}

func lastEventID(r *http.Request) (int64, error) {
	v := r.Header.Get("Last-Event-ID")
	if v == "" {
		v = r.URL.Query().Get("last_event_id")
	}
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 0 {
		return 0, gymbro.Errorf(gymbro.KindInvalid, "invalid_last_event_id", "Last-Event-ID must be the id of an event this stream sent (a whole number ≥ 0).")
	}
	return n, nil
}

// sseWriter frames events per the WHATWG EventSource format into a buffer
// that flush writes out with a deadline, so a burst of events costs one
// write. The first error sticks.
type sseWriter struct {
	w        io.Writer
	deadline func(time.Time) error
	flusher  func() error // nil when writes reach the connection directly
	buf      []byte
	err      error
	written  int64 // bytes flush wrote
	delta    bool  // a content_delta was buffered since the last flush (for the TTFT trace)
}

// responseWriter returns an sseWriter on an http.ResponseWriter.
func responseWriter(w http.ResponseWriter) *sseWriter {
	rc := http.NewResponseController(w)
	return &sseWriter{w: w, deadline: rc.SetWriteDeadline, flusher: rc.Flush}
}

// connWriter returns an sseWriter on a hijacked connection.
func connWriter(c net.Conn) *sseWriter {
	return &sseWriter{w: c, deadline: c.SetWriteDeadline}
}

func (s *sseWriter) printf(format string, args ...any) {
	s.buf = fmt.Appendf(s.buf, format, args...)
}

func (s *sseWriter) event(ev gymbro.Event) {
	data, err := json.Marshal(ev)
	if err != nil {
		s.err = err
		return
	}
	s.buf = append(s.buf, "id: "...)
	s.buf = strconv.AppendInt(s.buf, ev.Seq, 10)
	s.buf = append(s.buf, "\nevent: "...)
	s.buf = append(s.buf, ev.Type...)
	// json.Marshal escapes newlines, so the data is always one line.
	s.buf = append(s.buf, "\ndata: "...)
	s.buf = append(s.buf, data...)
	s.buf = append(s.buf, "\n\n"...)
	s.delta = s.delta || ev.Type == gymbro.EventContentDelta
}

// reset tells the client that the events after its Last-Event-ID cannot be
// replayed exactly and that what follows starts over. It has no id, so it
// does not move the client's Last-Event-ID.
func (s *sseWriter) reset(messageID string, after int64, evs []gymbro.Event) {
	from := int64(0)
	if len(evs) > 0 {
		from = evs[0].Seq
	}
	data, _ := json.Marshal(map[string]any{"message_id": messageID, "last_event_id": after, "replay_from": from,
		"reason": "The events after last_event_id are no longer available; the stream restarts from replay_from."})
	s.buf = append(s.buf, "event: reset\ndata: "...)
	s.buf = append(s.buf, data...)
	s.buf = append(s.buf, "\n\n"...)
}

// flush writes what is buffered. An idle stream keeps no large buffer.
func (s *sseWriter) flush() error {
	if s.err != nil || len(s.buf) == 0 {
		return s.err
	}
	_ = s.deadline(time.Now().Add(writeTimeout))
	n, err := s.w.Write(s.buf)
	s.written += int64(n)
	s.err = err
	if s.err == nil && s.flusher != nil {
		s.err = s.flusher()
	}
	if cap(s.buf) > 4096 {
		s.buf = nil
	} else {
		s.buf = s.buf[:0]
	}
	s.delta = false
	return s.err
}
