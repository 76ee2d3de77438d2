package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// ModelOutcomes are the outcomes gymbro_model_requests_total counts: the
// model answered, failed, or the caller stopped it first.
var ModelOutcomes = []string{"ok", "error", "canceled"}

// modelMetrics are the per-model series, labelled with each model's
// configured name: GYMBRO_AI_CONFIG's names, GYMBRO_AI_MODEL for one
// OpenAI-compatible model, gymbro-demo-coach for the demo. They implement
// modelrouter.Observer through Metrics; the breaker and fallback series
// exist only with GYMBRO_AI_CONFIG, whose router has them.
type modelMetrics struct {
	requests  *prometheus.CounterVec
	failures  *prometheus.CounterVec
	fallbacks *prometheus.CounterVec
	breaker   *prometheus.GaugeVec
	tokens    *prometheus.CounterVec
}

func newModelMetrics(reg *prometheus.Registry) *modelMetrics {
	mm := &modelMetrics{
		requests: counterVec("model_requests_total",
			"Requests to each configured model, by outcome (ok, error, canceled).", "model", "outcome"),
		failures: counterVec("model_failures_total",
			"Failed model requests, by model and error code (ai_unavailable, ai_rate_limited, ai_timeout, ai_bad_request).", "model", "code"),
		fallbacks: counterVec("model_fallbacks_total",
			"Generations passed to the next model after one failed before answering, by the failed model and the next.", "from", "to"),
		breaker: gaugeVec("model_breaker_state",
			"Each model's circuit breaker on this instance: 0 closed, 1 half-open, 2 open (skipped).", "model"),
		tokens: counterVec("model_tokens_total",
			"Tokens of answered requests as each model reported them, by kind (prompt, completion).", "model", "kind"),
	}
	reg.MustRegister(mm.requests, mm.failures, mm.fallbacks, mm.breaker, mm.tokens)
	return mm
}

// DeclareModels creates every model's request and token series at zero,
// so rate() and alerts see 0 rather than "no data" for a model that has
// not failed yet. (A router reports each breaker's state itself.)
func (m *Metrics) DeclareModels(names ...string) {
	for _, n := range names {
		for _, o := range ModelOutcomes {
			m.model.requests.WithLabelValues(n, o)
		}
		m.model.tokens.WithLabelValues(n, "prompt")
		m.model.tokens.WithLabelValues(n, "completion")
	}
}

// ModelRequest counts one request to a model by outcome.
func (m *Metrics) ModelRequest(model, outcome string) {
	m.model.requests.WithLabelValues(model, outcome).Inc()
}

// ModelFailure counts one failed request by its error code.
func (m *Metrics) ModelFailure(model, code string) {
	m.model.failures.WithLabelValues(model, code).Inc()
}

// ModelFallback counts one move from a failed model to the next.
func (m *Metrics) ModelFallback(from, to string) {
	m.model.fallbacks.WithLabelValues(from, to).Inc()
}

// ModelBreaker sets a model's breaker state (0 closed, 1 half-open, 2 open).
func (m *Metrics) ModelBreaker(model string, state int) {
	m.model.breaker.WithLabelValues(model).Set(float64(state))
}

// ModelTokens adds the tokens of one answered request.
func (m *Metrics) ModelTokens(model string, u gymbro.Usage) {
	m.model.tokens.WithLabelValues(model, "prompt").Add(float64(max(u.PromptTokens, 0)))
	m.model.tokens.WithLabelValues(model, "completion").Add(float64(max(u.CompletionTokens, 0)))
}
