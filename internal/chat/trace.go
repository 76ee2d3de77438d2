package chat

import (
	"context"
	"net/http/httptrace"
	"sync"
	"time"
)

// TraceStep is one step of an exchange on its way from the POST to its
// first delta on a subscriber's socket.
type TraceStep uint8

// The steps a Trace records, in the order they happen on each path. After
// the exchange is stored, generation and the app's stream run at once.
const (
	StepPostReceived         TraceStep = iota // the post reached the use-case: token checked, body read
	StepStored                                // the create transaction committed
	StepQueuedAppended                        // the queued event is in the log
	StepPostAnswered                          // the 202 is written
	StepGenerationStarted                     // the generation's goroutine runs
	StepWorkingAppended                       // the working event is in the log
	StepModelCalled                           // the model's Stream is called
	StepModelConn                             // a connection to the model is in hand (dialed or reused)
	StepModelRequestWritten                   // the model request is sent
	StepModelResponseHeaders                  // the model's response began
	StepFirstChunk                            // the model's first content chunk is decoded
	StepFirstDeltaAppended                    // the first content_delta is in the log
	StepStreamReceived                        // the events request's handler started: token checked
	StepStreamFound                           // the exchange is found, the caller's
	StepStreamSlot                            // the user's stream slot is taken
	StepStreamReplayed                        // the log is read for the replay
	StepStreamReady                           // the stream's head and replay are being written; it follows the log
	StepFirstDeltaWritten                     // the first content_delta is being written to a subscriber's socket
	numSteps
)

var stepNames = [numSteps]string{
	"post_received", "stored", "queued_appended", "post_answered", "generation_started", "working_appended",
	"model_called", "model_conn", "model_request_written", "model_response_headers", "first_chunk",
	"first_delta_appended", "stream_received", "stream_found", "stream_slot", "stream_replayed", "stream_ready",
	"first_delta_written",
}

// String is the step's name in a trace's JSON.
func (s TraceStep) String() string {
	if s >= numSteps {
		return "unknown"
	}
	return stepNames[s]
}

// Trace keeps, for the most recent exchanges, the wall-clock time each
// passed every step on its way to the first delta, so a benchmark can
// tell where the time to first token goes (the load tool's ttft mode,
// GYMBRO_TRACE_TTFT). It holds timestamps only, a few hundred bytes per
// exchange, for at most its size. A nil *Trace records nothing and costs
// a nil check: production runs without one.
type Trace struct {
	mu    sync.Mutex
	byID  map[string]*traced
	ring  []string // ids, oldest replaced first
	next  int
	clock func() time.Time
}

type traced struct {
	at     [numSteps]int64 // Unix nanoseconds; 0 until passed
	reused int8            // the model connection: 1 reused, -1 dialed, 0 unknown
}

// NewTrace returns a Trace of the last size exchanges.
func NewTrace(size int) *Trace {
	return &Trace{byID: make(map[string]*traced, size), ring: make([]string, max(size, 1)), clock: time.Now}
}

// start begins exchange id's record: its post arrives now.
func (t *Trace) start(id string) {
	if t == nil {
		return
	}
	now := t.clock().UnixNano()
	t.mu.Lock()
	defer t.mu.Unlock()
	if old := t.ring[t.next]; old != "" {
		delete(t.byID, old)
	}
	t.ring[t.next] = id
	t.next = (t.next + 1) % len(t.ring)
	e := &traced{}
	e.at[StepPostReceived] = now
	t.byID[id] = e
}

// Mark records that exchange id passed step now. The first mark of a
// step counts; an exchange not started (or forgotten) is ignored.
func (t *Trace) Mark(id string, step TraceStep) {
	if t == nil {
		return
	}
	now := t.clock().UnixNano()
	t.mu.Lock()
	if e := t.byID[id]; e != nil && e.at[step] == 0 {
		e.at[step] = now
	}
	t.mu.Unlock()
}

// Steps returns when exchange id passed each step, by step name, and
// whether its model connection was reused (nil: not known); ok is false
// for an exchange the trace does not hold.
func (t *Trace) Steps(id string) (steps map[string]int64, reused *bool, ok bool) {
	if t == nil {
		return nil, nil, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.byID[id]
	if e == nil {
		return nil, nil, false
	}
	steps = make(map[string]int64, numSteps)
	for s, at := range e.at {
		if at != 0 {
			steps[TraceStep(s).String()] = at
		}
	}
	if e.reused != 0 {
		r := e.reused > 0
		reused = &r
	}
	return steps, reused, true
}

func (t *Trace) connReused(id string, reused bool) {
	t.mu.Lock()
	if e := t.byID[id]; e != nil && e.reused == 0 {
		e.reused = -1
		if reused {
			e.reused = 1
		}
	}
	t.mu.Unlock()
}

// modelContext returns ctx carrying an HTTP client trace that marks the
// model request's steps of exchange id; ctx itself without a Trace.
func (t *Trace) modelContext(ctx context.Context, id string) context.Context {
	if t == nil {
		return ctx
	}
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			t.Mark(id, StepModelConn)
			t.connReused(id, info.Reused)
		},
		WroteRequest:         func(httptrace.WroteRequestInfo) { t.Mark(id, StepModelRequestWritten) },
		GotFirstResponseByte: func() { t.Mark(id, StepModelResponseHeaders) },
	})
}
