// Package eventlogtest is the behaviour suite every gymbro.EventLog passes: the
// in-process log (inmem) and the Redis Streams log (redislog) run the same
// tests, so the SSE handler can rely on one contract whichever is wired in.
package eventlogtest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/testenv"
)

// CodeLogClosed is the code Append must return after a terminal event.
const CodeLogClosed = gymbro.CodeLogClosed

// NewLog builds a fresh, empty log for one test: closed-log expiry after
// ttl, and now as its clock. It registers its own cleanup on t.
type NewLog func(t *testing.T, ttl time.Duration, now func() time.Time) gymbro.EventLog

// wait bounds every wait for something asynchronous (a watch signal, a
// Redis expiry). It is a failure deadline, never a speed assertion.
const wait = 10 * time.Second

// Clock is a settable clock for the suite's logs.
type Clock = testenv.Clock

// NewClock returns a Clock set to a fixed instant.
func NewClock() *Clock {
	return testenv.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC))
}

// Run runs the contract suite against the logs newLog builds. Subtests run
// in parallel, each with its own log and message ids.
func Run(t *testing.T, newLog func(t *testing.T, ttl time.Duration, now func() time.Time) gymbro.EventLog) {
	tests := []struct {
		name string
		fn   func(t *testing.T, newLog NewLog)
	}{
		{"SeqsStartAtOneGapFree", testSeqs},
		{"ReadAfter", testReadAfter},
		{"ReadMax", testReadMax},
		{"RoundTripsEveryField", testRoundTrip},
		{"ClosedAfterTerminal", testClosed},
		{"Validation", testValidation},
		{"ConcurrentAppends", testConcurrentAppends},
		{"WatchSignalsAfterAppend", testWatchSignals},
		{"StopEndsSignals", testStop},
		{"WatchersIsolatedPerMessage", testIsolation},
		{"FollowerSeesEveryEventOnce", testFollower},
		{"ExpiresAfterTTL", testExpiry},
		{"UnknownMessageReadsEmpty", testUnknown},
		{"Ping", testPing},
		{"OnAppendCallsBack", testOnAppend},
		{"AppendAtExpectedSeq", testAppendAt},
		{"SyncReportsTheLastSeq", testSync},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newLog)
		})
	}
}

// msgID returns a fresh random message id, so parallel subtests sharing a
// backing store never collide.
func msgID() string { return testenv.UniqueName("m-") }

// script returns a typical generation: queued, working, n deltas, completed.
func script(id string, deltas int) []gymbro.Event {
	evs := []gymbro.Event{
		{MessageID: id, Type: gymbro.EventQueued, ConversationID: "c-1", Status: gymbro.StatusQueued},
		{MessageID: id, Type: gymbro.EventWorking, Status: gymbro.StatusWorking},
	}
	for i := range deltas {
		evs = append(evs, gymbro.Event{MessageID: id, Type: gymbro.EventContentDelta, Delta: fmt.Sprintf("d%d ", i)})
	}
	return append(evs, gymbro.Event{
		MessageID: id, Type: gymbro.EventCompleted, Status: gymbro.StatusCompleted,
		Content: "all of it", Model: "demo", FinishReason: "stop",
		Usage: &gymbro.Usage{PromptTokens: 3, CompletionTokens: 5, TotalTokens: 8},
	})
}

func appendAll(t *testing.T, l gymbro.EventLog, evs []gymbro.Event) []gymbro.Event {
	t.Helper()
	out := make([]gymbro.Event, 0, len(evs))
	for _, ev := range evs {
		got, err := l.Append(context.Background(), ev)
		if err != nil {
			t.Fatalf("Append(%s): %v", ev.Type, err)
		}
		out = append(out, got)
	}
	return out
}

func read(t *testing.T, l gymbro.EventLog, id string, after int64, max int) []gymbro.Event {
	t.Helper()
	evs, err := l.Read(context.Background(), id, after, max)
	if err != nil {
		t.Fatalf("Read(%s, %d, %d): %v", id, after, max, err)
	}
	return evs
}

func seqs(evs []gymbro.Event) []int64 {
	out := make([]int64, len(evs))
	for i, ev := range evs {
		out[i] = ev.Seq
	}
	return out
}

func testSeqs(t *testing.T, newLog NewLog) {
	clock := NewClock()
	l := newLog(t, time.Hour, clock.Now)
	id := msgID()
	in := script(id, 3)
	got := appendAll(t, l, in)
	for i, ev := range got {
		if ev.Seq != int64(i+1) {
			t.Fatalf("event %d got seq %d, want %d", i, ev.Seq, i+1)
		}
		if !ev.At.Equal(clock.Now()) {
			t.Errorf("event %d At = %v, want the log's clock %v", i, ev.At, clock.Now())
		}
		want := in[i]
		want.Seq, want.At = ev.Seq, ev.At
		if diff := cmp.Diff(want, ev); diff != "" {
			t.Errorf("Append returned a changed event (-want +got):\n%s", diff)
		}
	}
	if diff := cmp.Diff(got, read(t, l, id, 0, 100)); diff != "" {
		t.Errorf("Read differs from what Append returned (-want +got):\n%s", diff)
	}
}

func testReadAfter(t *testing.T, newLog NewLog) {
	l := newLog(t, time.Hour, NewClock().Now)
	id := msgID()
	all := appendAll(t, l, script(id, 5))
	n := int64(len(all))
	for after := int64(0); after <= n+1; after++ {
		got := read(t, l, id, after, 100)
		var want []gymbro.Event
		if after < n {
			want = all[after:]
		}
		if diff := cmp.Diff(seqs(want), seqs(got)); diff != "" {
			t.Errorf("Read(after=%d) seqs (-want +got):\n%s", after, diff)
		}
	}
	if got := read(t, l, id, -5, 100); len(got) != len(all) {
		t.Errorf("Read(after=-5) = %d events, want all %d", len(got), len(all))
	}
}

func testReadMax(t *testing.T, newLog NewLog) {
	l := newLog(t, time.Hour, NewClock().Now)
	id := msgID()
	appendAll(t, l, script(id, 6))
	if diff := cmp.Diff([]int64{1, 2}, seqs(read(t, l, id, 0, 2))); diff != "" {
		t.Errorf("Read(0, max 2) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int64{4, 5, 6}, seqs(read(t, l, id, 3, 3))); diff != "" {
		t.Errorf("Read(3, max 3) (-want +got):\n%s", diff)
	}
	if _, err := l.Read(context.Background(), id, 0, 0); gymbro.ErrorKind(err) != gymbro.KindInvalid {
		t.Errorf("Read(max 0) error = %v, want KindInvalid", err)
	}
}

func testRoundTrip(t *testing.T, newLog NewLog) {
	l := newLog(t, time.Hour, NewClock().Now)
	id := msgID()
	retry := true
	in := []gymbro.Event{
		{MessageID: id, Type: gymbro.EventQueued, ConversationID: "conv-é", Status: gymbro.StatusQueued},
		{MessageID: id, Type: gymbro.EventContentDelta, Delta: "multi\nline \"quoted\" <b>&</b> 💪"},
		{MessageID: id, Type: gymbro.EventError, Status: gymbro.StatusFailed, Content: "partial",
			Code: "ai_unavailable", Message: "The coach is busy.", Retryable: &retry},
	}
	got := appendAll(t, l, in)
	if diff := cmp.Diff(got, read(t, l, id, 0, 10)); diff != "" {
		t.Errorf("Read (-appended +read):\n%s", diff)
	}
	retry = false // the log must not share the caller's pointer
	if r := read(t, l, id, 2, 1); len(r) != 1 || r[0].Retryable == nil || !*r[0].Retryable {
		t.Errorf("stored Retryable changed with the caller's variable: %+v", r)
	}
}

func testClosed(t *testing.T, newLog NewLog) {
	for _, term := range []gymbro.EventType{gymbro.EventCompleted, gymbro.EventError, gymbro.EventCanceled} {
		t.Run(string(term), func(t *testing.T) {
			l := newLog(t, time.Hour, NewClock().Now)
			id := msgID()
			appendAll(t, l, []gymbro.Event{
				{MessageID: id, Type: gymbro.EventQueued},
				{MessageID: id, Type: term},
			})
			for _, next := range []gymbro.EventType{gymbro.EventContentDelta, term} {
				_, err := l.Append(context.Background(), gymbro.Event{MessageID: id, Type: next})
				if gymbro.ErrorKind(err) != gymbro.KindConflict || gymbro.ErrorCode(err) != CodeLogClosed {
					t.Errorf("Append(%s) after %s: err = %v, want KindConflict %s", next, term, err, CodeLogClosed)
				}
			}
			if diff := cmp.Diff([]int64{1, 2}, seqs(read(t, l, id, 0, 10))); diff != "" {
				t.Errorf("log changed after refused appends (-want +got):\n%s", diff)
			}
		})
	}
}

func testValidation(t *testing.T, newLog NewLog) {
	l := newLog(t, time.Hour, NewClock().Now)
	id := msgID()
	for name, ev := range map[string]gymbro.Event{
		"no message id": {Type: gymbro.EventQueued},
		"no type":       {MessageID: id},
		"unknown type":  {MessageID: id, Type: "finished"},
	} {
		if _, err := l.Append(context.Background(), ev); gymbro.ErrorKind(err) != gymbro.KindInvalid {
			t.Errorf("Append(%s): err = %v, want KindInvalid", name, err)
		}
	}
	if got := read(t, l, id, 0, 10); len(got) != 0 {
		t.Errorf("invalid appends stored %d events", len(got))
	}
	// Seq and At belong to the log, whatever the caller put there.
	got, err := l.Append(context.Background(), gymbro.Event{MessageID: id, Type: gymbro.EventQueued, Seq: 42, At: time.Unix(1, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if got.Seq != 1 || got.At.Equal(time.Unix(1, 0)) {
		t.Errorf("caller's Seq/At kept: seq %d at %v", got.Seq, got.At)
	}
}

func testConcurrentAppends(t *testing.T, newLog NewLog) {
	l := newLog(t, time.Hour, NewClock().Now)
	id := msgID()
	const writers, each = 16, 25
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seen = make(map[int64]int)
		errs []error
	)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				ev, err := l.Append(context.Background(), gymbro.Event{
					MessageID: id, Type: gymbro.EventContentDelta, Delta: fmt.Sprintf("%d/%d", w, i),
				})
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					seen[ev.Seq]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d appends failed, first: %v", len(errs), errs[0])
	}
	const n = writers * each
	for seq := int64(1); seq <= n; seq++ {
		if seen[seq] != 1 {
			t.Errorf("seq %d handed out %d times", seq, seen[seq])
		}
	}
	if len(seen) != n {
		t.Errorf("%d distinct seqs, want %d", len(seen), n)
	}
	got := read(t, l, id, 0, 2*n)
	if len(got) != n {
		t.Fatalf("Read returned %d events, want %d", len(got), n)
	}
	deltas := make(map[string]bool)
	for i, ev := range got {
		if ev.Seq != int64(i+1) {
			t.Fatalf("Read position %d has seq %d", i, ev.Seq)
		}
		deltas[ev.Delta] = true
	}
	if len(deltas) != n {
		t.Errorf("%d distinct deltas stored, want %d (an event was lost or duplicated)", len(deltas), n)
	}
}

func waitSignal(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(wait):
		t.Fatalf("no watch signal within %v after %s", wait, what)
	}
}

func drained(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return false
	default:
		return true
	}
}

func testWatchSignals(t *testing.T, newLog NewLog) {
	l := newLog(t, time.Hour, NewClock().Now)
	id := msgID()
	ch, stop := l.Watch(id) // before the log exists, as a fast subscriber would
	defer stop()
	appendAll(t, l, []gymbro.Event{{MessageID: id, Type: gymbro.EventQueued}})
	waitSignal(t, ch, "the first append")
	if got := read(t, l, id, 0, 10); len(got) != 1 {
		t.Fatalf("after the signal Read returned %d events, want 1", len(got))
	}
	appendAll(t, l, []gymbro.Event{{MessageID: id, Type: gymbro.EventCompleted}})
	waitSignal(t, ch, "the terminal append")
	if got := read(t, l, id, 1, 10); len(got) != 1 || got[0].Type != gymbro.EventCompleted {
		t.Fatalf("after the second signal Read(after 1) = %+v, want the completed event", got)
	}
}

// testOnAppend checks the optional AppendNotifier: a listener hears of an
// append to its message (a "" for "any message" is allowed too), and hears
// nothing after its stop.
func testOnAppend(t *testing.T, newLog NewLog) {
	l := newLog(t, time.Hour, NewClock().Now)
	n, ok := l.(gymbro.AppendNotifier)
	if !ok {
		t.Skip("this log does not implement gymbro.AppendNotifier") //_skip_ok: optional interface
	}
	id := msgID()
	heard := make(chan string, 64)
	stop := n.OnAppend(func(m string) {
		select {
		case heard <- m:
		default:
		}
	})
	appendAll(t, l, []gymbro.Event{{MessageID: id, Type: gymbro.EventQueued}})
	deadline := time.After(10 * time.Second)
	for got := false; !got; {
		select {
		case m := <-heard:
			got = m == id || m == ""
		case <-deadline:
			t.Fatal("the listener never heard of the append")
		}
	}
	stop()
}

// SeqAppender is the optional interface of a log that appends at the seq
// its writer expects (see redislog.EventLog.AppendAt): the chat appender
// uses it to write again what a failover lost, and to retry an append
// whose reply was lost without writing it twice.
type SeqAppender interface {
	AppendAt(ctx context.Context, ev gymbro.Event, seq int64) (last int64, err error)
}

// testAppendAt checks AppendAt: it writes only at the next seq, reports
// the log's last seq when it holds fewer events (writing nothing), takes
// a repeated seq as already written, and refuses a closed log.
func testAppendAt(t *testing.T, newLog NewLog) {
	l := newLog(t, time.Hour, NewClock().Now)
	at, ok := l.(SeqAppender)
	if !ok {
		t.Skip("this log does not append at an expected seq") //_skip_ok: optional interface
	}
	ctx := context.Background()
	id := msgID()
	ev := func(typ gymbro.EventType, delta string) gymbro.Event {
		return gymbro.Event{MessageID: id, Type: typ, Delta: delta}
	}
	for _, step := range []struct {
		ev   gymbro.Event
		seq  int64
		want int64
	}{
		{ev(gymbro.EventQueued, ""), 1, 1},
		{ev(gymbro.EventQueued, ""), 1, 1},            // a retry: already there
		{ev(gymbro.EventContentDelta, "lost"), 3, 1},  // the log lacks seq 2: nothing written
		{ev(gymbro.EventContentDelta, "two"), 2, 2},   // what was lost, written again
		{ev(gymbro.EventContentDelta, "three"), 3, 3}, // then the next
	} {
		last, err := at.AppendAt(ctx, step.ev, step.seq)
		if err != nil || last != step.want {
			t.Fatalf("AppendAt(%s %q, %d) = %d, %v; want %d", step.ev.Type, step.ev.Delta, step.seq, last, err, step.want)
		}
	}
	got := read(t, l, id, 0, 10)
	if diff := cmp.Diff([]int64{1, 2, 3}, seqs(got)); diff != "" || got[1].Delta != "two" || got[2].Delta != "three" {
		t.Fatalf("log after AppendAt: %+v", got)
	}
	if _, err := at.AppendAt(ctx, ev(gymbro.EventCompleted, ""), 4); err != nil {
		t.Fatal(err)
	}
	if _, err := at.AppendAt(ctx, ev(gymbro.EventContentDelta, "late"), 5); gymbro.ErrorCode(err) != CodeLogClosed {
		t.Errorf("AppendAt after the terminal event: %v, want %s", err, CodeLogClosed)
	}
	if _, err := at.AppendAt(ctx, ev(gymbro.EventQueued, ""), 0); gymbro.ErrorKind(err) != gymbro.KindInvalid {
		t.Errorf("AppendAt(seq 0): %v, want KindInvalid", err)
	}
}

// Syncer is the optional interface of a log that reports a message's last
// seq once its replicas hold the log (see redislog.EventLog.Sync).
type Syncer interface {
	Sync(ctx context.Context, messageID string) (last int64, err error)
}

func testSync(t *testing.T, newLog NewLog) {
	l := newLog(t, time.Hour, NewClock().Now)
	s, ok := l.(Syncer)
	if !ok {
		t.Skip("this log does not sync") //_skip_ok: optional interface
	}
	ctx := context.Background()
	id := msgID()
	if last, err := s.Sync(ctx, id); err != nil || last != 0 {
		t.Errorf("Sync(unknown) = %d, %v; want 0", last, err)
	}
	n := int64(len(appendAll(t, l, script(id, 2))))
	for range 2 {
		if last, err := s.Sync(ctx, id); err != nil || last != n {
			t.Errorf("Sync = %d, %v; want %d", last, err, n)
		}
	}
}

func testStop(t *testing.T, newLog NewLog) {
	l := newLog(t, time.Hour, NewClock().Now)
	id := msgID()
	stopped, stop := l.Watch(id)
	live, stopLive := l.Watch(id)
	defer stopLive()
	stop()
	stop() // twice is harmless
	// Drain anything delivered before stop (a spurious wake-up is allowed).
	drained(stopped)
	appendAll(t, l, []gymbro.Event{{MessageID: id, Type: gymbro.EventQueued}})
	waitSignal(t, live, "an append")
	// One append wakes all of a message's watchers in one pass, so once the
	// live watcher has its signal the stopped one would have had its own.
	if !drained(stopped) {
		t.Error("a stopped watcher was signalled")
	}
}

func testIsolation(t *testing.T, newLog NewLog) {
	l := newLog(t, time.Hour, NewClock().Now)
	a, b := msgID(), msgID()
	chA, stopA := l.Watch(a)
	defer stopA()
	chB, stopB := l.Watch(b)
	defer stopB()
	appendAll(t, l, []gymbro.Event{{MessageID: b, Type: gymbro.EventQueued}})
	waitSignal(t, chB, "an append to its message")
	if !drained(chA) {
		// Spurious wake-ups are within the contract (a reconnecting Redis
		// subscriber wakes everyone); what matters is that Read shows
		// nothing that belongs to another message.
		t.Logf("watcher of %s woken by an append to %s", a, b)
	}
	if got := read(t, l, a, 0, 10); len(got) != 0 {
		t.Errorf("Read(%s) = %+v, want nothing", a, got)
	}
	if got := read(t, l, b, 0, 10); len(got) != 1 || got[0].MessageID != b {
		t.Errorf("Read(%s) = %+v, want its one event", b, got)
	}
}

// testFollower runs the SSE handler's loop (watch, read, wait) against a
// concurrent writer and checks it sees every event exactly once, in order.
func testFollower(t *testing.T, newLog NewLog) {
	l := newLog(t, time.Hour, NewClock().Now)
	id := msgID()
	in := script(id, 50)
	done := make(chan error, 1)
	var got []gymbro.Event
	go func() {
		ch, stop := l.Watch(id)
		defer stop()
		var last int64
		deadline := time.After(wait)
		for {
			evs, err := l.Read(context.Background(), id, last, 7)
			if err != nil {
				done <- err
				return
			}
			for _, ev := range evs {
				got = append(got, ev)
				last = ev.Seq
				if ev.Type.Terminal() {
					done <- nil
					return
				}
			}
			if len(evs) == 7 {
				continue // a full page: more may be waiting without a new signal
			}
			select {
			case <-ch:
			case <-deadline:
				done <- fmt.Errorf("follower stalled after seq %d", last)
				return
			}
		}
	}()
	appendAll(t, l, in)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(got) != len(in) {
		t.Fatalf("follower saw %d events, want %d", len(got), len(in))
	}
	for i, ev := range got {
		if ev.Seq != int64(i+1) || ev.Type != in[i].Type || ev.Delta != in[i].Delta {
			t.Fatalf("follower event %d = seq %d %s %q, want seq %d %s %q", i, ev.Seq, ev.Type, ev.Delta, i+1, in[i].Type, in[i].Delta)
		}
	}
}

// testExpiry ends one log and leaves another open, then moves past the TTL.
// The clock is injected for logs that expire by it; a log that expires by a
// real timer (Redis) gets a short TTL and is polled until it is gone.
func testExpiry(t *testing.T, newLog NewLog) {
	const ttl = 2 * time.Second
	clock := NewClock()
	l := newLog(t, ttl, clock.Now)
	closed, open := msgID(), msgID()
	appendAll(t, l, []gymbro.Event{
		{MessageID: open, Type: gymbro.EventQueued},
		{MessageID: closed, Type: gymbro.EventQueued},
		{MessageID: closed, Type: gymbro.EventCanceled},
	})
	if got := read(t, l, closed, 0, 10); len(got) != 2 {
		t.Fatalf("a just-ended log read %d events, want 2 until its TTL passes", len(got))
	}
	clock.Advance(ttl + time.Second)
	// Poll (a log on the injected clock is gone at the first read).
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(wait + ttl)
	for len(read(t, l, closed, 0, 10)) != 0 {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("the ended log was still readable %v after its TTL", wait)
		}
	}
	if got := read(t, l, open, 0, 10); len(got) != 1 {
		t.Errorf("an open log read %d events after the closed-log TTL, want 1", len(got))
	}
}

func testUnknown(t *testing.T, newLog NewLog) {
	l := newLog(t, time.Hour, NewClock().Now)
	id := msgID()
	got, err := l.Read(context.Background(), id, 0, 10)
	if err != nil || len(got) != 0 {
		t.Errorf("Read(unknown) = %v, %v; want empty, nil", got, err)
	}
	_, stop := l.Watch(id)
	stop()
	if got := read(t, l, id, 0, 10); len(got) != 0 {
		t.Errorf("watching created events: %+v", got)
	}
}

func testPing(t *testing.T, newLog NewLog) {
	l := newLog(t, time.Hour, NewClock().Now)
	if err := l.Ping(context.Background()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

// BenchmarkAppendRead measures the hot path of a stream: append one chunk
// and read it back, as the SSE handler does, with replies of 1,000 chunks
// one after another.
func BenchmarkAppendRead(b *testing.B, l gymbro.EventLog) {
	ctx := context.Background()
	i := 0
	for b.Loop() {
		id := fmt.Sprintf("m-%d", i/1000) // a reply of 1,000 chunks, then the next
		ev, err := l.Append(ctx, gymbro.Event{MessageID: id, Type: gymbro.EventContentDelta, Delta: "Squat "})
		if err != nil {
			b.Fatal(err)
		}
		if evs, err := l.Read(ctx, id, ev.Seq-1, 256); err != nil || len(evs) != 1 {
			b.Fatalf("Read = %d events, %v", len(evs), err)
		}
		i++
	}
}
