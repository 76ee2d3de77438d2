// Package metrics exposes the service's Prometheus metrics at /metrics:
// HTTP requests by route and status, auth failures by code, JWKS fetches,
// open SSE streams, generations and their outcomes, the model's time to
// first chunk, each configured model's requests, failures, fallbacks,
// breaker and tokens, the sync outbox's backlog, and the Go runtime and
// process.
//
// Everything lives on the Metrics' own registry, never the global default
// one, so two servers in one test process do not collide and no package
// state is shared.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// Namespace starts every metric name of ours.
const Namespace = "gymbro"

// DefaultOutboxTimeout bounds the outbox query made during one scrape.
const DefaultOutboxTimeout = 3 * time.Second

// Options configures Metrics. Every field is optional.
type Options struct {
	// OutboxStats reports the sync outbox's backlog (gymbro.Store's
	// OutboxStats); nil leaves the outbox series out.
	OutboxStats func(ctx context.Context) (gymbro.OutboxStats, error)
	// OutboxTimeout bounds one OutboxStats call; DefaultOutboxTimeout when 0.
	OutboxTimeout time.Duration
	// Version and InstanceID label gymbro_build_info.
	Version    string
	InstanceID string
	// Logger receives a line when OutboxStats fails; slog.Default() when nil.
	Logger *slog.Logger
	// Now is the clock for the oldest pending item's age; time.Now when nil.
	Now func() time.Time
}

// Metrics records what the service observes. It implements httpapi.Metrics
// and chat.Observer, and is safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	requests        *prometheus.CounterVec
	requestDuration *prometheus.HistogramVec
	authFailures    *prometheus.CounterVec
	jwksFetches     *prometheus.CounterVec
	streamsOpen     prometheus.Gauge
	genRunning      prometheus.Gauge
	genFinished     *prometheus.CounterVec
	firstChunk      prometheus.Histogram
	sessionChecks   *prometheus.CounterVec
	resilience
	model *modelMetrics
	ttft  ttft
}

// SessionResults are the results gymbro_session_checks_total counts, for
// each provider (supabase, firebase) whose sessions are checked.
var SessionResults = []string{"confirmed", "revoked", "stale_accepted", "unavailable"}

// New returns Metrics on a fresh registry that also carries the Go runtime
// (go_*) and process (process_*) collectors. It is long on purpose: one
// table of every metric, its name and its help.
func New(opts Options) *Metrics {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.OutboxTimeout <= 0 {
		opts.OutboxTimeout = DefaultOutboxTimeout
	}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: counterVec("http_requests_total",
			"HTTP requests served, by route pattern and status code.", "route", "status"),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "http_request_duration_seconds",
			Help:    "Time to serve an HTTP request, by route pattern and status code (SSE streams count their whole life).",
			Buckets: prometheus.DefBuckets,
		}, []string{"route", "status"}),
		authFailures: counterVec("auth_failures_total",
			"Requests refused by token verification, by error code.", "code"),
		jwksFetches: counterVec("jwks_fetches_total",
			"JWKS requests to token issuers, by host and result (ok, http_<status>, error).", "host", "result"),
		streamsOpen: gauge("sse_streams_open",
			"SSE event streams open on this instance."),
		genRunning: gauge("generations_running",
			"Replies being generated on this instance."),
		genFinished: counterVec("generations_total",
			"Generations finished on this instance, by terminal status (completed, error, canceled, interrupted).", "status"),
		sessionChecks: counterVec("session_checks_total",
			"Decisions on sessions (answered or cached), by identity provider (supabase, firebase) and result; stale_accepted counts sessions accepted on an earlier confirmation while the provider was unreachable.", "provider", "result"),
		firstChunk: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "model_first_chunk_seconds",
			Help:    "Time from the start of a generation to the model's first chunk.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2, 4, 8, 15, 30, 60},
		}),
	}
	m.resilience = newResilience()
	m.reg.MustRegister(m.resilience.collectors()...)
	m.ttft = newTTFT()
	m.reg.MustRegister(m.ttft.collectors()...)
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.requestDuration, m.authFailures, m.jwksFetches,
		m.streamsOpen, m.genRunning, m.genFinished, m.firstChunk, m.sessionChecks,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "build_info",
			Help:        "Always 1; the labels name the running build and instance.",
			ConstLabels: prometheus.Labels{"version": opts.Version, "instance_id": opts.InstanceID},
		}, func() float64 { return 1 }),
	)
	// Every terminal status is present from the start, so rate() and
	// alerts on a status that has not happened yet see 0, not "no data".
	for _, s := range []gymbro.Status{gymbro.StatusCompleted, gymbro.StatusFailed, gymbro.StatusCanceled, gymbro.StatusInterrupted} {
		m.genFinished.WithLabelValues(string(s))
	}
	m.model = newModelMetrics(m.reg)
	if opts.OutboxStats != nil {
		m.reg.MustRegister(newOutboxCollector(opts))
	}
	return m
}

// Handler serves the registry in the Prometheus exposition format. A
// collector that fails leaves its series out rather than failing the
// whole scrape.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorHandling:     promhttp.ContinueOnError,
		Registry:          m.reg, // promhttp_metric_handler_errors_total
		EnableOpenMetrics: true,
	})
}

// Registry returns the registry, for callers that add their own collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// ObserveRequest implements httpapi.Metrics. route is the ServeMux pattern
// (e.g. "GET /api/v1/messages/{id}"), never the raw path, so label
// cardinality stays bounded; requests no route matched share "unmatched".
func (m *Metrics) ObserveRequest(route string, status int, d time.Duration) {
	if route == "" {
		route = "unmatched"
	}
	s := strconv.Itoa(status)
	m.requests.WithLabelValues(route, s).Inc()
	m.requestDuration.WithLabelValues(route, s).Observe(d.Seconds())
}

// AuthFailure implements httpapi.Metrics.
func (m *Metrics) AuthFailure(code string) { m.authFailures.WithLabelValues(code).Inc() }

// DeclareSessionProviders makes every result's series exist at 0 for each
// provider whose sessions are checked, so that rate() and alerts see 0,
// not "no data", before the first check.
func (m *Metrics) DeclareSessionProviders(providers ...string) {
	for _, p := range providers {
		for _, r := range SessionResults {
			m.sessionChecks.WithLabelValues(p, r)
		}
	}
}

// SessionCheck counts one session decision of provider's (a
// gymbro.Provider* name: a handful, never a user's value) by result (see
// SessionResults).
func (m *Metrics) SessionCheck(provider, result string) {
	m.sessionChecks.WithLabelValues(provider, result).Inc()
}

// StreamOpened implements httpapi.Metrics.
func (m *Metrics) StreamOpened() { m.streamsOpen.Inc() }

// StreamClosed implements httpapi.Metrics.
func (m *Metrics) StreamClosed() { m.streamsOpen.Dec() }

// GenerationStarted implements chat.Observer.
func (m *Metrics) GenerationStarted() { m.genRunning.Inc() }

// GenerationFinished implements chat.Observer; firstChunk is zero when no
// chunk arrived, and then is not observed.
func (m *Metrics) GenerationFinished(status gymbro.Status, firstChunk time.Duration) {
	m.genRunning.Dec()
	m.genFinished.WithLabelValues(string(status)).Inc()
	if firstChunk > 0 {
		m.firstChunk.Observe(firstChunk.Seconds())
	}
}

// JWKSTransport wraps base (http.DefaultTransport when nil) so every
// request through it counts in gymbro_jwks_fetches_total. Give it to the
// token verifier's HTTP client, which fetches nothing but key sets.
func (m *Metrics) JWKSTransport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return roundTripper{base: base, m: m}
}

type roundTripper struct {
	base http.RoundTripper
	m    *Metrics
}

func (rt roundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := rt.base.RoundTrip(r)
	result := "ok"
	switch {
	case err != nil:
		result = "error"
	case resp.StatusCode != http.StatusOK:
		result = "http_" + strconv.Itoa(resp.StatusCode)
	}
	rt.m.jwksFetches.WithLabelValues(r.URL.Host, result).Inc()
	return resp, err
}

// outboxCollector asks the store once per scrape for the outbox backlog, so
// pending, dead and the oldest item's age come from one consistent query
// (two GaugeFuncs would query twice and could disagree).
type outboxCollector struct {
	stats   func(ctx context.Context) (gymbro.OutboxStats, error)
	timeout time.Duration
	now     func() time.Time
	logger  *slog.Logger

	pending, dead, oldest *prometheus.Desc
	failures              prometheus.Counter
}

func newOutboxCollector(opts Options) *outboxCollector {
	return &outboxCollector{
		stats: opts.OutboxStats, timeout: opts.OutboxTimeout, now: opts.Now, logger: opts.Logger,
		pending: prometheus.NewDesc(Namespace+"_outbox_pending", "Chat records waiting to be delivered to Supabase.", nil, nil),
		dead:    prometheus.NewDesc(Namespace+"_outbox_dead", "Chat records that failed permanently and need attention.", nil, nil),
		oldest:  prometheus.NewDesc(Namespace+"_outbox_oldest_pending_age_seconds", "Age of the oldest pending chat record; 0 when none is pending.", nil, nil),
		failures: counter("outbox_stats_errors_total",
			"Scrapes whose outbox query failed (the outbox series are then left out)."),
	}
}

func (c *outboxCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pending
	ch <- c.dead
	ch <- c.oldest
	c.failures.Describe(ch)
}

func (c *outboxCollector) Collect(ch chan<- prometheus.Metric) {
	// Collect has no context of its own; the timeout keeps a stuck
	// database from hanging every scrape.
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	st, err := c.stats(ctx)
	if err != nil {
		c.failures.Inc()
		c.logger.Warn("metrics: outbox stats", "err", err)
	} else {
		age := 0.0
		if !st.OldestPending.IsZero() {
			age = max(c.now().Sub(st.OldestPending).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(st.Pending))
		ch <- prometheus.MustNewConstMetric(c.dead, prometheus.GaugeValue, float64(st.Dead))
		ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age)
	}
	c.failures.Collect(ch)
}
