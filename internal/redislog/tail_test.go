package redislog_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/redislog"
)

// TestLocalTailWithRemoteAppends: a log begun on instance A is read there
// from A's memory and woken by A's own appends; when instance B appends
// to it too, followers on both instances still get every event once, in
// order, with what each writer wrote.
func TestLocalTailWithRemoteAppends(t *testing.T) {
	c := newClient(t, "")
	prefix := uniquePrefix(t, c)
	a := newLogOn(t, c, redislog.Options{Prefix: prefix})
	b := newLogOn(t, newClient(t, ""), redislog.Options{Prefix: prefix})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	waitSubscribed(ctx, t, a, b)

	const id, n = "tail-m1", 120
	type got struct {
		evs []gymbro.Event
		err error
	}
	follow := func(l *redislog.EventLog) <-chan got {
		wake, stop := l.Watch(id)
		out := make(chan got, 1)
		go func() {
			defer stop()
			var evs []gymbro.Event
			for len(evs) < n {
				batch, err := l.Read(ctx, id, int64(len(evs)), 16)
				if err != nil {
					out <- got{evs, err}
					return
				}
				evs = append(evs, batch...)
				if len(batch) == 0 {
					select {
					case <-wake:
					case <-ctx.Done():
						out <- got{evs, ctx.Err()}
						return
					}
				}
			}
			out <- got{evs, nil}
		}()
		return out
	}
	onA, onB := follow(a), follow(b)

	// A begins the log; its first events are A's alone (the tail serves
	// them), then B joins in: every third event from then on is B's.
	for i := 1; i <= n; i++ {
		w, name := a, "a"
		if i > 20 && i%3 == 0 {
			w, name = b, "b"
		}
		typ := gymbro.EventContentDelta
		if i == 1 {
			typ = gymbro.EventQueued // what begins every log
		}
		ev, err := w.Append(ctx, gymbro.Event{MessageID: id, Type: typ, Delta: fmt.Sprintf("%s%d", name, i)})
		if err != nil || ev.Seq != int64(i) {
			t.Fatalf("append %d: seq %d, %v", i, ev.Seq, err)
		}
	}
	for who, ch := range map[string]<-chan got{"A": onA, "B": onB} {
		g := <-ch
		if g.err != nil {
			t.Fatalf("follower on %s: %v after %d events", who, g.err, len(g.evs))
		}
		for i, ev := range g.evs {
			name := "a"
			if i+1 > 20 && (i+1)%3 == 0 {
				name = "b"
			}
			if ev.Seq != int64(i+1) || ev.Delta != fmt.Sprintf("%s%d", name, i+1) {
				t.Fatalf("follower on %s: event %d is seq %d %q", who, i+1, ev.Seq, ev.Delta)
			}
		}
	}
	if a.TailHits() == 0 {
		t.Error("no Read on A was answered from its tail")
	}
	if b.TailHits() != 0 {
		t.Errorf("%d Reads on B were answered from a tail; B began no log", b.TailHits())
	}
	// A Read from the start after B's appends goes to Redis and agrees.
	all, err := a.Read(ctx, id, 0, n+1)
	if err != nil || len(all) != n || all[n-1].Delta != fmt.Sprintf("a%d", n) && all[n-1].Delta != fmt.Sprintf("b%d", n) {
		t.Fatalf("Read all = %d events, %v", len(all), err)
	}
}

// waitSubscribed waits until each log's subscription is live: an append
// on one wakes a watcher on the other.
func waitSubscribed(ctx context.Context, t *testing.T, logs ...*redislog.EventLog) {
	t.Helper()
	for i, l := range logs {
		probe := fmt.Sprintf("probe-%d", i)
		wake, stop := l.Watch(probe)
		other := logs[(i+1)%len(logs)]
		for ready := false; !ready; {
			if _, err := other.Append(ctx, gymbro.Event{MessageID: probe, Type: gymbro.EventContentDelta, Delta: "."}); err != nil {
				t.Fatal(err)
			}
			select {
			case <-wake:
				ready = true
			case <-time.After(50 * time.Millisecond):
			case <-ctx.Done():
				t.Fatal("subscription never live")
			}
		}
		stop()
	}
}
