package openai

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/openai/openai-go/v3/packages/ssestream"
)

// The SDK decodes every streamed chunk into its full ChatCompletionChunk
// through a generic, reflective decoder that also records each field's
// raw JSON: about 30 µs a chunk, two of them (the role chunk, then the
// first content) before a reply's first token. We read only the model,
// the first choice's content and finish_reason and the usage, so the
// event stream is read here and each chunk decoded into just those with
// encoding/json. The SDK still sends the request and turns HTTP errors
// into *sdk.Error; a stream's in-band error event becomes the SDK's
// *ssestream.StreamError, as its own reader makes it.

// chunk is what we read of a chat.completion.chunk.
type chunk struct {
	Model   string `json:"model"`
	Choices []struct {
		Index int `json:"index"`
		Delta struct {
			Content string `json:"content"`
		} `json:"delta"`
		FinishReason string `json:"finish_reason"` // null reads as ""
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int64 `json:"prompt_tokens"`
		CompletionTokens int64 `json:"completion_tokens"`
		TotalTokens      int64 `json:"total_tokens"`
	} `json:"usage"` // null or absent: nil
	Error json.RawMessage `json:"error"`
}

// maxEventBytes bounds one event of the stream, so a server that never
// ends a line cannot make us buffer without end.
const maxEventBytes = 1 << 20

// chunkStream reads the chunks of a Chat Completions event stream, as the
// WHATWG server-sent events format frames them: data lines (several
// joined by "\n") dispatched at a blank line, comments and other fields
// ignored, until `data: [DONE]` or the end of the body.
type chunkStream struct {
	r    *bufio.Reader
	data []byte
	cur  chunk
	err  error
	done bool
}

func newChunkStream(body io.Reader) *chunkStream {
	return &chunkStream{r: bufio.NewReaderSize(body, 4096)}
}

// Next reads the next chunk into Current; false at [DONE], at the end of
// the stream, or on an error (Err).
func (s *chunkStream) Next() bool {
	if s.done || s.err != nil {
		return false
	}
	for {
		data, ok := s.event()
		if !ok {
			return false
		}
		if bytes.HasPrefix(data, []byte("[DONE]")) {
			s.done = true
			return false
		}
		s.cur = chunk{}
		if err := json.Unmarshal(data, &s.cur); err != nil {
			s.err = fmt.Errorf("openai: reading a streamed chunk: %w", err)
			return false
		}
		if len(s.cur.Error) > 0 && !bytes.Equal(s.cur.Error, []byte("null")) {
			s.err = &ssestream.StreamError{Message: "received error while streaming: " + string(s.cur.Error),
				Event: ssestream.Event{Data: bytes.Clone(data)}}
			return false
		}
		return true
	}
}

// Current is the chunk Next read.
func (s *chunkStream) Current() *chunk { return &s.cur }

// Err is what ended the stream early: nil at [DONE] or a clean end.
func (s *chunkStream) Err() error { return s.err }

// event returns the data of the next event that has any.
func (s *chunkStream) event() ([]byte, bool) {
	s.data = s.data[:0]
	for {
		line, err := s.line()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				s.err = err
			}
			return nil, false // an event not ended by a blank line is dropped
		}
		if len(line) == 0 {
			if len(s.data) > 0 {
				return s.data[:len(s.data)-1], true // without the last "\n"
			}
			continue
		}
		value, ok := bytes.CutPrefix(line, []byte("data:"))
		if !ok {
			continue // a comment, or a field we do not use (event, id, retry)
		}
		value, _ = bytes.CutPrefix(value, []byte(" "))
		if len(s.data)+len(value) > maxEventBytes {
			s.err = errors.New("openai: a streamed event is too large")
			return nil, false
		}
		s.data = append(append(s.data, value...), '\n')
	}
}

// line returns the next line without its end (LF or CRLF, as the SDK's
// reader splits them), valid until the next call.
func (s *chunkStream) line() ([]byte, error) {
	line, err := s.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		long := bytes.Clone(line)
		for errors.Is(err, bufio.ErrBufferFull) && len(long) <= maxEventBytes {
			line, err = s.r.ReadSlice('\n')
			long = append(long, line...)
		}
		line = long
	}
	if err != nil && (len(line) == 0 || !errors.Is(err, io.EOF)) {
		if errors.Is(err, bufio.ErrBufferFull) {
			err = errors.New("openai: a streamed event is too large")
		}
		return nil, err
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	return line, nil
}
