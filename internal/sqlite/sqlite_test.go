package sqlite_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/sqlite"
	"github.com/gymbro/gymbro-api/internal/storetest"
)

func open(t testing.TB, path string) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return db
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) gymbro.Store {
		db := open(t, filepath.Join(t.TempDir(), "gymbro.db"))
		t.Cleanup(func() {
			if err := db.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return db
	})
}

func TestReopenKeepsData(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "gymbro.db")
	db := open(t, path)
	in := gymbro.NewMessage{
		ID: uuid.NewString(), NewConversationID: uuid.NewString(), UserID: "u1",
		Provider: gymbro.ProviderSupabase, Text: "remember me", Lease: gymbro.Lease{Owner: "w", Until: time.Now().Add(time.Minute)}, Now: time.Now(),
	}
	m, _, err := db.CreateMessage(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.FinishMessage(ctx, m, gymbro.Result{Status: gymbro.StatusCompleted, Reply: "ok", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = open(t, path)
	defer db.Close()
	m, err = db.Message(ctx, "u1", in.ID)
	if err != nil {
		t.Fatalf("after reopen: %v", err)
	}
	if m.Text != "remember me" || m.Reply != "ok" || m.Status != gymbro.StatusCompleted {
		t.Errorf("after reopen: %+v", m)
	}
	if st, err := db.OutboxStats(ctx); err != nil || st.Pending != 1 {
		t.Errorf("outbox after reopen = %+v, %v; want 1 pending", st, err)
	}
}

func TestMigrateIdempotent(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "gymbro.db")
	a := open(t, path)
	if err := a.Migrate(ctx); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b := open(t, path) // Open migrates again
	defer b.Close()
	if err := b.Migrate(ctx); err != nil {
		t.Fatalf("Migrate after reopen: %v", err)
	}
	if err := b.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRefusesBadPath(t *testing.T) {
	_, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "a?b.db"))
	if gymbro.ErrorKind(err) != gymbro.KindInvalid {
		t.Fatalf("err = %v, want KindInvalid", err)
	}
	missing := filepath.Join(t.TempDir(), "missing-dir", "x.db")
	_, err = sqlite.Open(context.Background(), missing)
	// A path that cannot be opened is no outage: the message names it and
	// does not ask to try again.
	if gymbro.ErrorKind(err) != gymbro.KindInvalid || !strings.Contains(err.Error(), missing) ||
		strings.Contains(strings.ToLower(err.Error()), "try again") {
		t.Fatalf("Open in a missing directory: %v", err)
	}
}

// TestFilesArePrivate: the database and its WAL and SHM are 0600 in a
// directory that is 0755, and a database an earlier version left 0644 is
// made 0600.
func TestFilesArePrivate(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "gymbro.db")
	db := open(t, path)
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, want 0600", p, err)
		}
	}
	db.Close()
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	open(t, path).Close()
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("an earlier 0644 database: %v, %v", fi.Mode().Perm(), err)
	}
}

func BenchmarkCreateMessage(b *testing.B) {
	db := open(b, filepath.Join(b.TempDir(), "bench.db"))
	defer db.Close()
	storetest.BenchmarkCreateMessage(b, db, 1)
}

// TestFinishIsAtomic: a finish whose outbox insert fails changes nothing.
func TestFinishIsAtomic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gymbro.db")
	db := open(t, path)
	defer db.Close()
	raw, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	storetest.FinishIsAtomic(t, db, func(id string) {
		if _, err := raw.Exec(`INSERT INTO outbox (id, record, next_attempt_at, created_at) VALUES (?, '{}', 0, 0)`, id); err != nil {
			t.Fatal(err)
		}
	})
}

// TestMigrationToNamespacedUIDs: the migration moves a Firebase user's
// rows, stored under the bare sub, to firebase:<sub>; see
// storetest.LegacyUIDs.
func TestMigrationToNamespacedUIDs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gymbro.db")
	db := open(t, path)
	legacy := storetest.StoreLegacyUIDs(t, db)
	db.Close()
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`DELETE FROM schema_migrations WHERE version = 4`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	db = open(t, path)
	defer db.Close()
	legacy.Check(t, db)
}
