package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/sse"
)

// The ttft mode measures the time to first token the service adds. Each
// user runs pairs of exchanges, one after the other: a streaming request
// straight to the model (-model-url) until its first content chunk, and
// what the app does, POST /api/v1/messages then GET its events URL, until
// the first content_delta, in alternating order, so the machine's noise
// hits both paths alike. One user is the sequential run; more run their
// pairs at once. Each path keeps its connections alive, as an app and the
// service do. With -trace the service's own timestamps of each exchange
// (GYMBRO_TRACE_TTFT) are read back after it ends, for the breakdown.

// ttftRun is one ttft-mode run's results.
type ttftRun struct {
	direct  Latencies // request sent → first content chunk, straight to the model
	service Latencies // POST sent → first content_delta read on the stream
	diffs   Latencies // per pair: service − direct
	trace   traceSteps
	next    atomic.Int64 // pairs started, warm-up included
}

// ttftUser runs pairs until -exchanges have been measured (after
// -warmup) or ctx ends. With more than one user each thinks about -think
// (uniformly 0.5–1.5 times it) between its pairs, as people using the app
// at once do: a measure of the time to first token while other exchanges
// are under way, not of how many the machine can run back to back.
func (l *load) ttftUser(ctx context.Context, u *user, users int) {
	r := l.ttft
	total := int64(l.o.warmup + l.o.exchanges)
	think := l.o.think
	if users < 2 {
		think = 0
	}
	if think > 0 && !sleep(ctx, time.Duration(rand.Int64N(int64(think)))) {
		return
	}
	for ctx.Err() == nil {
		n := r.next.Add(1)
		if n > total {
			return
		}
		var direct, service time.Duration
		var sok, dok bool
		if n%2 == 0 {
			direct, dok = l.directFirst(ctx)
			service, sok = l.serviceFirst(ctx, u, n > int64(l.o.warmup))
		} else {
			service, sok = l.serviceFirst(ctx, u, n > int64(l.o.warmup))
			direct, dok = l.directFirst(ctx)
		}
		if n > int64(l.o.warmup) && sok && dok {
			r.direct.Add(direct)
			r.service.Add(service)
			r.diffs.Add(service - direct)
		}
		if think > 0 && !sleep(ctx, think/2+time.Duration(rand.Int64N(int64(think)))) {
			return
		}
	}
}

// directFirst sends one streaming chat completion straight to the model,
// as the service's SDK does, and returns the time to its first content
// chunk. It reads the rest of the reply, so the connection is reused.
func (l *load) directFirst(ctx context.Context) (time.Duration, bool) {
	body, _ := json.Marshal(map[string]any{
		"model":          "gpt-4o-mini",
		"messages":       []map[string]string{{"role": "system", "content": "You are GymBro, a fitness coach."}, {"role": "user", "content": l.o.text}},
		"stream":         true,
		"stream_options": map[string]bool{"include_usage": true},
	})
	req, err := http.NewRequestWithContext(ctx, "POST", l.o.modelURL+"/chat/completions", bytes.NewReader(body))
	if err != nil {
		return 0, false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	start := time.Now()
	l.requests.Add(1)
	res, err := l.client.Do(req)
	if err != nil {
		l.counts.Add("model_transport_errors", 1)
		return 0, false
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		l.counts.Add("model_http_errors", 1)
		return 0, false
	}
	var first time.Duration
	r := sse.NewReader(res.Body)
	for {
		ev, err := r.Next()
		if err != nil {
			break
		}
		if first != 0 || ev.Data == "" || ev.Data == "[DONE]" {
			continue
		}
		var c struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if json.Unmarshal([]byte(ev.Data), &c) == nil && len(c.Choices) > 0 && c.Choices[0].Delta.Content != "" {
			first = time.Since(start)
		}
	}
	if first == 0 {
		l.counts.Add("model_no_content", 1)
	}
	return first, first != 0
}

// serviceFirst does what the app does, POST then GET the events URL, and
// returns the time from the POST to the first content_delta on the stream.
// It follows the stream to its terminal event (checking every event, as
// chat mode does), so the next exchange finds the previous one finished.
func (l *load) serviceFirst(ctx context.Context, u *user, measured bool) (time.Duration, bool) {
	var at clientSteps
	start := time.Now()
	at.posted = start
	id, _ := l.post(ctx, u, l.o.text, "")
	if id == "" {
		return 0, false
	}
	at.accepted = time.Now()
	body, ok := l.open(ctx, u, id, 0)
	if !ok {
		return 0, false
	}
	defer func() { body.Close(); l.openNow.Add(-1) }()
	check := &StreamCheck{}
	var first time.Duration
	err := l.read(body, check, func(ev gymbro.Event) bool {
		if ev.Type == gymbro.EventContentDelta && first == 0 {
			at.firstRead = time.Now()
			first = at.firstRead.Sub(start)
		}
		return true
	})
	if err != nil && ctx.Err() == nil {
		l.counts.Add("stream_read_errors", 1)
	}
	l.counts.Merge(check)
	if first == 0 {
		return 0, false
	}
	l.completed.Add(1)
	if measured && l.o.trace {
		l.fetchTrace(ctx, u, id, at)
	}
	return first, true
}

// clientSteps are the load tool's own timestamps of one exchange.
type clientSteps struct {
	posted, accepted, firstRead time.Time
}

// fetchTrace reads the service's timestamps of exchange id and adds them
// to the breakdown.
func (l *load) fetchTrace(ctx context.Context, u *user, id string, at clientSteps) {
	req, err := http.NewRequestWithContext(ctx, "GET", u.postURL+"/debug/ttft/"+id, nil)
	if err != nil {
		return
	}
	req.Header.Set("Authorization", u.bearer())
	res, err := l.client.Do(req)
	if err != nil {
		l.counts.Add("trace_errors", 1)
		return
	}
	defer res.Body.Close()
	var tr serverTrace
	if res.StatusCode != http.StatusOK || json.NewDecoder(res.Body).Decode(&tr) != nil {
		_, _ = io.Copy(io.Discard, res.Body)
		l.counts.Add("trace_errors", 1)
		return
	}
	l.ttft.trace.add(at, &tr)
}

// serverTrace is what GET /debug/ttft/{id} answers: each step's wall-clock
// time in Unix nanoseconds (absent when the step was not passed), and
// whether the model request reused a connection.
type serverTrace struct {
	Steps           map[string]int64 `json:"steps"`
	ModelConnReused *bool            `json:"model_conn_reused"`
}

// traceLane is one causal chain of steps: the breakdown prints each
// step's median time from the POST and from the step before it in its
// lane. Client steps are prefixed "client.".
type traceLane struct {
	name  string
	steps []string
}

// traceLanes follow an exchange from the POST to the first delta read.
// Once the exchange is stored three things run at once: the generation
// (to the first delta appended), the queued and working appends (the first
// delta waits for them) and, after the 202, the app opening its stream;
// delivery needs them all.
var traceLanes = []traceLane{
	{"accept", []string{"client.posted", "post_received", "stored", "queued_appended", "post_answered", "client.accepted"}},
	{"generation", []string{"stored", "generation_started", "model_called", "model_conn", "model_request_written", "model_response_headers", "first_chunk", "first_delta_appended"}},
	{"working", []string{"queued_appended", "working_appended"}},
	{"subscription", []string{"client.accepted", "stream_received", "stream_found", "stream_slot", "stream_replayed", "stream_ready"}},
	{"delivery", []string{"first_delta_appended", "first_delta_written", "client.first_read"}},
}

// traceSteps gathers the breakdown's samples.
type traceSteps struct {
	mu      sync.Mutex
	n       int
	reused  int
	offsets map[string][]time.Duration // step time − client.posted
	gaps    map[string][]time.Duration // step time − the step before it in its lane
}

func (t *traceSteps) add(at clientSteps, tr *serverTrace) {
	abs := map[string]int64{
		"client.posted": at.posted.UnixNano(), "client.accepted": at.accepted.UnixNano(), "client.first_read": at.firstRead.UnixNano(),
	}
	for k, v := range tr.Steps {
		abs[k] = v
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.offsets == nil {
		t.offsets, t.gaps = map[string][]time.Duration{}, map[string][]time.Duration{}
	}
	t.n++
	if tr.ModelConnReused != nil && *tr.ModelConnReused {
		t.reused++
	}
	base := abs["client.posted"]
	for s, v := range abs {
		t.offsets[s] = append(t.offsets[s], time.Duration(v-base))
	}
	for _, lane := range traceLanes {
		prev := int64(0)
		for _, s := range lane.steps {
			v, ok := abs[s]
			if !ok {
				continue
			}
			if prev != 0 {
				t.gaps[lane.name+"/"+s] = append(t.gaps[lane.name+"/"+s], time.Duration(v-prev))
			}
			prev = v
		}
	}
}

// TraceStep is one step of the breakdown over the traced exchanges, in
// ms: the median time from the POST, and the step's own p50, p90, p99.
type TraceStep struct {
	Lane      string  `json:"lane"`
	Step      string  `json:"step"`
	FromPost  float64 `json:"from_post_ms"`
	FromPrev  float64 `json:"from_previous_ms"`
	FromPrevP float64 `json:"from_previous_p90_ms"`
	FromPrev9 float64 `json:"from_previous_p99_ms"`
	Count     int     `json:"count"`
}

// Breakdown summarises the traced exchanges.
type Breakdown struct {
	Exchanges       int         `json:"exchanges"`
	ModelConnReused int         `json:"model_conn_reused"`
	Steps           []TraceStep `json:"steps"`
}

func (t *traceSteps) summary() *Breakdown {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == 0 {
		return nil
	}
	b := &Breakdown{Exchanges: t.n, ModelConnReused: t.reused}
	for _, lane := range traceLanes {
		for i, s := range lane.steps {
			off := t.offsets[s]
			if len(off) == 0 {
				continue
			}
			st := TraceStep{Lane: lane.name, Step: s, FromPost: summarize(append([]time.Duration(nil), off...)).P50, Count: len(off)}
			if i > 0 {
				if g := t.gaps[lane.name+"/"+s]; len(g) > 0 {
					d := summarize(append([]time.Duration(nil), g...))
					st.FromPrev, st.FromPrevP, st.FromPrev9 = d.P50, d.P90, d.P99
				}
			}
			b.Steps = append(b.Steps, st)
		}
	}
	return b
}

// TTFTSummary is the ttft mode's result.
type TTFTSummary struct {
	Direct  Dist `json:"direct"`  // straight to the model: request sent → first content chunk
	Service Dist `json:"service"` // POST sent → first content_delta read
	// Added is the difference of the two distributions' percentiles
	// (service p50 − direct p50, and so on): how far the service shifts
	// the time to first token. PairDiffs is the distribution of the
	// per-pair differences, printed beside it (see docs/benchmarks.md).
	Added     Dist       `json:"added"`
	PairDiffs Dist       `json:"pair_diffs"`
	Breakdown *Breakdown `json:"breakdown,omitempty"`
}

func (r *ttftRun) summary() *TTFTSummary {
	s := &TTFTSummary{Direct: r.direct.Summary(), Service: r.service.Summary(), PairDiffs: r.diffs.Summary(), Breakdown: r.trace.summary()}
	s.Added = Dist{Count: s.Service.Count, Mean: s.Service.Mean - s.Direct.Mean, P50: s.Service.P50 - s.Direct.P50,
		P90: s.Service.P90 - s.Direct.P90, P99: s.Service.P99 - s.Direct.P99, Max: s.Service.Max - s.Direct.Max}
	return s
}

func (s *TTFTSummary) print(w io.Writer) {
	fmt.Fprintf(w, "direct to model  %s\n", s.Direct)
	fmt.Fprintf(w, "through service  %s\n", s.Service)
	fmt.Fprintf(w, "added            p50=%.3fms p90=%.3fms p99=%.3fms (difference of percentiles)\n", s.Added.P50, s.Added.P90, s.Added.P99)
	fmt.Fprintf(w, "pair differences p50=%.3fms p90=%.3fms p99=%.3fms (service − direct, pair by pair)\n", s.PairDiffs.P50, s.PairDiffs.P90, s.PairDiffs.P99)
	b := s.Breakdown
	if b == nil {
		return
	}
	fmt.Fprintf(w, "breakdown of %d exchanges (medians; model connection reused in %d):\n", b.Exchanges, b.ModelConnReused)
	fmt.Fprintf(w, "  %-13s %-24s %10s %10s %10s %10s\n", "lane", "step", "from POST", "step p50", "step p90", "step p99")
	for _, st := range b.Steps {
		p50, p90, p99 := "-", "-", "-"
		if st.FromPrev != 0 || st.FromPrevP != 0 || st.FromPrev9 != 0 {
			p50, p90, p99 = ms3(st.FromPrev), ms3(st.FromPrevP), ms3(st.FromPrev9)
		}
		fmt.Fprintf(w, "  %-13s %-24s %10.3f %10s %10s %10s\n", st.Lane, st.Step, st.FromPost, p50, p90, p99)
	}
}

func ms3(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }

// errNoModelURL refuses the ttft mode without its model.
var errNoModelURL = errors.New("-mode ttft needs -model-url, the model the service streams from (its OPENAI_BASE_URL)")
