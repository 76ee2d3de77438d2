package outbox_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/outbox"
	"github.com/gymbro/gymbro-api/internal/supabase"
	"github.com/gymbro/gymbro-api/internal/supabasetest"
	"github.com/gymbro/gymbro-api/internal/testenv"
)

func sinkFor(fake *supabasetest.PostgREST) *supabase.ChatSink {
	return supabase.NewChatSink(supabase.ChatSinkConfig{URL: fake.URL(), ServiceRoleKey: key})
}

func manualWorker(s gymbro.Outbox, fake *supabasetest.PostgREST, c *testenv.Clock, owner string) *outbox.Worker {
	return outbox.NewWorker(outbox.Options{
		Store: s, Sink: sinkFor(fake), Owner: owner, Now: c.Now, Rand: func() float64 { return 0.5 },
		MinBackoff: time.Second, MaxBackoff: time.Minute, Logger: slog.New(slog.DiscardHandler),
	})
}

func wantTransient(t *testing.T, err error) {
	t.Helper()
	if gymbro.ErrorCode(err) != gymbro.CodeSyncUnavailable {
		t.Fatalf("Flush during an outage: %v, want sync_unavailable", err)
	}
}

// downFake is a fake PostgREST in an outage.
func downFake(t *testing.T) *supabasetest.PostgREST {
	t.Helper()
	fake := supabasetest.New(t, key)
	fake.SetMode(supabasetest.Outage, "")
	return fake
}

// flush runs one pass of w, failing t with what when it fails.
func flush(t *testing.T, w *outbox.Worker, what string) {
	t.Helper()
	if err := w.Flush(context.Background()); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func TestOutageThenRecovery(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			c := newClock()
			s := b.place(t)(t)
			fake := downFake(t)
			w := manualWorker(s, fake, c, "w1")

			ids := finish(t, s, 500, c.Now())
			wantStats(t, w.Stats, 500, 0)
			// An hour of outage: every attempt fails and nothing is lost.
			for range 10 {
				wantTransient(t, w.Flush(ctx))
				c.Advance(6 * time.Minute)
			}
			if fake.Len() != 0 {
				t.Fatalf("fake holds %d rows during the outage", fake.Len())
			}
			wantStats(t, w.Stats, 500, 0)

			fake.SetMode(supabasetest.Up, "")
			before := fake.Requests()
			flush(t, w, "Flush after recovery")
			wantDeliveredOnce(t, fake, ids)
			wantStats(t, w.Stats, 0, 0)
			// 500 records in batches of 100: five requests, not 500.
			if n := fake.Requests() - before; n != 5 {
				t.Errorf("recovery took %d requests, want 5", n)
			}
		})
	}
}

func TestRestartMidOutage(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			c := newClock()
			open := b.place(t)
			fake := downFake(t)

			s1 := open(t)
			ids := finish(t, s1, 300, c.Now())
			w1 := manualWorker(s1, fake, c, "process-1")
			wantTransient(t, w1.Flush(ctx))
			// The process dies holding a lease on some records (claimed,
			// never answered) while the rest wait out their backoff.
			held, err := s1.ClaimOutbox(ctx, "process-1", c.Now(), c.Now().Add(30*time.Second), 40)
			if err != nil || len(held) == 0 {
				t.Fatalf("ClaimOutbox: %d items, %v", len(held), err)
			}
			if err := s1.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}

			// A new process on the same data, once Supabase is back.
			fake.SetMode(supabasetest.Up, "")
			s2 := open(t)
			w2 := manualWorker(s2, fake, c, "process-2")
			wantStats(t, w2.Stats, 300, 0)
			// The first process tried one batch before the outage stopped
			// it; the 160 records nobody tried yet go at once, the ones in
			// backoff or under the dead process's lease wait their turn.
			flush(t, w2, "Flush before the lease ends")
			if fake.Len() != 300-100-len(held) {
				t.Errorf("before backoff and lease ended: %d delivered, want %d", fake.Len(), 300-100-len(held))
			}
			for _, it := range held {
				if fake.Row(it.ID) != nil {
					t.Errorf("record %s went out while another process held its lease", it.ID)
				}
			}
			c.Advance(time.Minute)
			flush(t, w2, "Flush")
			wantDeliveredOnce(t, fake, ids)
			wantStats(t, w2.Stats, 0, 0)
		})
	}
}

func TestPermanentRejectionParksOnlyTheBadRecord(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			c := newClock()
			s := b.place(t)(t)
			fake := supabasetest.New(t, key)
			var logs bytes.Buffer
			w := outbox.NewWorker(outbox.Options{Store: s, Sink: sinkFor(fake), Owner: "w", Now: c.Now,
				BatchSize: 64, Logger: slog.New(slog.NewTextHandler(&logs, nil))})

			ids := finish(t, s, 50, c.Now())
			bad := []string{ids[7], ids[31]}
			fake.Reject(bad...)
			flush(t, w, "Flush")
			if fake.Len() != 48 || fake.Row(bad[0]) != nil || fake.Row(bad[1]) != nil {
				t.Errorf("fake holds %d rows (bad ones: %v, %v), want the 48 good ones", fake.Len(), fake.Row(bad[0]), fake.Row(bad[1]))
			}
			wantStats(t, w.Stats, 0, 2)
			// Bisection isolates two bad records among 50 in far fewer
			// requests than one per record.
			if n := fake.Requests(); n >= 25 {
				t.Errorf("isolating 2 bad records took %d requests", n)
			}
			if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "code=sync_rejected") ||
				!strings.Contains(logs.String(), "PGRST204") {
				t.Errorf("no error log naming the code:\n%s", logs.String())
			}
			if strings.Contains(logs.String(), key) {
				t.Errorf("log leaks the key")
			}

			// A dead record stays dead, however long we wait.
			c.Advance(24 * time.Hour)
			flush(t, w, "Flush")
			wantStats(t, w.Stats, 0, 2)

			// The fix is deployed; the operator redrives.
			fake.AcceptAll()
			n, err := s.RedriveOutbox(ctx)
			if err != nil || n != 2 {
				t.Fatalf("RedriveOutbox = %d, %v; want 2", n, err)
			}
			wantStats(t, w.Stats, 2, 0)
			flush(t, w, "Flush after redrive")
			wantDeliveredOnce(t, fake, ids)
			wantStats(t, w.Stats, 0, 0)
		})
	}
}

func TestTwoWorkersShareOnePostgres(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	open := postgresBackend().place(t)
	s1, s2 := open(t), open(t) // two instances, two pools, one schema
	fake := supabasetest.New(t, key)

	var wg sync.WaitGroup
	var workers []*outbox.Worker
	for i, s := range []gymbro.Store{s1, s2} {
		w := outbox.NewWorker(outbox.Options{Store: s, Sink: sinkFor(fake), Owner: []string{"instance-a", "instance-b"}[i],
			BatchSize: 10, Lease: 10 * time.Minute, Poll: 5 * time.Millisecond,
			MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
		workers = append(workers, w)
		wg.Go(func() { _ = w.Run(ctx) })
	}
	var ids []string
	for i := range 10 {
		s := []gymbro.Store{s1, s2}[i%2]
		ids = append(ids, finish(t, s, 50, time.Now())...)
		workers[i%2].Notify()
	}
	// Delivered and acknowledged: a batch the fake has written but whose
	// answer has not reached the worker yet would, cancelled now, rightly
	// be released and sent again by the next start.
	eventually(t, "all 500 records delivered and acknowledged", func() bool {
		st, err := s1.OutboxStats(ctx)
		return err == nil && st.Pending == 0 && fake.Len() == len(ids)
	})
	cancel()
	wg.Wait()
	wantDeliveredOnce(t, fake, ids)
	wantStats(t, s1.OutboxStats, 0, 0)
}

func TestBackoffIsExponentialAndHonoursRetryAfter(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s := sqliteBackend().place(t)(t)
	fake := supabasetest.New(t, key)
	fake.SetMode(supabasetest.Outage, "")
	w := outbox.NewWorker(outbox.Options{Store: s, Sink: sinkFor(fake), Owner: "w", Now: c.Now,
		Rand:       func() float64 { return 0.5 },
		MinBackoff: time.Second, MaxBackoff: 16 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	finish(t, s, 1, c.Now())

	// attempt n failed → next try after Rand × min(1s·2^(n-1), 16s)
	wantGaps := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second,
		8 * time.Second, 8 * time.Second, 8 * time.Second}
	retryAfter := "30" // then a 429 asking for more than the backoff would give
	for i := range len(wantGaps) + 1 {
		gap := 30 * time.Second
		if i < len(wantGaps) {
			gap = wantGaps[i]
		} else {
			fake.SetMode(supabasetest.RateLimit, retryAfter)
		}
		before := fake.Requests()
		wantTransient(t, w.Flush(ctx))
		if fake.Requests() != before+1 {
			t.Fatalf("attempt %d: %d requests, want 1", i+1, fake.Requests()-before)
		}
		c.Advance(gap - time.Millisecond)
		if err := w.Flush(ctx); err != nil || fake.Requests() != before+1 {
			t.Fatalf("attempt %d: retried before %v had passed (err %v)", i+1, gap, err)
		}
		c.Advance(time.Millisecond)
	}
	fake.SetMode(supabasetest.Up, "")
	if err := w.Flush(ctx); err != nil || fake.Len() != 1 {
		t.Fatalf("after the backoff: err %v, %d rows", err, fake.Len())
	}
}

func TestRunBacksOffWhileSupabaseIsDown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := newClock()
	s := sqliteBackend().place(t)(t)
	fake := supabasetest.New(t, key)
	fake.SetMode(supabasetest.Outage, "")
	ids := finish(t, s, 5, c.Now())

	const poll = time.Hour // tells the idle wait apart from backoff waits
	var (
		mu    sync.Mutex
		waits []time.Duration
	)
	after := func(d time.Duration) <-chan time.Time {
		if d == poll {
			return nil // idle: only Notify or the end of ctx wakes the worker
		}
		mu.Lock()
		waits = append(waits, d)
		mu.Unlock()
		c.Advance(d) // the wait passes in no real time
		ch := make(chan time.Time, 1)
		ch <- c.Now()
		return ch
	}
	w := outbox.NewWorker(outbox.Options{Store: s, Sink: sinkFor(fake), Owner: "w", Now: c.Now, After: after,
		Rand: func() float64 { return 0.5 }, Poll: poll, MinBackoff: time.Second, MaxBackoff: 32 * time.Second,
		Logger: slog.New(slog.DiscardHandler)})
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	count := func() int { mu.Lock(); defer mu.Unlock(); return len(waits) }
	eventually(t, "eight failed rounds", func() bool { return count() >= 8 })
	fake.SetMode(supabasetest.Up, "")
	eventually(t, "delivery after recovery", func() bool { return fake.Len() == 5 })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}

	// After the n-th failure in a row the worker pauses ¾ of min(1s·2^(n-1), 32s)
	// with Rand at ½: never a hot loop, doubling up to the cap.
	mu.Lock()
	defer mu.Unlock()
	want := []time.Duration{750 * time.Millisecond, 1500 * time.Millisecond, 3 * time.Second, 6 * time.Second,
		12 * time.Second, 24 * time.Second, 24 * time.Second, 24 * time.Second}
	for i, d := range want {
		if waits[i] != d {
			t.Errorf("pause %d = %v, want %v (all: %v)", i+1, waits[i], d, waits)
		}
	}
	// One request per round, not one per record or per spin.
	if fake.Requests() > len(waits)+2 {
		t.Errorf("%d requests for %d rounds", fake.Requests(), len(waits))
	}
	wantDeliveredOnce(t, fake, ids)
}

func TestNotifyWakesAnIdleWorker(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := sqliteBackend().place(t)(t)
	fake := supabasetest.New(t, key)
	w := outbox.NewWorker(outbox.Options{Store: s, Sink: sinkFor(fake), Owner: "w", Poll: time.Hour,
		Logger: slog.New(slog.DiscardHandler)})
	first := finish(t, s, 1, time.Now())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	eventually(t, "the first record", func() bool { return fake.Len() == 1 })

	// The worker now sleeps for an hour; only Notify can bring the next
	// record out sooner.
	second := finish(t, s, 1, time.Now())
	w.Notify()
	w.Notify() // never blocks
	eventually(t, "the record after Notify", func() bool { return fake.Len() == 2 })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	wantDeliveredOnce(t, fake, append(first, second...))
}

// TestNotifyGathers: with Gather set, a worker that Notify woke waits that
// long before it claims, and what finished meanwhile goes in the same claim.
func TestNotifyGathers(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := sqliteBackend().place(t)(t)
	fake := supabasetest.New(t, key)
	const gather = time.Minute // stands for the real 20 ms; the test ends it
	gathering := make(chan chan time.Time, 1)
	idle := make(chan struct{}, 1)
	after := func(d time.Duration) <-chan time.Time {
		if d != gather {
			select { // the idle wait: only Notify or the end of ctx
			case idle <- struct{}{}:
			default:
			}
			return nil
		}
		ch := make(chan time.Time, 1)
		gathering <- ch
		return ch
	}
	w := outbox.NewWorker(outbox.Options{Store: s, Sink: sinkFor(fake), Owner: "w", Poll: time.Hour, Gather: gather,
		After: after, Logger: slog.New(slog.DiscardHandler)})
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	<-idle // found nothing, waits
	first := finish(t, s, 1, time.Now())
	w.Notify()
	release := <-gathering // the worker is gathering
	more := finish(t, s, 3, time.Now())
	w.Notify()
	release <- time.Now()
	eventually(t, "all four records", func() bool { return fake.Len() == 4 })
	if n := fake.Requests(); n != 1 {
		t.Errorf("%d requests to the sink; want the four records gathered into one", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	wantDeliveredOnce(t, fake, append(first, more...))
}

func TestFlushStopsAtTheDeadline(t *testing.T) {
	s := sqliteBackend().place(t)(t)
	fake := supabasetest.New(t, key)
	w := outbox.NewWorker(outbox.Options{Store: s, Sink: sinkFor(fake), Owner: "w", Logger: slog.New(slog.DiscardHandler)})
	finish(t, s, 3, time.Now())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.Flush(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Flush with an ended context: %v", err)
	}
	wantStats(t, s.OutboxStats, 3, 0) // left for the next start
	if err := w.Flush(context.Background()); err != nil || fake.Len() != 3 {
		t.Errorf("Flush: %v, %d rows", err, fake.Len())
	}
}
