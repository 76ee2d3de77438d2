package chat_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gymbro/gymbro-api/internal/chat"
	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/inmem"
	"github.com/gymbro/gymbro-api/internal/sqlite"
)

// script is a gymbro.Model that plays a scripted reply: its chunks, then
// err. With hold set it waits before the first chunk until hold is closed
// or ctx ends; with pause set it waits there after the chunk of that index.
type script struct {
	chunks []string
	err    error
	hold   chan struct{}
	pause  map[int]chan struct{}
	usage  gymbro.Usage

	calls atomic.Int32
	mu    sync.Mutex
	reqs  []gymbro.ModelRequest
}

func (m *script) Name() string { return "scripted" }

func (m *script) Stream(ctx context.Context, req gymbro.ModelRequest, emit func(string) error) (gymbro.ModelResult, error) {
	m.calls.Add(1)
	m.mu.Lock()
	m.reqs = append(m.reqs, req)
	m.mu.Unlock()
	if err := wait(ctx, m.hold); err != nil {
		return gymbro.ModelResult{}, err
	}
	for i, c := range m.chunks {
		if err := emit(c); err != nil {
			return gymbro.ModelResult{}, err
		}
		if err := wait(ctx, m.pause[i]); err != nil {
			return gymbro.ModelResult{}, err
		}
	}
	if m.err != nil {
		return gymbro.ModelResult{}, m.err
	}
	return gymbro.ModelResult{Model: "scripted-1", FinishReason: "stop", Usage: m.usage}, nil
}

func (m *script) requests() []gymbro.ModelRequest {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]gymbro.ModelRequest(nil), m.reqs...)
}

func wait(ctx context.Context, ch chan struct{}) error {
	if ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// flakyLog is the in-process event log with a switch that makes every
// Append fail as an outage would (KindUnavailable), as a cut Redis does.
type flakyLog struct {
	*inmem.EventLog
	down     atomic.Bool
	refused  atomic.Int32
	appended atomic.Int32
	refusals chan struct{} // a value per refused append, dropped when full
}

func (l *flakyLog) Append(ctx context.Context, ev gymbro.Event) (gymbro.Event, error) {
	if l.down.Load() {
		l.refused.Add(1)
		select {
		case l.refusals <- struct{}{}:
		default:
		}
		return gymbro.Event{}, gymbro.Unavailable(errors.New("connection refused"), "The event log")
	}
	out, err := l.EventLog.Append(ctx, ev)
	if err == nil {
		l.appended.Add(1)
	}
	return out, err
}

// observer counts what chat.Observer is told.
type observer struct {
	started, finished, held, retried, budget atomic.Int32
	done                                     chan struct{} // a value per finished generation
}

func (o *observer) GenerationStarted() { o.started.Add(1) }
func (o *observer) GenerationFinished(gymbro.Status, time.Duration) {
	o.finished.Add(1)
	o.done <- struct{}{}
}
func (o *observer) EventsHeld(delta int) { o.held.Add(int32(delta)) }
func (o *observer) AppendRetried()       { o.retried.Add(1) }
func (o *observer) BudgetRefused()       { o.budget.Add(1) }

// env is a chat.Service over a real SQLite store in a temporary directory,
// the in-process event log behind a switch, and a scripted model: the
// parts the store and event-log contract suites already trust.
type env struct {
	svc   *chat.Service
	store *sqlite.DB
	log   *flakyLog
	model *script
	obs   *observer
}

func newEnv(t *testing.T, model *script, change ...func(*chat.Options)) *env {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "gymbro.db"))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{store: store, log: &flakyLog{EventLog: inmem.NewEventLog(inmem.Options{}), refusals: make(chan struct{}, 64)},
		model: model, obs: &observer{done: make(chan struct{}, 100)}}
	opts := chat.Options{Store: store, Log: e.log, Model: model, Observer: e.obs, HistoryTurns: 20, HistoryChars: 24000}
	for _, c := range change {
		c(&opts)
	}
	e.svc = chat.New(opts)
	t.Cleanup(func() {
		_ = e.svc.Shutdown(ctx)
		e.log.Close()
		store.Close()
	})
	return e
}

var alice = &gymbro.Principal{UID: "alice", Provider: gymbro.ProviderSupabase}

// post posts text for alice and fails the test on an error.
func (e *env) post(t *testing.T, text string, in ...chat.PostInput) *gymbro.Message {
	t.Helper()
	p := chat.PostInput{Text: text}
	if len(in) > 0 {
		p = in[0]
		p.Text = text
	}
	m, _, err := e.svc.Post(context.Background(), alice, p)
	if err != nil {
		t.Fatalf("Post(%q): %v", text, err)
	}
	return m
}

// events waits until the message's log holds a terminal event (or, with
// until set, an event until accepts) and returns the events so far.
func (e *env) events(t *testing.T, id string, until ...func(gymbro.Event) bool) []gymbro.Event {
	t.Helper()
	done := func(ev gymbro.Event) bool { return ev.Type.Terminal() }
	if len(until) > 0 {
		done = until[0]
	}
	return awaitEvent(t, e.log, id, done)
}

// awaitEvent reads log until an event of message id satisfies done, and
// returns all its events so far; it fails the test after 10 s.
func awaitEvent(t *testing.T, log gymbro.EventLog, id string, done func(gymbro.Event) bool) []gymbro.Event {
	t.Helper()
	ch, stop := log.Watch(id)
	defer stop()
	deadline := time.After(10 * time.Second)
	for {
		evs, err := log.Read(context.Background(), id, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			if done(ev) {
				return evs
			}
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("no awaited event for %s; have %+v", id, evs)
		}
	}
}

// stored reads the message back from the store.
func (e *env) stored(t *testing.T, id string) *gymbro.Message {
	t.Helper()
	m, err := e.store.MessageByID(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// types lists the events' types and checks their seqs run 1..n.
func types(t *testing.T, evs []gymbro.Event) []gymbro.EventType {
	t.Helper()
	out := make([]gymbro.EventType, len(evs))
	for i, ev := range evs {
		if ev.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d: ids not gap-free: %+v", i, ev.Seq, evs)
		}
		out[i] = ev.Type
	}
	return out
}

func last(evs []gymbro.Event) gymbro.Event { return evs[len(evs)-1] }

// awaitFinished waits until a generation has ended.
func (e *env) awaitFinished(t *testing.T) {
	t.Helper()
	select {
	case <-e.obs.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the generation did not end")
	}
}

// awaitRefusals waits until the log has refused n appends since it was cut.
func (e *env) awaitRefusals(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for int(e.log.refused.Load()) < n {
		select {
		case <-e.log.refusals:
		case <-deadline:
			t.Fatalf("the log refused %d appends, want %d", e.log.refused.Load(), n)
		}
	}
}
