package main

import (
	"strings"
	"testing"
)

// wantMetrics fails unless /metrics has every line of want and no series
// of the families in absent.
func wantMetrics(t *testing.T, a *app, want []string, absent ...string) {
	t.Helper()
	body := string(a.do("GET", "/metrics", "", nil).body)
	for _, line := range want {
		if !strings.Contains(body, "\n"+line+"\n") {
			t.Errorf("/metrics lacks %s", line)
		}
	}
	for _, family := range absent {
		if strings.Contains(body, "\n"+family+"{") {
			t.Errorf("/metrics has %s series", family)
		}
	}
}

// TestModelMetricsOfTheDemoCoach: the default model has the per-model
// series too, under its name, and no breaker it does not have.
func TestModelMetricsOfTheDemoCoach(t *testing.T) {
	a := startApp(t, nil)
	tok := a.user("demo-metrics@example.com")
	p := a.post(tok, "squats?", "")
	a.events(tok, p.MessageID, "", 0)
	wantMetrics(t, a, []string{
		`gymbro_model_requests_total{model="gymbro-demo-coach",outcome="ok"} 1`,
		`gymbro_model_requests_total{model="gymbro-demo-coach",outcome="error"} 0`,
	}, "gymbro_model_breaker_state", "gymbro_model_fallbacks_total")
}

// TestModelMetricsOfOneOpenAIModel: one OpenAI-compatible model, set the
// usual way, is counted under GYMBRO_AI_MODEL (not the id the provider
// reports), with its failures by code and its tokens.
func TestModelMetricsOfOneOpenAIModel(t *testing.T) {
	ai := newFakeOpenAI(t)
	a := startApp(t, map[string]string{"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": ai.URL + "/v1", "GYMBRO_AI_MODEL": "gpt-fake"})
	tok := a.user("openai-metrics@example.com")
	for _, text := range []string{"deadlift?", "bench?", "x [fail:429]"} {
		p := a.post(tok, text, "")
		a.events(tok, p.MessageID, "", 0)
	}
	wantMetrics(t, a, []string{
		`gymbro_model_requests_total{model="gpt-fake",outcome="ok"} 2`,
		`gymbro_model_requests_total{model="gpt-fake",outcome="error"} 1`,
		`gymbro_model_failures_total{code="ai_rate_limited",model="gpt-fake"} 1`,
		`gymbro_model_tokens_total{kind="completion",model="gpt-fake"} 8`,
		`gymbro_model_tokens_total{kind="prompt",model="gpt-fake"} 84`,
	}, "gymbro_model_breaker_state")
}
