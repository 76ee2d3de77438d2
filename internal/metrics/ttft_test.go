package metrics_test

import (
	"testing"
	"time"

	"github.com/gymbro/gymbro-api/internal/chat"
	"github.com/gymbro/gymbro-api/internal/metrics"
)

var _ chat.FirstTokenObserver = (*metrics.Metrics)(nil)

// TestFirstTokenSeries: each reply's time to first token lands in the
// service's and the model's histograms, under the model that answered.
func TestFirstTokenSeries(t *testing.T) {
	m := metrics.New(metrics.Options{})
	m.FirstToken("primary", 3*time.Millisecond, 2*time.Millisecond)
	m.FirstToken("primary", 700*time.Millisecond, 690*time.Millisecond)
	m.FirstToken("backup", 2*time.Second, 1900*time.Millisecond)
	fams := scrape(t, m)
	for _, c := range []struct {
		name, model string
		count       uint64
		sum         float64
		le5ms       uint64 // observations at or under 5 ms
	}{
		{"gymbro_time_to_first_token_seconds", "primary", 2, 0.703, 1},
		{"gymbro_model_time_to_first_token_seconds", "primary", 2, 0.692, 1},
		{"gymbro_time_to_first_token_seconds", "backup", 1, 2, 0},
		{"gymbro_model_time_to_first_token_seconds", "backup", 1, 1.9, 0},
	} {
		h := sample(t, fams, c.name, map[string]string{"model": c.model}).GetHistogram()
		if h.GetSampleCount() != c.count || h.GetSampleSum() < c.sum-1e-9 || h.GetSampleSum() > c.sum+1e-9 {
			t.Errorf("%s{model=%s}: count %d sum %v, want %d and %v", c.name, c.model, h.GetSampleCount(), h.GetSampleSum(), c.count, c.sum)
		}
		for _, b := range h.GetBucket() {
			if b.GetUpperBound() == 0.005 && b.GetCumulativeCount() != c.le5ms {
				t.Errorf("%s{model=%s}: %d at or under 5 ms, want %d", c.name, c.model, b.GetCumulativeCount(), c.le5ms)
			}
		}
	}
}
