package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/sse"
)

// load is one run of the tool.
type load struct {
	o      *options
	stderr io.Writer
	client *http.Client
	dial   chan struct{} // semaphore on stream connections being opened

	start      time.Time
	requests   atomic.Int64 // every HTTP request sent during the load phase
	posts      atomic.Int64 // 202s
	completed  atomic.Int64 // streams that reached their terminal event
	openNow    atomic.Int64 // SSE responses being read right now
	counts     Counters
	postLat    Latencies // POST /messages until its 202
	toQueued   Latencies // POST start until the queued event arrives on the stream
	toFirst    Latencies // POST start until the first content_delta arrives
	endToEnd   Latencies // POST start until the terminal event arrives
	deltaLag   Latencies // a content_delta's `at` (server clock) until it is read here
	heartbeats Latencies // gap between heartbeats on one connection (or from open to the first)
	beatLate   Latencies // a heartbeat's arrival minus when it was due (see beatClock)
	fanLat     Latencies // a chunk's `at` until it reached the last stream of its message (idle mode)
	fan        *fanout   // nil in chat mode
	ttft       *ttftRun  // nil but in ttft mode
}

func newLoad(o *options, stderr io.Writer) *load {
	dialer := &rotatingDialer{d: net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}, ips: sourceAddrs(o.sourceAddrs)}
	tr := &http.Transport{
		Proxy:               nil, // loopback only: never through a proxy
		DialContext:         dialer.DialContext,
		MaxIdleConnsPerHost: 4096,
		MaxIdleConns:        16384,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	l := &load{
		o: o, stderr: stderr,
		client: &http.Client{Transport: tr},
		dial:   make(chan struct{}, o.dialConc),
	}
	if o.mode == "idle" {
		l.fan = newFanout(&l.fanLat)
	}
	if o.mode == "ttft" {
		l.ttft = &ttftRun{}
	}
	return l
}

func (l *load) run(ctx context.Context) (*Summary, error) {
	defer l.client.CloseIdleConnections()
	users, err := l.makeUsers(ctx)
	if err != nil {
		return nil, err
	}
	var mem *memSampler
	if l.o.mode == "idle" {
		mem = newMemSampler(l, l.client)
		if err := mem.baseline(ctx); err != nil {
			return nil, err
		}
	}

	runCtx, cancel := context.WithTimeout(ctx, l.o.duration)
	defer cancel()
	l.start = time.Now()
	var wg sync.WaitGroup
	for _, u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch l.o.mode {
			case "idle":
				l.idleUser(runCtx, u, len(users))
			case "post":
				l.postUser(runCtx, u)
			case "ttft":
				l.ttftUser(runCtx, u, len(users))
			default:
				l.chatUser(runCtx, u)
			}
		}()
	}
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		l.progressLoop(runCtx, mem)
	}()
	wg.Wait()
	cancel()
	<-progressDone
	return l.summary(users, mem), nil
}

// progressLoop prints a line every -progress until ctx ends (and samples
// the server's memory in idle mode).
func (l *load) progressLoop(ctx context.Context, mem *memSampler) {
	t := time.NewTicker(l.o.progress)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		el := time.Since(l.start)
		line := fmt.Sprintf("[%5.1fs] req=%d (%.0f/s) posts=%d completed=%d open=%d http_errors=%d lost=%d dup=%d",
			el.Seconds(), l.requests.Load(), float64(l.requests.Load())/el.Seconds(), l.posts.Load(), l.completed.Load(),
			l.openNow.Load(), l.counts.Get("http_errors"), l.counts.Get("events_lost"), l.counts.Get("events_duplicated"))
		if mem != nil {
			if s, err := mem.sample(ctx, l.openNow.Load()); err == nil {
				line += fmt.Sprintf(" server_heap_inuse=%.1fMiB rss=%.1fMiB", mib(s.HeapInuse), mib(s.RSS))
			}
		}
		fmt.Fprintln(l.stderr, line)
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// chatUser posts, follows the reply, thinks, and again, until ctx ends.
func (l *load) chatUser(ctx context.Context, u *user) {
	// Spread the first posts over one think time, so users do not all
	// arrive in the same millisecond.
	if !sleep(ctx, time.Duration(rand.Int64N(int64(l.o.think)+1))) {
		return
	}
	for ctx.Err() == nil {
		start := time.Now()
		id, retry := l.post(ctx, u, l.o.text, "")
		if id == "" {
			if !sleep(ctx, max(retry, l.o.think, 50*time.Millisecond)) {
				return
			}
			continue
		}
		drop := rand.Float64() < l.o.drop
		l.follow(ctx, u, id, start, drop)
		if !sleep(ctx, l.o.think) {
			return
		}
	}
}

// postUser posts as fast as the service accepts, without following the
// replies: the write path under load. Every post has its own
// Idempotency-Key; one refused (the running cap, a 503) is sent again with
// the same key once its Retry-After has passed, so it is stored once.
func (l *load) postUser(ctx context.Context, u *user) {
	for ctx.Err() == nil {
		key := uuid.NewString()
		for {
			id, retry := l.post(ctx, u, l.o.text, key)
			if id != "" {
				break
			}
			if !sleep(ctx, max(retry, 50*time.Millisecond)) {
				return
			}
		}
	}
}

// post sends a message (with key as its Idempotency-Key, unless empty) and
// returns its id, or "" and how long to wait before trying again.
func (l *load) post(ctx context.Context, u *user, text, key string) (id string, retry time.Duration) {
	body, _ := json.Marshal(map[string]string{"text": text})
	req, err := http.NewRequestWithContext(ctx, "POST", u.postURL+"/api/v1/messages", bytes.NewReader(body))
	if err != nil {
		return "", time.Second
	}
	req.Header.Set("Authorization", u.bearer())
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	start := time.Now()
	l.requests.Add(1)
	res, err := l.client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			l.counts.Add("transport_errors", 1)
		}
		return "", time.Second
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusAccepted {
		l.httpError(res.StatusCode)
		secs, _ := strconv.Atoi(res.Header.Get("Retry-After"))
		return "", time.Duration(secs) * time.Second
	}
	l.postLat.Add(time.Since(start))
	var p struct {
		MessageID string `json:"message_id"`
	}
	if err := json.Unmarshal(data, &p); err != nil || p.MessageID == "" {
		l.counts.Add("bad_responses", 1)
		return "", time.Second
	}
	l.posts.Add(1)
	return p.MessageID, 0
}

func (l *load) httpError(status int) {
	l.counts.Add("http_errors", 1)
	l.counts.Add("http_"+strconv.Itoa(status), 1)
}

// maxAttempts bounds the connections one message's stream may take.
const maxAttempts = 20

// follow reads message id's stream until its terminal event, reconnecting
// with Last-Event-ID whenever the connection ends early. With drop set it
// hangs up once on purpose after a few deltas, as a phone losing signal
// would. start is when the message was posted (the clock for the latency
// figures).
func (l *load) follow(ctx context.Context, u *user, id string, start time.Time, drop bool) {
	check := &StreamCheck{}
	dropAfter := 0
	if drop {
		dropAfter = 1 + rand.IntN(4)
	}
	sawFirst := false
	for attempt := 0; attempt < maxAttempts && !check.Done() && ctx.Err() == nil; attempt++ {
		if attempt > 0 {
			l.counts.Add("reconnects", 1)
		}
		body, ok := l.open(ctx, u, id, check.Last)
		if !ok {
			if !sleep(ctx, 100*time.Millisecond) {
				break
			}
			continue
		}
		if l.fan != nil && attempt == 0 {
			l.fan.opened(id, time.Now())
		}
		deltas := 0
		err := l.read(body, check, func(ev gymbro.Event) bool {
			t := time.Since(start)
			switch {
			case ev.Type == gymbro.EventQueued:
				l.toQueued.Add(t)
			case ev.Type == gymbro.EventContentDelta:
				if !ev.At.IsZero() {
					now := time.Now()
					l.deltaLag.Add(now.Sub(ev.At))
					if l.fan != nil {
						l.fan.chunk(id, ev.Seq, ev.At, now)
					}
				}
				if !sawFirst {
					sawFirst = true
					l.toFirst.Add(t)
				}
				deltas++
				if dropAfter > 0 && deltas == dropAfter {
					dropAfter = 0
					l.counts.Add("drops", 1)
					return false
				}
			case ev.Type.Terminal():
				l.endToEnd.Add(t)
			}
			return true
		})
		body.Close()
		l.openNow.Add(-1)
		if err != nil && ctx.Err() == nil && !errors.Is(err, errHangUp) {
			l.counts.Add("stream_read_errors", 1)
		}
	}
	if !check.Done() && ctx.Err() != nil {
		// Cut by the end of the run: neither a loss nor a failure.
		l.counts.Add("streams_cut_at_end", 1)
		l.counts.Add("events_duplicated", check.Duplicated)
		l.counts.Add("events_lost", check.Lost)
		return
	}
	if check.Done() {
		l.completed.Add(1)
	}
	l.counts.Merge(check)
}

// open starts message id's stream after seq `after`; the caller closes the
// body and decrements openNow.
func (l *load) open(ctx context.Context, u *user, id string, after int64) (io.ReadCloser, bool) {
	req, err := http.NewRequestWithContext(ctx, "GET", u.streamURL+"/api/v1/messages/"+id+"/events", nil)
	if err != nil {
		return nil, false
	}
	req.Header.Set("Authorization", u.bearer())
	req.Header.Set("Accept", "text/event-stream")
	if after > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(after, 10))
	}
	select {
	case l.dial <- struct{}{}:
	case <-ctx.Done():
		return nil, false
	}
	l.requests.Add(1)
	res, err := l.client.Do(req)
	<-l.dial
	if err != nil {
		if ctx.Err() == nil {
			l.counts.Add("transport_errors", 1)
		}
		return nil, false
	}
	if res.StatusCode != http.StatusOK {
		l.httpError(res.StatusCode)
		_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
		res.Body.Close()
		return nil, false
	}
	l.openNow.Add(1)
	return res.Body, true
}

// errHangUp is how read reports that on asked it to stop.
var errHangUp = errors.New("hung up on purpose")

// read feeds the stream's events through check, calling on for each new
// one, until the terminal event (nil), the end of the stream (io.EOF or
// a read error), or on returning false (errHangUp). Heartbeat gaps are
// recorded when -heartbeat is set.
func (l *load) read(body io.Reader, check *StreamCheck, on func(gymbro.Event) bool) error {
	r := sse.NewReader(body)
	prevBeat := time.Now()
	clock := newBeatClock(prevBeat, l.o.heartbeat)
	for {
		raw, err := r.Next()
		if err != nil {
			return err
		}
		switch {
		case raw.Comment != "":
			if l.o.heartbeat > 0 && raw.Comment == "heartbeat" {
				now := time.Now()
				l.heartbeats.Add(now.Sub(prevBeat))
				l.beatLate.Add(clock.beat(now))
				prevBeat = now
			}
			continue
		case raw.Type == "reset":
			var rs struct {
				ReplayFrom int64 `json:"replay_from"`
			}
			_ = json.Unmarshal([]byte(raw.Data), &rs)
			check.Reset(rs.ReplayFrom)
			continue
		case !raw.HasID:
			continue // the opening retry: field
		}
		var ev gymbro.Event
		if err := json.Unmarshal([]byte(raw.Data), &ev); err != nil || strconv.FormatInt(ev.Seq, 10) != raw.ID {
			l.counts.Add("bad_events", 1)
			continue
		}
		if !check.Observe(ev) {
			continue
		}
		if !on(ev) {
			return errHangUp
		}
		if check.Done() {
			return nil
		}
	}
}

// sleep waits d or until ctx ends, reporting whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
