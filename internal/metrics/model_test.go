package metrics_test

import (
	"testing"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/metrics"
	"github.com/gymbro/gymbro-api/internal/modelrouter"
)

var _ modelrouter.Observer = (*metrics.Metrics)(nil)

func TestModelSeries(t *testing.T) {
	m := metrics.New(metrics.Options{})
	m.DeclareModels("primary", "backup")
	m.ModelRequest("primary", "error")
	m.ModelFailure("primary", gymbro.CodeAIRateLimited)
	m.ModelFallback("primary", "backup")
	m.ModelRequest("backup", "ok")
	m.ModelTokens("backup", gymbro.Usage{PromptTokens: 120, CompletionTokens: 30, TotalTokens: 150})
	m.ModelTokens("backup", gymbro.Usage{PromptTokens: 80, CompletionTokens: 20, TotalTokens: 100})
	m.ModelBreaker("backup", int(modelrouter.Closed))
	m.ModelBreaker("primary", int(modelrouter.Open))

	fams := scrape(t, m)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"gymbro_model_requests_total", map[string]string{"model": "primary", "outcome": "error"}, 1},
		{"gymbro_model_requests_total", map[string]string{"model": "primary", "outcome": "ok"}, 0},
		{"gymbro_model_requests_total", map[string]string{"model": "backup", "outcome": "ok"}, 1},
		{"gymbro_model_requests_total", map[string]string{"model": "backup", "outcome": "canceled"}, 0},
		{"gymbro_model_failures_total", map[string]string{"model": "primary", "code": "ai_rate_limited"}, 1},
		{"gymbro_model_fallbacks_total", map[string]string{"from": "primary", "to": "backup"}, 1},
		{"gymbro_model_tokens_total", map[string]string{"model": "backup", "kind": "prompt"}, 200},
		{"gymbro_model_tokens_total", map[string]string{"model": "backup", "kind": "completion"}, 50},
		{"gymbro_model_tokens_total", map[string]string{"model": "primary", "kind": "prompt"}, 0},
		{"gymbro_model_breaker_state", map[string]string{"model": "primary"}, 2},
		{"gymbro_model_breaker_state", map[string]string{"model": "backup"}, 0},
	} {
		if got := value(sample(t, fams, c.name, c.labels)); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

// TestOneModelHasNoBreakerSeries: declaring a model outside a router (the
// demo, one OpenAI-compatible model) shows no breaker it does not have.
func TestOneModelHasNoBreakerSeries(t *testing.T) {
	m := metrics.New(metrics.Options{})
	m.DeclareModels("gymbro-demo-coach")
	fams := scrape(t, m)
	if got := value(sample(t, fams, "gymbro_model_requests_total", map[string]string{"model": "gymbro-demo-coach", "outcome": "ok"})); got != 0 {
		t.Errorf("requests = %v", got)
	}
	if _, ok := fams["gymbro_model_breaker_state"]; ok {
		t.Error("a breaker series for a model without a breaker")
	}
}
