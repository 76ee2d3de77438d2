package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestOneClickTestUser runs seed 001's loop with zero configuration: the
// operator signs in, creates gymbro-test-01 with a real emulator-issued
// token, and that token posts a message and streams the reply.
func TestOneClickTestUser(t *testing.T) {
	a := startApp(t, nil)
	r := a.do("GET", "/api/v1/console/config", "", nil)
	var cc struct {
		Env         string                            `json:"env"`
		AuthURL     string                            `json:"auth_url"`
		AnonKey     string                            `json:"anon_key"`
		Emulator    bool                              `json:"emulator"`
		DevOperator *struct{ Email, Password string } `json:"dev_operator"`
	}
	r.json(t, &cc)
	if r.status != 200 || cc.DevOperator == nil || cc.AnonKey == "" || !strings.Contains(string(r.body), `"auth_url":"`+a.url+`/auth/v1"`) {
		t.Fatalf("console config: %s", r.body)
	}
	if strings.Contains(string(r.body), "sb_secret_") {
		t.Fatal("the console config leaks the service-role key")
	}
	// The operator signs in through the emulator's password grant.
	login := a.do("POST", "/auth/v1/token?grant_type=password", "", map[string]string{"email": cc.DevOperator.Email, "password": cc.DevOperator.Password}, "apikey", cc.AnonKey)
	var session struct {
		AccessToken string `json:"access_token"`
	}
	login.json(t, &session)
	if login.status != 200 || session.AccessToken == "" {
		t.Fatalf("operator sign-in: %d %s", login.status, login.body)
	}
	for i, want := range []string{"gymbro-test-01", "gymbro-test-02"} {
		r := a.do("POST", "/api/v1/llm/tests/create-mail-user", session.AccessToken, map[string]string{"username_prefix": "gymbro-test"})
		var u struct {
			Username, Email, Password, AccessToken, RefreshToken, TokenType, RequestID string
			UserID                                                                     string `json:"user_id"`
			ExpiresAt                                                                  int64  `json:"expires_at"`
			Reused                                                                     bool
		}
		if err := json.Unmarshal(r.body, &u); err != nil || r.status != 200 {
			t.Fatalf("create-mail-user %d: %d %s", i, r.status, r.body)
		}
		var raw map[string]any
		r.json(t, &raw)
		for _, k := range []string{"username", "email", "password", "user_id", "access_token", "refresh_token", "expires_at", "token_type", "reused", "request_id"} {
			if _, ok := raw[k]; !ok {
				t.Errorf("response lacks %q: %s", k, r.body)
			}
		}
		if raw["username"] != want || raw["request_id"] != r.header.Get("X-Trace-Id") || raw["token_type"] != "bearer" {
			t.Fatalf("got %s, want %s", r.body, want)
		}
		tok := raw["access_token"].(string)
		me := a.do("GET", "/api/v1/me", tok, nil)
		if me.status != 200 || !strings.Contains(string(me.body), raw["user_id"].(string)) {
			t.Fatalf("the test user's token: %d %s", me.status, me.body)
		}
		if i == 0 {
			p := a.post(tok, "First workout tips?", "")
			s := a.events(tok, p.MessageID, "", 0)
			checkOrder(t, s.data, 1)
		}
	}
	if r := a.do("POST", "/api/v1/llm/tests/create-mail-user", session.AccessToken, map[string]string{"username_prefix": "someone-else"}); r.status != 422 || r.problem(t)["code"] != "prefix_not_allowed" {
		t.Fatalf("prefix guard: %d %s", r.status, r.body)
	}
	if r := a.do("POST", "/api/v1/llm/tests/create-mail-user", "", map[string]string{"username_prefix": "gymbro-test"}); r.status != http.StatusUnauthorized {
		t.Fatalf("no token: %d", r.status)
	}
}

func TestTestUsersDisabled(t *testing.T) {
	a := startApp(t, map[string]string{"GYMBRO_TEST_USERS_ENABLED": "false"})
	tok := a.user("dev@example.com")
	r := a.do("POST", "/api/v1/llm/tests/create-mail-user", tok, map[string]string{"username_prefix": "gymbro-test"})
	if r.status != 403 || r.problem(t)["code"] != "test_users_disabled" {
		t.Fatalf("%d %s", r.status, r.body)
	}
}

// TestCreateTestUserWithNoBody: curl -X POST with only the bearer header
// gets a test user with every default; a body that is not a JSON object is
// still refused.
func TestCreateTestUserWithNoBody(t *testing.T) {
	a := startApp(t, nil)
	tok := a.user("bare@example.com")
	req, _ := http.NewRequest("POST", a.url+"/api/v1/llm/tests/create-mail-user", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := a.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"username":"gymbro-test-01"`) {
		t.Fatalf("bare POST: %d %s", res.StatusCode, body)
	}
	for _, bad := range []string{"[]", "nope", `"x"`} {
		if r := a.do("POST", "/api/v1/llm/tests/create-mail-user", tok, bad); r.status != http.StatusBadRequest || r.problem(t)["code"] != "invalid_json" {
			t.Errorf("body %s: %d %s", bad, r.status, r.body)
		}
	}
}
