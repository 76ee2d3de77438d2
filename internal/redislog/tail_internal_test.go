package redislog

import (
	"testing"
	"time"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// TestTailOnlyForALogsFirstEvent: a tail starts with a log's queued event.
// An append of any other event to a log this instance has no tail of (a
// recovery ending an old log) starts none, so a replay from the start
// while it runs goes to Redis instead of finding an empty tail.
func TestTailOnlyForALogsFirstEvent(t *testing.T) {
	var ts tails
	ts.init(time.Hour, time.Hour)
	ts.subscribed()

	old := &gymbro.Event{MessageID: "old", Type: gymbro.EventError}
	ts.begin(old, 0)
	if evs, ok := ts.read("old", 0, 10); ok {
		t.Fatalf("a terminal append to a log without a tail made one: read answered %v from memory", evs)
	}
	if ts.appended("old", *old, 57, true) {
		t.Fatal("appended reported a tail for a log that has none")
	}

	first := &gymbro.Event{MessageID: "new", Type: gymbro.EventQueued}
	ts.begin(first, 0)
	if evs, ok := ts.read("new", 0, 10); !ok || len(evs) != 0 {
		t.Fatalf("a reader during the first append got %v, %v; want nothing yet, from memory", evs, ok)
	}
	if !ts.appended("new", *first, 1, true) {
		t.Fatal("the first append's tail is gone")
	}
	if evs, ok := ts.read("new", 0, 10); !ok || len(evs) != 1 || evs[0].Seq != 1 || evs[0].Type != gymbro.EventQueued {
		t.Fatalf("read after the first append = %v, %v; want the queued event, seq 1, from memory", evs, ok)
	}
}
