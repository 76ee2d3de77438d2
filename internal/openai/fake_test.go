package openai_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gymbro/gymbro-api/internal/openai"
)

// fake is an OpenAI-compatible server speaking the Chat Completions
// streaming wire format: text/event-stream of chat.completion.chunk objects,
// a usage chunk with empty choices, then "data: [DONE]". Errors are the
// {"error":{message,type,param,code}} body with the HTTP status.
type fake struct {
	t   testing.TB
	srv *httptest.Server

	// handle answers attempt n (from 1); it runs with the request counted
	// as in flight.
	handle func(w http.ResponseWriter, r *http.Request, n int)

	attempts    atomic.Int64
	inFlight    atomic.Int64
	maxInFlight atomic.Int64

	mu     sync.Mutex
	bodies []map[string]any
	auth   []string
}

func newFake(t testing.TB, handle func(w http.ResponseWriter, r *http.Request, n int)) *fake {
	t.Helper()
	f := &fake{t: t, handle: handle}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", f.serve)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fake) serve(w http.ResponseWriter, r *http.Request) {
	n := int(f.attempts.Add(1))
	cur := f.inFlight.Add(1)
	// A request stops being in flight when its stream is complete ([DONE]
	// written) or its handler returns, whichever is first: a client may
	// start its next request the moment it has read [DONE], while this
	// handler is still returning.
	var once sync.Once
	end := func() { once.Do(func() { f.inFlight.Add(-1) }) }
	defer end()
	w = &flightWriter{ResponseWriter: w, end: end}
	for {
		m := f.maxInFlight.Load()
		if cur <= m || f.maxInFlight.CompareAndSwap(m, cur) {
			break
		}
	}
	var body map[string]any
	raw, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(raw, &body); err != nil {
		http.Error(w, "bad json", http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.bodies = append(f.bodies, body)
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	f.mu.Unlock()
	f.handle(w, r, n)
}

// config returns a Config aimed at the fake with test-sized timeouts and
// a Sleep that records the backoff instead of waiting.
func (f *fake) config(delays *[]time.Duration) openai.Config {
	return openai.Config{
		APIKey:     "sk-test-secret-key",
		BaseURL:    f.srv.URL + "/v1",
		Model:      "gpt-test",
		HTTPClient: f.srv.Client(),
		Sleep:      recordSleep(delays),
	}
}

// model returns a Model on the fake, its config changed by set.
func (f *fake) model(t testing.TB, delays *[]time.Duration, set func(c *openai.Config)) *openai.Model {
	t.Helper()
	cfg := f.config(delays)
	set(&cfg)
	m, err := openai.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m
}

// wantAttempts fails t unless the fake was asked want times; why says what
// that number shows.
func (f *fake) wantAttempts(t testing.TB, want int64, why string) {
	t.Helper()
	if got := f.attempts.Load(); got != want {
		if why != "" {
			why = " (" + why + ")"
		}
		t.Errorf("attempts = %d, want %d%s", got, want, why)
	}
}

func (f *fake) body(i int) map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bodies[i]
}

// sse writes chunks as a server-sent event stream.
type sse struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

// flightWriter lets a reply mark its request done before its last write.
type flightWriter struct {
	http.ResponseWriter
	end func()
}

// Unwrap lets http.ResponseController reach the Flusher underneath.
func (w *flightWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func startSSE(w http.ResponseWriter) *sse {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	s := &sse{w: w, rc: http.NewResponseController(w)}
	s.flush()
	return s
}

func (s *sse) flush() { _ = s.rc.Flush() }

func (s *sse) data(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	fmt.Fprintf(s.w, "data: %s\n\n", b)
	s.flush()
}

func chunk(model, content string, finish any) map[string]any {
	delta := map[string]any{"content": content}
	if content == "" {
		delta = map[string]any{}
	}
	return map[string]any{
		"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 1700000000,
		"model": model, "system_fingerprint": "fp_test",
		"choices": []any{map[string]any{"index": 0, "delta": delta, "logprobs": nil, "finish_reason": finish}},
		"usage":   nil,
	}
}

// role is the first chunk OpenAI sends: the role and an empty content.
func (s *sse) role(model string) {
	c := chunk(model, "", nil)
	c["choices"].([]any)[0].(map[string]any)["delta"] = map[string]any{"role": "assistant", "content": ""}
	s.data(c)
}

func (s *sse) content(model, text string) { s.data(chunk(model, text, nil)) }

func (s *sse) finish(model, reason string) { s.data(chunk(model, "", reason)) }

func (s *sse) usage(model string, prompt, completion int) {
	s.data(map[string]any{
		"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 1700000000,
		"model": model, "choices": []any{},
		"usage": map[string]any{"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
	})
}

func (s *sse) done() {
	if fw, ok := s.w.(*flightWriter); ok {
		fw.end()
	}
	fmt.Fprint(s.w, "data: [DONE]\n\n")
	s.flush()
}

// reply streams a whole successful reply.
func reply(w http.ResponseWriter, model string, deltas ...string) {
	s := startSSE(w)
	s.role(model)
	for _, d := range deltas {
		s.content(model, d)
	}
	s.finish(model, "stop")
	s.usage(model, 12, len(deltas))
	s.done()
}

// apiError writes OpenAI's error body with status.
func apiError(w http.ResponseWriter, status int, typ, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": code},
	})
}

// recordSleep returns a Config.Sleep that appends each wait to delays and
// returns at once.
func recordSleep(delays *[]time.Duration) func(ctx context.Context, d time.Duration) error {
	var mu sync.Mutex
	return func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		defer mu.Unlock()
		if delays != nil {
			*delays = append(*delays, d)
		}
		return ctx.Err()
	}
}
