package httpapi_test

import (
	"context"
	"io"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gymbro/gymbro-api/internal/metrics"
	"github.com/gymbro/gymbro-api/internal/sse"
	"github.com/gymbro/gymbro-api/internal/testenv"
)

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// accessLine waits for the one access-log line of the request traced id
// and returns its attributes; it fails if a second one appears.
func accessLine(t *testing.T, logs *testenv.LogBuffer, traceID string) map[string]string {
	t.Helper()
	var lines []string
	deadline := time.Now().Add(10 * time.Second)
	for len(lines) == 0 && time.Now().Before(deadline) {
		lines = nil
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, "msg=request ") && strings.Contains(line, "trace_id="+traceID) {
				lines = append(lines, line)
			}
		}
		if len(lines) == 0 {
			time.Sleep(5 * time.Millisecond) // polling a condition, with a deadline
		}
	}
	if len(lines) != 1 {
		t.Fatalf("%d access-log lines for trace %s in:\n%s", len(lines), traceID, logs.String())
	}
	attrs := map[string]string{}
	for _, kv := range strings.Fields(lines[0]) {
		if k, v, ok := strings.Cut(kv, "="); ok {
			attrs[k] = v
		}
	}
	return attrs
}

// eventsDuration matches the events route's request-duration series.
var eventsDuration = regexp.MustCompile(`gymbro_http_request_duration_seconds_(count|sum)\{route="GET /api/v1/messages/\{id\}/events",status="200"\} (\S+)`)

// streamDuration returns the count and sum of the events route's request
// duration in m.
func streamDuration(t *testing.T, m *metrics.Metrics) (count int, sum float64) {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	found := 0
	for _, s := range eventsDuration.FindAllStringSubmatch(rec.Body.String(), -1) {
		found++
		if s[1] == "count" {
			count, _ = strconv.Atoi(s[2])
		} else {
			sum, _ = strconv.ParseFloat(s[2], 64)
		}
	}
	if found != 2 {
		t.Fatalf("no duration of the events route in:\n%s", rec.Body)
	}
	return count, sum
}

// TestStreamAccessLog: a stream's access-log line is written once, when
// the stream ends, with the bytes it sent, the time it was open and the
// last event id; the request-duration metric agrees. Parked (HTTP/1.1)
// and looping (HTTP/2) streams alike.
func TestStreamAccessLog(t *testing.T) {
	for name, h2 := range map[string]bool{"http1-parked": false, "http2-loop": true} {
		t.Run(name, func(t *testing.T) {
			logs := &testenv.LogBuffer{}
			mx := metrics.New(metrics.Options{})
			ss := newStreamServerWith(t, streamSetup{http2: h2, logs: logs, metrics: mx})
			id := ss.post(t, "How do I squat deeper?")
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			res := ss.open(t, ctx, id, 0)
			body := &countingReader{r: res.Body}
			r := sse.NewReader(body)
			// The stream was open at least from before its first event's
			// arrival to its last event's append (the server's clock, in
			// the event): the server writes an event only once it is
			// appended. (The last event's arrival is no bound: it may reach
			// the client after the server has finished with the stream.)
			evs, _ := readEvents(t, r, 1)
			opened := time.Now()
			for {
				ev, _ := readEvents(t, r, 1)
				if len(ev) == 0 {
					break
				}
				evs = append(evs, ev...)
			}
			res.Body.Close()
			checkWhole(t, evs)
			lasted := evs[len(evs)-1].At.Sub(opened)
			if lasted < 500*time.Millisecond {
				t.Fatalf("the stream's events were appended over %v; the test needs a stream that lasts", lasted)
			}

			line := accessLine(t, logs, res.Header.Get("X-Trace-Id"))
			if line["status"] != "200" || line["bytes"] != strconv.FormatInt(body.n, 10) || line["last_event_id"] != strconv.FormatInt(evs[len(evs)-1].Seq, 10) {
				t.Errorf("line %v; the client read %d bytes, last id %d", line, body.n, evs[len(evs)-1].Seq)
			}
			ms, _ := strconv.ParseFloat(line["duration_ms"], 64)
			if ms < float64(lasted.Milliseconds()) {
				t.Errorf("duration_ms=%v, but the client saw the stream open for %v", ms, lasted)
			}
			count, sum := streamDuration(t, mx)
			if count != 1 || sum < lasted.Seconds() || sum*1000 < ms-1 {
				t.Errorf("duration metric count %d sum %vs; the line says %vms, the client saw %v", count, sum, ms, lasted)
			}
		})
	}
}

// TestParkedStreamAccessLogOnHangUpAndShutdown: a parked stream that ends
// because its client left, or because the server shuts down, still gets
// its line, once.
func TestParkedStreamAccessLogOnHangUpAndShutdown(t *testing.T) {
	logs := &testenv.LogBuffer{}
	ss := newStreamServerWith(t, streamSetup{heartbeat: time.Hour, logs: logs})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var traces []string
	for range 2 {
		id := ss.post(t, "long one [demo:slow]")
		res := ss.open(t, ctx, id, 0)
		if evs, _ := readEvents(t, sse.NewReader(res.Body), 1); len(evs) != 1 {
			t.Fatal("no first event")
		}
		traces = append(traces, res.Header.Get("X-Trace-Id"))
		defer res.Body.Close()
		if len(traces) == 1 {
			res.Body.Close() // the client leaves
		}
	}
	left := accessLine(t, logs, traces[0])
	ss.api.CloseStreams()
	shut := accessLine(t, logs, traces[1])
	for _, line := range []map[string]string{left, shut} {
		if n, _ := strconv.Atoi(line["bytes"]); line["status"] != "200" || n == 0 || line["last_event_id"] == "" {
			t.Errorf("line %v", line)
		}
	}
}
