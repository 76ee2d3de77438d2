package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// wantPrivate fails unless dir is 0700 (when created) and every file in
// it 0600, and returns the files' names.
func wantPrivate(t *testing.T, dir string, created bool) []string {
	t.Helper()
	if fi, err := os.Stat(dir); err != nil || (created && fi.Mode().Perm() != 0o700) {
		t.Fatalf("data directory %s: %v, %v", dir, fi.Mode().Perm(), err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, e.Name())
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s is %v, want 0600", e.Name(), fi.Mode().Perm())
		}
	}
	return names
}

// TestCommandsOnAFreshMachine: every command that opens the store (or the
// emulator's keys) works where the data directory does not exist yet,
// creating it 0700 with its files 0600, as serve does. A data directory
// that cannot be made fails with its path named, never "try again".
func TestCommandsOnAFreshMachine(t *testing.T) {
	commands := [][]string{{"migrate"}, {"sync", "status"}, {"sync", "retry"}, {"auth", "rotate-key"}}
	for _, args := range commands {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "fresh", "data")
			if code, out, errs := runCLI(t, map[string]string{"GYMBRO_DATA_DIR": dir}, args...); code != 0 {
				t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
			}
			if names := wantPrivate(t, dir, true); len(names) == 0 {
				t.Error("nothing was written")
			}
		})
	}
	blocker := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	taken := t.TempDir() // its gymbro.db is a directory: the database cannot be opened
	if err := os.Mkdir(filepath.Join(taken, "gymbro.db"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ dir, named string }{
		{filepath.Join(blocker, "data"), blocker},
		{taken, filepath.Join(taken, "gymbro.db")},
	} {
		for _, args := range commands {
			if args[0] == "auth" && c.dir == taken {
				continue // the keys do not live in the database
			}
			code, _, errs := runCLI(t, map[string]string{"GYMBRO_DATA_DIR": c.dir}, args...)
			if code != 1 || !strings.Contains(errs, c.named) || strings.Contains(strings.ToLower(errs), "try again") {
				t.Errorf("%v in %s: exit %d, %q; want 1, the path named, no \"try again\"", args, c.dir, code, errs)
			}
		}
	}
}

// TestServiceFilesArePrivate: in a data directory that exists already
// with 0755 (as an image's /data did), everything the service writes (the
// store and the emulator's databases with their WAL and SHM, the keys, the
// development operator's file) is 0600.
func TestServiceFilesArePrivate(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	a := startApp(t, map[string]string{"GYMBRO_DATA_DIR": dir})
	tok := a.user("files@example.com")
	p := a.post(tok, "hi", "")
	a.events(tok, p.MessageID, "", 0)
	names := wantPrivate(t, dir, false)
	for _, want := range []string{"gymbro.db", "gymbro.db-wal", "gymbro.db-shm", "auth.db", "auth.db-wal", "auth.db-shm",
		"auth_signing_keys.json", "auth_api_keys.json", "dev-operator.json"} {
		if !slices.Contains(names, want) {
			t.Errorf("no %s among %v", want, names)
		}
	}
}
