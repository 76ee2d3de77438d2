// Package sqlmigrate reads a store's embedded migration files. Each store
// applies them itself (its SQL dialect and locking differ); what they share
// is the naming rule and the order, so that lives here once.
package sqlmigrate

import (
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// Migration is one file: NNNN_description.sql, applied in version order.
type Migration struct {
	Version int
	SQL     string
}

// Load returns the migrations in dir of fsys, ordered by version. A file
// not named NNNN_description.sql, or two files with one version, is an
// error: both are a build mistake, not something to skip.
func Load(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, internal(err)
	}
	var out []Migration
	seen := map[int]string{}
	for _, e := range entries {
		prefix, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(prefix)
		if !ok || err != nil || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, gymbro.Errorf(gymbro.KindInternal, gymbro.CodeInternal, "Migration %q is not named NNNN_name.sql.", e.Name())
		}
		if other, dup := seen[v]; dup {
			return nil, gymbro.Errorf(gymbro.KindInternal, gymbro.CodeInternal, "Migrations %q and %q share version %d.", other, e.Name(), v)
		}
		seen[v] = e.Name()
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, internal(err)
		}
		out = append(out, Migration{Version: v, SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

func internal(err error) error {
	return gymbro.Wrap(fmt.Errorf("read migrations: %w", err), gymbro.KindInternal, gymbro.CodeInternal, "Storage failed.")
}
