package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ttftBuckets span the service's own share, a millisecond or so, up to a
// slow model's first token: seconds.
var ttftBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// ttft is the time to first token, by the configured name of the model
// that answered: as the service sees it, from accepting a post to its
// first content_delta in the event log, and the model's own part of it,
// from asking the model to its first chunk. The difference is the
// service's share; the model's is the provider's (network included).
type ttft struct {
	service *prometheus.HistogramVec
	model   *prometheus.HistogramVec
}

func newTTFT() ttft {
	return ttft{
		service: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "time_to_first_token_seconds",
			Help:    "Time from accepting a post to its reply's first content_delta in the event log, by the model that answered.",
			Buckets: ttftBuckets,
		}, []string{"model"}),
		model: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "model_time_to_first_token_seconds",
			Help:    "Time from asking the model (the first model tried, when several are) to its first content chunk, by the model that answered.",
			Buckets: ttftBuckets,
		}, []string{"model"}),
	}
}

func (t ttft) collectors() []prometheus.Collector { return []prometheus.Collector{t.service, t.model} }

// FirstToken implements chat.FirstTokenObserver.
func (m *Metrics) FirstToken(model string, ttft, modelTTFT time.Duration) {
	m.ttft.service.WithLabelValues(model).Observe(ttft.Seconds())
	m.ttft.model.WithLabelValues(model).Observe(modelTTFT.Seconds())
}
