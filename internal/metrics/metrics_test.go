package metrics_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/gymbro/gymbro-api/internal/chat"
	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/httpapi"
	"github.com/gymbro/gymbro-api/internal/metrics"
)

var (
	_ httpapi.Metrics = (*metrics.Metrics)(nil)
	_ chat.Observer   = (*metrics.Metrics)(nil)
)

// scrape fetches the handler's text exposition and parses it.
func scrape(t *testing.T, m *metrics.Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	m.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics = %d\n%s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type = %q, want text/plain", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parse exposition: %v", err)
	}
	return fams
}

// sample returns the value of the series of family name whose labels
// include want, failing when there is none.
func sample(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("no family %s", name)
	}
next:
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		return m
	}
	t.Fatalf("no %s series with labels %v", name, want)
	return nil
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return -1
}

func TestSeries(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	m := metrics.New(metrics.Options{
		Version: "v1.2.3", InstanceID: "a",
		OutboxStats: func(ctx context.Context) (gymbro.OutboxStats, error) {
			if _, ok := ctx.Deadline(); !ok {
				t.Error("OutboxStats called without a deadline")
			}
			return gymbro.OutboxStats{Pending: 7, Dead: 2, OldestPending: now.Add(-90 * time.Second)}, nil
		},
		Now: func() time.Time { return now },
	})

	m.ObserveRequest("POST /api/v1/messages", 202, 30*time.Millisecond)
	m.ObserveRequest("POST /api/v1/messages", 202, 70*time.Millisecond)
	m.ObserveRequest("POST /api/v1/messages", 429, time.Millisecond)
	m.ObserveRequest("", 404, time.Millisecond)
	m.AuthFailure("token_expired")
	m.AuthFailure("token_expired")
	m.AuthFailure("signature_invalid")
	m.StreamOpened()
	m.StreamOpened()
	m.StreamClosed()
	m.GenerationStarted()
	m.GenerationStarted()
	m.GenerationStarted()
	m.GenerationFinished(gymbro.StatusCompleted, 250*time.Millisecond)
	m.GenerationFinished(gymbro.StatusFailed, 0) // no chunk: not a first-chunk sample
	m.DeclareSessionProviders(gymbro.ProviderSupabase, gymbro.ProviderFirebase)
	m.SessionCheck(gymbro.ProviderFirebase, "revoked")
	m.SessionCheck(gymbro.ProviderFirebase, "stale_accepted")
	m.SessionCheck(gymbro.ProviderFirebase, "stale_accepted")

	fams := scrape(t, m)
	counters := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"gymbro_http_requests_total", map[string]string{"route": "POST /api/v1/messages", "status": "202"}, 2},
		{"gymbro_http_requests_total", map[string]string{"route": "POST /api/v1/messages", "status": "429"}, 1},
		{"gymbro_http_requests_total", map[string]string{"route": "unmatched", "status": "404"}, 1},
		{"gymbro_auth_failures_total", map[string]string{"code": "token_expired"}, 2},
		{"gymbro_auth_failures_total", map[string]string{"code": "signature_invalid"}, 1},
		{"gymbro_sse_streams_open", nil, 1},
		{"gymbro_generations_running", nil, 1},
		{"gymbro_generations_total", map[string]string{"status": "completed"}, 1},
		{"gymbro_generations_total", map[string]string{"status": "error"}, 1},
		{"gymbro_generations_total", map[string]string{"status": "interrupted"}, 0},
		{"gymbro_session_checks_total", map[string]string{"provider": "firebase", "result": "stale_accepted"}, 2},
		{"gymbro_session_checks_total", map[string]string{"provider": "firebase", "result": "revoked"}, 1},
		{"gymbro_session_checks_total", map[string]string{"provider": "supabase", "result": "unavailable"}, 0},
		{"gymbro_outbox_pending", nil, 7},
		{"gymbro_outbox_dead", nil, 2},
		{"gymbro_outbox_oldest_pending_age_seconds", nil, 90},
		{"gymbro_outbox_stats_errors_total", nil, 0},
		{"gymbro_build_info", map[string]string{"version": "v1.2.3", "instance_id": "a"}, 1},
	}
	for _, c := range counters {
		if got := value(sample(t, fams, c.name, c.labels)); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}

	h := sample(t, fams, "gymbro_http_request_duration_seconds", map[string]string{"route": "POST /api/v1/messages", "status": "202"}).GetHistogram()
	if h.GetSampleCount() != 2 || h.GetSampleSum() < 0.099 || h.GetSampleSum() > 0.101 {
		t.Errorf("request duration: count %d sum %v, want 2 and 0.1", h.GetSampleCount(), h.GetSampleSum())
	}
	fc := sample(t, fams, "gymbro_model_first_chunk_seconds", nil).GetHistogram()
	if fc.GetSampleCount() != 1 || fc.GetSampleSum() != 0.25 {
		t.Errorf("first chunk: count %d sum %v, want 1 and 0.25", fc.GetSampleCount(), fc.GetSampleSum())
	}

	// The runtime and process collectors are on the registry.
	for _, name := range []string{"go_memstats_alloc_bytes", "go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("no %s", name)
		}
	}
}

func TestOutboxFailureLeavesSeriesOut(t *testing.T) {
	m := metrics.New(metrics.Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OutboxStats: func(context.Context) (gymbro.OutboxStats, error) {
			return gymbro.OutboxStats{}, errors.New("database is down")
		},
	})
	fams := scrape(t, m) // and the scrape itself still succeeds
	if _, ok := fams["gymbro_outbox_pending"]; ok {
		t.Error("gymbro_outbox_pending present although the query failed")
	}
	if got := value(sample(t, fams, "gymbro_outbox_stats_errors_total", nil)); got != 1 {
		t.Errorf("outbox_stats_errors_total = %v, want 1", got)
	}
	if _, ok := fams["go_goroutines"]; !ok {
		t.Error("a failed outbox query dropped the other series")
	}
}

func TestNoOutboxWithoutStats(t *testing.T) {
	fams := scrape(t, metrics.New(metrics.Options{}))
	for _, name := range []string{"gymbro_outbox_pending", "gymbro_outbox_stats_errors_total"} {
		if _, ok := fams[name]; ok {
			t.Errorf("%s present without OutboxStats", name)
		}
	}
}

// TestOwnRegistry: two Metrics in one process register the same names
// without clashing, and neither touches the global default registry.
func TestOwnRegistry(t *testing.T) {
	a, b := metrics.New(metrics.Options{}), metrics.New(metrics.Options{})
	a.AuthFailure("token_missing")
	if _, ok := scrape(t, b)["gymbro_auth_failures_total"]; ok {
		t.Error("a's auth failure shows on b")
	}
}

func TestJWKSTransport(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/broken" {
			http.Error(w, "no", http.StatusBadGateway)
			return
		}
		io.WriteString(w, `{"keys":[]}`)
	}))
	defer srv.Close()
	m := metrics.New(metrics.Options{})
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: m.JWKSTransport(tr)}
	get := func(url string) {
		resp, err := client.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	get(srv.URL + "/auth/v1/.well-known/jwks.json")
	get(srv.URL + "/auth/v1/.well-known/jwks.json")
	get(srv.URL + "/broken")
	get("http://127.0.0.1:1/jwks.json") // nothing listens on port 1

	host := strings.TrimPrefix(srv.URL, "http://")
	fams := scrape(t, m)
	for _, c := range []struct {
		host, result string
		want         float64
	}{{host, "ok", 2}, {host, "http_502", 1}, {"127.0.0.1:1", "error", 1}} {
		if got := value(sample(t, fams, "gymbro_jwks_fetches_total", map[string]string{"host": c.host, "result": c.result})); got != c.want {
			t.Errorf("jwks_fetches_total{host=%s,result=%s} = %v, want %v", c.host, c.result, got, c.want)
		}
	}
}

// BenchmarkObserveRequest is the per-request cost the middleware pays.
func BenchmarkObserveRequest(b *testing.B) {
	m := metrics.New(metrics.Options{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.ObserveRequest("GET /api/v1/messages/{id}", 200, 3*time.Millisecond)
		}
	})
}

// BenchmarkScrape is one full /metrics render, runtime collectors included.
func BenchmarkScrape(b *testing.B) {
	m := metrics.New(metrics.Options{OutboxStats: func(context.Context) (gymbro.OutboxStats, error) {
		return gymbro.OutboxStats{Pending: 1}, nil
	}})
	for _, r := range []string{"GET /api/v1/healthz", "POST /api/v1/messages", "GET /api/v1/messages/{id}/events"} {
		m.ObserveRequest(r, 200, time.Millisecond)
	}
	h := m.Handler()
	req := httptest.NewRequest("GET", "/metrics", nil)
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
}
