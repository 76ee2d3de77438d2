package web

import (
	"io/fs"
	"testing"
)

func TestDistIsRootedAtTheBuild(t *testing.T) {
	fsys, built := Dist()
	if fsys == nil {
		t.Fatal("Dist returned a nil FS")
	}
	// .keep is committed so the embed compiles; it must be at the root of
	// the returned FS, not under dist/.
	if _, err := fs.Stat(fsys, ".keep"); err != nil {
		t.Fatalf("dist/.keep not at the FS root: %v", err)
	}
	_, err := fs.Stat(fsys, "index.html")
	if built != (err == nil) {
		t.Fatalf("Dist reports built=%v but index.html stat error is %v", built, err)
	}
	if _, err := fs.Stat(fsys, "dist"); err == nil {
		t.Fatal("FS is not rooted at dist: it still contains dist/")
	}
}
