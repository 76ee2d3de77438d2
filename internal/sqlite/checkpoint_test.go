package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gymbro/gymbro-api/internal/sqlite"
)

// TestCheckpointerKeepsWALBounded: the write connection never checkpoints
// (wal_autocheckpoint is 0), so the background checkpointer alone keeps the
// WAL from growing with every commit, and empties it once writes stop.
func TestCheckpointerKeepsWALBounded(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "gymbro.db")
	db, err := sqlite.Open(ctx, path, sqlite.WithCheckpoint(16, 20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()

	// 5,000 commits of at least one 4 KiB page each: 20 MB of WAL if
	// nothing checkpointed them.
	const commits = 5000
	var most int64
	for i := range commits {
		if err := db.ChargeTokens(ctx, "u1", "2026-12-08", int64(i+1)); err != nil {
			t.Fatal(err)
		}
		if i%100 == 0 {
			most = max(most, walSize(t, path))
		}
	}
	most = max(most, walSize(t, path))
	passive, _ := db.Checkpoints()
	t.Logf("largest WAL seen %d bytes; %d PASSIVE checkpoints", most, passive)
	if passive == 0 {
		t.Errorf("no PASSIVE checkpoint ran in %d commits", commits)
	}
	if most > 8<<20 {
		t.Errorf("WAL grew to %d bytes in %d commits; want it bounded by the checkpoints", most, commits)
	}

	// Idle: the WAL is truncated to nothing.
	deadline := time.Now().Add(10 * time.Second)
	for walSize(t, path) != 0 {
		if time.Now().After(deadline) {
			_, truncates := db.Checkpoints()
			t.Fatalf("WAL still %d bytes after writes stopped (%d TRUNCATE checkpoints)", walSize(t, path), truncates)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if used, err := db.TokensUsed(ctx, "u1", "2026-12-08"); err != nil || used != commits*(commits+1)/2 {
		t.Fatalf("TokensUsed = %d, %v; want %d", used, err, commits*(commits+1)/2)
	}
}

func walSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path + "-wal")
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
