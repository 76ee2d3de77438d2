package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

func TestLatenciesSummary(t *testing.T) {
	var l Latencies
	for i := 1; i <= 100; i++ {
		l.Add(time.Duration(i) * time.Millisecond)
	}
	got := l.Summary()
	want := Dist{Count: 100, Mean: 50.5, P50: 50, P90: 90, P99: 99, Max: 100}
	if got != want {
		t.Errorf("summary %+v, want %+v", got, want)
	}
	if (&Latencies{}).Summary() != (Dist{}) {
		t.Error("empty summary is not zero")
	}
}

func ev(seq int64, typ gymbro.EventType, delta, content string) gymbro.Event {
	return gymbro.Event{MessageID: "m", Seq: seq, Type: typ, Delta: delta, Content: content}
}

func TestStreamCheck(t *testing.T) {
	tests := []struct {
		name     string
		events   []gymbro.Event
		resetAt  int // index before which a reset(1) is applied; -1 none
		lost     int64
		dup      int64
		done     bool
		mismatch bool
	}{
		{name: "clean", resetAt: -1, done: true, events: []gymbro.Event{
			ev(1, gymbro.EventQueued, "", ""), ev(2, gymbro.EventWorking, "", ""),
			ev(3, gymbro.EventContentDelta, "Squat ", ""), ev(4, gymbro.EventContentDelta, "deep.", ""),
			ev(5, gymbro.EventCompleted, "", "Squat deep."),
		}},
		{name: "reconnect replays one event twice", resetAt: -1, dup: 1, done: true, events: []gymbro.Event{
			ev(1, gymbro.EventQueued, "", ""), ev(2, gymbro.EventContentDelta, "a", ""),
			ev(2, gymbro.EventContentDelta, "a", ""), ev(3, gymbro.EventCompleted, "", "a"),
		}},
		{name: "gap", resetAt: -1, lost: 2, done: true, mismatch: true, events: []gymbro.Event{
			ev(1, gymbro.EventQueued, "", ""), ev(2, gymbro.EventContentDelta, "a", ""),
			ev(5, gymbro.EventCompleted, "", "abc"),
		}},
		{name: "unfinished", resetAt: -1, events: []gymbro.Event{
			ev(1, gymbro.EventQueued, "", ""), ev(2, gymbro.EventContentDelta, "a", ""),
		}},
		{name: "canceled keeps the partial content", resetAt: -1, done: true, events: []gymbro.Event{
			ev(1, gymbro.EventQueued, "", ""), ev(2, gymbro.EventContentDelta, "a", ""),
			ev(3, gymbro.EventCanceled, "", "a"),
		}},
		{name: "reset replays from the start", resetAt: 2, done: true, events: []gymbro.Event{
			ev(1, gymbro.EventQueued, "", ""), ev(2, gymbro.EventContentDelta, "a", ""),
			ev(1, gymbro.EventQueued, "", ""), ev(2, gymbro.EventContentDelta, "a", ""),
			ev(3, gymbro.EventCompleted, "", "a"),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c StreamCheck
			for i, e := range tt.events {
				if i == tt.resetAt {
					c.Reset(1)
				}
				c.Observe(e)
			}
			if c.Lost != tt.lost || c.Duplicated != tt.dup || c.Done() != tt.done || c.Mismatch != tt.mismatch {
				t.Errorf("lost %d dup %d done %v mismatch %v; want %d %d %v %v",
					c.Lost, c.Duplicated, c.Done(), c.Mismatch, tt.lost, tt.dup, tt.done, tt.mismatch)
			}
			var n Counters
			n.Merge(&c)
			if n.Get("events_lost") != tt.lost || n.Get("events_duplicated") != tt.dup || (n.Get("streams_unfinished") == 1) == tt.done {
				t.Errorf("counters %v", n.Snapshot())
			}
		})
	}
}

func TestReadStream(t *testing.T) {
	// What the server writes, with a heartbeat, the opening retry and a
	// duplicate after a reconnect spliced in.
	stream := "retry: 3000\n\n" +
		"id: 1\nevent: queued\ndata: {\"message_id\":\"m\",\"seq\":1,\"type\":\"queued\"}\n\n" +
		": heartbeat\n\n" +
		"id: 2\nevent: content_delta\ndata: {\"message_id\":\"m\",\"seq\":2,\"type\":\"content_delta\",\"delta\":\"Hi \"}\n\n" +
		"id: 2\nevent: content_delta\ndata: {\"message_id\":\"m\",\"seq\":2,\"type\":\"content_delta\",\"delta\":\"Hi \"}\n\n" +
		"id: 3\nevent: completed\ndata: {\"message_id\":\"m\",\"seq\":3,\"type\":\"completed\",\"content\":\"Hi \"}\n\n" +
		"id: 4\nevent: content_delta\ndata: {\"message_id\":\"m\",\"seq\":4,\"type\":\"content_delta\",\"delta\":\"after the end\"}\n\n"
	l := &load{o: &options{heartbeat: time.Second}}
	var c StreamCheck
	var seen []int64
	err := l.read(strings.NewReader(stream), &c, func(e gymbro.Event) bool { seen = append(seen, e.Seq); return true })
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if len(seen) != 3 || !c.Done() || c.Duplicated != 1 || c.Mismatch || l.heartbeats.Count() != 1 {
		t.Errorf("seen %v, check %+v, heartbeats %d", seen, c, l.heartbeats.Count())
	}

	// Hanging up on purpose reports errHangUp and keeps Last for resuming.
	c = StreamCheck{}
	err = l.read(strings.NewReader(stream), &c, func(e gymbro.Event) bool { return e.Seq < 2 })
	if err != errHangUp || c.Last != 2 {
		t.Errorf("hang up: err %v, last %d", err, c.Last)
	}
	// A stream cut before its end reports io.EOF.
	c = StreamCheck{}
	if err := l.read(strings.NewReader(stream[:60]), &c, func(gymbro.Event) bool { return true }); err != io.EOF {
		t.Errorf("cut stream: err %v", err)
	}
}

func TestParseMemory(t *testing.T) {
	prom := "# HELP go_memstats_heap_inuse_bytes x\n# TYPE go_memstats_heap_inuse_bytes gauge\ngo_memstats_heap_inuse_bytes 1.2345e+07\nprocess_resident_memory_bytes 4.5e+07\n"
	s, err := parseMetrics(strings.NewReader(prom))
	if err != nil || s.HeapInuse != 12345000 || s.RSS != 45000000 {
		t.Errorf("metrics: %+v, %v", s, err)
	}
	if _, err := parseMetrics(strings.NewReader("<!doctype html>")); err == nil {
		t.Error("an HTML page parsed as metrics")
	}
	s, err = parseProcStatus(strings.NewReader("Name:\tgymbro\nVmRSS:\t   20480 kB\n"))
	if err != nil || s.RSS != 20480<<10 {
		t.Errorf("proc: %+v, %v", s, err)
	}
}

func TestCheckLoopback(t *testing.T) {
	for u, ok := range map[string]bool{
		"http://127.0.0.1:8080": true, "http://localhost:1": true, "http://[::1]:80": true, "http://127.3.2.1:9": true,
		"http://10.0.0.1:8080": false, "https://example.com": false, "ftp://127.0.0.1": false, "127.0.0.1:8080": false,
	} {
		if err := checkLoopback(u); (err == nil) != ok {
			t.Errorf("%s: err %v, want ok=%v", u, err, ok)
		}
	}
}
