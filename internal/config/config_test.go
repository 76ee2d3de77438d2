package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestDefaults(t *testing.T) {
	c, err := Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Env != EnvDevelopment || c.HTTPAddr != "127.0.0.1:8080" || !c.Emulated() {
		t.Errorf("env=%q addr=%q emulated=%v", c.Env, c.HTTPAddr, c.Emulated())
	}
	if c.AIProvider != "demo" || c.SSEHeartbeat != 15*time.Second || c.EventTTL != time.Hour || c.JWTLeeway != 30*time.Second || c.JWKSTTL != 15*time.Minute {
		t.Errorf("unexpected defaults: %+v", c)
	}
	if !c.TestUsersEnabled || c.MaxMessageChars != 8000 || c.AISystemPrompt == "" {
		t.Errorf("unexpected defaults: %+v", c)
	}
}

func TestSupabaseProjectID(t *testing.T) {
	c, err := Load(env(map[string]string{"SUPABASE_PROJECT_ID": "abcd"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.SupabaseURL != "https://abcd.supabase.co" || c.Emulated() {
		t.Errorf("SupabaseURL=%q emulated=%v", c.SupabaseURL, c.Emulated())
	}
}

func TestOpenAIKeySelectsProvider(t *testing.T) {
	c, err := Load(env(map[string]string{"OPENAI_API_KEY": "sk-test"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.AIProvider != "openai" || c.AIModel == "" {
		t.Errorf("provider=%q model=%q", c.AIProvider, c.AIModel)
	}
	if s := fmt.Sprint(c.OpenAIAPIKey); strings.Contains(s, "sk-test") {
		t.Errorf("secret printed: %s", s)
	}
}

func TestEveryProblemOnItsOwnLine(t *testing.T) {
	_, err := Load(env(map[string]string{
		"GYMBRO_ENV":               "production",
		"GYMBRO_SSE_HEARTBEAT":     "soon",
		"GYMBRO_CORS_ORIGINS":      "*",
		"GYMBRO_MAX_MESSAGE_CHARS": "-3",
		"GYMBRO_DATABASE_URL":      "mysql://x",
		"FIREBASE_JWKS_URL":        "http://keys.example.com/jwks",
		"FIREBASE_PROJECT_ID":      "p",
	}))
	var p Problems
	if !errors.As(err, &p) {
		t.Fatalf("err = %v, want Problems", err)
	}
	want := []string{"GYMBRO_SSE_HEARTBEAT", "GYMBRO_CORS_ORIGINS", "GYMBRO_MAX_MESSAGE_CHARS", "GYMBRO_DATABASE_URL", "FIREBASE_JWKS_URL", "OPENAI_API_KEY",
		"FIREBASE_SERVICE_ACCOUNT_JSON"}
	if len(p) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%s", len(p), len(want), p)
	}
	for _, name := range want {
		found := false
		for _, line := range p {
			found = found || strings.HasPrefix(line, name+" ")
		}
		if !found {
			t.Errorf("no problem names %s:\n%s", name, p)
		}
	}
}

func TestProductionNeedsAnIssuer(t *testing.T) {
	_, err := Load(env(map[string]string{"GYMBRO_ENV": "production"}))
	if err == nil || !strings.Contains(err.Error(), "SUPABASE_URL") {
		t.Fatalf("err = %v", err)
	}
	if _, err := Load(env(map[string]string{"GYMBRO_ENV": "production", "SUPABASE_URL": "https://x.supabase.co"})); err == nil || !strings.Contains(err.Error(), "SUPABASE_SERVICE_ROLE_KEY") {
		t.Fatalf("production without a service-role key: %v", err)
	}
	c, err := Load(env(map[string]string{"GYMBRO_ENV": "production", "SUPABASE_URL": "https://x.supabase.co", "SUPABASE_SERVICE_ROLE_KEY": "sb_secret_x", "SUPABASE_ANON_KEY": "sb_publishable_x", "GYMBRO_AI_PROVIDER": "demo"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Emulated() || c.TestUsersEnabled {
		t.Errorf("production: emulated=%v testusers=%v", c.Emulated(), c.TestUsersEnabled)
	}
}

func TestProductionAllowsLoopbackHTTP(t *testing.T) {
	_, err := Load(env(map[string]string{"GYMBRO_ENV": "production", "SUPABASE_URL": "http://127.0.0.1:54321", "SUPABASE_SERVICE_ROLE_KEY": "k", "GYMBRO_SESSION_CHECK": "off", "GYMBRO_AI_PROVIDER": "demo"}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Load(env(map[string]string{"GYMBRO_ENV": "production", "SUPABASE_URL": "http://x.supabase.co", "SUPABASE_SERVICE_ROLE_KEY": "k"}))
	if err == nil {
		t.Fatal("plain http issuer accepted in production")
	}
}

func TestSessionCheckNeedsTheAnonKey(t *testing.T) {
	prod := map[string]string{"GYMBRO_ENV": "production", "SUPABASE_URL": "https://x.supabase.co", "SUPABASE_SERVICE_ROLE_KEY": "sb_secret_x", "GYMBRO_AI_PROVIDER": "demo"}
	_, err := Load(env(prod))
	if err == nil || !strings.Contains(err.Error(), "SUPABASE_ANON_KEY is required in production with SUPABASE_URL when GYMBRO_SESSION_CHECK=writes") {
		t.Fatalf("production without an anon key: %v", err)
	}
	prod["GYMBRO_SESSION_CHECK"] = "off"
	if _, err := Load(env(prod)); err != nil {
		t.Fatalf("production with session checks off: %v", err)
	}

	c, err := Load(env(map[string]string{"SUPABASE_URL": "https://x.supabase.co", "GYMBRO_SESSION_CHECK": "all"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.SessionCheck != SessionCheckOff || len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "SUPABASE_ANON_KEY") {
		t.Errorf("development without an anon key: check %q, warnings %q", c.SessionCheck, c.Warnings)
	}

	c, err = Load(env(map[string]string{"GYMBRO_SESSION_CHECK_TTL": "5s", "GYMBRO_SESSION_CHECK_STALE": "1m"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.SessionCheck != SessionCheckWrites || c.SessionCheckTTL != 5*time.Second || c.SessionCheckStale != time.Minute || len(c.Warnings) != 0 {
		t.Errorf("emulated: %q %v %v %q", c.SessionCheck, c.SessionCheckTTL, c.SessionCheckStale, c.Warnings)
	}
	if _, err := Load(env(map[string]string{"GYMBRO_SESSION_CHECK": "sometimes"})); err == nil {
		t.Error("GYMBRO_SESSION_CHECK=sometimes accepted")
	}
}

func TestListensOnLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "localhost:8080": true, "[::1]:8080": true, "127.0.0.2:1": true,
		"0.0.0.0:8080": false, ":8080": false, "[::]:8080": false, "192.0.2.10:8080": false,
	} {
		c := &Config{HTTPAddr: addr}
		if got := c.ListensOnLoopback(); got != want {
			t.Errorf("%s: ListensOnLoopback = %v, want %v", addr, got, want)
		}
	}
}

func TestOIDCIssuers(t *testing.T) {
	c, err := Load(env(map[string]string{"GYMBRO_OIDC_ISSUERS": "https://id.example.com|api|https://id.example.com/jwks|ES256,RS256"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.OIDCIssuers) != 1 || c.OIDCIssuers[0].Audience != "api" || len(c.OIDCIssuers[0].Algorithms) != 2 {
		t.Fatalf("%+v", c.OIDCIssuers)
	}
	if _, err := Load(env(map[string]string{"GYMBRO_OIDC_ISSUERS": "https://id.example.com|api|https://id.example.com/jwks|HS256"})); err == nil {
		t.Fatal("HS256 accepted for an OIDC issuer")
	}
	// EdDSA keeps its registered name, however it is spelled.
	for _, alg := range []string{"EdDSA", "eddsa", "EDDSA"} {
		c, err := Load(env(map[string]string{"GYMBRO_OIDC_ISSUERS": "https://id.example.com|api|https://id.example.com/jwks|" + alg + ",es256"}))
		if err != nil || !slices.Equal(c.OIDCIssuers[0].Algorithms, []string{"EdDSA", "ES256"}) {
			t.Fatalf("%s: %v, %v", alg, c, err)
		}
	}
}

// TestProductionRequiresHTTPSForEveryJWKS: an OIDC issuer's key set over
// plain http (off loopback) stops a production start, with the message
// FIREBASE_JWKS_URL gets; development allows it.
func TestProductionRequiresHTTPSForEveryJWKS(t *testing.T) {
	prod := map[string]string{"GYMBRO_ENV": "production", "GYMBRO_SESSION_CHECK": "off", "GYMBRO_DATA_DIR": "/tmp/x", "GYMBRO_AI_PROVIDER": "demo",
		"GYMBRO_OIDC_ISSUERS": "https://id.example.com|api|http://id.example.com/jwks"}
	_, err := Load(env(prod))
	const msg = "must use https in production (plain http is allowed only for loopback hosts)"
	if err == nil || !strings.Contains(err.Error(), "GYMBRO_OIDC_ISSUERS "+msg) {
		t.Fatalf("http OIDC JWKS in production: %v", err)
	}
	delete(prod, "GYMBRO_OIDC_ISSUERS")
	prod["FIREBASE_PROJECT_ID"], prod["FIREBASE_JWKS_URL"] = "gym", "http://id.example.com/jwks"
	if _, err := Load(env(prod)); err == nil || !strings.Contains(err.Error(), "FIREBASE_JWKS_URL "+msg) {
		t.Fatalf("the Firebase message changed: %v", err)
	}
	prod["FIREBASE_JWKS_URL"] = "https://id.example.com/jwks"
	prod["GYMBRO_OIDC_ISSUERS"] = "https://id.example.com|api|http://127.0.0.1:9000/jwks"
	if _, err := Load(env(prod)); err != nil {
		t.Fatalf("https, and http on loopback: %v", err)
	}
	if _, err := Load(env(map[string]string{"GYMBRO_OIDC_ISSUERS": "https://id.example.com|api|http://id.example.com/jwks"})); err != nil {
		t.Fatalf("http OIDC JWKS in development: %v", err)
	}
}

func TestBareSecondsDuration(t *testing.T) {
	c, err := Load(env(map[string]string{"GYMBRO_SSE_HEARTBEAT": "5"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.SSEHeartbeat != 5*time.Second {
		t.Fatalf("got %s", c.SSEHeartbeat)
	}
}

func TestSchemaAndRedisPrefix(t *testing.T) {
	c, err := Load(env(map[string]string{"GYMBRO_DATABASE_SCHEMA": "gymbro", "GYMBRO_REDIS_PREFIX": "staging:gymbro:"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.DatabaseSchema != "gymbro" || c.RedisPrefix != "staging:gymbro:" {
		t.Fatalf("%q %q", c.DatabaseSchema, c.RedisPrefix)
	}
	if c, _ := Load(env(nil)); c.RedisPrefix != "gymbro:" {
		t.Fatalf("default prefix %q", c.RedisPrefix)
	}
	for k, v := range map[string]string{"GYMBRO_DATABASE_SCHEMA": "public; drop table x", "GYMBRO_REDIS_PREFIX": "a{b}"} {
		if _, err := Load(env(map[string]string{k: v})); err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%q accepted: %v", k, v, err)
		}
	}
}

// problems returns Load's problems for kv, failing the test when Load
// accepts it.
func problems(t *testing.T, scope Scope, kv map[string]string) Problems {
	t.Helper()
	_, err := LoadScope(env(kv), scope)
	var p Problems
	if !errors.As(err, &p) {
		t.Fatalf("LoadScope(%v) = %v, want Problems", kv, err)
	}
	return p
}

// wantLine fails unless exactly one of p starts with prefix and names every
// one of names.
func wantLine(t *testing.T, p Problems, prefix string, names ...string) {
	t.Helper()
	var found []string
	for _, line := range p {
		if strings.HasPrefix(line, prefix) {
			found = append(found, line)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d lines start with %q in:\n%s", len(found), prefix, p)
	}
	for _, n := range names {
		if !strings.Contains(found[0], n) {
			t.Errorf("%q does not name %s", found[0], n)
		}
	}
}

// TestProductionProblemsInOneRound: an empty production configuration is
// told everything it lacks at once, naming every alternative; doing what
// the message says once is enough to start.
func TestProductionProblemsInOneRound(t *testing.T) {
	p := problems(t, ScopeServe, map[string]string{"GYMBRO_ENV": "production"})
	if len(p) != 2 {
		t.Fatalf("want the issuer and the model, got:\n%s", p)
	}
	wantLine(t, p, "SUPABASE_URL or SUPABASE_PROJECT_ID", "SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_ANON_KEY", "GYMBRO_SESSION_CHECK=off", "FIREBASE_PROJECT_ID", "GYMBRO_OIDC_ISSUERS")
	wantLine(t, p, "OPENAI_API_KEY or GYMBRO_AI_CONFIG", "GYMBRO_AI_PROVIDER=demo", "demo coach")

	c, err := Load(env(map[string]string{
		"GYMBRO_ENV": "production", "SUPABASE_PROJECT_ID": "abcd", "SUPABASE_SERVICE_ROLE_KEY": "sb_secret_x",
		"SUPABASE_ANON_KEY": "sb_publishable_x", "GYMBRO_AI_PROVIDER": "demo",
	}))
	if err != nil {
		t.Fatalf("after following the message: %v", err)
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "demo coach") || !strings.Contains(c.Warnings[0], "OPENAI_API_KEY") || !strings.Contains(c.Warnings[0], "GYMBRO_AI_CONFIG") {
		t.Errorf("an explicit demo coach in production warns %q", c.Warnings)
	}
	for _, ok := range []map[string]string{
		{"FIREBASE_PROJECT_ID": "p", "OPENAI_API_KEY": "sk-x",
			"FIREBASE_SERVICE_ACCOUNT_JSON": `{"type":"service_account","client_email":"a@p.iam.gserviceaccount.com","private_key":"k"}`},
		{"GYMBRO_OIDC_ISSUERS": "https://id.example.com|api|https://id.example.com/jwks", "OPENAI_BASE_URL": "https://llm.example.com/v1", "GYMBRO_AI_PROVIDER": "openai"},
	} {
		ok["GYMBRO_ENV"] = "production"
		c, err := Load(env(ok))
		if err != nil {
			t.Errorf("%v: %v", ok, err)
		} else if len(c.Warnings) != 0 {
			t.Errorf("%v: warnings %q", ok, c.Warnings)
		}
	}
}

// TestProductionNamesTheVariableGiven: with SUPABASE_PROJECT_ID the
// messages say so, and both keys are asked for in the same round.
func TestProductionNamesTheVariableGiven(t *testing.T) {
	p := problems(t, ScopeServe, map[string]string{"GYMBRO_ENV": "production", "SUPABASE_PROJECT_ID": "abcd", "OPENAI_API_KEY": "sk-x"})
	if len(p) != 2 || strings.Contains(p.Error(), "with SUPABASE_URL") {
		t.Fatalf("want both keys, with SUPABASE_PROJECT_ID:\n%s", p)
	}
	wantLine(t, p, "SUPABASE_SERVICE_ROLE_KEY is required in production with SUPABASE_PROJECT_ID")
	wantLine(t, p, "SUPABASE_ANON_KEY is required in production with SUPABASE_PROJECT_ID", "GYMBRO_SESSION_CHECK=off")
}

func TestProductionCORSAndTestUsers(t *testing.T) {
	p := problems(t, ScopeServe, map[string]string{
		"GYMBRO_ENV": "production", "FIREBASE_PROJECT_ID": "p", "OPENAI_API_KEY": "sk-x", "GYMBRO_SESSION_CHECK": "off",
		"GYMBRO_CORS_ORIGINS": "*", "GYMBRO_TEST_USERS_ENABLED": "true",
	})
	if len(p) != 2 {
		t.Fatalf("want CORS and test users:\n%s", p)
	}
	// The API takes no credentialed requests: the reason given is not one.
	wantLine(t, p, `GYMBRO_CORS_ORIGINS must list your web apps' origins in production, not "*"`, "not cookies", "anon key")
	if strings.Contains(p.Error(), "credential") {
		t.Errorf("the CORS message speaks of credentials:\n%s", p)
	}
	wantLine(t, p, "GYMBRO_TEST_USERS_ADMINS is required in production when GYMBRO_TEST_USERS_ENABLED=true")
}

// TestScopes: an admin command is refused only for settings it reads, and
// never by production's rules for serving.
func TestScopes(t *testing.T) {
	unrelated := map[string]string{
		"GYMBRO_ENV": "production", "GYMBRO_SSE_HEARTBEAT": "soon", "GYMBRO_CORS_ORIGINS": "*",
		"OPENAI_BASE_URL": "not a url", "GYMBRO_AI_CONFIG": "/no/such/file.yaml",
	}
	for _, scope := range []Scope{ScopeStore, ScopeLocalKeys} {
		if _, err := LoadScope(env(unrelated), scope); err != nil {
			t.Errorf("scope %d refused settings it does not use: %v", scope, err)
		}
	}
	store := map[string]string{"GYMBRO_DATABASE_URL": "mysql://x", "GYMBRO_DATABASE_SCHEMA": "a b", "GYMBRO_SSE_HEARTBEAT": "soon"}
	p := problems(t, ScopeStore, store)
	if len(p) != 2 || !strings.HasPrefix(p[0], "GYMBRO_DATABASE_URL ") || !strings.HasPrefix(p[1], "GYMBRO_DATABASE_SCHEMA ") {
		t.Errorf("store scope:\n%s", p)
	}
	p = problems(t, ScopeLocalKeys, map[string]string{"GYMBRO_ENV": "staging", "SUPABASE_URL": "ftp://x", "GYMBRO_DATABASE_URL": "mysql://x"})
	if len(p) != 2 || !strings.HasPrefix(p[0], "GYMBRO_ENV ") || !strings.HasPrefix(p[1], "SUPABASE_URL ") {
		t.Errorf("local-keys scope:\n%s", p)
	}
	if len(problems(t, ScopeServe, store)) != 3 {
		t.Error("serve does not report every problem")
	}
}

func TestRedisMode(t *testing.T) {
	if c, _ := Load(env(nil)); c.RedisMode != RedisStandalone {
		t.Fatalf("default mode %q", c.RedisMode)
	}
	c, err := Load(env(map[string]string{"GYMBRO_REDIS_MODE": "cluster", "GYMBRO_REDIS_URL": "redis://10.0.0.1:6379?addr=10.0.0.2:6379"}))
	if err != nil || c.RedisMode != RedisCluster {
		t.Fatalf("cluster: %v, %q", err, c.RedisMode)
	}
	for name, e := range map[string]map[string]string{
		"unknown mode":     {"GYMBRO_REDIS_MODE": "replicated", "GYMBRO_REDIS_URL": "redis://r:6379"},
		"sentinel, no URL": {"GYMBRO_REDIS_MODE": "sentinel"},
	} {
		if _, err := Load(env(e)); err == nil || !strings.Contains(err.Error(), "GYMBRO_REDIS_MODE") {
			t.Errorf("%s accepted: %v", name, err)
		}
	}
}
