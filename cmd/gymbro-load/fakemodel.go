package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// fakeModel is an OpenAI-compatible chat-completions endpoint that streams
// a long reply slowly: one chunk every `every`, `chunks` chunks. Pointed at
// by the service (GYMBRO_AI_PROVIDER=openai, OPENAI_BASE_URL), it keeps
// messages running for minutes, so idle mode can hold streams far longer
// than a heartbeat interval on running messages, each chunk reaching all
// of its message's streams at once.
type fakeModel struct {
	every  time.Duration
	chunks int
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

func (f *fakeModel) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST /v1/chat/completions", http.StatusMethodNotAllowed)
		return
	}
	_, _ = io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "text/event-stream")
	rc := http.NewResponseController(w)
	t := time.NewTicker(f.every)
	defer t.Stop()
	for i := range f.chunks {
		if i > 0 {
			select {
			case <-r.Context().Done():
				return
			case <-t.C:
			}
		}
		finish := ""
		if i == f.chunks-1 {
			finish = "stop"
		}
		if _, err := fmt.Fprintf(w, "data: %s\n\n", chunkJSON(fmt.Sprintf("chunk %d ", i+1), finish)); err != nil {
			return
		}
		_ = rc.Flush()
	}
	_, _ = io.WriteString(w, "data: [DONE]\n\n")
}

// serveFakeModel serves a fakeModel on addr until ctx ends.
func serveFakeModel(ctx context.Context, addr string, f *fakeModel, stderr io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: f, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stderr, "fake model: OPENAI_BASE_URL=http://%s/v1 (one chunk every %s, %d chunks)\n", ln.Addr(), f.every, f.chunks)
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
