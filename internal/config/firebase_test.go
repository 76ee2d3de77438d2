package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// serviceAccountKey is a service account key file's JSON (its private key
// a placeholder: config only checks the shape).
func serviceAccountKey(tokenURI string) string {
	b, _ := json.Marshal(map[string]string{"type": "service_account", "project_id": "gymbro-prod", "private_key_id": "k1",
		"private_key": "-----BEGIN PRIVATE KEY-----\nMIIsecret\n-----END PRIVATE KEY-----\n", "client_email": "api@gymbro-prod.iam.gserviceaccount.com",
		"token_uri": tokenURI})
	return string(b)
}

// wantProblem checks that err lists a problem starting with name and
// holding each of parts.
func wantProblem(t *testing.T, err error, name string, parts ...string) {
	t.Helper()
	var p Problems
	if !errors.As(err, &p) {
		t.Fatalf("err = %v, want Problems", err)
	}
	for _, line := range p {
		if strings.HasPrefix(line, name+" ") {
			for _, part := range parts {
				if !strings.Contains(line, part) {
					t.Errorf("%q lacks %q", line, part)
				}
			}
			return
		}
	}
	t.Errorf("no problem names %s:\n%s", name, p)
}

func TestFirebaseEmulatorHost(t *testing.T) {
	dev := map[string]string{"FIREBASE_PROJECT_ID": "demo-gymbro", "FIREBASE_AUTH_EMULATOR_HOST": "127.0.0.1:9099"}
	c, err := Load(env(dev))
	if err != nil {
		t.Fatal(err)
	}
	if c.FirebaseEmulatorHost != "127.0.0.1:9099" || c.FirebaseServiceAccountJSON != "" || len(c.Warnings) != 0 {
		t.Errorf("development with the emulator: host %q, warnings %q", c.FirebaseEmulatorHost, c.Warnings)
	}

	_, err = Load(env(map[string]string{"GYMBRO_ENV": "production", "FIREBASE_PROJECT_ID": "gymbro-prod",
		"FIREBASE_AUTH_EMULATOR_HOST": "127.0.0.1:9099", "GYMBRO_SESSION_CHECK": "off"}))
	wantProblem(t, err, "FIREBASE_AUTH_EMULATOR_HOST", "must not be set in production", "unsigned")

	for _, host := range []string{"http://127.0.0.1:9099", "127.0.0.1", "localhost:"} {
		_, err = Load(env(map[string]string{"FIREBASE_PROJECT_ID": "demo-gymbro", "FIREBASE_AUTH_EMULATOR_HOST": host}))
		wantProblem(t, err, "FIREBASE_AUTH_EMULATOR_HOST", "host:port", host)
	}
	_, err = Load(env(map[string]string{"FIREBASE_AUTH_EMULATOR_HOST": "127.0.0.1:9099"}))
	wantProblem(t, err, "FIREBASE_PROJECT_ID", "demo-gymbro")

	dev["FIREBASE_JWKS_URL"] = "http://127.0.0.1:1/jwks"
	if c, err := Load(env(dev)); err != nil || len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "FIREBASE_JWKS_URL is ignored") {
		t.Errorf("FIREBASE_JWKS_URL beside the emulator: %v, %q", err, c.Warnings)
	}
}

func TestFirebaseServiceAccount(t *testing.T) {
	file := filepath.Join(t.TempDir(), "key.json")
	if err := os.WriteFile(file, []byte(serviceAccountKey("https://oauth2.googleapis.com/token")), 0o600); err != nil {
		t.Fatal(err)
	}
	prod := func(kv ...string) map[string]string {
		m := map[string]string{"GYMBRO_ENV": "production", "FIREBASE_PROJECT_ID": "gymbro-prod", "OPENAI_API_KEY": "sk-x"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}

	c, err := Load(env(prod("GOOGLE_APPLICATION_CREDENTIALS", file)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.FirebaseServiceAccountJSON.Reveal(), "api@gymbro-prod") || len(c.Warnings) != 0 {
		t.Errorf("key from the file: warnings %q", c.Warnings)
	}
	if s := fmt.Sprintf("%v %+v", c, c.FirebaseServiceAccountJSON); strings.Contains(s, "MIIsecret") {
		t.Error("the key shows in the printed config")
	}

	c, err = Load(env(prod("FIREBASE_SERVICE_ACCOUNT_JSON", serviceAccountKey(""), "GOOGLE_APPLICATION_CREDENTIALS", file)))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(c.FirebaseServiceAccountJSON.Reveal(), "oauth2.googleapis.com") || len(c.Warnings) != 1 {
		t.Errorf("FIREBASE_SERVICE_ACCOUNT_JSON wins, saying so: warnings %q", c.Warnings)
	}

	_, err = Load(env(prod()))
	wantProblem(t, err, "FIREBASE_SERVICE_ACCOUNT_JSON", "required in production", "GYMBRO_SESSION_CHECK=off")
	if c, err := Load(env(prod("GYMBRO_SESSION_CHECK", "off"))); err != nil || len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "no Firebase service account") {
		t.Errorf("production, session checks off: %v, %q", err, c.Warnings)
	}
	if c, err := Load(env(map[string]string{"FIREBASE_PROJECT_ID": "gymbro-dev"})); err != nil || len(c.Warnings) != 1 {
		t.Errorf("development without a key: %v, %q", err, c.Warnings)
	}

	userCreds := `{"type":"authorized_user","client_id":"x","client_secret":"MIIsecret","refresh_token":"r"}`
	for name, kv := range map[string][]string{
		"a user's credentials":   {"FIREBASE_SERVICE_ACCOUNT_JSON", userCreds},
		"not JSON":               {"FIREBASE_SERVICE_ACCOUNT_JSON", "MIIsecret"},
		"a missing file":         {"GOOGLE_APPLICATION_CREDENTIALS", filepath.Join(t.TempDir(), "nope.json")},
		"a plain-http token_uri": {"FIREBASE_SERVICE_ACCOUNT_JSON", serviceAccountKey("http://tokens.example.com/token")},
	} {
		_, err := Load(env(prod(kv...)))
		if err == nil || strings.Contains(err.Error(), "MIIsecret") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
