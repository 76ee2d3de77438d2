package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/gymbro/gymbro-api/internal/auth/authtest"
	"github.com/gymbro/gymbro-api/internal/firebase/firebasetest"
	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/supabase"
	"github.com/gymbro/gymbro-api/internal/supabasetest"
)

// countingAuth is hosted Supabase (Auth and PostgREST behind one URL, as
// fakeSupabase) that counts the Auth requests by method and path.
type countingAuth struct {
	base string
	rest *supabasetest.PostgREST
	mu   sync.Mutex
	hits map[string]int
}

func newCountingAuth(t *testing.T, anon, service string) *countingAuth {
	t.Helper()
	c := &countingAuth{hits: map[string]int{}, rest: supabasetest.New(t, service)}
	mux, base, authHandler := hostedAuth(t, anon, service)
	c.base = base
	mux.Handle("/auth/v1/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.hits[r.Method+" "+r.URL.Path]++
		c.mu.Unlock()
		authHandler.ServeHTTP(w, r)
	}))
	target, _ := url.Parse(c.rest.URL())
	mux.Handle("/rest/v1/", httputil.NewSingleHostReverseProxy(target))
	return c
}

func (c *countingAuth) count(methodPath string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits[methodPath]
}

// TestOneSubOfThreeIssuersIsThreeUsers: with Supabase, Firebase and an
// OIDC issuer trusted at once, in production, a Firebase token and an OIDC
// token whose sub is a Supabase user's id (and whose verified email is
// that user's, an operator's) are users of their own: they see none of the
// Supabase user's conversations or messages, get another uid at /me, never
// get the Supabase profile from /me?details=true (Supabase is not even
// asked; the Firebase user gets Firebase's profile of its own user), are no
// operators, and are not affected by that user's ban.
func TestOneSubOfThreeIssuersIsThreeUsers(t *testing.T) {
	const anon, service = "sb_publishable_ids", "sb_secret_ids"
	supa := newCountingAuth(t, anon, service)
	fb, oidc := authtest.NewRSAKeys(t), authtest.NewRSAKeys(t)
	google := firebasetest.NewGoogle(t, "gym") // Firebase's user look-ups, as production needs
	a := startAppSetup(t, appEnv(t, map[string]string{
		"GYMBRO_ENV": "production", "SUPABASE_URL": supa.base, "SUPABASE_ANON_KEY": anon, "SUPABASE_SERVICE_ROLE_KEY": service,
		"FIREBASE_PROJECT_ID": "gym", "FIREBASE_JWKS_URL": fb.JWKSURL(), "FIREBASE_SERVICE_ACCOUNT_JSON": string(google.KeyJSON()),
		"GYMBRO_OIDC_ISSUERS":       oidc.URL() + "|gym-app|" + oidc.JWKSURL(),
		"GYMBRO_TEST_USERS_ENABLED": "true", "GYMBRO_TEST_USERS_ADMINS": "victim@example.com",
		"GYMBRO_AI_PROVIDER": "demo", "GYMBRO_SESSION_CHECK_TTL": "1s", "GYMBRO_MAX_RUNNING_PER_USER": "100", "GYMBRO_RATE_LIMIT": "0",
	}), io.Discard, func(m *Main) { m.IdentityToolkitURL = google.URL })
	admin := supabase.NewAuthClient(supabase.AuthConfig{URL: supa.base, AnonKey: anon, ServiceRoleKey: service})
	victim := signIn(t, admin, "victim@example.com", true)
	var me struct {
		UID         string `json:"uid"`
		ProviderUID string `json:"provider_uid"`
		Provider    string `json:"provider"`
	}
	a.do("GET", "/api/v1/me", victim.AccessToken, nil).json(t, &me)
	id := me.UID
	if me.ProviderUID != id || me.Provider != "supabase" {
		t.Fatalf("the Supabase user's /me: %+v", me)
	}
	// Firebase has a user whose uid is that id: someone else.
	google.SetUser(id, map[string]any{"email": "impostor@example.com", "displayName": "Not The Victim"})
	mine := a.post(victim.AccessToken, "my private plan", "")
	a.events(victim.AccessToken, mine.MessageID, "", 0)
	// The Supabase user is an operator by their confirmed email.
	if r := a.do("POST", "/api/v1/llm/tests/create-mail-user", victim.AccessToken, nil); r.status != http.StatusOK {
		t.Fatalf("the operator's own test user: %d %s", r.status, r.body)
	}

	impostors := map[string]struct {
		token, uid string
	}{
		"firebase": {fb.FirebaseToken("gym", id, "victim@example.com", true), "firebase:" + id},
		"oidc":     {oidc.OIDCToken("gym-app", id, "victim@example.com"), gymbro.UserID(gymbro.ProviderOIDC, oidc.URL(), id)},
	}
	detailsAsked := supa.count("GET /auth/v1/admin/users/" + id)
	for name, imp := range impostors {
		t.Run(name, func(t *testing.T) {
			a.do("GET", "/api/v1/me", imp.token, nil).json(t, &me)
			if me.UID != imp.uid || me.ProviderUID != id || me.Provider != name {
				t.Errorf("/me: %+v, want uid %s", me, imp.uid)
			}
			for _, path := range []string{"/api/v1/conversations/" + mine.ConversationID + "/messages", "/api/v1/messages/" + mine.MessageID, "/api/v1/messages/" + mine.MessageID + "/events"} {
				if r := a.do("GET", path, imp.token, nil); r.status != http.StatusNotFound {
					t.Errorf("GET %s: %d %s", path, r.status, r.body)
				}
			}
			if r := a.do("GET", "/api/v1/conversations", imp.token, nil); r.status != 200 || strings.Contains(string(r.body), mine.ConversationID) {
				t.Errorf("conversations: %d %s", r.status, r.body)
			}
			r := a.do("GET", "/api/v1/me?details=true", imp.token, nil)
			if name == "firebase" { // Firebase's profile of its own user (the token's claims are the impostor's to choose)
				var d struct{ Details *gymbro.UserDetails }
				r.json(t, &d)
				if r.status != http.StatusOK || d.Details == nil || d.Details.UID != imp.uid || d.Details.Email != "impostor@example.com" {
					t.Errorf("Firebase details: %d %s", r.status, r.body)
				}
			} else if r.status != http.StatusNotFound || r.problem(t)["code"] != "user_not_found" || strings.Contains(string(r.body), "victim@") {
				t.Errorf("details: %d %s", r.status, r.body)
			}
			r = a.do("POST", "/api/v1/llm/tests/create-mail-user", imp.token, nil)
			if r.status != http.StatusForbidden || r.problem(t)["code"] != "not_an_operator" {
				t.Errorf("an operator's email from another issuer: %d %s", r.status, r.body)
			}
		})
	}
	if n := supa.count("GET /auth/v1/admin/users/"+id) - detailsAsked; n != 0 {
		t.Errorf("Supabase was asked %d times for the details of another issuer's user", n)
	}

	// The Supabase user is banned: their token stops posting; the
	// impostors, other users, are not affected.
	if _, err := admin.UpdateUser(context.Background(), id, supabase.AdminUserParams{BanDuration: "24h"}); err != nil {
		t.Fatal(err)
	}
	a.waitRevoked(victim.AccessToken, "after the ban")
	posted := map[string]posted{}
	for name, imp := range impostors {
		p := a.post(imp.token, name+" writes", "")
		a.events(imp.token, p.MessageID, "", 0)
		posted[name] = p
	}
	// Neither sees the other's exchange, nor does the Supabase user.
	if r := a.do("GET", "/api/v1/messages/"+posted["firebase"].MessageID, impostors["oidc"].token, nil); r.status != http.StatusNotFound {
		t.Errorf("the OIDC user reads the Firebase user's exchange: %d", r.status)
	}
	if r := a.do("GET", "/api/v1/conversations", victim.AccessToken, nil); strings.Contains(string(r.body), posted["oidc"].ConversationID) ||
		strings.Contains(string(r.body), posted["firebase"].ConversationID) {
		t.Errorf("the Supabase user lists another issuer's conversation: %s", r.body)
	}

	// Their chat records name the provider and its own id, never the
	// Supabase user.
	a.main.Outbox.Notify()
	waitFor(t, "the impostors' records in Supabase", func() bool {
		return supa.rest.Row(posted["firebase"].MessageID) != nil && supa.rest.Row(posted["oidc"].MessageID) != nil
	})
	for name, p := range posted {
		row := supa.rest.Row(p.MessageID)
		meta, _ := row["metadata"].(map[string]any)
		if row["user_id"] != nil || row["provider"] != name || row["provider_uid"] != id || meta["uid"] != impostors[name].uid {
			t.Errorf("%s record: user_id %v provider %v provider_uid %v metadata %v", name, row["user_id"], row["provider"], row["provider_uid"], meta)
		}
	}
	if v := supa.rest.Violations(); len(v) > 0 {
		t.Errorf("wire contract violations: %v", v)
	}
}
