// Package web embeds the developer console, built by Vite into web/dist, so
// the one gymbro binary serves it at "/".
//
// The build output is not committed (only dist/.keep is, so this package
// compiles on a fresh clone); run `npm ci && npm run build` in web/ before
// `go build` to include the console.
package web

import (
	"embed"
	"io/fs"
)

// "all:" keeps files whose names start with "." or "_", which Vite may emit
// and plain go:embed would silently drop.
//
//go:embed all:dist
var dist embed.FS

// Dist returns the console's files, rooted at the build directory, and
// whether a build is present (dist/index.html exists). Without one the server
// should still start and tell the operator how to build the console.
func Dist() (fs.FS, bool) {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		// fs.Sub fails only for an invalid path; "dist" is valid.
		return dist, false
	}
	info, err := fs.Stat(sub, "index.html")
	return sub, err == nil && !info.IsDir()
}
