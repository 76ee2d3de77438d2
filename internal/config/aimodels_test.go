package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const goodAIConfig = `models:
  - name: primary
    base_url: https://api.openai.com/v1
    api_key: os.environ/OPENAI_API_KEY
    model: gpt-4o-mini
  - name: backup
    base_url: http://vllm.internal:8000/v1
    model: qwen2.5-7b-instruct
    max_retries: 1
fallback: [backup, primary]
breaker: {failures: 5, cooldown: 1m}
`

func TestParseAIConfig(t *testing.T) {
	rt, warnings, err := ParseAIConfig("ai.yaml", []byte(goodAIConfig), env(map[string]string{"OPENAI_API_KEY": "sk-live-secret"}))
	if err != nil {
		t.Fatal(err)
	}
	want := &AIRouting{
		Models: []AIModel{
			{Name: "backup", BaseURL: "http://vllm.internal:8000/v1", Model: "qwen2.5-7b-instruct", MaxRetries: 1},
			{Name: "primary", BaseURL: "https://api.openai.com/v1", APIKey: "sk-live-secret", APIKeyEnv: "OPENAI_API_KEY", Model: "gpt-4o-mini", MaxRetries: -1},
		},
		BreakerFailures: 5, BreakerCooldown: time.Minute,
	}
	if diff := cmp.Diff(want, rt); diff != "" {
		t.Errorf("routing (-want +got):\n%s", diff)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings = %q", warnings)
	}
	if s := fmt.Sprintf("%v %+v", rt, rt); strings.Contains(s, "sk-live-secret") {
		t.Errorf("the key prints: %s", s)
	}
}

func TestParseAIConfigDefaults(t *testing.T) {
	rt, _, err := ParseAIConfig("ai.yaml", []byte("models:\n  - {name: only, base_url: 'http://127.0.0.1:11434/v1', model: llama3}\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(rt.Models) != 1 || rt.Models[0].Name != "only" || rt.BreakerFailures != 3 || rt.BreakerCooldown != 30*time.Second {
		t.Errorf("routing = %+v", rt)
	}
}

// Every mistake is reported at once, each with its line.
func TestParseAIConfigListsEveryProblem(t *testing.T) {
	file := `models:
  - name: primary
    base_url: https://api.openai.com/v1
    api_key: sk-written-in-the-file
    model: gpt-4o-mini
    temperature: 0.2
  - name: primary
    base_url: ftp://nowhere
    model: x
  - base_url: http://vllm:8000/v1
    api_key: os.environ/UNSET_KEY
  - name: "bad name!"
    base_url: https://user:pw@example.com/v1
    model: y
    max_retries: many
fallback: [primary, ghost]
breaker: {failures: 0, cooldown: forever, jitter: 1}
extra: true
`
	_, _, err := ParseAIConfig("ai.yaml", []byte(file), env(nil))
	var problems Problems
	if !errors.As(err, &problems) {
		t.Fatalf("err = %v, want Problems", err)
	}
	want := []string{
		"ai.yaml:4: api_key must name an environment variable",
		"ai.yaml:6: unknown key \"temperature\"",
		"ai.yaml:8: base_url must be an absolute http(s) URL",
		"ai.yaml:7: model name \"primary\" is used twice (first at line 2)",
		"ai.yaml:11: api_key names UNSET_KEY, which is not set",
		"ai.yaml:10: the model needs name:",
		"ai.yaml:10: the model needs model:",
		"ai.yaml:12: name \"bad name!\" must be",
		"ai.yaml:13: base_url must not carry credentials",
		"ai.yaml:15: max_retries must be a whole number",
		"ai.yaml:17: breaker.failures must be a whole number",
		"ai.yaml:17: breaker.cooldown must be a duration",
		"ai.yaml:17: unknown key \"jitter\" in breaker",
		"ai.yaml:18: unknown key \"extra\" in the top level",
		"ai.yaml:16: fallback names \"ghost\", which is not a model",
	}
	if len(problems) != len(want) {
		t.Errorf("%d problems, want %d:\n%s", len(problems), len(want), problems)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), "GYMBRO_AI_CONFIG "+w) {
			t.Errorf("missing %q in:\n%s", w, err)
		}
	}
	for _, leak := range []string{"sk-written-in-the-file", "user:pw"} {
		if strings.Contains(err.Error(), leak) {
			t.Errorf("a problem echoes a credential %q:\n%s", leak, err)
		}
	}
}

func TestParseAIConfigShapes(t *testing.T) {
	for _, tc := range []struct{ name, file, want string }{
		{"syntax", "models: [\n", "yaml: line"},
		{"empty", "", "ai.yaml:1: the file is empty"},
		{"list at top", "- a\n", "ai.yaml:1: must be a mapping"},
		{"no models", "fallback: [a]\n", "ai.yaml:1: models: is required"},
		{"models not a list", "models: primary\n", "ai.yaml:1: models must be a list"},
		{"model not a mapping", "models: [primary]\n", "ai.yaml:1: each model must be a mapping"},
		{"duplicate key", "models:\n  - {name: a, name: b, base_url: 'http://x/v1', model: m}\n", "ai.yaml:2: \"name\" appears twice"},
		{"fallback twice", "models:\n  - {name: a, base_url: 'http://x/v1', model: m}\nfallback:\n  - a\n  - a\n", "ai.yaml:5: fallback lists \"a\" twice"},
		{"fallback empty", "models:\n  - {name: a, base_url: 'http://x/v1', model: m}\nfallback: []\n", "ai.yaml:3: fallback must be a list"},
		{"null value", "models:\n  - {name: a, base_url: 'http://x/v1', model: }\n", "ai.yaml:2: model must be a plain value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ParseAIConfig("ai.yaml", []byte(tc.file), env(nil))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestParseAIConfigWarnsOfUnusedModel(t *testing.T) {
	file := "models:\n  - {name: a, base_url: 'http://x/v1', model: m}\n  - {name: b, base_url: 'http://y/v1', model: m}\nfallback: [b]\n"
	rt, warnings, err := ParseAIConfig("ai.yaml", []byte(file), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(rt.Models) != 1 || rt.Models[0].Name != "b" || len(warnings) != 1 || !strings.Contains(warnings[0], `"a" is not in fallback`) {
		t.Errorf("models = %+v, warnings = %q", rt.Models, warnings)
	}
}

func TestLoadAIConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ai.yaml")
	if err := os.WriteFile(path, []byte(goodAIConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(env(map[string]string{"GYMBRO_AI_CONFIG": path, "OPENAI_API_KEY": "sk-live-secret", "GYMBRO_AI_MODEL": "ignored"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.AIRouting == nil || len(c.AIRouting.Models) != 2 || c.AIProvider != "openai" {
		t.Fatalf("routing = %+v provider = %q", c.AIRouting, c.AIProvider)
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "GYMBRO_AI_MODEL is ignored") {
		t.Errorf("warnings = %q", c.Warnings)
	}

	// Its problems join the other variables' in one list.
	_, err = Load(env(map[string]string{"GYMBRO_AI_CONFIG": path, "GYMBRO_SSE_HEARTBEAT": "soon"}))
	if err == nil || !strings.Contains(err.Error(), "GYMBRO_SSE_HEARTBEAT") || !strings.Contains(err.Error(), path+":4: api_key names OPENAI_API_KEY, which is not set") {
		t.Errorf("err = %v", err)
	}
	_, err = Load(env(map[string]string{"GYMBRO_AI_CONFIG": path + ".missing"}))
	if err == nil || !strings.Contains(err.Error(), "GYMBRO_AI_CONFIG cannot be read") {
		t.Errorf("err = %v", err)
	}
}
