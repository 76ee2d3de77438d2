package outbox_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/gymbro/gymbro-api/internal/outbox"
	"github.com/gymbro/gymbro-api/internal/supabasetest"
)

// BenchmarkDrain measures how fast a backlog built up during an outage
// drains once Supabase answers again: 5,000 records from a real store,
// through the REST sink, over real HTTP into the fake PostgREST, in batches
// of 100. It reports records/s; building the backlog is not timed.
func BenchmarkDrain(b *testing.B) {
	const backlog = 5000
	for _, be := range backends() {
		b.Run(be.name, func(b *testing.B) {
			var (
				total time.Duration
				n     int
			)
			for b.Loop() {
				b.StopTimer()
				s := be.place(b)(b)
				fake := supabasetest.New(b, key)
				finish(b, s, backlog, time.Now())
				w := outbox.NewWorker(outbox.Options{Store: s, Sink: sinkFor(fake), Owner: "bench",
					Logger: slog.New(slog.DiscardHandler)})
				b.StartTimer()
				start := time.Now()
				if err := w.Flush(context.Background()); err != nil {
					b.Fatalf("Flush: %v", err)
				}
				total += time.Since(start)
				n++
				if fake.Len() != backlog {
					b.Fatalf("delivered %d of %d", fake.Len(), backlog)
				}
			}
			b.ReportMetric(float64(backlog*n)/total.Seconds(), "records/s")
		})
	}
}
