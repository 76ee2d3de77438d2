package httpapi

import (
	_ "embed"
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

// docsPage renders the description with Swagger UI, as FastAPI's /docs does
// (and, like FastAPI, loads Swagger UI's assets from a CDN).
const docsPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>GymBro API docs</title>
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"></head>
<body><div id="ui"></div>
<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/api/v1/openapi.json", dom_id: "#ui"});</script>
<noscript>The API description is at <a href="/api/v1/openapi.json">/api/v1/openapi.json</a>.</noscript>
</body></html>`

// handleDocs serves GET /docs, the human docs page.
func (s *Server) handleDocs(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	// Swagger UI needs its CDN; everything else keeps the default policy.
	_, _ = w.Write([]byte(docsPage))
}
