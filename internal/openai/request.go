package openai

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/openai/openai-go/v3/packages/ssestream"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// body encodes the request once, stream flag included: the persona as a
// system message, then the turns in order. The SDK still sends it and maps
// the HTTP errors, but its reflective encoder of ChatCompletionNewParams
// was a tenth of a millisecond of every exchange's time to first token.
func (m *Model) body(req gymbro.ModelRequest) ([]byte, error) {
	msgs := make([]wireMessage, 0, len(req.Turns)+1)
	if req.System != "" {
		msgs = append(msgs, wireMessage{Role: "system", Content: req.System})
	}
	for _, t := range req.Turns {
		switch t.Role {
		case gymbro.RoleUser, gymbro.RoleAssistant, gymbro.RoleSystem:
			msgs = append(msgs, wireMessage{Role: t.Role, Content: t.Content})
		default:
			return nil, gymbro.Errorf(gymbro.KindInternal, gymbro.CodeInternal,
				"openai: turn with unknown role %q", t.Role)
		}
	}
	return json.Marshal(wireRequest{
		Model:    m.model,
		Messages: msgs,
		Stream:   true,
		// Without include_usage a stream reports no token counts at all.
		StreamOptions: wireStreamOptions{IncludeUsage: true},
		// "user" rather than the newer "safety_identifier": every
		// OpenAI-compatible server accepts it, while strict ones reject
		// fields they do not know.
		User: req.User,
	})
}

// wireRequest is the body of a streaming chat completion request, as
// platform.openai.com/docs/api-reference/chat/create names its fields.
type wireRequest struct {
	Model         string            `json:"model"`
	Messages      []wireMessage     `json:"messages"`
	Stream        bool              `json:"stream"`
	StreamOptions wireStreamOptions `json:"stream_options"`
	User          string            `json:"user,omitempty"`
}

type wireMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type wireStreamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// acquire takes a generation slot, waiting as long as ctx allows.
func (m *Model) acquire(ctx context.Context) error {
	select {
	case m.slots <- struct{}{}:
		return nil
	default:
	}
	m.waiting.Add(1)
	defer m.waiting.Add(-1)
	select {
	case m.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (m *Model) release() { <-m.slots }

// retryAfter reads how long the server asked us to wait: OpenAI's
// retry-after-ms first (finer than seconds), then Retry-After as
// delay-seconds or an HTTP-date (RFC 9110, section 10.2.3).
func retryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	if h == nil {
		return 0, false
	}
	if v := h.Get("Retry-After-Ms"); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms >= 0 {
			return time.Duration(ms * float64(time.Millisecond)), true
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s < 0 || s > int64(24*time.Hour/time.Second) {
			return 0, false
		}
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// streamErrorType returns the "type" (or "code") of an error event sent
// inside a 200 stream, as OpenAI does when generation fails midway.
func streamErrorType(err error) (string, bool) {
	var se *ssestream.StreamError
	if !errors.As(err, &se) {
		return "", false
	}
	var body struct {
		Error struct {
			Type string `json:"type"`
			Code any    `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(se.Event.Data, &body)
	typ := body.Error.Type
	if c, ok := body.Error.Code.(string); ok && c != "" {
		typ += " " + c
	}
	return typ, true
}
