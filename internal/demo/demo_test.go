package demo_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gymbro/gymbro-api/internal/demo"
	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// The interface is what the composition root relies on.
var _ gymbro.Model = (*demo.Model)(nil)

func request(text string) gymbro.ModelRequest {
	return gymbro.ModelRequest{
		System: "You are GymBro, a friendly fitness coach.",
		Turns: []gymbro.Turn{
			{Role: gymbro.RoleUser, Content: "hi"},
			{Role: gymbro.RoleAssistant, Content: "Hello! How can I help?"},
			{Role: gymbro.RoleUser, Content: text},
		},
		User: "user-1",
	}
}

func collect(t *testing.T, m *demo.Model, ctx context.Context, req gymbro.ModelRequest) ([]string, gymbro.ModelResult, error) {
	t.Helper()
	var deltas []string
	res, err := m.Stream(ctx, req, func(d string) error {
		deltas = append(deltas, d)
		return nil
	})
	return deltas, res, err
}

func TestStreamIsDeterministicAndMultiChunk(t *testing.T) {
	m := demo.New(demo.Options{ChunkDelay: -1})
	req := request("How deep should I squat?")

	first, res, err := collect(t, m, t.Context(), req)
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	second, _, err := collect(t, m, t.Context(), req)
	if err != nil {
		t.Fatalf("second Stream: %v", err)
	}
	if diff := cmp.Diff(first, second); diff != "" {
		t.Errorf("same request, different deltas (-first +second):\n%s", diff)
	}
	if len(first) < 5 {
		t.Errorf("got %d deltas, want a multi-chunk stream", len(first))
	}
	full := strings.Join(first, "")
	if want := demo.Reply("How deep should I squat?"); full != want {
		t.Errorf("deltas join to %q, want %q", full, want)
	}
	for _, want := range []string{"\u201cHow deep should I squat?\u201d", "squats", "demo coach"} {
		if !strings.Contains(full, want) {
			t.Errorf("reply %q does not contain %q", full, want)
		}
	}
	if res.Model != "gymbro-demo-coach" || res.FinishReason != "stop" {
		t.Errorf("result = %+v, want model gymbro-demo-coach, finish stop", res)
	}
	if words := int64(len(strings.Fields(full))); res.Usage.CompletionTokens != words {
		t.Errorf("completion tokens = %d, want %d (one per word)", res.Usage.CompletionTokens, words)
	}
	if res.Usage.PromptTokens == 0 || res.Usage.TotalTokens != res.Usage.PromptTokens+res.Usage.CompletionTokens {
		t.Errorf("usage = %+v, want prompt > 0 and total = prompt + completion", res.Usage)
	}
	if m.Name() != "gymbro-demo-coach" {
		t.Errorf("Name() = %q", m.Name())
	}
}

func TestReplyPicksTopicByLastUserTurn(t *testing.T) {
	tests := []struct {
		question, want string
	}{
		{"How deep should I squat?", "For squats"},
		{"Tips for my bench PR", "For the bench press"},
		{"I want to start running", "For running"},
		{"How much protein do I need?", "For nutrition"},
		{"I can't sleep after training", "For recovery"},
		{"You look great today", "A solid plan"}, // "great" is not "eat"
		{"", "A solid plan"},
	}
	for _, tt := range tests {
		t.Run(tt.question, func(t *testing.T) {
			if got := demo.Reply(tt.question); !strings.Contains(got, tt.want) {
				t.Errorf("Reply(%q) = %q, want it to contain %q", tt.question, got, tt.want)
			}
		})
	}
}

func TestReplyQuotesLongQuestionShortly(t *testing.T) {
	q := strings.Repeat("how do I squat more ", 20)
	got := demo.Reply(q)
	if strings.Contains(got, strings.TrimSpace(q)) {
		t.Errorf("Reply echoed the whole %d-byte question", len(q))
	}
	if !strings.Contains(got, "\u2026\u201d") {
		t.Errorf("Reply(%q) = %q, want a shortened quote ending in an ellipsis", q, got)
	}
}

// TestReplyLeavesTheMarkersOut: a marker steers the demo; quoting it back
// would show the user a tag they never meant as their question.
func TestReplyLeavesTheMarkersOut(t *testing.T) {
	got := demo.Reply("How should I warm up?  " + demo.MarkerSlow + " " + demo.MarkerError)
	if !strings.HasPrefix(got, "You asked: \u201cHow should I warm up?\u201d ") || strings.Contains(got, "[demo:") {
		t.Errorf("Reply = %q", got)
	}
	if got := demo.Reply(demo.MarkerSlow); strings.Contains(got, "You asked") {
		t.Errorf("a marker alone is quoted: %q", got)
	}
}

func TestStreamCancelMidStream(t *testing.T) {
	// An hour between chunks: only cancellation can end this stream.
	m := demo.New(demo.Options{ChunkDelay: time.Hour})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var deltas []string
	_, err := m.Stream(ctx, request("squat?"), func(d string) error {
		deltas = append(deltas, d)
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Stream after cancel = %v, want context.Canceled", err)
	}
	if len(deltas) != 1 {
		t.Errorf("got %d deltas, want exactly the one before the cancel", len(deltas))
	}
}

func TestStreamCanceledBeforeStart(t *testing.T) {
	m := demo.New(demo.Options{ChunkDelay: -1})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	deltas, _, err := collect(t, m, ctx, request("squat?"))
	if !errors.Is(err, context.Canceled) || len(deltas) != 0 {
		t.Fatalf("Stream on a canceled ctx = %v with %d deltas, want context.Canceled and none", err, len(deltas))
	}
}

func TestStreamErrorMarker(t *testing.T) {
	m := demo.New(demo.Options{ChunkDelay: -1})
	deltas, _, err := collect(t, m, t.Context(), request("squat please [demo:error]"))
	var e *gymbro.Error
	if !errors.As(err, &e) {
		t.Fatalf("Stream = %v, want *gymbro.Error", err)
	}
	if e.Kind != gymbro.KindUnavailable || e.Code != gymbro.CodeAIUnavailable {
		t.Errorf("error = kind %d code %q, want KindUnavailable ai_unavailable", e.Kind, e.Code)
	}
	if len(deltas) != 1 {
		t.Errorf("got %d deltas before the failure, want 1", len(deltas))
	}
}

func TestStreamMarkerOnlyInLastUserTurn(t *testing.T) {
	m := demo.New(demo.Options{ChunkDelay: -1})
	req := request("squat?")
	req.Turns[0].Content = "earlier [demo:error]"
	if _, _, err := collect(t, m, t.Context(), req); err != nil {
		t.Fatalf("marker in an earlier turn failed the stream: %v", err)
	}
}

func TestStreamEmitErrorStops(t *testing.T) {
	m := demo.New(demo.Options{ChunkDelay: -1})
	boom := errors.New("client went away")
	calls := 0
	_, err := m.Stream(t.Context(), request("squat?"), func(string) error {
		calls++
		return boom
	})
	if err != boom || calls != 1 {
		t.Fatalf("Stream = %v after %d emits, want the emit error after 1", err, calls)
	}
}
