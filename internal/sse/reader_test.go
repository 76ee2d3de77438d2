package sse

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReader(t *testing.T) {
	in := "retry: 3000\n\n" +
		"id: 1\nevent: queued\ndata: {\"a\":1}\n\n" +
		": heartbeat\n\n" +
		"id: 2\r\nevent: content_delta\r\ndata: line one\r\ndata: line two\r\n\r\n" +
		"data: no type\rid: 3\r\r" +
		"event: ignored-without-blank-line\ndata: x"
	r := NewReader(strings.NewReader(in))
	var got []Event
	for {
		ev, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ev)
	}
	want := []Event{
		{Retry: 3000},
		{ID: "1", HasID: true, Type: "queued", Data: `{"a":1}`},
		{Comment: "heartbeat"},
		{ID: "2", HasID: true, Type: "content_delta", Data: "line one\nline two"},
		{ID: "3", HasID: true, Type: "message", Data: "no type"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("events (-want +got):\n%s", diff)
	}
}
