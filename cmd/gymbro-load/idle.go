package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gymbro/gymbro-api/internal/demo"
)

// idleText makes the demo coach pause ten times longer between chunks, so
// a reply stays open for seconds while its streams sit mostly idle.
const idleText = "Hold this stream open please " + demo.MarkerSlow

// idleUser holds its share of the -streams open: it posts a slow message,
// opens its streams on it, and when the reply ends posts the next one and
// opens them again, until ctx ends.
func (l *load) idleUser(ctx context.Context, u *user, users int) {
	k := l.o.streams / users
	if u.n < l.o.streams%users {
		k++
	}
	if k == 0 {
		return
	}
	for ctx.Err() == nil {
		start := time.Now()
		id, retry := l.post(ctx, u, l.o.idleText, "")
		if id == "" {
			if !sleep(ctx, max(retry, 200*time.Millisecond)) {
				return
			}
			continue
		}
		if l.fan != nil {
			l.fan.expect(id, k)
		}
		var wg sync.WaitGroup
		for range k {
			wg.Add(1)
			go func() {
				defer wg.Done()
				l.follow(ctx, u, id, start, false)
			}()
		}
		wg.Wait()
		if l.fan != nil {
			l.fan.done(id)
		}
	}
}

// MemSample is the server's memory at one moment, with the streams open then.
type MemSample struct {
	At        float64 `json:"at_s"` // seconds into the load phase
	Open      int64   `json:"open_streams"`
	HeapInuse int64   `json:"heap_inuse_bytes,omitempty"` // go_memstats_heap_inuse_bytes (metrics only)
	RSS       int64   `json:"rss_bytes"`
}

// memSampler reads the server's memory from its Prometheus endpoint when it
// has one, else from /proc/<pid>/status.
type memSampler struct {
	l       *load
	client  *http.Client
	source  string // "metrics" or "proc"
	base    MemSample
	mu      sync.Mutex
	samples []MemSample
}

func newMemSampler(l *load, c *http.Client) *memSampler { return &memSampler{l: l, client: c} }

// baseline picks the source and takes the sample before any stream opens.
func (m *memSampler) baseline(ctx context.Context) error {
	if s, err := m.fromMetrics(ctx); err == nil {
		m.source, m.base = "metrics", s
		return nil
	}
	if m.l.o.pid > 0 {
		s, err := m.fromProc()
		if err != nil {
			return err
		}
		m.source, m.base = "proc", s
		return nil
	}
	return errors.New("idle mode reads the server's memory: it has no /metrics, so give -pid")
}

func (m *memSampler) sample(ctx context.Context, open int64) (MemSample, error) {
	var s MemSample
	var err error
	if m.source == "metrics" {
		s, err = m.fromMetrics(ctx)
	} else {
		s, err = m.fromProc()
	}
	if err != nil {
		return s, err
	}
	s.Open = open
	s.At = time.Since(m.l.start).Seconds()
	m.mu.Lock()
	m.samples = append(m.samples, s)
	m.mu.Unlock()
	return s, nil
}

// fromMetrics reads the Prometheus text format's two gauges.
func (m *memSampler) fromMetrics(ctx context.Context) (MemSample, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", m.l.o.urls[0]+"/metrics", nil)
	if err != nil {
		return MemSample{}, err
	}
	res, err := m.client.Do(req)
	if err != nil {
		return MemSample{}, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, res.Body)
		return MemSample{}, fmt.Errorf("metrics: HTTP %d", res.StatusCode)
	}
	return parseMetrics(res.Body)
}

// parseMetrics picks go_memstats_heap_inuse_bytes and
// process_resident_memory_bytes out of a Prometheus text exposition.
func parseMetrics(r io.Reader) (MemSample, error) {
	var s MemSample
	found := false
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		switch name {
		case "go_memstats_heap_inuse_bytes":
			s.HeapInuse, found = int64(f), true
		case "process_resident_memory_bytes":
			s.RSS = int64(f)
		}
	}
	if err := sc.Err(); err != nil {
		return s, err
	}
	if !found {
		return s, errors.New("metrics: no go_memstats_heap_inuse_bytes")
	}
	return s, nil
}

func (m *memSampler) fromProc() (MemSample, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", m.l.o.pid))
	if err != nil {
		return MemSample{}, fmt.Errorf("-pid: %w", err)
	}
	defer f.Close()
	return parseProcStatus(f)
}

// parseProcStatus reads VmRSS (in kB) from /proc/<pid>/status.
func parseProcStatus(r io.Reader) (MemSample, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return MemSample{}, fmt.Errorf("VmRSS %q: %w", v, err)
			}
			return MemSample{RSS: kb << 10}, nil
		}
	}
	return MemSample{}, errors.New("/proc status has no VmRSS")
}

// IdleSummary is what idle mode found.
type IdleSummary struct {
	Source        string    `json:"source"` // metrics or proc
	Target        int       `json:"target_streams"`
	Baseline      MemSample `json:"baseline"`
	Peak          MemSample `json:"peak"`                                  // the sample with the most streams open
	HeapPerStream float64   `json:"heap_inuse_per_stream_bytes,omitempty"` // (peak - baseline) / open
	RSSPerStream  float64   `json:"rss_per_stream_bytes"`                  // likewise for RSS
	// Over every sample with the peak count open (RSS moves with garbage
	// collection and the runtime returning memory): the last one, once
	// settled, and the highest.
	RSSPerStreamLast float64     `json:"rss_per_stream_last_bytes"`
	RSSPerStreamMax  float64     `json:"rss_per_stream_max_bytes"`
	Samples          []MemSample `json:"samples"`
}

func (m *memSampler) summary(target int) *IdleSummary {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := &IdleSummary{Source: m.source, Target: target, Baseline: m.base, Samples: m.samples}
	for _, x := range m.samples {
		if x.Open > s.Peak.Open {
			s.Peak = x
		}
	}
	if s.Peak.Open > 0 {
		n := float64(s.Peak.Open)
		s.RSSPerStream = float64(s.Peak.RSS-m.base.RSS) / n
		for _, x := range m.samples {
			if x.Open == s.Peak.Open {
				s.RSSPerStreamLast = float64(x.RSS-m.base.RSS) / n
				s.RSSPerStreamMax = max(s.RSSPerStreamMax, s.RSSPerStreamLast)
			}
		}
		if m.source == "metrics" {
			s.HeapPerStream = float64(s.Peak.HeapInuse-m.base.HeapInuse) / n
		}
	}
	return s
}
