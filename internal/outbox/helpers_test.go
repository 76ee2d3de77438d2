package outbox_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/postgres"
	"github.com/gymbro/gymbro-api/internal/sqlite"
	"github.com/gymbro/gymbro-api/internal/supabasetest"
	"github.com/gymbro/gymbro-api/internal/testenv"
)

const key = "sb_secret_outboxTestKey0123456789"

func newClock() *testenv.Clock { return testenv.NewClock(time.Now().UTC().Truncate(time.Millisecond)) }

// backend is a place for a store that can be opened again after a close,
// as a restarted process would.
type backend struct {
	name string
	// place creates the file or schema (removed when t ends) and returns
	// how to open a store on it.
	place func(t testing.TB) func(t testing.TB) gymbro.Store
}

func sqliteBackend() backend {
	return backend{"sqlite", func(t testing.TB) func(t testing.TB) gymbro.Store {
		path := filepath.Join(t.TempDir(), "gymbro.db")
		return func(t testing.TB) gymbro.Store {
			t.Helper()
			db, err := sqlite.Open(context.Background(), path)
			if err != nil {
				t.Fatalf("sqlite.Open: %v", err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		}
	}}
}

func postgresBackend() backend {
	return backend{"postgres", func(t testing.TB) func(t testing.TB) gymbro.Store {
		url := testenv.PostgresURL(t)
		schema := testenv.PostgresSchema(t, url, "gymbro_outbox_")
		return func(t testing.TB) gymbro.Store {
			t.Helper()
			db, err := postgres.Open(context.Background(), url, postgres.WithSchema(schema), postgres.WithMaxConns(8))
			if err != nil {
				t.Fatalf("postgres.Open: %v", err)
			}
			t.Cleanup(func() { db.Close() }) // before the schema is dropped
			return db
		}
	}}
}

func backends() []backend { return []backend{sqliteBackend(), postgresBackend()} }

// finish runs n exchanges through the store the way the chat service does
// (create, finish), which enqueues their chat records, and returns
// their ids. The records fall due at at. Every third user signed in with Firebase.
func finish(t testing.TB, s gymbro.Store, n int, at time.Time) []string {
	t.Helper()
	ctx := context.Background()
	ids := make([]string, n)
	for i := range n {
		uid, provider := uuid.NewString(), gymbro.ProviderSupabase
		if i%3 == 2 {
			uid, provider = fmt.Sprintf("firebaseUid%017d", i), gymbro.ProviderFirebase
		}
		m, _, err := s.CreateMessage(ctx, gymbro.NewMessage{
			ID: uuid.NewString(), NewConversationID: uuid.NewString(), UserID: uid, Provider: provider,
			Text: fmt.Sprintf("set %d: how many reps?", i), TraceID: "trace-" + uuid.NewString()[:8],
			Lease: gymbro.Lease{Owner: "generator", Until: at.Add(time.Minute)}, Now: at.Add(-time.Second),
		})
		if err != nil {
			t.Fatalf("CreateMessage: %v", err)
		}
		if _, err := s.FinishMessage(ctx, m, gymbro.Result{
			Status: gymbro.StatusCompleted, Reply: "8 to 12", Model: "demo", FinishReason: "stop",
			Usage: gymbro.Usage{PromptTokens: 5, CompletionTokens: 3, TotalTokens: 8}, LastSeq: 4, At: at,
		}); err != nil {
			t.Fatalf("FinishMessage: %v", err)
		}
		ids[i] = m.ID
	}
	return ids
}

// wantDeliveredOnce fails t unless the fake holds exactly ids, each written
// exactly once, and saw no wire-contract violation.
func wantDeliveredOnce(t *testing.T, fake *supabasetest.PostgREST, ids []string) {
	t.Helper()
	if v := fake.Violations(); len(v) != 0 {
		t.Fatalf("wire contract broken: %v", v[0])
	}
	writes := fake.Writes()
	if len(writes) != len(ids) {
		t.Errorf("fake holds %d ids, want %d", len(writes), len(ids))
	}
	for _, id := range ids {
		if writes[id] != 1 {
			t.Errorf("record %s delivered %d times, want exactly once", id, writes[id])
		}
	}
	if fake.MaxInFlight() > 1 {
		t.Errorf("a record was sent %d times at once", fake.MaxInFlight())
	}
}

func wantStats(t *testing.T, stats func(context.Context) (gymbro.OutboxStats, error), pending, dead int) {
	t.Helper()
	st, err := stats(context.Background())
	if err != nil {
		t.Fatalf("OutboxStats: %v", err)
	}
	if st.Pending != pending || st.Dead != dead {
		t.Errorf("stats = %d pending, %d dead; want %d, %d", st.Pending, st.Dead, pending, dead)
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond) // polling interval, not a wait for an event
	}
}
