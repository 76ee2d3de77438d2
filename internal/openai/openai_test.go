package openai_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/openai"
)

var _ gymbro.Model = (*openai.Model)(nil)

func newModel(t testing.TB, cfg openai.Config) *openai.Model {
	t.Helper()
	m, err := openai.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m
}

func request() gymbro.ModelRequest {
	return gymbro.ModelRequest{
		System: "You are GymBro.",
		Turns: []gymbro.Turn{
			{Role: gymbro.RoleUser, Content: "hi"},
			{Role: gymbro.RoleAssistant, Content: "Hello!"},
			{Role: gymbro.RoleUser, Content: "How deep should I squat?"},
		},
		User: "user-hash-1",
	}
}

// stream runs m.Stream and collects the deltas.
func stream(ctx context.Context, m *openai.Model) ([]string, gymbro.ModelResult, error) {
	var deltas []string
	res, err := m.Stream(ctx, request(), func(d string) error {
		deltas = append(deltas, d)
		return nil
	})
	return deltas, res, err
}

// wantError checks that err is a *gymbro.Error of kind and code whose text
// does not leak the API key.
func wantError(t *testing.T, err error, kind gymbro.Kind, code string) *gymbro.Error {
	t.Helper()
	var e *gymbro.Error
	if !errors.As(err, &e) {
		t.Fatalf("error = %v (%T), want *gymbro.Error %s", err, err, code)
	}
	if e.Kind != kind || e.Code != code {
		t.Fatalf("error = kind %d code %q (%v), want kind %d code %q", e.Kind, e.Code, err, kind, code)
	}
	for _, s := range []string{err.Error(), e.Message, fmt.Sprintf("%+v", err)} {
		if strings.Contains(s, "sk-test-secret-key") {
			t.Errorf("error text leaks the API key: %s", s)
		}
	}
	return e
}

func TestStreamSuccess(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		reply(w, "gpt-test-2026-01-01", "Squat ", "to parallel", ".")
	})
	m := newModel(t, f.config(nil))

	deltas, res, err := stream(t.Context(), m)
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	if diff := cmp.Diff([]string{"Squat ", "to parallel", "."}, deltas); diff != "" {
		t.Errorf("deltas (-want +got):\n%s", diff)
	}
	want := gymbro.ModelResult{
		Model:        "gpt-test-2026-01-01", // what the server reported, not the configured name
		FinishReason: "stop",
		Usage:        gymbro.Usage{PromptTokens: 12, CompletionTokens: 3, TotalTokens: 15},
	}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
	if m.Name() != "gpt-test" {
		t.Errorf("Name() = %q, want the configured model", m.Name())
	}

	if got := f.auth[0]; got != "Bearer sk-test-secret-key" {
		t.Errorf("Authorization = %q", got)
	}
	body := f.body(0)
	if body["model"] != "gpt-test" || body["stream"] != true || body["user"] != "user-hash-1" {
		t.Errorf("body model/stream/user = %v/%v/%v", body["model"], body["stream"], body["user"])
	}
	if so, _ := body["stream_options"].(map[string]any); so["include_usage"] != true {
		t.Errorf("stream_options = %v, want include_usage true", body["stream_options"])
	}
	wantMsgs := []any{
		map[string]any{"role": "system", "content": "You are GymBro."},
		map[string]any{"role": "user", "content": "hi"},
		map[string]any{"role": "assistant", "content": "Hello!"},
		map[string]any{"role": "user", "content": "How deep should I squat?"},
	}
	if diff := cmp.Diff(wantMsgs, body["messages"]); diff != "" {
		t.Errorf("messages (-want +got):\n%s", diff)
	}
}

func TestStreamRetriesServerErrorBeforeFirstChunk(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			apiError(w, http.StatusInternalServerError, "server_error", "", "The server had an error.")
			return
		}
		reply(w, "gpt-test", "ok")
	})
	var delays []time.Duration
	m := newModel(t, f.config(&delays))

	deltas, _, err := stream(t.Context(), m)
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	f.wantAttempts(t, 2, "")
	if len(deltas) != 1 || deltas[0] != "ok" {
		t.Errorf("deltas = %q, want only the second attempt's", deltas)
	}
	// First backoff step: 500ms with equal jitter.
	if len(delays) != 1 || delays[0] < 250*time.Millisecond || delays[0] > 500*time.Millisecond {
		t.Errorf("backoff = %v, want one wait in [250ms, 500ms]", delays)
	}
}

func TestStreamHonoursRetryAfter(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			w.Header().Set("Retry-After", "3")
			apiError(w, http.StatusTooManyRequests, "requests", "rate_limit_exceeded", "Rate limit reached.")
			return
		}
		reply(w, "gpt-test", "ok")
	})
	var delays []time.Duration
	m := newModel(t, f.config(&delays))

	if _, _, err := stream(t.Context(), m); err != nil {
		t.Fatalf("Stream: %v", err)
	}
	if diff := cmp.Diff([]time.Duration{3 * time.Second}, delays); diff != "" {
		t.Errorf("waits (-want +got):\n%s", diff)
	}
}

func TestStreamRateLimitedForever(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Retry-After", "2")
		apiError(w, http.StatusTooManyRequests, "requests", "rate_limit_exceeded", "Rate limit reached.")
	})
	var delays []time.Duration
	m := f.model(t, &delays, func(c *openai.Config) { c.MaxRetries = 2 })

	_, _, err := stream(t.Context(), m)
	e := wantError(t, err, gymbro.KindRateLimited, gymbro.CodeAIRateLimited)
	if e.RetryAfter != 2*time.Second {
		t.Errorf("RetryAfter = %v, want 2s from the header", e.RetryAfter)
	}
	f.wantAttempts(t, 3, "1 + MaxRetries")
	if len(delays) != 2 {
		t.Errorf("waits = %v, want 2", delays)
	}
}

func TestStreamRetryAfterTooLongFailsAtOnce(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Retry-After", "600")
		apiError(w, http.StatusTooManyRequests, "tokens", "rate_limit_exceeded", "Rate limit reached.")
	})
	m := newModel(t, f.config(nil))

	_, _, err := stream(t.Context(), m)
	e := wantError(t, err, gymbro.KindRateLimited, gymbro.CodeAIRateLimited)
	if e.RetryAfter != 10*time.Minute || f.attempts.Load() != 1 {
		t.Errorf("RetryAfter = %v after %d attempts, want 10m after 1", e.RetryAfter, f.attempts.Load())
	}
}

func TestStreamClientErrorsAreNotRetried(t *testing.T) {
	for _, status := range []int{400, 401, 403, 404, 422} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
				apiError(w, status, "invalid_request_error", "model_not_found", "The model `gpt-test` does not exist.")
			})
			m := newModel(t, f.config(nil))

			_, _, err := stream(t.Context(), m)
			wantError(t, err, gymbro.KindUpstream, gymbro.CodeAIBadRequest)
			f.wantAttempts(t, 1, "")
		})
	}
}

func TestStreamGatewayPageIsUnavailable(t *testing.T) {
	// A proxy in front of the model answers with HTML, not OpenAI's JSON.
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprint(w, "<html><body>502 Bad Gateway</body></html>")
	})
	m := f.model(t, nil, func(c *openai.Config) { c.MaxRetries = 1 })

	_, _, err := stream(t.Context(), m)
	wantError(t, err, gymbro.KindUnavailable, gymbro.CodeAIUnavailable)
	f.wantAttempts(t, 2, "a 502 is retried")
}

func TestStreamConnectionRefused(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	var delays []time.Duration
	m := newModel(t, openai.Config{
		APIKey: "sk-test-secret-key", BaseURL: url + "/v1", MaxRetries: 1, Sleep: recordSleep(&delays),
	})

	_, _, err := stream(t.Context(), m)
	wantError(t, err, gymbro.KindUnavailable, gymbro.CodeAIUnavailable)
	if len(delays) != 1 {
		t.Errorf("waits = %v, want one retry", delays)
	}
}

func TestStreamFirstChunkTimeout(t *testing.T) {
	tests := map[string]func(w http.ResponseWriter){
		"no headers":          func(w http.ResponseWriter) {},
		"headers but no data": func(w http.ResponseWriter) { startSSE(w) },
	}
	for name, before := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
				before(w)
				<-r.Context().Done() // hang until the client gives up
			})
			m := f.model(t, nil, func(c *openai.Config) { c.FirstChunkTimeout = 200 * time.Millisecond })

			deltas, _, err := stream(t.Context(), m)
			wantError(t, err, gymbro.KindTimeout, gymbro.CodeAITimeout)
			if len(deltas) != 0 {
				t.Errorf("deltas = %q, want none", deltas)
			}
			f.wantAttempts(t, 1, "a timeout is not retried")
		})
	}
}

func TestStreamIdleTimeoutKeepsPartialDeltas(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		s := startSSE(w)
		s.role("gpt-test")
		s.content("gpt-test", "Squat ")
		s.content("gpt-test", "deep")
		<-r.Context().Done() // stall mid-reply
	})
	m := f.model(t, nil, func(c *openai.Config) { c.IdleTimeout = 200 * time.Millisecond })

	deltas, _, err := stream(t.Context(), m)
	e := wantError(t, err, gymbro.KindTimeout, gymbro.CodeAITimeout)
	if !strings.Contains(e.Message, "mid-reply") {
		t.Errorf("message = %q, want the idle-timeout wording", e.Message)
	}
	if diff := cmp.Diff([]string{"Squat ", "deep"}, deltas); diff != "" {
		t.Errorf("deltas (-want +got):\n%s", diff)
	}
	f.wantAttempts(t, 1, "")
}

func TestStreamTotalTimeout(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		s := startSSE(w)
		s.content("gpt-test", "Squat ")
		<-r.Context().Done()
	})
	m := f.model(t, nil, func(c *openai.Config) { c.TotalTimeout = 200 * time.Millisecond })

	_, _, err := stream(t.Context(), m)
	e := wantError(t, err, gymbro.KindTimeout, gymbro.CodeAITimeout)
	if !strings.Contains(e.Message, "finish") {
		t.Errorf("message = %q, want the total-timeout wording", e.Message)
	}
}

func TestStreamErrorAfterFirstChunkIsNotRetried(t *testing.T) {
	tests := map[string]func(s *sse){
		"connection cut": func(s *sse) { panic(http.ErrAbortHandler) },
		"error event": func(s *sse) {
			s.data(map[string]any{"error": map[string]any{"message": "The server had an error while processing your request.", "type": "server_error", "param": nil, "code": nil}})
		},
		"eof without finish": func(s *sse) {},
	}
	for name, fail := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
				s := startSSE(w)
				s.content("gpt-test", "Squat ")
				fail(s)
			})
			m := newModel(t, f.config(nil))

			deltas, _, err := stream(t.Context(), m)
			wantError(t, err, gymbro.KindUnavailable, gymbro.CodeAIUnavailable)
			f.wantAttempts(t, 1, "")
			if len(deltas) != 1 {
				t.Errorf("deltas = %q, want the one before the failure", deltas)
			}
		})
	}
}

func TestStreamCallerCancel(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		s := startSSE(w)
		s.content("gpt-test", "Squat ")
		<-r.Context().Done()
	})
	m := newModel(t, f.config(nil))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	_, err := m.Stream(ctx, request(), func(string) error {
		cancel()
		return nil
	})
	if err != context.Canceled {
		t.Fatalf("Stream = %v, want context.Canceled unchanged", err)
	}
}

func TestStreamEmitErrorIsReturned(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		reply(w, "gpt-test", "a", "b", "c")
	})
	m := newModel(t, f.config(nil))
	boom := errors.New("subscriber gone")
	calls := 0
	_, err := m.Stream(t.Context(), request(), func(string) error {
		calls++
		return boom
	})
	if err != boom || calls != 1 {
		t.Fatalf("Stream = %v after %d emits, want the emit error after 1", err, calls)
	}
	f.wantAttempts(t, 1, "")
}

func TestStreamConcurrencyCap(t *testing.T) {
	release := make(chan struct{})
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		reply(w, "gpt-test", fmt.Sprint("reply ", n))
	})
	m := f.model(t, nil, func(c *openai.Config) { c.MaxConcurrent = 1 })

	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Go(func() { _, _, errs[0] = stream(t.Context(), m) })
	waitFor(t, "the first request to reach the server", func() bool { return f.attempts.Load() == 1 })
	wg.Go(func() { _, _, errs[1] = stream(t.Context(), m) })
	waitFor(t, "the second Stream to wait for a slot", func() bool { return m.Stats().Waiting == 1 })

	if got := f.attempts.Load(); got != 1 {
		t.Errorf("requests while the first holds the slot = %d, want 1", got)
	}
	close(release)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Stream %d: %v", i, err)
		}
	}
	if got := f.maxInFlight.Load(); got != 1 {
		t.Errorf("max concurrent requests at the server = %d, want 1", got)
	}
	if got := f.attempts.Load(); got != 2 {
		t.Errorf("requests = %d, want 2", got)
	}
	if s := m.Stats(); s != (openai.Stats{}) {
		t.Errorf("Stats after both = %+v, want zero", s)
	}
}

func TestStreamCancelWhileWaitingForSlot(t *testing.T) {
	release := make(chan struct{})
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		reply(w, "gpt-test", "ok")
	})
	m := f.model(t, nil, func(c *openai.Config) { c.MaxConcurrent = 1 })

	var wg sync.WaitGroup
	var firstErr error
	wg.Go(func() { _, _, firstErr = stream(t.Context(), m) })
	waitFor(t, "the first request to reach the server", func() bool { return f.attempts.Load() == 1 })

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { _, _, err := stream(ctx, m); done <- err }()
	waitFor(t, "the second Stream to wait for a slot", func() bool { return m.Stats().Waiting == 1 })
	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("waiting Stream after cancel = %v, want context.Canceled", err)
	}
	close(release)
	wg.Wait()
	if firstErr != nil {
		t.Errorf("first Stream: %v", firstErr)
	}
}

// waitFor polls cond until it holds, failing t after a generous deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestNewValidates(t *testing.T) {
	tests := map[string]openai.Config{
		"no key for api.openai.com": {},
		"relative base URL":         {APIKey: "k", BaseURL: "/v1"},
		"credentials in base URL":   {APIKey: "k", BaseURL: "https://user:pass@example.com/v1"},
		"negative timeout":          {APIKey: "k", IdleTimeout: -time.Second},
	}
	for name, cfg := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := openai.New(cfg); gymbro.ErrorKind(err) != gymbro.KindInvalid {
				t.Errorf("New(%s) = %v, want a KindInvalid error", name, err)
			}
		})
	}
	// A local server (Ollama, vLLM) needs no key.
	if _, err := openai.New(openai.Config{BaseURL: "http://127.0.0.1:11434/v1"}); err != nil {
		t.Errorf("New for a local server without key: %v", err)
	}
}

func TestConfigDoesNotLeakKey(t *testing.T) {
	cfg := openai.Config{APIKey: "sk-test-secret-key", BaseURL: "https://api.example.com/v1"}
	var b strings.Builder
	slog.New(slog.NewJSONHandler(&b, nil)).Info("config", "openai", cfg)
	for _, s := range []string{b.String(), fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg)} {
		if strings.Contains(s, "sk-test-secret-key") {
			t.Errorf("key leaked: %s", s)
		}
		if !strings.Contains(s, "api.example.com") {
			t.Errorf("output %q lost the base URL", s)
		}
	}
}
