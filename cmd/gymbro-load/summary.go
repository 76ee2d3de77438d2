package main

import (
	"fmt"
	"io"
	"slices"
	"time"
)

// Summary is the run's result; -json prints it as is.
type Summary struct {
	Mode             string           `json:"mode"`
	URLs             []string         `json:"urls"`
	Users            int              `json:"users"`
	Seconds          float64          `json:"seconds"` // the load phase's length
	Requests         int64            `json:"requests"`
	RequestsPerSec   float64          `json:"requests_per_s"`
	Posts            int64            `json:"posts"`
	PostsPerSec      float64          `json:"posts_per_s"`
	Completed        int64            `json:"streams_completed"`
	PostLatency      Dist             `json:"post_latency"`
	TimeToQueued     Dist             `json:"time_to_queued"`
	TimeToFirstDelta Dist             `json:"time_to_first_delta"`
	EndToEnd         Dist             `json:"end_to_end"`
	DeltaLag         Dist             `json:"delta_lag"` // a delta's server `at` until it was read here
	Heartbeat        *HeartbeatStats  `json:"heartbeat,omitempty"`
	Fanout           *Dist            `json:"fanout,omitempty"` // a chunk's `at` until the last of its message's streams read it (idle mode)
	Counts           map[string]int64 `json:"counts"`
	Idle             *IdleSummary     `json:"idle,omitempty"`
	TTFT             *TTFTSummary     `json:"ttft,omitempty"`
}

// HeartbeatStats compares heartbeat gaps with the server's interval.
type HeartbeatStats struct {
	ExpectedMs float64 `json:"expected_ms"`
	Gaps       Dist    `json:"gaps"`
	Late       int     `json:"late"`     // gaps over 1.5 times the interval
	Lateness   Dist    `json:"lateness"` // arrival minus due time (see beatClock)
}

func (l *load) summary(users []*user, mem *memSampler) *Summary {
	el := time.Since(l.start)
	s := &Summary{
		Mode: l.o.mode, URLs: l.o.urls, Users: len(users), Seconds: el.Seconds(),
		Requests: l.requests.Load(), Posts: l.posts.Load(), Completed: l.completed.Load(),
		PostLatency: l.postLat.Summary(), TimeToQueued: l.toQueued.Summary(), TimeToFirstDelta: l.toFirst.Summary(),
		EndToEnd: l.endToEnd.Summary(), DeltaLag: l.deltaLag.Summary(), Counts: l.counts.Snapshot(),
	}
	s.RequestsPerSec = float64(s.Requests) / el.Seconds()
	s.PostsPerSec = float64(s.Posts) / el.Seconds()
	if l.o.heartbeat > 0 {
		s.Heartbeat = heartbeatStats(&l.heartbeats, l.o.heartbeat)
		s.Heartbeat.Lateness = l.beatLate.Summary()
	}
	if l.fan != nil {
		d := l.fanLat.Summary()
		s.Fanout = &d
	}
	if mem != nil {
		s.Idle = mem.summary(l.o.streams)
	}
	if l.ttft != nil {
		s.TTFT = l.ttft.summary()
	}
	return s
}

func heartbeatStats(l *Latencies, interval time.Duration) *HeartbeatStats {
	l.mu.Lock()
	late := 0
	for _, d := range l.d {
		if d > interval*3/2 {
			late++
		}
	}
	l.mu.Unlock()
	return &HeartbeatStats{ExpectedMs: float64(interval) / float64(time.Millisecond), Gaps: l.Summary(), Late: late}
}

func (s *Summary) print(w io.Writer) {
	fmt.Fprintf(w, "mode %s, %d users, %.1fs against %v\n", s.Mode, s.Users, s.Seconds, s.URLs)
	fmt.Fprintf(w, "requests        %d (%.1f/s); posts %d (%.1f/s); streams completed %d\n", s.Requests, s.RequestsPerSec, s.Posts, s.PostsPerSec, s.Completed)
	fmt.Fprintf(w, "post → 202      %s\n", s.PostLatency)
	fmt.Fprintf(w, "post → queued   %s\n", s.TimeToQueued)
	fmt.Fprintf(w, "post → 1st delta %s\n", s.TimeToFirstDelta)
	fmt.Fprintf(w, "post → terminal %s\n", s.EndToEnd)
	fmt.Fprintf(w, "delta at → read %s\n", s.DeltaLag)
	if h := s.Heartbeat; h != nil {
		fmt.Fprintf(w, "heartbeat gaps  %s (expected %.0fms, %d late)\n", h.Gaps, h.ExpectedMs, h.Late)
		fmt.Fprintf(w, "heartbeat late  %s\n", h.Lateness)
	}
	if s.Fanout != nil {
		fmt.Fprintf(w, "chunk fan-out   %s (at → read on the last stream of its message)\n", s.Fanout)
	}
	keys := make([]string, 0, len(s.Counts))
	for k := range s.Counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	fmt.Fprint(w, "counts         ")
	for _, k := range keys {
		fmt.Fprintf(w, " %s=%d", k, s.Counts[k])
	}
	fmt.Fprintln(w)
	if i := s.Idle; i != nil {
		fmt.Fprintf(w, "idle: %d streams wanted, peak %d open; server memory (%s) baseline heap %.1fMiB rss %.1fMiB, at peak heap %.1fMiB rss %.1fMiB\n",
			i.Target, i.Peak.Open, i.Source, mib(i.Baseline.HeapInuse), mib(i.Baseline.RSS), mib(i.Peak.HeapInuse), mib(i.Peak.RSS))
		if i.Source == "metrics" {
			fmt.Fprintf(w, "per open stream: heap in use %.0f B, RSS %.0f B\n", i.HeapPerStream, i.RSSPerStream)
		} else {
			fmt.Fprintf(w, "per open stream: RSS %.0f B\n", i.RSSPerStream)
		}
		fmt.Fprintf(w, "per open stream, RSS over the samples at peak: last %.0f B, highest %.0f B\n", i.RSSPerStreamLast, i.RSSPerStreamMax)
	}
	if s.TTFT != nil {
		s.TTFT.print(w)
	}
}
