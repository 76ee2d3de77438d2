package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gymbro/gymbro-api/internal/testenv"
)

// TestControlCharactersAreRefusedOnBothStores: NUL (which PostgreSQL
// refuses in text, SQLite stores and Supabase would refuse forever in a
// chat record) and the other C0 controls but tab, CR and LF are 422
// text_control_character whatever the store, and nothing is stored.
func TestControlCharactersAreRefusedOnBothStores(t *testing.T) {
	pg := testenv.PostgresURL(t)
	stores := map[string]map[string]string{
		"sqlite":   nil,
		"postgres": {"GYMBRO_DATABASE_URL": pg, "GYMBRO_DATABASE_SCHEMA": testenv.PostgresSchema(t, pg, "gymbro_ctl_")},
	}
	for name, env := range stores {
		t.Run(name, func(t *testing.T) {
			a := startApp(t, env)
			tok := a.user("ctl-" + name + "@example.com")
			for _, text := range []string{`nul \u0000 inside`, `\u0000`, `bell \u0007`, `escape \u001b[31m red`} {
				r := a.do("POST", "/api/v1/messages", tok, `{"text":"`+text+`"}`)
				if r.status != http.StatusUnprocessableEntity || r.problem(t)["code"] != "text_control_character" {
					t.Errorf("%s: %d %s", text, r.status, r.body)
				}
			}
			if r := a.do("GET", "/api/v1/conversations", tok, nil); r.status != 200 || strings.TrimSpace(string(r.body)) != `{"items":[]}` {
				t.Errorf("refused posts left something behind: %s", r.body)
			}
			p := a.post(tok, "tab\tCR\rLF\nare fine", "")
			a.events(tok, p.MessageID, "", 0)
		})
	}
}
