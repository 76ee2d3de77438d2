package httpapi

import (
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
)

// handleConsoleConfig serves GET /api/v1/console/config: what the console
// needs to sign in (the auth URL and the public anon key, never a secret).
func (s *Server) handleConsoleConfig(w http.ResponseWriter, r *http.Request) {
	if s.opts.ConsoleConfig == nil {
		writeJSON(w, http.StatusOK, ConsoleConfig{Version: s.opts.Version})
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Add("Vary", "Origin, Sec-Fetch-Site")
	cfg := s.opts.ConsoleConfig()
	if !s.sameOrigin(r) {
		cfg.DevOperator = nil // never to another site's page
	}
	writeJSON(w, http.StatusOK, cfg)
}

const consoleMissing = `<!doctype html><meta charset="utf-8"><title>GymBro API</title>
<body style="font-family:system-ui;max-width:40rem;margin:4rem auto;line-height:1.5">
<h1>GymBro API is running</h1>
<p>The developer console has not been built into this binary. Build it with
<code>make web</code> (or <code>cd web &amp;&amp; npm ci &amp;&amp; npm run build</code>) and restart;
<code>make run</code> does both.</p>
<p>The API is at <a href="/api/v1/healthz">/api/v1/healthz</a>; its description at <a href="/docs">/docs</a>.</p>`

// consoleHandler serves the built console, with index.html for every path
// that is not a file, so the console's history-mode routes (/ai/jwt) load.
func (s *Server) consoleHandler() http.Handler {
	h := s.spa()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Unknown API paths are API errors, not console pages.
		if strings.HasPrefix(r.URL.Path, "/api/") || strings.HasPrefix(r.URL.Path, "/auth/") {
			writeProblem(w, r, http.StatusNotFound, "not_found", "No such endpoint: "+r.Method+" "+r.URL.Path+". See /api/v1/openapi.json.", nil)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// servedTypes are the file types a console build is made of; anything else
// a build might leave behind (source maps, dotfiles, a stray .env) is not
// served.
var servedTypes = map[string]bool{
	".html": true, ".js": true, ".css": true, ".svg": true, ".png": true, ".ico": true,
	".webp": true, ".jpg": true, ".woff": true, ".woff2": true, ".txt": true,
}

// servable reports whether the console may serve name: no part of it is a
// dotfile, and it is a page route (no extension) or a built asset type.
func servable(name string) bool {
	for part := range strings.SplitSeq(name, "/") {
		if strings.HasPrefix(part, ".") {
			return false
		}
	}
	ext := path.Ext(name)
	return ext == "" || servedTypes[ext]
}

// consoleCSP lets the console run only its own scripts and styles, and talk
// only to this origin and the Supabase Auth it signs in with.
func (s *Server) consoleCSP() string {
	connect := "'self'"
	if s.opts.ConsoleConfig != nil {
		if u, err := url.Parse(s.opts.ConsoleConfig().AuthURL); err == nil && u.Scheme != "" && u.Host != "" {
			connect += " " + u.Scheme + "://" + u.Host
		}
	}
	return "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; " +
		"connect-src " + connect + "; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
}

func (s *Server) spa() http.Handler {
	dist := s.opts.Console
	if dist == nil {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/" && !strings.HasPrefix(r.URL.Path, "/ai/") && r.URL.Path != "/login" {
				writeProblem(w, r, http.StatusNotFound, "not_found", "No such page.", nil)
				return
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write([]byte(consoleMissing))
		})
	}
	files := http.FileServerFS(dist)
	csp := s.consoleCSP()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", csp)
		name := strings.TrimPrefix(path.Clean(r.URL.Path), "/")
		if name == "" {
			name = "index.html"
		}
		if !servable(name) {
			writeProblem(w, r, http.StatusNotFound, "not_found", "No such file.", nil)
			return
		}
		if st, err := fs.Stat(dist, name); err != nil || st.IsDir() {
			if strings.Contains(path.Base(name), ".") {
				writeProblem(w, r, http.StatusNotFound, "not_found", "No such file.", nil)
				return
			}
			r2 := r.Clone(r.Context())
			r2.URL.Path = "/"
			w.Header().Set("Cache-Control", "no-cache")
			files.ServeHTTP(w, r2)
			return
		}
		if strings.HasPrefix(name, "assets/") {
			// Vite puts a content hash in every asset name.
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		}
		files.ServeHTTP(w, r)
	})
}
