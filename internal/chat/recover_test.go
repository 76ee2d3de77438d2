package chat_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/gymbro/gymbro-api/internal/chat"
	"github.com/gymbro/gymbro-api/internal/demo"
	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/inmem"
	"github.com/gymbro/gymbro-api/internal/sqlite"
	"github.com/gymbro/gymbro-api/internal/testenv"
)

// TestRecoverSparesFreshQueuedMessages: in a fleet, another instance's
// reaper must not interrupt a message stored a moment ago whose generation
// has not started yet (it has no lease until then); one left queued for
// longer than a lease is abandoned and ends interrupted.
func TestRecoverSparesFreshQueuedMessages(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "gymbro.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	log := inmem.NewEventLog(inmem.Options{})
	defer log.Close()
	clk := testenv.NewClock(time.Now())
	svc := chat.New(chat.Options{Store: store, Log: log, Model: demo.New(demo.Options{}), LeaseTTL: 10 * time.Second, Now: clk.Now})
	defer svc.Shutdown(ctx)

	m, _, err := store.CreateMessage(ctx, gymbro.NewMessage{ID: "01900000-0000-7000-8000-0000000000c1", NewConversationID: "01900000-0000-7000-8000-0000000000c2",
		UserID: "u1", Provider: "supabase", Text: "hi", Now: clk.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := svc.Recover(ctx, false); err != nil || n != 0 {
		t.Fatalf("Recover reaped %d (%v) fresh queued messages", n, err)
	}
	if got, _ := store.MessageByID(ctx, m.ID); got.Status != gymbro.StatusQueued {
		t.Fatalf("status %s", got.Status)
	}
	clk.Advance(11 * time.Second)
	if n, err := svc.Recover(ctx, false); err != nil || n != 1 {
		t.Fatalf("Recover reaped %d (%v), want the abandoned message", n, err)
	}
	got, _ := store.MessageByID(ctx, m.ID)
	evs, _ := log.Read(ctx, m.ID, 0, 10)
	if got.Status != gymbro.StatusInterrupted || len(evs) != 1 || evs[0].Code != gymbro.CodeInterrupted {
		t.Fatalf("status %s, events %+v", got.Status, evs)
	}
}

// TestFinishGivesUpAtShutdown: when the store keeps refusing to persist a
// result after shutdown began, finish makes one last try and returns,
// instead of retrying forever (which once kept a stopping server spinning).
func TestFinishGivesUpAtShutdown(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "gymbro.db")
	store, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	log := inmem.NewEventLog(inmem.Options{})
	defer log.Close()
	svc := chat.New(chat.Options{Store: store, Log: log, Model: demo.New(demo.Options{})})
	if _, _, err := store.CreateMessage(ctx, gymbro.NewMessage{ID: "01900000-0000-7000-8000-0000000000d1", NewConversationID: "01900000-0000-7000-8000-0000000000d2",
		UserID: "u1", Provider: "supabase", Text: "hi", Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	// Make every FinishMessage fail: its outbox insert has no table.
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`DROP TABLE outbox`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	if err := svc.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := svc.Recover(ctx, true); done <- err }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("finish kept retrying after shutdown")
	}
}
