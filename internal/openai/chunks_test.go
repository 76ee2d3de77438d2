package openai

import (
	"errors"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3/packages/ssestream"
)

// TestChunkStream reads event streams as the SDK's reader does: data
// lines joined, LF or CRLF, comments and other fields skipped, an event
// without its blank line dropped, [DONE] the end, an error event an
// *ssestream.StreamError, and an endless line an error rather than
// memory.
func TestChunkStream(t *testing.T) {
	const c1 = `{"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}`
	const c2 = `{"model":"m","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}`
	const c3 = `{"model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}`
	for _, c := range []struct {
		name, body string
		contents   []string
		usage      int64
		err        string
	}{
		{"lf", "data: " + c1 + "\n\ndata: " + c2 + "\n\ndata: " + c3 + "\n\ndata: [DONE]\n\n", []string{"", "Hi"}, 4, ""},
		{"crlf, comments, fields", ": keep-alive\r\nevent: message\r\nid: 1\r\ndata: " + c2 + "\r\n\r\nretry: 10\r\n\r\ndata: [DONE]\r\n\r\n", []string{"Hi"}, 0, ""},
		{"data over two lines", "data: {\"model\":\"m\",\ndata: \"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n", []string{"Hi"}, 0, ""},
		{"no space after the colon, no [DONE]", "data:" + c2 + "\n\n", []string{"Hi"}, 0, ""},
		{"last event unterminated", "data: " + c2 + "\n\ndata: " + c3, []string{"Hi"}, 0, ""},
		{"nothing after [DONE] is read", "data: [DONE]\n\ndata: " + c2 + "\n\n", nil, 0, ""},
		{"error event", "data: " + c2 + "\n\ndata: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n", []string{"Hi"}, 0, "received error while streaming"},
		{"not json", "data: {nope\n\n", nil, 0, "reading a streamed chunk"},
		{"endless line", "data: " + strings.Repeat("x", maxEventBytes+10), nil, 0, "too large"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newChunkStream(strings.NewReader(c.body))
			var contents []string
			var usage int64
			for s.Next() {
				ch := s.Current()
				for _, choice := range ch.Choices {
					contents = append(contents, choice.Delta.Content)
				}
				if ch.Usage != nil {
					usage = ch.Usage.TotalTokens
				}
			}
			if strings.Join(contents, "|") != strings.Join(c.contents, "|") || len(contents) != len(c.contents) || usage != c.usage {
				t.Errorf("contents %q usage %d, want %q and %d", contents, usage, c.contents, c.usage)
			}
			switch err := s.Err(); {
			case c.err == "" && err != nil:
				t.Errorf("err %v", err)
			case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
				t.Errorf("err %v, want one with %q", err, c.err)
			}
			var se *ssestream.StreamError
			if c.name == "error event" && (!errors.As(s.Err(), &se) || !strings.Contains(string(se.Event.Data), "server_error")) {
				t.Errorf("the error event is not a StreamError carrying it: %v", s.Err())
			}
		})
	}
}
