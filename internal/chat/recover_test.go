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

// TestRecoverSparesLiveLeases: in a fleet, another instance's reaper must
// not interrupt a message whose generation holds a live lease, nor one an
// earlier version stored queued a moment ago (it had no lease until its
// generation took it); once the lease lapses, or the queued one is older
// than a lease, each ends interrupted.
func TestRecoverSparesLiveLeases(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "gymbro.db")
	store, err := sqlite.Open(ctx, path)
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
		UserID: "u1", Provider: "supabase", Text: "hi", Lease: gymbro.Lease{Owner: "dead-instance", Until: clk.Now().Add(10 * time.Second)}, Now: clk.Now()})
	if err != nil {
		t.Fatal(err)
	}
	// A row as an earlier version wrote it: queued, no lease.
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	const queuedID = "01900000-0000-7000-8000-0000000000c3"
	if _, err := raw.Exec(`INSERT INTO messages (id, conversation_id, user_id, provider, text, status, created_at, updated_at)
		VALUES (?, ?, 'u1', 'supabase', 'hi', 'queued', ?, ?)`, queuedID, m.ConversationID, clk.Now().UnixMicro(), clk.Now().UnixMicro()); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	if n, err := svc.Recover(ctx, false); err != nil || n != 0 {
		t.Fatalf("Recover reaped %d (%v) messages under a live lease or freshly queued", n, err)
	}
	if got, _ := store.MessageByID(ctx, m.ID); got.Status != gymbro.StatusWorking {
		t.Fatalf("status %s", got.Status)
	}
	clk.Advance(11 * time.Second)
	if n, err := svc.Recover(ctx, false); err != nil || n != 2 {
		t.Fatalf("Recover reaped %d (%v), want the 2 abandoned messages", n, err)
	}
	for _, id := range []string{m.ID, queuedID} {
		got, _ := store.MessageByID(ctx, id)
		evs, _ := log.Read(ctx, id, 0, 10)
		if got.Status != gymbro.StatusInterrupted || len(evs) != 1 || evs[0].Code != gymbro.CodeInterrupted {
			t.Fatalf("%s: status %s, events %+v", id, got.Status, evs)
		}
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
		UserID: "u1", Provider: "supabase", Text: "hi", Lease: gymbro.Lease{Owner: "w", Until: time.Now().Add(time.Minute)}, Now: time.Now()}); err != nil {
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
