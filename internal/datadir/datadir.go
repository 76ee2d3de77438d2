// Package datadir keeps what the service writes in its data directory
// (GYMBRO_DATA_DIR) private to the user it runs as: the directories it
// creates are 0700 and every file it writes 0600, whatever the mode of a
// directory that existed already (an image's /data made 0755, a directory
// other users share). The files hold what must not leak: conversations,
// refresh tokens and password hashes in the databases, and keys that mint
// tokens the service trusts.
package datadir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Modes of what the service makes in its data directory.
const (
	DirMode  fs.FileMode = 0o700
	FileMode fs.FileMode = 0o600
)

// Create makes dir, with any missing parent, 0700; a directory that exists
// keeps its mode. The error names the path.
func Create(dir string) error {
	if err := os.MkdirAll(dir, DirMode); err != nil {
		return fmt.Errorf("create the data directory: %w", err)
	}
	return nil
}

// PrepareSQLite makes the SQLite database at path private before SQLite
// opens it: a missing database file is created empty (which SQLite takes
// as a new database) with mode 0600, which SQLite gives the -wal and -shm
// files it creates beside it; an existing database and its -wal, -shm and
// -journal files are set to 0600 (earlier versions left them 0644). An
// error names the path: the directory is missing, or the file cannot be
// written by this user.
func PrepareSQLite(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, FileMode)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return Restrict(path, path+"-wal", path+"-shm", path+"-journal")
}

// Restrict sets each of paths that exists to 0600.
func Restrict(paths ...string) error {
	for _, p := range paths {
		if err := os.Chmod(p, FileMode); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// WriteFile replaces path with data, 0600, atomically: a concurrent reader
// sees the old file or the new one, never a torn write.
func WriteFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	err = tmp.Chmod(FileMode) // CreateTemp's 0600 is before the umask; say it outright
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
