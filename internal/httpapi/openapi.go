package httpapi

import (
	_ "embed"
	"io/fs"
	"net/http"
)

// openAPI is the API description, kept true to the route table by a test.
//
//go:embed openapi.json
var openAPI []byte

// handleOpenAPI serves GET /api/v1/openapi.json.
func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(openAPI)
}

// docsCSP lets /docs load scripts, styles and the description from this
// origin only (Swagger UI sets inline style attributes, hence
// 'unsafe-inline' for styles alone).
const docsCSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
	"font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// docsFallback is /docs when the console (and with it Swagger UI) is not
// built: no CDN either way, just the way to the description.
const docsFallback = `<!doctype html>
<html><head><meta charset="utf-8"><title>GymBro API docs</title></head>
<body><h1>GymBro API</h1>
<p>The OpenAPI description is at <a href="/api/v1/openapi.json">/api/v1/openapi.json</a>.
Build the console (<code>make web</code>) to browse it here with Swagger UI.</p>
</body></html>`

// handleDocs serves GET /docs: Swagger UI over the description, as
// FastAPI's /docs is, with Swagger UI's files built into the console and
// served from this origin, so the page works offline.
func (s *Server) handleDocs(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Security-Policy", docsCSP)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	if s.opts.Console != nil {
		if page, err := fs.ReadFile(s.opts.Console, "docs.html"); err == nil {
			_, _ = w.Write(page)
			return
		}
	}
	_, _ = w.Write([]byte(docsFallback))
}
