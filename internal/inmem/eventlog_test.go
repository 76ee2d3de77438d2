package inmem_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gymbro/gymbro-api/internal/eventlogtest"
	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/inmem"
)

func newLog(t *testing.T, ttl time.Duration, now func() time.Time) gymbro.EventLog {
	l := inmem.NewEventLog(inmem.Options{TTL: ttl, Now: now})
	t.Cleanup(func() { l.Close() })
	return l
}

func TestContract(t *testing.T) { eventlogtest.Run(t, newLog) }

func TestSweepDropsExpiredLogs(t *testing.T) {
	clock := eventlogtest.NewClock()
	l := inmem.NewEventLog(inmem.Options{TTL: time.Minute, OpenTTL: time.Hour, Now: clock.Now, SweepEvery: -1})
	defer l.Close()
	ctx := context.Background()
	mustAppend := func(id string, typ gymbro.EventType) {
		t.Helper()
		if _, err := l.Append(ctx, gymbro.Event{MessageID: id, Type: typ}); err != nil {
			t.Fatal(err)
		}
	}
	mustAppend("done", gymbro.EventQueued)
	mustAppend("done", gymbro.EventCompleted)
	mustAppend("open", gymbro.EventQueued)
	_, stop := l.Watch("watched-only")
	defer stop()

	clock.Advance(time.Minute - time.Nanosecond)
	l.Sweep()
	if got := l.Len(); got != 3 {
		t.Fatalf("before the TTL: %d logs held, want 3", got)
	}
	clock.Advance(time.Nanosecond)
	l.Sweep()
	if got := l.Len(); got != 2 {
		t.Fatalf("at the TTL: %d logs held, want 2 (the open one and the watched one)", got)
	}
	clock.Advance(time.Hour)
	l.Sweep()
	if got := l.Len(); got != 1 {
		t.Fatalf("after OpenTTL: %d logs held, want only the watched one", got)
	}
	stop()
	if got := l.Len(); got != 0 {
		t.Fatalf("after the last stop: %d logs held, want 0", got)
	}
	// An expired log reads as new: the id can start over.
	ev, err := l.Append(ctx, gymbro.Event{MessageID: "done", Type: gymbro.EventQueued})
	if err != nil || ev.Seq != 1 {
		t.Fatalf("Append after expiry = seq %d, %v; want seq 1", ev.Seq, err)
	}
}

// TestExpiredLogKeepsItsWatchers drops a watched log at its TTL; the watcher
// stays registered and is woken by the next life of that id.
func TestExpiredLogKeepsItsWatchers(t *testing.T) {
	clock := eventlogtest.NewClock()
	l := inmem.NewEventLog(inmem.Options{TTL: time.Minute, Now: clock.Now, SweepEvery: -1})
	defer l.Close()
	ctx := context.Background()
	ch, stop := l.Watch("m")
	defer stop()
	for _, typ := range []gymbro.EventType{gymbro.EventQueued, gymbro.EventCanceled} {
		if _, err := l.Append(ctx, gymbro.Event{MessageID: "m", Type: typ}); err != nil {
			t.Fatal(err)
		}
	}
	<-ch
	clock.Advance(time.Minute)
	l.Sweep()
	if evs, _ := l.Read(ctx, "m", 0, 10); len(evs) != 0 {
		t.Fatalf("expired log read %d events", len(evs))
	}
	if _, err := l.Append(ctx, gymbro.Event{MessageID: "m", Type: gymbro.EventQueued}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	default:
		t.Fatal("watcher of an expired log not signalled by the id's next append")
	}
}

// TestJanitorSweeps lets the janitor goroutine, not the test, drop a log.
func TestJanitorSweeps(t *testing.T) {
	clock := eventlogtest.NewClock()
	l := inmem.NewEventLog(inmem.Options{TTL: time.Minute, Now: clock.Now, SweepEvery: time.Millisecond})
	defer l.Close()
	if _, err := l.Append(context.Background(), gymbro.Event{MessageID: "m", Type: gymbro.EventError}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for l.Len() != 0 {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatal("the janitor never dropped the expired log")
		}
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	l := inmem.NewEventLog(inmem.Options{})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// idleWatcherBytes measures the heap one idle Watch costs: a watcher on its
// own message, as one open SSE stream waiting for the next event holds.
func idleWatcherBytes(n int) float64 {
	l := inmem.NewEventLog(inmem.Options{SweepEvery: -1})
	defer l.Close()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("msg-%08d", i)
	}
	stops := make([]func(), 0, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, id := range ids {
		_, stop := l.Watch(id)
		stops = append(stops, stop)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	for _, stop := range stops {
		stop()
	}
	runtime.KeepAlive(ids)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
}

// TestIdleWatcherMemory holds the product target: at most 20 KiB per idle
// open stream, of which the log's share must be a small part.
func TestIdleWatcherMemory(t *testing.T) {
	per := idleWatcherBytes(10_000)
	t.Logf("%.0f bytes of heap per idle watcher", per)
	if per > 2048 {
		t.Errorf("an idle watcher costs %.0f bytes, want at most 2 KiB of the 20 KiB per-stream budget", per)
	}
}

// BenchmarkIdleWatcher reports the heap held per idle watcher.
func BenchmarkIdleWatcher(b *testing.B) {
	var per float64
	for b.Loop() {
		per = idleWatcherBytes(10_000)
	}
	b.ReportMetric(per, "B/watcher")
}

// BenchmarkAppendRead appends one delta and reads it back, the work per
// streamed chunk with one subscriber.
func BenchmarkAppendRead(b *testing.B) {
	l := inmem.NewEventLog(inmem.Options{SweepEvery: -1})
	defer l.Close()
	eventlogtest.BenchmarkAppendRead(b, l)
}

// BenchmarkAppendReadParallel is BenchmarkAppendRead across many concurrent
// streams, where shard locks keep them from queueing on one mutex.
func BenchmarkAppendReadParallel(b *testing.B) {
	l := inmem.NewEventLog(inmem.Options{SweepEvery: -1})
	defer l.Close()
	ctx := context.Background()
	var next atomicCounter
	b.RunParallel(func(pb *testing.PB) {
		g := next.add()
		i := 0
		for pb.Next() {
			id := fmt.Sprintf("m-%d-%d", g, i/1000)
			ev, err := l.Append(ctx, gymbro.Event{MessageID: id, Type: gymbro.EventContentDelta, Delta: "Squat "})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := l.Read(ctx, id, ev.Seq-1, 256); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

type atomicCounter struct{ n atomic.Int64 }

func (c *atomicCounter) add() int64 { return c.n.Add(1) }
