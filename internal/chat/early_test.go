package chat_test

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gymbro/gymbro-api/internal/chat"
	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// gatedLog holds the queued append until the model has been asked (or a
// deadline passes, so a generation that waits for it fails the test
// rather than hanging).
type gatedLog struct {
	*flakyLog
	asked chan struct{}
}

func (l gatedLog) Append(ctx context.Context, ev gymbro.Event) (gymbro.Event, error) {
	if ev.Type == gymbro.EventQueued {
		select {
		case <-l.asked:
		case <-time.After(5 * time.Second):
		}
	}
	return l.flakyLog.Append(ctx, ev)
}

// askingModel closes asked when it is called, then plays its script.
type askingModel struct {
	*script
	asked chan struct{}
}

func (m askingModel) Stream(ctx context.Context, req gymbro.ModelRequest, emit func(string) error) (gymbro.ModelResult, error) {
	close(m.asked)
	return m.script.Stream(ctx, req, emit)
}

// TestModelAskedWhileQueuedIsAppended: the model's request goes out as
// soon as the exchange is stored, before its queued event is in; the log
// still reads queued, working, then the deltas.
func TestModelAskedWhileQueuedIsAppended(t *testing.T) {
	asked := make(chan struct{})
	sc := &script{chunks: []string{"one ", "two"}}
	e := newEnv(t, sc, func(o *chat.Options) {
		o.Log = gatedLog{flakyLog: o.Log.(*flakyLog), asked: asked}
		o.Model = askingModel{script: sc, asked: asked}
	})
	start := time.Now()
	m := e.post(t, "hi")
	if d := time.Since(start); d >= 5*time.Second {
		t.Fatalf("the queued append waited %s: the model was not asked before it", d)
	}
	evs := e.events(t, m.ID)
	want := []gymbro.EventType{gymbro.EventQueued, gymbro.EventWorking, gymbro.EventContentDelta, gymbro.EventContentDelta, gymbro.EventCompleted}
	if got := types(t, evs); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
}

// TestRefusedPostStopsTheModel: when the queued event cannot be written
// the generation, already asking the model, is stopped before Post
// answers and leaves nothing: no event, no observed generation.
func TestRefusedPostStopsTheModel(t *testing.T) {
	hold := make(chan struct{}) // never closed: only a cancel ends the model
	e := newEnv(t, &script{chunks: []string{"ok"}, hold: hold})
	e.log.down.Store(true)
	_, _, err := e.svc.Post(context.Background(), alice, chat.PostInput{Text: "hi"})
	if gymbro.ErrorKind(err) != gymbro.KindUnavailable {
		t.Fatalf("Post = %v, want unavailable", err)
	}
	if n := e.svc.Running(); n != 0 {
		t.Fatalf("%d generations still running after the refusal", n)
	}
	e.log.down.Store(false)
	if n := e.log.appended.Load(); n != 0 {
		t.Errorf("%d events appended for a refused post", n)
	}
	if s, f := e.obs.started.Load(), e.obs.finished.Load(); s != 0 || f != 0 {
		t.Errorf("observer saw %d started, %d finished generations", s, f)
	}
}

// countingStore counts the exchange reads a stream's lookup makes.
type countingStore struct {
	gymbro.Store
	reads atomic.Int32
}

func (s *countingStore) Message(ctx context.Context, uid, id string) (*gymbro.Message, error) {
	s.reads.Add(1)
	return s.Store.Message(ctx, uid, id)
}

// TestStreamTargetFromMemory: a stream of an exchange this instance
// generates finds it without a store read, for its owner only; once the
// generation ended, the store answers.
func TestStreamTargetFromMemory(t *testing.T) {
	hold := make(chan struct{})
	var store *countingStore
	e := newEnv(t, &script{chunks: []string{"ok"}, hold: hold}, func(o *chat.Options) {
		store = &countingStore{Store: o.Store}
		o.Store = store
	})
	m := e.post(t, "hi")
	got, err := e.svc.StreamTarget(context.Background(), alice, m.ID)
	if err != nil || got.ID != m.ID || got.UserID != "alice" || got.Status.Terminal() || store.reads.Load() != 0 {
		t.Fatalf("running: %+v, %v, %d store reads", got, err, store.reads.Load())
	}
	if _, err := e.svc.StreamTarget(context.Background(), &gymbro.Principal{UID: "bob"}, m.ID); gymbro.ErrorCode(err) != gymbro.CodeMessageNotFound {
		t.Errorf("another user's running exchange: %v, want message_not_found", err)
	}
	close(hold)
	if err := e.svc.Shutdown(context.Background()); err != nil { // waits for the generation's end
		t.Fatal(err)
	}
	got, err = e.svc.StreamTarget(context.Background(), alice, m.ID)
	if err != nil || got.Status != gymbro.StatusCompleted {
		t.Fatalf("finished: %+v, %v", got, err)
	}
}
