// Package sse reads Server-Sent Events streams as the WHATWG HTML standard
// (§9.2, "Server-sent events") defines their parsing: fields id, event, data
// (several lines joined by "\n") and retry, comment lines starting with ':',
// CR, LF or CRLF line ends, and an event dispatched at each blank line. The
// end-to-end tests and the load tool use it to read our streams.
package sse

import (
	"bufio"
	"bytes"
	"io"
	"strconv"
	"strings"
)

// Event is one dispatched event, or a comment when Comment is set.
type Event struct {
	ID      string // the id field of this event ("" when absent)
	HasID   bool
	Type    string // the event field; "message" when absent
	Data    string
	Retry   int    // a retry field's value in ms; 0 when absent
	Comment string // a comment line's text (heartbeats); no other field is set
}

// Reader parses events from a stream.
type Reader struct {
	s *bufio.Scanner
}

// NewReader returns a Reader of r.
func NewReader(r io.Reader) *Reader {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 4096), 1<<20)
	s.Split(scanLines)
	return &Reader{s: s}
}

// Next returns the next event or comment; io.EOF at the end of the stream
// (an event not ended by a blank line is dropped, as the standard says).
func (r *Reader) Next() (Event, error) {
	var ev Event
	var data strings.Builder
	hasData, hasField := false, false
	for r.s.Scan() {
		line := r.s.Text()
		if line == "" {
			if !hasField && ev.Retry == 0 {
				continue
			}
			if !hasData && ev.Type == "" && !ev.HasID {
				if ev.Retry != 0 {
					return ev, nil // a bare retry: still worth reporting
				}
				hasField = false
				continue
			}
			ev.Data = data.String()
			if ev.Type == "" {
				ev.Type = "message"
			}
			return ev, nil
		}
		if strings.HasPrefix(line, ":") {
			if hasField {
				continue // a comment inside an event is ignored
			}
			return Event{Comment: strings.TrimPrefix(strings.TrimPrefix(line, ":"), " ")}, nil
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		hasField = true
		switch field {
		case "event":
			ev.Type = value
		case "data":
			if hasData {
				data.WriteByte('\n')
			}
			data.WriteString(value)
			hasData = true
		case "id":
			if !strings.ContainsRune(value, 0) {
				ev.ID, ev.HasID = value, true
			}
		case "retry":
			if n, err := strconv.Atoi(value); err == nil && n >= 0 {
				ev.Retry = n
			}
		}
	}
	if err := r.s.Err(); err != nil {
		return Event{}, err
	}
	return Event{}, io.EOF
}

// scanLines splits on CRLF, LF or CR.
func scanLines(data []byte, atEOF bool) (advance int, token []byte, err error) {
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		if data[i] == '\r' {
			if i+1 < len(data) {
				if data[i+1] == '\n' {
					return i + 2, data[:i], nil
				}
				return i + 1, data[:i], nil
			}
			if !atEOF {
				return 0, nil, nil // need more to know whether LF follows
			}
		}
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}
