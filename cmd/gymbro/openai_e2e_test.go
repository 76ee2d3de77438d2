package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// fakeOpenAI speaks the Chat Completions streaming wire format: SSE
// "data:" lines of chat.completion.chunk objects, a usage chunk with empty
// choices, then "data: [DONE]"; errors as {"error":{...}} with the status.
// Markers in the last user message choose a failure.
type fakeOpenAI struct {
	*httptest.Server
	mu       sync.Mutex
	calls    map[string]int
	messages map[string][]string // last message → every message's "role: content"
}

func newFakeOpenAI(t *testing.T) *fakeOpenAI {
	f := &fakeOpenAI{calls: map[string]int{}, messages: map[string][]string{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeOpenAI) serve(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model    string `json:"model"`
		Messages []struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"messages"`
	}
	if r.URL.Path != "/v1/chat/completions" || r.Header.Get("Authorization") != "Bearer sk-test" || json.NewDecoder(r.Body).Decode(&req) != nil || len(req.Messages) == 0 {
		http.Error(w, `{"error":{"message":"bad request","type":"invalid_request_error"}}`, 400)
		return
	}
	last := req.Messages[len(req.Messages)-1].Content
	f.mu.Lock()
	f.calls[last]++
	n := f.calls[last]
	for _, m := range req.Messages {
		f.messages[last] = append(f.messages[last], m.Role+": "+m.Content)
	}
	f.mu.Unlock()
	fail := func(status int, typ string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error":{"message":"simulated %d","type":"%s","param":null,"code":null}}`, status, typ)
	}
	switch {
	case strings.Contains(last, "[fail:500]"):
		fail(500, "server_error")
		return
	case strings.Contains(last, "[fail:429]"):
		fail(429, "rate_limit_exceeded")
		return
	case strings.Contains(last, "[fail:400]"):
		fail(400, "invalid_request_error")
		return
	case strings.Contains(last, "[fail-once]") && n == 1:
		fail(503, "server_error")
		return
	case strings.Contains(last, "[hang]"):
		<-r.Context().Done() // never answers; returns when the client gives up
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	fl := w.(http.Flusher)
	chunk := func(delta, finish string) {
		fin := "null"
		if finish != "" {
			fin = `"` + finish + `"`
		}
		d, _ := json.Marshal(delta)
		fmt.Fprintf(w, "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-fake-1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":%s},\"finish_reason\":%s}]}\n\n", d, fin)
		fl.Flush()
	}
	for _, word := range []string{"Keep ", "your ", "back ", "neutral."} {
		chunk(word, "")
	}
	chunk("", "stop")
	fmt.Fprint(w, "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-fake-1\",\"choices\":[],\"usage\":{\"prompt_tokens\":42,\"completion_tokens\":4,\"total_tokens\":46}}\n\n")
	fmt.Fprint(w, "data: [DONE]\n\n")
	fl.Flush()
}

func TestOpenAIModelThroughTheService(t *testing.T) {
	ai := newFakeOpenAI(t)
	a := startApp(t, map[string]string{
		"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": ai.URL + "/v1", "GYMBRO_AI_MODEL": "gpt-fake",
		"GYMBRO_AI_FIRST_CHUNK_TIMEOUT": "1s",
	})
	tok := a.user("oa@example.com")

	t.Run("streams", func(t *testing.T) {
		p := a.post(tok, "deadlift form?", "")
		s := a.events(tok, p.MessageID, "", 0)
		checkOrder(t, s.data, 1)
		last := s.data[len(s.data)-1]
		if last.Type != gymbro.EventCompleted || last.Content != "Keep your back neutral." || last.Model != "gpt-fake-1" || last.Usage == nil || last.Usage.TotalTokens != 46 {
			t.Fatalf("completed = %+v", last)
		}
	})
	t.Run("history reaches the model", func(t *testing.T) {
		p := a.post(tok, "first question", "")
		a.events(tok, p.MessageID, "", 0)
		q := a.post(tok, "follow-up", p.ConversationID)
		a.events(tok, q.MessageID, "", 0)
		ai.mu.Lock()
		defer ai.mu.Unlock()
		got := ai.messages["follow-up"]
		if len(got) != 4 || !strings.HasPrefix(got[0], "system: You are GymBro") || got[1] != "user: first question" ||
			got[2] != "assistant: Keep your back neutral." || got[3] != "user: follow-up" {
			t.Fatalf("the model saw %q", got)
		}
	})
	for name, tc := range map[string]struct {
		text      string
		code      string
		retryable bool
	}{
		"500":  {"x [fail:500]", "ai_unavailable", true},
		"429":  {"x [fail:429]", "ai_rate_limited", true},
		"400":  {"x [fail:400]", "ai_bad_request", false},
		"hang": {"x [hang]", "ai_timeout", true},
	} {
		t.Run(name, func(t *testing.T) {
			p := a.post(tok, tc.text, "")
			s := a.events(tok, p.MessageID, "", 0)
			checkOrder(t, s.data, 1)
			last := s.data[len(s.data)-1]
			if last.Type != gymbro.EventError || last.Code != tc.code || last.Retryable == nil || *last.Retryable != tc.retryable || last.Message == "" {
				t.Fatalf("terminal = %+v", last)
			}
			var m messageJSON
			a.do("GET", "/api/v1/messages/"+p.MessageID, tok, nil).json(t, &m)
			if m.Status != "error" || m.Error == nil || m.Error.Code != tc.code {
				t.Fatalf("stored %+v", m)
			}
		})
	}
	t.Run("a 503 before the first chunk is retried", func(t *testing.T) {
		p := a.post(tok, "y [fail-once]", "")
		s := a.events(tok, p.MessageID, "", 0)
		if last := s.data[len(s.data)-1]; last.Type != gymbro.EventCompleted {
			t.Fatalf("terminal = %+v", last)
		}
	})
}
