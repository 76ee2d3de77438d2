package sqlmigrate

import (
	"testing"
	"testing/fstest"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

func TestLoadOrdersByVersion(t *testing.T) {
	fsys := fstest.MapFS{
		"m/0010_later.sql": {Data: []byte("B")},
		"m/0002_first.sql": {Data: []byte("A")},
	}
	got, err := Load(fsys, "m")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != (Migration{2, "A"}) || got[1] != (Migration{10, "B"}) {
		t.Fatalf("got %+v", got)
	}
}

func TestLoadRefusesBadNames(t *testing.T) {
	for name, fsys := range map[string]fstest.MapFS{
		"no number":      {"m/init.sql": {}},
		"not sql":        {"m/0001_init.txt": {}},
		"same version":   {"m/0001_a.sql": {}, "m/0001_b.sql": {}},
		"missing folder": {},
	} {
		if _, err := Load(fsys, "m"); gymbro.ErrorKind(err) != gymbro.KindInternal || err == nil {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}
