package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gymbro/gymbro-api/internal/auth/authtest"
	"github.com/gymbro/gymbro-api/internal/chat"
	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/httpapi"
	"github.com/gymbro/gymbro-api/internal/inmem"
	"github.com/gymbro/gymbro-api/internal/openai"
	"github.com/gymbro/gymbro-api/internal/sqlite"
)

// TestFakeModelSpeaksOpenAI reads the fake model as OpenAI's streaming
// format has it (a role chunk with empty content first, the content, the
// finish_reason on an empty delta, the usage chunk with no choices, then
// [DONE]) and through the service's OpenAI client.
func TestFakeModelSpeaksOpenAI(t *testing.T) {
	srv := httptest.NewServer(&fakeModel{chunks: 2, openai: true})
	defer srv.Close()
	res, err := http.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"m","stream":true,"stream_options":{"include_usage":true}}`))
	if err != nil {
		t.Fatal(err)
	}
	var data []string
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			data = append(data, v)
		}
	}
	res.Body.Close()
	want := []string{`"delta":{"content":"","refusal":null,"role":"assistant"}`, `"delta":{"content":"chunk 1 "}`, `"delta":{"content":"chunk 2 "}`,
		`"delta":{},"logprobs":null,"finish_reason":"stop"`, `"choices":[],"usage":{"prompt_tokens":20`, `[DONE]`}
	if len(data) != len(want) {
		t.Fatalf("events %q", data)
	}
	for i, w := range want {
		if !strings.Contains(data[i], w) || (i < 4 && !strings.Contains(data[i], `"usage":null`)) {
			t.Errorf("event %d: %s, want %s", i, data[i], w)
		}
	}

	m, err := openai.New(openai.Config{BaseURL: srv.URL + "/v1", Model: "gpt-4o-mini"})
	if err != nil {
		t.Fatal(err)
	}
	var got strings.Builder
	req := gymbro.ModelRequest{Turns: []gymbro.Turn{{Role: gymbro.RoleUser, Content: "hi"}}}
	r, err := m.Stream(context.Background(), req, func(d string) error { got.WriteString(d); return nil })
	if err != nil || got.String() != "chunk 1 chunk 2 " || r.FinishReason != "stop" || r.Usage.TotalTokens != 24 || r.Model != "gpt-4o-mini" {
		t.Fatalf("reply %q, result %+v, err %v", got.String(), r, err)
	}
}

// TestTTFTModeAgainstRealServer runs the ttft mode, traced, against the
// real API streaming from the fake model through the OpenAI client, one
// user and then three at once.
func TestTTFTModeAgainstRealServer(t *testing.T) {
	model := httptest.NewServer(&fakeModel{chunks: 3, openai: true})
	defer model.Close()
	url, tokens := startTracedServer(t, model.URL+"/v1", 3)
	for _, users := range []string{"1", "3"} {
		s := runLoad(t, "-url", url, "-tokens", tokens, "-mode", "ttft", "-model-url", model.URL+"/v1",
			"-users", users, "-exchanges", "12", "-warmup", "2", "-think", "5ms", "-trace")
		tt := s.TTFT
		if tt == nil || tt.Direct.Count != 12 || tt.Service.Count != 12 || tt.PairDiffs.Count != 12 {
			t.Fatalf("%s users: %+v", users, tt)
		}
		if tt.Added.P50 != tt.Service.P50-tt.Direct.P50 || tt.Service.P50 <= 0 || tt.Direct.P50 <= 0 {
			t.Errorf("%s users: added %+v from service %+v and direct %+v", users, tt.Added, tt.Service, tt.Direct)
		}
		b := tt.Breakdown
		if b == nil || b.Exchanges != 12 || b.ModelConnReused == 0 {
			t.Fatalf("%s users: breakdown %+v", users, b)
		}
		seen := map[string]int{}
		for _, st := range b.Steps {
			seen[st.Step] = st.Count
		}
		for _, lane := range traceLanes {
			for _, step := range lane.steps {
				if seen[step] != 12 {
					t.Errorf("%s users: step %s traced in %d exchanges of 12", users, step, seen[step])
				}
			}
		}
		for _, k := range []string{"events_lost", "events_duplicated", "content_mismatch", "http_errors", "trace_errors", "model_http_errors"} {
			if s.Counts[k] != 0 {
				t.Errorf("%s users: %s = %d; counts %v", users, k, s.Counts[k], s.Counts)
			}
		}
	}
}

// startTracedServer runs the real HTTP API (SQLite, in-process log, the
// OpenAI client on baseURL) with the TTFT trace, trusting a fake Supabase
// issuer, and writes a tokens file for users users.
func startTracedServer(t *testing.T, baseURL string, users int) (url, tokens string) {
	t.Helper()
	ctx := context.Background()
	iss := authtest.NewIssuer(t)
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "gymbro.db"))
	if err != nil {
		t.Fatal(err)
	}
	model, err := openai.New(openai.Config{BaseURL: baseURL, Model: "gpt-4o-mini"})
	if err != nil {
		t.Fatal(err)
	}
	log := inmem.NewEventLog(inmem.Options{})
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := chat.New(chat.Options{Store: store, Log: log, Model: model, Logger: logger, Trace: chat.NewTrace(64)})
	s := httpapi.New(iss.Verifier(t), svc, httpapi.Options{Logger: logger})
	srv := httptest.NewServer(s)
	t.Cleanup(func() {
		_ = svc.Shutdown(ctx)
		s.CloseStreams()
		srv.Close()
		_ = log.Close()
		_ = store.Close()
	})
	return srv.URL, tokenFile(t, iss, users)
}
