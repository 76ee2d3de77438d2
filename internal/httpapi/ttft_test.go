package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/gymbro/gymbro-api/internal/chat"
	"github.com/gymbro/gymbro-api/internal/demo"
)

// TestTTFTTrace follows one exchange on a parked stream and reads its
// trace back: every step from the post to the first delta written, each
// path in order; another user's exchange is 404 as everywhere.
func TestTTFTTrace(t *testing.T) {
	ss := newStreamServerWith(t, streamSetup{model: demo.New(demo.Options{ChunkDelay: time.Millisecond}), trace: chat.NewTrace(16)})
	id := ss.post(t, "How do I squat?")
	_, evs, _ := ss.follow(t, id, 0, 0)
	checkWhole(t, evs)

	var tr struct {
		MessageID string           `json:"message_id"`
		Steps     map[string]int64 `json:"steps"`
	}
	if code := ss.getJSON(t, "/debug/ttft/"+id, ss.token, &tr); code != http.StatusOK || tr.MessageID != id {
		t.Fatalf("trace: %d %+v", code, tr)
	}
	lanes := [][]string{
		{"post_received", "stored", "queued_appended", "post_answered"},
		{"stored", "generation_started", "model_called", "first_chunk", "first_delta_appended", "first_delta_written"},
		{"stored", "queued_appended", "working_appended", "first_delta_appended"},
		{"post_answered", "stream_received", "stream_found", "stream_slot", "stream_replayed", "stream_ready"},
	}
	for _, lane := range lanes {
		for i, step := range lane {
			at, ok := tr.Steps[step]
			if !ok {
				t.Errorf("step %s missing: %v", step, tr.Steps)
				continue
			}
			if i > 0 && at < tr.Steps[lane[i-1]] {
				t.Errorf("%s at %d, before %s at %d", step, at, lane[i-1], tr.Steps[lane[i-1]])
			}
		}
	}
	stranger := ss.issuer.TokenFor(uuid.NewString(), "x@example.com", time.Hour)
	if code := ss.getJSON(t, "/debug/ttft/"+id, stranger, nil); code != http.StatusNotFound {
		t.Errorf("another user's trace: %d, want 404", code)
	}
}

// TestTTFTTraceOff: without a trace the route does not exist.
func TestTTFTTraceOff(t *testing.T) {
	ss := newStreamServer(t, false)
	for _, rt := range ss.api.Routes() {
		if strings.HasPrefix(rt.Pattern, "/debug/") {
			t.Errorf("route %s %s without a trace", rt.Method, rt.Pattern)
		}
	}
}

func (ss *streamServer) getJSON(t *testing.T, path, token string, out any) int {
	t.Helper()
	req, _ := http.NewRequest("GET", ss.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := ss.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if out != nil && res.StatusCode == http.StatusOK {
		if err := json.NewDecoder(res.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
	return res.StatusCode
}
