package openai_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
)

// BenchmarkStream measures one 100-chunk streamed reply through the adapter
// against a local server: per-reply cost, of which per-chunk overhead is
// ns/op divided by 100.
func BenchmarkStream(b *testing.B) {
	var body bytes.Buffer
	for i := range 100 {
		c, _ := json.Marshal(chunk("gpt-bench", fmt.Sprintf("word%d ", i), nil))
		fmt.Fprintf(&body, "data: %s\n\n", c)
	}
	fin, _ := json.Marshal(chunk("gpt-bench", "", "stop"))
	fmt.Fprintf(&body, "data: %s\n\n", fin)
	body.WriteString(`data: {"id":"chatcmpl-test","object":"chat.completion.chunk","created":1700000000,"model":"gpt-bench","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":100,"total_tokens":110}}` + "\n\ndata: [DONE]\n\n")
	payload := body.Bytes()

	f := newFake(b, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = w.Write(payload)
	})
	m := newModel(b, f.config(nil))
	ctx := b.Context()
	req := request()
	emit := func(string) error { return nil }

	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		res, err := m.Stream(ctx, req, emit)
		if err != nil || res.Usage.CompletionTokens != 100 {
			b.Fatalf("Stream = %+v, %v", res, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/100, "ns/chunk")
}
