package chat_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/gymbro/gymbro-api/internal/chat"
	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/testenv"
)

// TestGenerationRidesThroughLogOutage: the event log is cut after the
// first chunk; the model keeps answering; when the log is back every held
// event is written in order and the exchange completes with its full text.
func TestGenerationRidesThroughLogOutage(t *testing.T) {
	pause := make(chan struct{})
	e := newEnv(t, &script{chunks: []string{"one ", "two ", "three"}, pause: map[int]chan struct{}{0: pause}})
	m := e.cutAfterFirstDelta(t, pause)
	e.awaitRefusals(t, 3) // "two ", then at least two retries
	if n := e.obs.held.Load(); n != 2 {
		t.Errorf("events held = %d, want 2", n)
	}
	e.log.down.Store(false)
	evs := e.events(t, m.ID)
	want := []gymbro.EventType{gymbro.EventQueued, gymbro.EventWorking, gymbro.EventContentDelta, gymbro.EventContentDelta, gymbro.EventContentDelta, gymbro.EventCompleted}
	if got := types(t, evs); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	if c := last(evs).Content; c != "one two three" {
		t.Errorf("completed content %q", c)
	}
	if got := e.stored(t, m.ID); got.Status != gymbro.StatusCompleted || got.LastSeq != 6 {
		t.Errorf("stored %s, last seq %d", got.Status, got.LastSeq)
	}
	if e.obs.held.Load() != 0 || e.obs.retried.Load() < 2 {
		t.Errorf("held %d after the outage, retries %d", e.obs.held.Load(), e.obs.retried.Load())
	}
}

// TestGenerationGivesUpPastTheGrace: an outage longer than the grace ends
// the exchange as before: error, retryable, stored with the reply so far.
func TestGenerationGivesUpPastTheGrace(t *testing.T) {
	clk := testenv.NewClock(time.Now())
	pause := make(chan struct{})
	e := newEnv(t, &script{chunks: []string{"one ", "two"}, pause: map[int]chan struct{}{0: pause}},
		func(o *chat.Options) { o.Now, o.EventLogGrace = clk.Now, 5*time.Second })
	m := e.cutAfterFirstDelta(t, pause)
	e.awaitRefusals(t, 2)
	clk.Advance(6 * time.Second)
	e.awaitFinished(t) // it persists its end although the log is still down
	got := e.stored(t, m.ID)
	if got.Status != gymbro.StatusFailed || got.ErrorCode != gymbro.CodeUnavailable || got.Reply != "one two" || got.LastSeq != 4 {
		t.Fatalf("stored %s %s %q last seq %d", got.Status, got.ErrorCode, got.Reply, got.LastSeq)
	}
	if !gymbro.RetryableCode(got.ErrorCode) {
		t.Error("an outage must be retryable")
	}
	if e.obs.held.Load() != 0 {
		t.Errorf("%d events still counted as held", e.obs.held.Load())
	}
	e.log.down.Store(false)
	if evs, _ := e.log.Read(context.Background(), m.ID, 0, 100); len(types(t, evs)) != 3 {
		t.Errorf("log holds %d events, want the 3 written before the cut", len(evs))
	}
}

// TestHeldEventsAreBounded: a generation that would hold more than
// MaxHeldBytes ends rather than grow without bound.
func TestHeldEventsAreBounded(t *testing.T) {
	clk := testenv.NewClock(time.Now())
	pause := make(chan struct{})
	big := string(make([]byte, 400))
	e := newEnv(t, &script{chunks: []string{"a", big, big, big}, pause: map[int]chan struct{}{0: pause}},
		func(o *chat.Options) { o.Now, o.MaxHeldBytes, o.EventLogGrace = clk.Now, 1000, 5*time.Second })
	m := e.cutAfterFirstDelta(t, pause)
	e.awaitRefusals(t, 2)
	clk.Advance(6 * time.Second)
	e.awaitFinished(t)
	if got := e.stored(t, m.ID); got.Status != gymbro.StatusFailed || got.ErrorCode != gymbro.CodeUnavailable || len(got.Reply) >= 1+3*400 {
		t.Fatalf("stored %s %s, reply of %d bytes: the model should have been stopped at the bound", got.Status, got.ErrorCode, len(got.Reply))
	}
}

// TestRefusedPostCanBeRetried: a post whose queued event cannot be written
// answers 503 with Retry-After and leaves nothing behind, so the retry with
// the same Idempotency-Key runs anew.
func TestRefusedPostCanBeRetried(t *testing.T) {
	e := newEnv(t, &script{chunks: []string{"ok"}})
	ctx := context.Background()
	e.log.down.Store(true)
	_, _, err := e.svc.Post(ctx, alice, chat.PostInput{Text: "hi", IdempotencyKey: "k"})
	var ge *gymbro.Error
	if !errors.As(err, &ge) || ge.Kind != gymbro.KindUnavailable || ge.RetryAfter <= 0 {
		t.Fatalf("Post during the outage = %v, want unavailable with Retry-After", err)
	}
	if n, _ := e.store.CountRunning(ctx, "alice"); n != 0 {
		t.Fatalf("the refused post left %d running exchanges", n)
	}
	if convs, _, _ := e.store.Conversations(ctx, "alice", gymbro.Page{}); len(convs) != 0 {
		t.Fatalf("the refused post left a conversation")
	}
	e.log.down.Store(false)
	m, replayed, err := e.svc.Post(ctx, alice, chat.PostInput{Text: "hi", IdempotencyKey: "k"})
	if err != nil || replayed {
		t.Fatalf("retry = %v, replayed %v; want a new exchange", err, replayed)
	}
	if end := last(e.events(t, m.ID)); end.Type != gymbro.EventCompleted {
		t.Fatalf("retry ended %+v", end)
	}
}

// cutAfterFirstDelta posts, waits for the reply's first chunk, cuts the
// event log and lets the model (paused there) go on.
func (e *env) cutAfterFirstDelta(t *testing.T, pause chan struct{}) *gymbro.Message {
	t.Helper()
	m := e.post(t, "hi")
	e.events(t, m.ID, func(ev gymbro.Event) bool { return ev.Type == gymbro.EventContentDelta })
	e.log.down.Store(true)
	close(pause)
	return m
}
