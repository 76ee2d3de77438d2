package main

import (
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// Latencies collects durations from many goroutines and summarises them.
// Every sample is kept: a run of an hour at a few thousand samples a second
// is tens of MB, and exact percentiles beat a histogram's buckets when the
// question is "is p99 under 5 ms".
type Latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

// Add records one sample.
func (l *Latencies) Add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

// Count is how many samples were recorded.
func (l *Latencies) Count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.d)
}

// Dist summarises a set of durations, in milliseconds.
type Dist struct {
	Count int     `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

// String formats d for the human summary.
func (d Dist) String() string {
	if d.Count == 0 {
		return "n=0"
	}
	return fmt.Sprintf("n=%d p50=%.2fms p90=%.2fms p99=%.2fms max=%.2fms", d.Count, d.P50, d.P90, d.P99, d.Max)
}

// Summary returns the distribution of the samples so far.
func (l *Latencies) Summary() Dist {
	l.mu.Lock()
	s := slices.Clone(l.d)
	l.mu.Unlock()
	return summarize(s)
}

func summarize(s []time.Duration) Dist {
	if len(s) == 0 {
		return Dist{}
	}
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return Dist{
		Count: len(s),
		Mean:  ms(sum / time.Duration(len(s))),
		P50:   ms(percentile(s, 0.50)),
		P90:   ms(percentile(s, 0.90)),
		P99:   ms(percentile(s, 0.99)),
		Max:   ms(s[len(s)-1]),
	}
}

// percentile is the nearest-rank percentile of sorted s (p in (0,1]).
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p*float64(len(sorted)))) - 1
	rank = max(0, min(rank, len(sorted)-1))
	return sorted[rank]
}

// StreamCheck verifies the events one client received for one message,
// across every reconnect: ids are 1..n with no gap and no repeat, and the
// content_delta texts add up to the terminal event's content. It is used by
// one goroutine at a time.
type StreamCheck struct {
	Last       int64            // the highest seq seen: what Last-Event-ID resumes from
	Lost       int64            // seqs skipped over
	Duplicated int64            // events seen again (seq ≤ Last)
	Resets     int              // server "reset" events: replay could not be exact
	Terminal   gymbro.EventType // "" until the terminal event arrives
	Mismatch   bool             // the deltas did not add up to the terminal content
	deltas     []byte
}

// Observe records one event. It reports false for a duplicate, which the
// caller should otherwise ignore.
func (c *StreamCheck) Observe(ev gymbro.Event) bool {
	if ev.Seq <= c.Last {
		c.Duplicated++
		return false
	}
	if ev.Seq > c.Last+1 {
		c.Lost += ev.Seq - c.Last - 1
	}
	c.Last = ev.Seq
	switch {
	case ev.Type == gymbro.EventContentDelta:
		c.deltas = append(c.deltas, ev.Delta...)
	case ev.Type.Terminal():
		c.Terminal = ev.Type
		// completed carries the full reply, error and canceled the part
		// streamed so far; either must equal what the deltas built.
		if (ev.Type == gymbro.EventCompleted || ev.Content != "") && ev.Content != string(c.deltas) {
			c.Mismatch = true
		}
	}
	return true
}

// Reset handles the server's "reset" event: what follows replays the log
// from replayFrom, so the check starts over from there.
func (c *StreamCheck) Reset(replayFrom int64) {
	c.Resets++
	c.Last = max(0, replayFrom-1)
	if c.Last == 0 {
		c.deltas = c.deltas[:0]
	}
}

// Done reports whether the terminal event arrived.
func (c *StreamCheck) Done() bool { return c.Terminal != "" }

// Counters are the run's event and error counts; safe for concurrent use
// through Add.
type Counters struct {
	mu sync.Mutex
	c  map[string]int64
}

// Add adds n to the counter name.
func (c *Counters) Add(name string, n int64) {
	c.mu.Lock()
	if c.c == nil {
		c.c = map[string]int64{}
	}
	c.c[name] += n
	c.mu.Unlock()
}

// Get returns the counter name.
func (c *Counters) Get(name string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.c[name]
}

// Snapshot returns a copy of every counter.
func (c *Counters) Snapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.c))
	for k, v := range c.c {
		out[k] = v
	}
	return out
}

// Merge adds a finished stream's check to the counters.
func (c *Counters) Merge(s *StreamCheck) {
	c.Add("events_lost", s.Lost)
	c.Add("events_duplicated", s.Duplicated)
	c.Add("stream_resets", int64(s.Resets))
	if s.Mismatch {
		c.Add("content_mismatch", 1)
	}
	if !s.Done() {
		c.Add("streams_unfinished", 1)
	} else {
		c.Add("terminal_"+string(s.Terminal), 1)
	}
}
