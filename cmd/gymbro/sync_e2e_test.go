package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/gymbro/gymbro-api/internal/supabase/emulator"
	"github.com/gymbro/gymbro-api/internal/supabasetest"
)

// fakeSupabase is a hosted Supabase project as this service sees it: Auth
// at /auth/v1 (the emulator, which speaks Supabase Auth's wire format) and
// PostgREST at /rest/v1 (a fake speaking PostgREST's), behind one base URL.
func fakeSupabase(t *testing.T) (base string, rest *supabasetest.PostgREST) {
	t.Helper()
	const anon, service = "sb_publishable_e2e", "sb_secret_e2e"
	rest = supabasetest.New(t, service)
	mux, base, auth := hostedAuth(t, anon, service)
	mux.Handle("/auth/v1/", auth)
	target, _ := url.Parse(rest.URL())
	mux.Handle("/rest/v1/", httputil.NewSingleHostReverseProxy(target))
	return base, rest
}

// hostedAuth serves the emulator as hosted Supabase Auth would be reached:
// it returns the project's mux and base URL, and the handler to mount at
// /auth/v1/ (the caller may wrap it).
func hostedAuth(t *testing.T, anon, service string) (mux *http.ServeMux, base string, auth http.Handler) {
	t.Helper()
	mux = http.NewServeMux()
	front := httptest.NewServer(mux)
	t.Cleanup(front.Close)
	emu, err := emulator.Open(context.Background(), emulator.Options{Dir: t.TempDir(), Issuer: front.URL + "/auth/v1", AnonKey: anon, ServiceRoleKey: service, BcryptCost: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	return mux, front.URL, http.StripPrefix("/auth/v1", emu.Handler())
}

// TestChatRecordsSyncToSupabase: exchanges finished while Supabase's REST
// endpoint is down land there, each exactly once, after it recovers.
func TestChatRecordsSyncToSupabase(t *testing.T) {
	base, rest := fakeSupabase(t)
	a := startApp(t, map[string]string{
		"SUPABASE_URL": base, "SUPABASE_ANON_KEY": "sb_publishable_e2e", "SUPABASE_SERVICE_ROLE_KEY": "sb_secret_e2e",
	})
	if a.main.Emulator != nil {
		t.Fatal("the local emulator runs although SUPABASE_URL is set")
	}
	tok := a.userVia(base, "sb_publishable_e2e", "sb_secret_e2e", "sync@example.com")
	rest.SetMode(supabasetest.Outage, "")
	var ids []string
	for i := 0; i < 5; i++ {
		p := a.post(tok, "sync me", "")
		a.events(tok, p.MessageID, "", 0)
		ids = append(ids, p.MessageID)
	}
	r := a.do("GET", "/api/v1/readyz", "", nil)
	if !strings.Contains(string(r.body), `"sync_outbox":{"status":"up","detail":{`) {
		t.Fatalf("readyz: %s", r.body)
	}
	waitFor(t, "an attempt during the outage", func() bool { return rest.Requests() > 0 })
	if rest.Len() != 0 {
		t.Fatal("rows landed during an outage")
	}
	rest.SetMode(supabasetest.Up, "")
	a.main.Outbox.Notify()
	waitFor(t, "all rows in Supabase", func() bool { return rest.Len() == len(ids) })
	row := rest.Row(ids[0])
	if row["user_message"] != "sync me" || row["status"] != "completed" || row["ai_response"] == "" || row["provider"] != "supabase" || row["user_id"] == nil {
		t.Fatalf("row %v", row)
	}
	if v := rest.Violations(); len(v) > 0 {
		t.Fatalf("wire contract violations: %v", v)
	}
}
