package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// provider is an OpenAI-compatible server for the fallback tests, speaking
// the same wire format as fakeOpenAI: chat.completion.chunk objects as SSE
// data lines, usage in the last chunk (the service asks for
// stream_options.include_usage), then "data: [DONE]". A marker
// "[<name>:<mode>]" in the last user message makes this provider fail:
// 500, 503, 429, 400, hang (no answer until the client gives up) or cut (two
// chunks, then the connection ends without a finish).
type provider struct {
	*httptest.Server
	name, key string
	words     []string

	mu    sync.Mutex
	calls map[string]int // last user message → requests
	total int
}

func newProvider(t *testing.T, name, key string, words ...string) *provider {
	t.Helper()
	p := &provider{name: name, key: key, words: words, calls: map[string]int{}}
	p.Server = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.Close)
	return p
}

func (p *provider) Calls(text string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[text]
}

func (p *provider) Total() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.total
}

func (p *provider) serve(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Messages []struct {
			Content string `json:"content"`
		} `json:"messages"`
		StreamOptions struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
	}
	auth := ""
	if p.key != "" {
		auth = "Bearer " + p.key
	}
	if r.URL.Path != "/v1/chat/completions" || r.Header.Get("Authorization") != auth || json.NewDecoder(r.Body).Decode(&req) != nil || len(req.Messages) == 0 {
		p.fail(w, 401, "invalid_request_error")
		return
	}
	last := req.Messages[len(req.Messages)-1].Content
	p.mu.Lock()
	p.calls[last]++
	p.total++
	p.mu.Unlock()
	for _, status := range []int{500, 503, 429, 400} {
		if strings.Contains(last, fmt.Sprintf("[%s:%d]", p.name, status)) {
			p.fail(w, status, map[bool]string{true: "rate_limit_exceeded", false: "server_error"}[status == 429])
			return
		}
	}
	if strings.Contains(last, "["+p.name+":hang]") {
		<-r.Context().Done() // the service gives up after its first-chunk timeout
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	words := p.words
	if strings.Contains(last, "["+p.name+":cut]") {
		p.chunks(w, words[:2], "")
		return // the body ends without a finish_reason or [DONE]
	}
	p.chunks(w, words, "stop")
	if req.StreamOptions.IncludeUsage {
		fmt.Fprintf(w, "data: {\"id\":\"chatcmpl-%s\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"%s-v1\",\"choices\":[],\"usage\":{\"prompt_tokens\":40,\"completion_tokens\":%d,\"total_tokens\":%d}}\n\n",
			p.name, p.name, len(words), 40+len(words))
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
	w.(http.Flusher).Flush()
}

// chunks writes the role chunk, one chunk per word and, with finish, the
// finishing chunk.
func (p *provider) chunks(w http.ResponseWriter, words []string, finish string) {
	chunk := func(delta map[string]any, fin any) {
		b, _ := json.Marshal(map[string]any{
			"id": "chatcmpl-" + p.name, "object": "chat.completion.chunk", "created": 1, "model": p.name + "-v1",
			"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": fin}},
		})
		fmt.Fprintf(w, "data: %s\n\n", b)
		w.(http.Flusher).Flush()
	}
	chunk(map[string]any{"role": "assistant", "content": ""}, nil)
	for _, word := range words {
		chunk(map[string]any{"content": word}, nil)
	}
	if finish != "" {
		chunk(map[string]any{}, finish)
	}
}

func (p *provider) fail(w http.ResponseWriter, status int, typ string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":{"message":"simulated %d","type":"%s","param":null,"code":null}}`, status, typ)
}

// aiConfig writes a GYMBRO_AI_CONFIG file naming primary (its key in
// PRIMARY_KEY) and backup (keyless), with the given breaker.
func aiConfig(t *testing.T, primary, backup *provider, breaker string) string {
	t.Helper()
	yaml := fmt.Sprintf(`models:
  - name: primary
    base_url: %s/v1
    api_key: os.environ/PRIMARY_KEY
    model: gpt-4o-mini
  - name: backup
    base_url: %s/v1
    model: qwen2.5-7b-instruct
fallback: [primary, backup]
breaker: %s
`, primary.URL, backup.URL, breaker)
	path := filepath.Join(t.TempDir(), "ai.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func startRouted(t *testing.T, primary, backup *provider, breaker string, env ...string) *app {
	t.Helper()
	vars := map[string]string{
		"GYMBRO_AI_CONFIG": aiConfig(t, primary, backup, breaker), "PRIMARY_KEY": primary.key,
		"GYMBRO_AI_FIRST_CHUNK_TIMEOUT": "1s",
	}
	for i := 0; i+1 < len(env); i += 2 {
		vars[env[i]] = env[i+1]
	}
	return startApp(t, vars)
}

type storedModel struct {
	Status string `json:"status"`
	Reply  string `json:"reply"`
	Model  string `json:"model"`
	Error  *struct {
		Code      string `json:"code"`
		Retryable bool   `json:"retryable"`
	} `json:"error"`
}

// The primary fails before answering: the backup answers, and the client
// sees one clean stream that names it.
func TestFallbackToTheBackupModel(t *testing.T) {
	primary := newProvider(t, "primary", "sk-primary", "From ", "the ", "primary.")
	backup := newProvider(t, "backup", "", "From ", "the ", "backup.")
	a := startRouted(t, primary, backup, "{failures: 1000}") // this test is not about the breaker
	tok := a.user("fallback@example.com")

	for name, text := range map[string]string{
		"primary 500":  "a [primary:500]",
		"primary 429":  "b [primary:429]",
		"primary hang": "c [primary:hang]",
	} {
		t.Run(name, func(t *testing.T) {
			p := a.post(tok, text, "")
			s := a.events(tok, p.MessageID, "", 0)
			checkOrder(t, s.data, 1)
			got := types(s.data)
			want := []string{"1:queued", "2:working", "3:content_delta", "4:content_delta", "5:content_delta", "6:completed"}
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Fatalf("events %v, want %v", got, want)
			}
			if s.data[2].Model != "backup" || s.data[3].Model != "" {
				t.Errorf("first delta names %q, second %q; want backup, then nothing", s.data[2].Model, s.data[3].Model)
			}
			last := s.data[5]
			if last.Content != "From the backup." || last.Model != "backup" || last.Usage == nil || last.Usage.TotalTokens != 43 {
				t.Errorf("completed = %+v", last)
			}
			var m storedModel
			a.do("GET", "/api/v1/messages/"+p.MessageID, tok, nil).json(t, &m)
			if m.Status != "completed" || m.Model != "backup" || m.Reply != "From the backup." {
				t.Errorf("stored %+v", m)
			}
			if primary.Calls(text) != 1 || backup.Calls(text) != 1 {
				t.Errorf("calls primary %d backup %d, want 1 and 1", primary.Calls(text), backup.Calls(text))
			}
		})
	}

	t.Run("primary answers", func(t *testing.T) {
		p := a.post(tok, "d", "")
		s := a.events(tok, p.MessageID, "", 0)
		last := s.data[len(s.data)-1]
		if last.Content != "From the primary." || last.Model != "primary" || s.data[2].Model != "primary" || backup.Calls("d") != 0 {
			t.Errorf("completed = %+v, first delta %+v", last, s.data[2])
		}
	})

	t.Run("primary fails after two chunks", func(t *testing.T) {
		text := "e [primary:cut]"
		p := a.post(tok, text, "")
		s := a.events(tok, p.MessageID, "", 0)
		checkOrder(t, s.data, 1)
		last := s.data[len(s.data)-1]
		if last.Type != gymbro.EventError || last.Code != gymbro.CodeAIUnavailable || last.Retryable == nil || !*last.Retryable {
			t.Fatalf("terminal = %+v", last)
		}
		if c := content(s.data); c != "From the " || backup.Calls(text) != 0 {
			t.Errorf("content %q, backup calls %d: want the primary's two chunks and no backup", c, backup.Calls(text))
		}
	})

	t.Run("400 does not fall back", func(t *testing.T) {
		text := "f [primary:400]"
		p := a.post(tok, text, "")
		s := a.events(tok, p.MessageID, "", 0)
		last := s.data[len(s.data)-1]
		if last.Type != gymbro.EventError || last.Code != gymbro.CodeAIBadRequest || backup.Calls(text) != 0 || len(s.data) != 3 {
			t.Fatalf("events %v, terminal %+v, backup calls %d", types(s.data), last, backup.Calls(text))
		}
	})

	t.Run("both down", func(t *testing.T) {
		text := "g [primary:500] [backup:503]"
		p := a.post(tok, text, "")
		s := a.events(tok, p.MessageID, "", 0)
		last := s.data[len(s.data)-1]
		if last.Type != gymbro.EventError || last.Code != gymbro.CodeAIUnavailable || last.Retryable == nil || !*last.Retryable || len(s.data) != 3 {
			t.Fatalf("events %v, terminal %+v", types(s.data), last)
		}
		if primary.Calls(text) != 1 || backup.Calls(text) != 1 {
			t.Errorf("calls primary %d backup %d, want 1 and 1", primary.Calls(text), backup.Calls(text))
		}
		var m storedModel
		a.do("GET", "/api/v1/messages/"+p.MessageID, tok, nil).json(t, &m)
		if m.Status != "error" || m.Error == nil || m.Error.Code != gymbro.CodeAIUnavailable || !m.Error.Retryable {
			t.Errorf("stored %+v", m)
		}
	})
}

// The chat_records row synced to Supabase names the model that answered.
func TestSyncedRecordNamesTheBackup(t *testing.T) {
	base, rest := fakeSupabase(t)
	primary := newProvider(t, "primary", "sk-primary", "From ", "the ", "primary.")
	backup := newProvider(t, "backup", "", "From ", "the ", "backup.")
	a := startRouted(t, primary, backup, "{failures: 3}",
		"SUPABASE_URL", base, "SUPABASE_ANON_KEY", "sb_publishable_e2e", "SUPABASE_SERVICE_ROLE_KEY", "sb_secret_e2e")
	tok := a.userVia(base, "sb_publishable_e2e", "sb_secret_e2e", "synced-fallback@example.com")
	p := a.post(tok, "h [primary:500]", "")
	a.events(tok, p.MessageID, "", 0)
	a.main.Outbox.Notify()
	waitFor(t, "the row in Supabase", func() bool { return rest.Len() == 1 })
	if row := rest.Row(p.MessageID); row["model"] != "backup" || row["ai_response"] != "From the backup." || row["total_tokens"] != float64(43) {
		t.Fatalf("row %v", row)
	}
}

// After three failures in a row the primary is skipped: no request reaches
// it while its breaker is open. (Its half-open retry after the cool-down is
// tested on an injected clock in internal/modelrouter.)
func TestBreakerSkipsAFailingPrimary(t *testing.T) {
	primary := newProvider(t, "primary", "sk-primary", "From ", "the ", "primary.")
	backup := newProvider(t, "backup", "", "From ", "the ", "backup.")
	a := startRouted(t, primary, backup, "{failures: 3, cooldown: 1h}")
	tok := a.user("breaker@example.com")

	for i := range 5 {
		p := a.post(tok, fmt.Sprintf("%d [primary:503]", i), "")
		s := a.events(tok, p.MessageID, "", 0)
		if last := s.data[len(s.data)-1]; last.Type != gymbro.EventCompleted || last.Model != "backup" {
			t.Fatalf("message %d: terminal %+v", i, last)
		}
	}
	if primary.Total() != 3 || backup.Total() != 5 {
		t.Fatalf("calls primary %d backup %d, want 3 and 5", primary.Total(), backup.Total())
	}
	// Open even for a message it could answer.
	p := a.post(tok, "healthy again", "")
	if s := a.events(tok, p.MessageID, "", 0); s.data[len(s.data)-1].Model != "backup" || primary.Total() != 3 {
		t.Fatalf("answered by %q, primary calls %d", s.data[len(s.data)-1].Model, primary.Total())
	}
	metrics := a.do("GET", "/metrics", "", nil)
	for _, line := range []string{
		`gymbro_model_breaker_state{model="primary"} 2`,
		`gymbro_model_breaker_state{model="backup"} 0`,
		`gymbro_model_fallbacks_total{from="primary",to="backup"} 3`,
		`gymbro_model_requests_total{model="primary",outcome="error"} 3`,
		`gymbro_model_requests_total{model="backup",outcome="ok"} 6`,
		`gymbro_model_failures_total{code="ai_unavailable",model="primary"} 3`,
		`gymbro_model_tokens_total{kind="completion",model="backup"} 18`,
	} {
		if !strings.Contains(string(metrics.body), line) {
			t.Errorf("/metrics lacks %s", line)
		}
	}
}

// A malformed GYMBRO_AI_CONFIG stops the service before it starts, with
// every problem and its line.
func TestMalformedAIConfigRefusesToStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ai.yaml")
	bad := `models:
  - name: primary
    base_url: not a url
    api_key: sk-pasted-secret
  - name: primary
    base_url: http://127.0.0.1:9/v1
    model: m
    tempreature: 1
fallback: [primary, missing]
`
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errs := runCLI(t, map[string]string{"GYMBRO_DATA_DIR": t.TempDir(), "GYMBRO_AI_CONFIG": path}, "serve")
	if code != 2 {
		t.Fatalf("exit %d, want 2\n%s", code, errs)
	}
	for _, want := range []string{
		path + ":3: base_url must be an absolute http(s) URL",
		path + ":4: api_key must name an environment variable",
		path + ":2: the model needs model:",
		path + ":5: model name \"primary\" is used twice (first at line 2)",
		path + ":8: unknown key \"tempreature\"",
		path + ":9: fallback names \"missing\"",
	} {
		if !strings.Contains(errs, "  - GYMBRO_AI_CONFIG "+want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	if strings.Contains(errs, "sk-pasted-secret") {
		t.Errorf("stderr echoes the key written in the file:\n%s", errs)
	}
}

// The start-up log names the models and where their keys come from; no
// key, and no fallback line, carries one.
func TestRoutedLogsNameModelsNotKeys(t *testing.T) {
	primary := newProvider(t, "primary", "sk-primary-secret-key", "From ", "the ", "primary.")
	backup := newProvider(t, "backup", "", "From ", "the ", "backup.")
	var logs syncBuffer
	a := startAppLogging(t, map[string]string{
		"GYMBRO_HTTP_ADDR": "127.0.0.1:0", "GYMBRO_DATA_DIR": t.TempDir(), "GYMBRO_LOG_LEVEL": "info",
		"GYMBRO_AI_CONFIG": aiConfig(t, primary, backup, "{failures: 3}"), "PRIMARY_KEY": primary.key,
	}, &logs)
	tok := a.user("routed-logs@example.com")
	p := a.post(tok, "i [primary:500]", "")
	a.events(tok, p.MessageID, "", 0)
	a.stop()

	out := logs.String()
	if strings.Contains(out, primary.key) {
		t.Fatalf("the key reached the logs:\n%s", out)
	}
	for _, want := range []string{"models=\"primary → backup\"", "name=primary", "key_from=PRIMARY_KEY", "falling back", "from=primary to=backup code=ai_unavailable"} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %q:\n%s", want, out)
		}
	}
}
