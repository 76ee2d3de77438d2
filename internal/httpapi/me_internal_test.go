package httpapi

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// TestMeCache checks that a kept /me body serves only the principal it was
// encoded from: the same fields and the very same Claims map.
func TestMeCache(t *testing.T) {
	c := newMeCache()
	exp := time.Date(2026, 12, 4, 6, 0, 0, 0, time.UTC)
	claims := map[string]any{"aud": "authenticated", "exp": 1.7e9}
	p := &gymbro.Principal{UID: "u1", SessionID: "s1", Email: "a@example.com", Provider: "supabase", Issuer: "iss", Role: "authenticated", ExpiresAt: exp, Claims: claims}
	if c.get(p) != nil {
		t.Fatal("an empty cache served a body")
	}
	body, err := encodeMe(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.put(p, body)
	same := *p // the verifier answers each request with a copy sharing Claims
	if got := c.get(&same); !bytes.Equal(got, body) {
		t.Fatalf("a copy of the principal got %q, want %q", got, body)
	}
	refreshed := same
	refreshed.Claims = map[string]any{"aud": "authenticated", "exp": 1.7e9} // equal content, another token
	changed := same
	changed.Email = "b@example.com"
	later := same
	later.ExpiresAt = exp.Add(time.Hour)
	noClaims := same
	noClaims.Claims = nil
	for name, q := range map[string]*gymbro.Principal{"new claims map": &refreshed, "other email": &changed, "other expiry": &later, "nil claims": &noClaims} {
		if got := c.get(q); got != nil {
			t.Errorf("%s: served the kept body %q", name, got)
		}
	}
	c.put(&noClaims, []byte("x"))
	if got := c.get(&noClaims); got != nil {
		t.Errorf("a principal without claims was kept: %q", got)
	}
}

// TestHandleMeKeepsBody checks that handleMe answers a repeated principal
// with the bytes a fresh encoding gives, and that a newer principal of the
// same user and session replaces the kept body.
func TestHandleMeKeepsBody(t *testing.T) {
	s := New(nil, nil, Options{})
	exp := time.Date(2026, 12, 4, 6, 0, 0, 0, time.UTC)
	p := &gymbro.Principal{UID: "u1", SessionID: "s1", Provider: "supabase", Issuer: "iss", ExpiresAt: exp, Claims: map[string]any{"exp": 1.0}}
	serve := func(p *gymbro.Principal) string {
		cp := *p
		r := httptest.NewRequest("GET", "/api/v1/me", nil)
		r = r.WithContext(gymbro.NewContextWithPrincipal(r.Context(), &cp))
		w := httptest.NewRecorder()
		s.handleMe(w, r)
		if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("HTTP %d, Content-Type %q", w.Code, w.Header().Get("Content-Type"))
		}
		return w.Body.String()
	}
	want := func(p *gymbro.Principal) string {
		b, err := encodeMe(p, nil)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for range 2 {
		if got := serve(p); got != want(p) {
			t.Fatalf("body %q, want %q", got, want(p))
		}
	}
	next := *p
	next.ExpiresAt = exp.Add(time.Hour)
	next.Claims = map[string]any{"exp": 2.0}
	if got := serve(&next); got != want(&next) {
		t.Fatalf("after a refresh: body %q, want %q", got, want(&next))
	}
	if got := serve(p); got != want(p) {
		t.Fatalf("the older token again: body %q, want %q", got, want(p))
	}
}
