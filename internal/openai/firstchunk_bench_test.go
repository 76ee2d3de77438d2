package openai_test

import (
	"net/http"
	"testing"
	"time"
)

// BenchmarkFirstChunk measures a short reply as a generation makes it,
// against a local server that answers at once: ns/op is the whole call,
// first-ns the time from the call to the first content chunk (request
// built and sent, role chunk and first content chunk read and decoded).
func BenchmarkFirstChunk(b *testing.B) {
	f := newFake(b, func(w http.ResponseWriter, r *http.Request, n int) {
		reply(w, "gpt-bench", "Squat ", "to parallel", ".")
	})
	m := newModel(b, f.config(nil))
	ctx := b.Context()
	req := request()
	var first time.Duration
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		seen := false
		if _, err := m.Stream(ctx, req, func(string) error {
			if !seen {
				seen = true
				first += time.Since(start)
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(first.Nanoseconds())/float64(b.N), "first-ns")
}
