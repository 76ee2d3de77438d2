package openai

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	sdk "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/packages/ssestream"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// params builds the request body: the persona as a system message, then the
// turns in order.
func (m *Model) params(req gymbro.ModelRequest) (sdk.ChatCompletionNewParams, error) {
	msgs := make([]sdk.ChatCompletionMessageParamUnion, 0, len(req.Turns)+1)
	if req.System != "" {
		msgs = append(msgs, sdk.SystemMessage(req.System))
	}
	for _, t := range req.Turns {
		switch t.Role {
		case gymbro.RoleUser:
			msgs = append(msgs, sdk.UserMessage(t.Content))
		case gymbro.RoleAssistant:
			msgs = append(msgs, sdk.AssistantMessage(t.Content))
		case gymbro.RoleSystem:
			msgs = append(msgs, sdk.SystemMessage(t.Content))
		default:
			return sdk.ChatCompletionNewParams{}, gymbro.Errorf(gymbro.KindInternal, gymbro.CodeInternal,
				"openai: turn with unknown role %q", t.Role)
		}
	}
	p := sdk.ChatCompletionNewParams{
		Model:    m.model,
		Messages: msgs,
		// Without include_usage a stream reports no token counts at all.
		StreamOptions: sdk.ChatCompletionStreamOptionsParam{IncludeUsage: sdk.Bool(true)},
	}
	if req.User != "" {
		// "user" rather than the newer "safety_identifier": every
		// OpenAI-compatible server accepts it, while strict ones reject
		// fields they do not know.
		p.User = sdk.String(req.User)
	}
	return p, nil
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
