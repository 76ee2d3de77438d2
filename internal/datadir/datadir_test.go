//go:build unix

package datadir_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/gymbro/gymbro-api/internal/datadir"
)

// mode is the permission bits of path.
func mode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// TestPrivateModes: created directories are 0700, files 0600, also with a
// permissive umask and in a directory that is 0755 already; earlier files
// left 0644 are made 0600.
func TestPrivateModes(t *testing.T) {
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })
	shared := t.TempDir()
	if err := os.Chmod(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(shared, "a", "b")
	if err := datadir.Create(dir); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{filepath.Join(shared, "a"), dir} {
		if m := mode(t, d); m != 0o700 {
			t.Errorf("%s is %v, want 0700", d, m)
		}
	}
	if err := datadir.Create(shared); err != nil || mode(t, shared) != 0o755 {
		t.Errorf("an existing directory changed: %v %v", mode(t, shared), err)
	}

	db := filepath.Join(shared, "x.db")
	if err := os.WriteFile(db+"-wal", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := datadir.PrepareSQLite(db); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{db, db + "-wal"} {
		if m := mode(t, p); m != 0o600 {
			t.Errorf("%s is %v, want 0600", p, m)
		}
	}
	keys := filepath.Join(shared, "keys.json")
	if err := datadir.WriteFile(keys, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, keys); m != 0o600 {
		t.Errorf("keys are %v, want 0600", m)
	}
	entries, _ := os.ReadDir(shared)
	if len(entries) != 4 { // a, x.db, x.db-wal, keys.json: no temporary file left
		t.Errorf("left behind: %v", entries)
	}
}

// TestErrorsNameThePath: a database in a directory that does not exist
// fails with an error that names it.
func TestErrorsNameThePath(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope", "x.db")
	err := datadir.PrepareSQLite(missing)
	var pe *fs.PathError
	if err == nil || !os.IsNotExist(err) || !errors.As(err, &pe) || pe.Path != missing {
		t.Fatalf("PrepareSQLite(%s) = %v", missing, err)
	}
}
