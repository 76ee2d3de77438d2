package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

func TestPanicBecomesAProblem(t *testing.T) {
	s := New(nil, nil, Options{Logger: quietLogger()})
	h := s.observe(s.secure(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom: secret detail") })))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/anything", nil))
	var p Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	if rec.Code != 500 || p.Code != "internal" || p.RequestID == "" || p.RequestID != rec.Header().Get("X-Trace-Id") {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if strings.Contains(rec.Body.String(), "secret detail") {
		t.Fatal("the panic value reached the client")
	}
}

func TestSecurityHeaders(t *testing.T) {
	s := New(nil, nil, Options{Logger: quietLogger()})
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/healthz", nil))
	for k, want := range map[string]string{
		"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
	} {
		if got := rec.Header().Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if rec.Header().Get("Strict-Transport-Security") != "" {
		t.Error("HSTS over plain HTTP")
	}
	req := httptest.NewRequest("GET", "https://example.com/api/v1/healthz", nil)
	rec = httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if !strings.HasPrefix(rec.Header().Get("Strict-Transport-Security"), "max-age=") {
		t.Errorf("no HSTS under TLS: %v", rec.Header())
	}
}

func TestBearerChallenge(t *testing.T) {
	if got := bearerChallenge("token_missing", "x"); got != `Bearer realm="gymbro"` {
		t.Errorf("missing: %q", got)
	}
	got := bearerChallenge("token_expired", "The token \"expired\"\n at\\ 12:00 ✓")
	if got != `Bearer realm="gymbro", error="invalid_token", error_description="The token expired at 12:00 "` {
		t.Errorf("expired: %q", got)
	}
}

func TestCORSOnlyForConfiguredOrigins(t *testing.T) {
	s := New(nil, nil, Options{Logger: quietLogger(), CORSOrigins: []string{"https://app.example.com"}})
	for origin, allowed := range map[string]bool{"https://app.example.com": true, "https://evil.example.com": false} {
		req := httptest.NewRequest("OPTIONS", "/api/v1/messages", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if got := rec.Header().Get("Access-Control-Allow-Origin") == origin; got != allowed {
			t.Errorf("%s: allowed=%v, want %v (%v)", origin, got, allowed, rec.Header())
		}
	}
}

// TestConsoleServesOnlyBuiltAssets: a CSP on every console page, and no
// dotfile, source map or other stray file a build could leave behind.
func TestConsoleServesOnlyBuiltAssets(t *testing.T) {
	s := New(nil, nil, Options{Logger: quietLogger(), Console: fstest.MapFS{
		"index.html":          {Data: []byte("<!doctype html>console")},
		"assets/app-1.js":     {Data: []byte("js")},
		"assets/app-1.js.map": {Data: []byte("{}")},
		".env":                {Data: []byte("SECRET=1")},
		"assets/.hidden.js":   {Data: []byte("x")},
		"notes.md":            {Data: []byte("x")},
	}, ConsoleConfig: func() ConsoleConfig { return ConsoleConfig{AuthURL: "https://abc.supabase.co/auth/v1"} }})
	get := func(path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		return rec
	}
	for _, path := range []string{"/", "/ai/jwt", "/assets/app-1.js"} {
		rec := get(path)
		csp := rec.Header().Get("Content-Security-Policy")
		if rec.Code != http.StatusOK || !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "connect-src 'self' https://abc.supabase.co") {
			t.Errorf("%s: %d, CSP %q", path, rec.Code, csp)
		}
	}
	for _, path := range []string{"/assets/app-1.js.map", "/.env", "/assets/.hidden.js", "/notes.md"} {
		if rec := get(path); rec.Code != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", path, rec.Code)
		}
	}
}

// TestEvery503And429SaysWhenToRetry: a 503 or 429 carries Retry-After even
// when its cause named no wait; one that did keeps its own.
func TestEvery503And429SaysWhenToRetry(t *testing.T) {
	s := New(nil, nil, Options{Logger: quietLogger()})
	for _, c := range []struct {
		err  error
		want string
	}{
		{gymbro.Errorf(gymbro.KindUnavailable, gymbro.CodeUnavailable, "The store is down."), "2"},
		{gymbro.Errorf(gymbro.KindRateLimited, gymbro.CodeRateLimited, "Slow down."), "2"},
		{&gymbro.Error{Kind: gymbro.KindRateLimited, Code: gymbro.CodeRateLimited, RetryAfter: 7 * time.Second}, "7"},
		{gymbro.Errorf(gymbro.KindInvalid, gymbro.CodeInvalidJSON, "Bad."), ""},
	} {
		rec := httptest.NewRecorder()
		s.writeError(rec, httptest.NewRequest("GET", "/", nil), c.err)
		if got := rec.Header().Get("Retry-After"); got != c.want {
			t.Errorf("%v: Retry-After %q, want %q", c.err, got, c.want)
		}
	}
}
