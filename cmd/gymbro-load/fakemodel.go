package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// fakeModel is an OpenAI-compatible chat-completions endpoint that streams
// a reply of `chunks` chunks, one every `every` (at once when zero).
// Pointed at by the service (GYMBRO_AI_PROVIDER=openai, OPENAI_BASE_URL),
// it keeps messages running for minutes in idle runs, so idle mode can hold
// streams far longer than a heartbeat interval on running messages, each
// chunk reaching all of its message's streams at once; with every zero it
// is the model that answers at once of the ttft mode.
//
// With openai set it sends exactly the sequence OpenAI's streaming Chat
// Completions API sends: a first chunk with the assistant role and empty
// content, the content chunks, a chunk with an empty delta and the
// finish_reason, a usage chunk with no choices when the request asked for
// it (stream_options.include_usage), and `data: [DONE]`, each event
// flushed as it is written. Without it (what its first tests know) the
// content chunks carry the finish_reason on the last one.
type fakeModel struct {
	every  time.Duration
	chunks int
	openai bool
}

// chunkJSON is one streamed chat.completion.chunk.
func chunkJSON(content, finish string) []byte {
	choice := map[string]any{"index": 0, "delta": map[string]any{"content": content}, "finish_reason": nil}
	if finish != "" {
		choice["finish_reason"] = finish
	}
	b, _ := json.Marshal(map[string]any{
		"id": "fake", "object": "chat.completion.chunk", "created": 0, "model": "gymbro-load-fake",
		"choices": []any{choice},
	})
	return b
}

// openAIChunk is one chat.completion.chunk as OpenAI streams it: every
// field present, usage null but in the last chunk of a stream that asked
// for it.
type openAIChunk struct {
	ID                string         `json:"id"`
	Object            string         `json:"object"`
	Created           int64          `json:"created"`
	Model             string         `json:"model"`
	ServiceTier       string         `json:"service_tier"`
	SystemFingerprint string         `json:"system_fingerprint"`
	Choices           []openAIChoice `json:"choices"`
	Usage             *openAIUsage   `json:"usage"`
}

type openAIChoice struct {
	Index        int            `json:"index"`
	Delta        map[string]any `json:"delta"`
	Logprobs     *struct{}      `json:"logprobs"`
	FinishReason *string        `json:"finish_reason"`
}

type openAIUsage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// fakeRequest is what the fake model reads of a request.
type fakeRequest struct {
	Model         string `json:"model"`
	StreamOptions struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

func (f *fakeModel) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST /v1/chat/completions", http.StatusMethodNotAllowed)
		return
	}
	var req fakeRequest
	body, _ := io.ReadAll(r.Body)
	_ = json.Unmarshal(body, &req) // a request it cannot read still gets an answer
	if !f.openai {
		w.Header().Set("Content-Type", "text/event-stream")
	} else {
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	}
	rc := http.NewResponseController(w)
	var tick <-chan time.Time
	if f.every > 0 {
		t := time.NewTicker(f.every)
		defer t.Stop()
		tick = t.C
	}
	events := f.events(req)
	for i, ev := range events {
		if ev.paced && tick != nil {
			select {
			case <-r.Context().Done():
				return
			case <-tick:
			}
		}
		if _, err := fmt.Fprintf(w, "data: %s\n\n", ev.data); err != nil {
			return
		}
		if f.openai || i < len(events)-1 {
			_ = rc.Flush()
		}
	}
}

// fakeEvent is the data of one event; paced ones wait for the next tick.
type fakeEvent struct {
	data  []byte
	paced bool
}

// events returns every event of one reply, [DONE] included: the content
// chunks after the first are paced.
func (f *fakeModel) events(req fakeRequest) []fakeEvent {
	var out []fakeEvent
	if !f.openai {
		for i := range f.chunks {
			finish := ""
			if i == f.chunks-1 {
				finish = "stop"
			}
			out = append(out, fakeEvent{chunkJSON(fmt.Sprintf("chunk %d ", i+1), finish), i > 0})
		}
		return append(out, fakeEvent{data: []byte("[DONE]")})
	}
	model := req.Model
	if model == "" {
		model = "gymbro-load-fake"
	}
	now := time.Now().Unix()
	chunk := func(delta map[string]any, finish string) []byte {
		c := openAIChunk{ID: "chatcmpl-fake" + strconv.FormatInt(now, 36), Object: "chat.completion.chunk", Created: now,
			Model: model, ServiceTier: "default", SystemFingerprint: "fp_fake", Choices: []openAIChoice{{Delta: delta}}}
		if finish != "" {
			c.Choices[0].FinishReason = &finish
		}
		b, _ := json.Marshal(c)
		return b
	}
	out = append(out, fakeEvent{data: chunk(map[string]any{"role": "assistant", "content": "", "refusal": nil}, "")})
	for i := range f.chunks {
		out = append(out, fakeEvent{chunk(map[string]any{"content": fmt.Sprintf("chunk %d ", i+1)}, ""), i > 0})
	}
	out = append(out, fakeEvent{data: chunk(map[string]any{}, "stop")})
	if req.StreamOptions.IncludeUsage {
		b, _ := json.Marshal(openAIChunk{ID: "chatcmpl-fake" + strconv.FormatInt(now, 36), Object: "chat.completion.chunk",
			Created: now, Model: model, ServiceTier: "default", SystemFingerprint: "fp_fake", Choices: []openAIChoice{},
			Usage: &openAIUsage{PromptTokens: 20, CompletionTokens: f.chunks * 2, TotalTokens: 20 + f.chunks*2}})
		out = append(out, fakeEvent{data: b})
	}
	return append(out, fakeEvent{data: []byte("[DONE]")})
}

// serveFakeModel serves a fakeModel on addr until ctx ends.
func serveFakeModel(ctx context.Context, addr string, f *fakeModel, stderr io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: f, ReadHeaderTimeout: 10 * time.Second}
	pace := "at once"
	if f.every > 0 {
		pace = "one chunk every " + f.every.String()
	}
	fmt.Fprintf(stderr, "fake model: OPENAI_BASE_URL=http://%s/v1 (%d chunks, %s)\n", ln.Addr(), f.chunks, pace)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
