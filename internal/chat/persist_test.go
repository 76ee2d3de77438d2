package chat_test

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gymbro/gymbro-api/internal/chat"
	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/sqlite"
	"github.com/gymbro/gymbro-api/internal/testenv"
)

// stuckStore is the SQLite store with a switch that makes FinishMessage
// time out, as a store whose commits hang does (a synchronous standby
// gone), and one that lets the next finish land but loses its answer (a
// commit that completed after the caller gave up).
type stuckStore struct {
	*sqlite.DB
	down     atomic.Bool
	lose     atomic.Bool
	refusals chan struct{} // a value per refused finish, dropped when full
}

func (s *stuckStore) FinishMessage(ctx context.Context, m *gymbro.Message, r gymbro.Result) (*gymbro.Message, error) {
	timeout := gymbro.Wrap(context.DeadlineExceeded, gymbro.KindTimeout, "store_timeout", "The store did not answer in time.")
	if s.lose.CompareAndSwap(true, false) {
		if _, err := s.DB.FinishMessage(ctx, m, r); err != nil {
			return nil, err
		}
		return nil, timeout
	}
	if s.down.Load() {
		select {
		case s.refusals <- struct{}{}:
		default:
		}
		return nil, timeout
	}
	return s.DB.FinishMessage(ctx, m, r)
}

func withStuckStore(st **stuckStore, change func(*chat.Options)) func(*chat.Options) {
	return func(o *chat.Options) {
		*st = &stuckStore{DB: o.Store.(*sqlite.DB), refusals: make(chan struct{}, 64)}
		o.Store = *st
		if change != nil {
			change(o)
		}
	}
}

func (s *stuckStore) awaitRefusals(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-s.refusals:
		case <-time.After(10 * time.Second):
			t.Fatalf("the store was not asked to finish %d times", n)
		}
	}
}

// TestFinishRidesThroughStoreOutage: the store cannot take the result for
// a moment within the grace; the generation keeps trying, and the reply
// completes, stored, with one terminal event.
func TestFinishRidesThroughStoreOutage(t *testing.T) {
	var st *stuckStore
	e := newEnv(t, &script{chunks: []string{"one ", "two"}}, withStuckStore(&st, nil))
	st.down.Store(true)
	m := e.post(t, "hi")
	st.awaitRefusals(t, 2)
	st.down.Store(false)
	evs := e.events(t, m.ID)
	if end := last(evs); end.Type != gymbro.EventCompleted || end.Content != "one two" {
		t.Fatalf("ended %+v", end)
	}
	if got := e.stored(t, m.ID); got.Status != gymbro.StatusCompleted || got.LastSeq != last(evs).Seq {
		t.Fatalf("stored %s, last seq %d", got.Status, got.LastSeq)
	}
}

// TestFinishEndsTheStreamPastStoreGrace: the store stays behind past the
// grace; the stream still ends, with a retryable persist_failed event
// carrying the reply, and once the store answers recovery stores exactly
// that ending (the reply kept, no second terminal event).
func TestFinishEndsTheStreamPastStoreGrace(t *testing.T) {
	clk := testenv.NewClock(time.Now())
	var st *stuckStore
	e := newEnv(t, &script{chunks: []string{"one ", "two"}}, withStuckStore(&st, func(o *chat.Options) {
		o.Now, o.StoreGrace, o.LeaseTTL = clk.Now, 5*time.Second, 10*time.Second
	}))
	st.down.Store(true)
	m := e.post(t, "hi")
	st.awaitRefusals(t, 2)
	clk.Advance(6 * time.Second)
	evs := e.events(t, m.ID)
	end := last(evs)
	if end.Type != gymbro.EventError || end.Code != chat.CodePersistFailed || end.Retryable == nil || !*end.Retryable || end.Content != "one two" {
		t.Fatalf("ended %+v, want a retryable persist_failed with the reply", end)
	}
	e.awaitFinished(t)
	if got := e.stored(t, m.ID); got.Status != gymbro.StatusWorking {
		t.Fatalf("stored %s while the store was behind", got.Status)
	}

	st.down.Store(false)
	ctx := context.Background()
	if n, err := e.svc.Recover(ctx, false); err != nil || n != 0 {
		t.Fatalf("Recover under a live lease ended %d (%v)", n, err)
	}
	clk.Advance(11 * time.Second)
	if n, err := e.svc.Recover(ctx, false); err != nil || n != 1 {
		t.Fatalf("Recover after the lease lapsed ended %d (%v), want 1", n, err)
	}
	got := e.stored(t, m.ID)
	if got.Status != gymbro.StatusFailed || got.ErrorCode != chat.CodePersistFailed || got.Reply != "one two" || got.LastSeq != end.Seq {
		t.Fatalf("recovered as %s %s %q last seq %d; the stream ended %d:%s", got.Status, got.ErrorCode, got.Reply, got.LastSeq, end.Seq, end.Code)
	}
	after, _ := e.log.Read(ctx, m.ID, 0, 100)
	if !slices.Equal(types(t, after), types(t, evs)) {
		t.Errorf("recovery appended to an ended stream: %v", types(t, after))
	}
	if ev := chat.TerminalEvent(got); ev.Code != end.Code || ev.Seq != end.Seq {
		t.Errorf("the stored exchange rebuilds %d:%s, the stream said %d:%s", ev.Seq, ev.Code, end.Seq, end.Code)
	}
}

// TestFinishRecognisesItsLandedCommit: a finish whose write landed but
// whose answer was lost meets its own write on the retry (a conflict) and
// still completes the stream, once.
func TestFinishRecognisesItsLandedCommit(t *testing.T) {
	var st *stuckStore
	e := newEnv(t, &script{chunks: []string{"one ", "two"}}, withStuckStore(&st, nil))
	st.lose.Store(true)
	m := e.post(t, "hi")
	evs := e.events(t, m.ID)
	want := []gymbro.EventType{gymbro.EventQueued, gymbro.EventWorking, gymbro.EventContentDelta, gymbro.EventContentDelta, gymbro.EventCompleted}
	if got := types(t, evs); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	e.awaitFinished(t)
	if got := e.stored(t, m.ID); got.Status != gymbro.StatusCompleted || got.LastSeq != 5 {
		t.Fatalf("stored %s, last seq %d", got.Status, got.LastSeq)
	}
	if st.lose.Load() {
		t.Fatal("the finish never went to the store")
	}
}

// TestFinishKeepsAnotherEnding: a finish that meets an exchange someone
// else ended (recovery on another instance) appends nothing.
func TestFinishKeepsAnotherEnding(t *testing.T) {
	hold := make(chan struct{})
	e := newEnv(t, &script{chunks: []string{"late"}, hold: hold})
	m := e.post(t, "hi")
	e.events(t, m.ID, func(ev gymbro.Event) bool { return ev.Type == gymbro.EventWorking })
	other, err := e.store.MessageByID(context.Background(), m.ID)
	if err != nil {
		t.Fatal(err)
	}
	// Another instance's recovery ends it first.
	if _, err := e.store.FinishMessage(context.Background(), other, gymbro.Result{Status: gymbro.StatusInterrupted, ErrorCode: gymbro.CodeInterrupted, LastSeq: 3}); err != nil {
		t.Fatal(err)
	}
	close(hold)
	e.awaitFinished(t)
	evs, _ := e.log.Read(context.Background(), m.ID, 0, 100)
	for _, ev := range evs {
		if ev.Type.Terminal() {
			t.Fatalf("the losing generation appended %+v", ev)
		}
	}
	if got := e.stored(t, m.ID); got.Status != gymbro.StatusInterrupted {
		t.Fatalf("stored %s", got.Status)
	}
}
