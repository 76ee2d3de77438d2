package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gymbro/gymbro-api/internal/auth"
	"github.com/gymbro/gymbro-api/internal/chat"
	"github.com/gymbro/gymbro-api/internal/config"
	"github.com/gymbro/gymbro-api/internal/datadir"
	"github.com/gymbro/gymbro-api/internal/demo"
	"github.com/gymbro/gymbro-api/internal/firebase"
	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/httpapi"
	idrouter "github.com/gymbro/gymbro-api/internal/identity"
	"github.com/gymbro/gymbro-api/internal/inmem"
	"github.com/gymbro/gymbro-api/internal/mailapi"
	"github.com/gymbro/gymbro-api/internal/metrics"
	"github.com/gymbro/gymbro-api/internal/modelrouter"
	"github.com/gymbro/gymbro-api/internal/openai"
	"github.com/gymbro/gymbro-api/internal/outbox"
	"github.com/gymbro/gymbro-api/internal/postgres"
	"github.com/gymbro/gymbro-api/internal/ratelimit"
	"github.com/gymbro/gymbro-api/internal/redislimit"
	"github.com/gymbro/gymbro-api/internal/redislog"
	"github.com/gymbro/gymbro-api/internal/sessioncheck"
	"github.com/gymbro/gymbro-api/internal/sqlite"
	"github.com/gymbro/gymbro-api/internal/supabase"
	"github.com/gymbro/gymbro-api/internal/supabase/emulator"
	"github.com/gymbro/gymbro-api/internal/testusers"
	"github.com/gymbro/gymbro-api/internal/ttlcache"
	"github.com/gymbro/gymbro-api/web"
)

// Main is the whole service wired together: the composition root, and the
// only place that knows every part. End-to-end tests start one on :0.
type Main struct {
	Config *config.Config
	Logger *slog.Logger
	// IdentityToolkitURL, when set before Run, replaces Google's Identity
	// Toolkit endpoint for Firebase user look-ups: tests point it at a fake
	// Google (the service account key's token_uri is the other half).
	IdentityToolkitURL string

	// Set by Run.
	URL        string // base URL the service is reachable at
	MetricsURL string // where /metrics is served, when GYMBRO_METRICS_ADDR is set
	Store      gymbro.Store
	Log        gymbro.EventLog
	Emulator   *emulator.Emulator
	Chat       *chat.Service
	Server     *httpapi.Server
	Outbox     *outbox.Worker

	verifier *auth.Verifier
	redis    redis.UniversalClient
	http     *http.Server
	ln       net.Listener
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	closers  []func() error
	serveErr chan error

	jwksFetches *fetchLog // the verifier's transport: how each key-set fetch went
}

// NewMain returns a Main that logs to w.
func NewMain(cfg *config.Config, w io.Writer) *Main {
	var h slog.Handler
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	return &Main{Config: cfg, Logger: slog.New(httpapi.TraceLogHandler(h))}
}

// Run starts every part and begins serving; it returns once the listener is
// up. Close stops it.
func (m *Main) Run(ctx context.Context) error {
	cfg := m.Config
	if cfg.DataDir != "" {
		if err := datadir.Create(cfg.DataDir); err != nil {
			return err
		}
	}
	for _, w := range cfg.Warnings {
		m.Logger.Warn(w)
	}
	bg, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	if err := m.listen(); err != nil {
		return err
	}
	if err := m.openStore(ctx); err != nil {
		return err
	}
	if err := m.openLog(ctx); err != nil {
		return err
	}
	mx := metrics.New(metrics.Options{OutboxStats: m.Store.OutboxStats, Version: version, InstanceID: cfg.InstanceID, Logger: m.Logger})
	model, err := m.openModel(mx)
	if err != nil {
		return err
	}
	id, err := m.openIdentity(ctx)
	if err != nil {
		return err
	}
	if err := m.openVerifier(id.supabaseURL, mx); err != nil {
		return err
	}
	if cfg.Production() {
		m.checkIssuers(ctx, issuers(cfg, id.supabaseURL))
	}
	m.startOutbox(bg, id.serviceKey)
	if err := m.startChat(ctx, bg, model, mx); err != nil {
		return err
	}
	opts, err := m.serverOptions(id, mx)
	if err != nil {
		return err
	}
	m.Server = httpapi.New(m.verifier, m.Chat, opts)
	if err := m.serve(); err != nil {
		return err
	}
	m.Logger.Info("GymBro API is listening", "url", m.URL, "env", cfg.Env, "store", m.storeName(), "event_log", m.logName(),
		"model", model.Name(), "session_check", cfg.SessionCheck, "version", version)
	if n, ok := openFileLimit(); ok {
		// Keep a margin for the stores, Redis and the process's own files.
		m.Logger.Info("open-file limit (ulimit -n): each client connection, an open SSE stream included, takes one, "+
			"so this instance holds about max_connections at once; raise the limit (LimitNOFILE, --ulimit nofile) for more",
			"limit", n, "max_connections", max(int64(n)-256, 0))
	}
	m.logLocalCredentials(id)
	return nil
}

// logLocalCredentials prints what the emulator and the development
// operator need, and only what this process generated itself: a key or
// password that was given in the environment is a secret it never logs.
func (m *Main) logLocalCredentials(id identity) {
	if m.Emulator == nil {
		return
	}
	cfg := m.Config
	attrs := []any{}
	if cfg.SupabaseAnonKey == "" {
		attrs = append(attrs, "anon_key", id.anonKey)
	}
	if cfg.SupabaseServiceRoleKey == "" {
		attrs = append(attrs, "service_role_key", id.serviceKey)
	}
	// Local development only: these keys unlock nothing but the emulator.
	m.Logger.Info("local Supabase Auth emulator at "+id.supabaseURL+"/auth/v1", attrs...)
	if !cfg.ListensOnLoopback() {
		m.Logger.Warn("development mode on a non-loopback address ("+cfg.HTTPAddr+"): the console does not offer the development operator to visitors; sign in with the credentials below",
			"email", id.operator.Email, "password", id.operator.Password)
		return
	}
	m.Logger.Info("development operator for the console at "+id.supabaseURL+"/ai/jwt", "email", id.operator.Email, "password", id.operator.Password)
}

// listen opens the listener first, so the base URL (and with it the local
// issuer's iss) is known even on port 0.
func (m *Main) listen() error {
	ln, err := net.Listen("tcp", m.Config.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on GYMBRO_HTTP_ADDR=%s: %w", m.Config.HTTPAddr, err)
	}
	m.ln = ln
	m.closers = append(m.closers, func() error { ln.Close(); return nil })
	scheme := "http"
	if m.Config.TLSCert != "" {
		scheme = "https"
	}
	m.URL = scheme + "://" + ln.Addr().String()
	return nil
}

// identity is where users' tokens come from and the keys to talk to it.
type identity struct {
	supabaseURL         string // project base; this service's own URL when emulated
	anonKey, serviceKey string
	operator            *httpapi.Credentials // the development operator; nil unless emulated
}

// openIdentity starts the local Supabase Auth emulator when no project is
// configured (development only), so the same client code runs either way.
func (m *Main) openIdentity(ctx context.Context) (identity, error) {
	cfg := m.Config
	id := identity{supabaseURL: cfg.SupabaseURL, anonKey: cfg.SupabaseAnonKey.Reveal(), serviceKey: cfg.SupabaseServiceRoleKey.Reveal()}
	if !cfg.Emulated() {
		return id, nil
	}
	publicURL := cfg.PublicURL
	if publicURL == "" {
		publicURL = m.URL
	}
	emu, err := emulator.Open(ctx, emulator.Options{
		Dir: cfg.DataDir, Issuer: publicURL + "/auth/v1",
		AnonKey: id.anonKey, ServiceRoleKey: id.serviceKey, Logger: m.Logger,
	})
	if err != nil {
		return id, fmt.Errorf("local Auth emulator: %w", err)
	}
	m.Emulator = emu
	m.closers = append(m.closers, emu.Close)
	id.supabaseURL = publicURL
	id.anonKey, id.serviceKey = emu.Keys()
	if id.operator, err = m.devOperator(ctx); err != nil {
		return id, err
	}
	return id, nil
}

func (m *Main) openVerifier(supabaseURL string, mx *metrics.Metrics) error {
	cfg := m.Config
	m.jwksFetches = &fetchLog{base: mx.JWKSTransport(m.emulatorTransport()), last: map[string]string{}}
	v, err := auth.New(auth.Config{
		// The verifier fetches nothing but key sets; the emulator's, in process.
		HTTPClient:      &http.Client{Transport: m.jwksFetches},
		Issuers:         issuers(cfg, supabaseURL),
		Leeway:          cfg.JWTLeeway,
		JWKSTTL:         cfg.JWKSTTL,
		RefreshCooldown: cfg.JWKSCooldown,
		CacheSize:       cfg.TokenCacheSize,
		Logger:          m.Logger,
	})
	if err != nil {
		return fmt.Errorf("token verifier: %w", err)
	}
	m.verifier = v
	m.closers = append(m.closers, func() error { v.Close(); return nil })
	return nil
}

// emulatorTransport is what reaches the local Auth emulator, when it runs:
// in process (see emulator.Transport), never through GYMBRO_PUBLIC_URL,
// whoever answers there; nil (the default transport) otherwise.
func (m *Main) emulatorTransport() http.RoundTripper {
	if m.Emulator == nil {
		return nil
	}
	return m.Emulator.Transport(nil)
}

// issuerCheckTimeout bounds the start-up fetch of the issuers' keys.
const issuerCheckTimeout = 10 * time.Second

// checkIssuers fetches every issuer's keys once at start and says of each
// whether they were reached: until they are, that issuer's users are
// answered 503 keys_unavailable, which "listening" alone would hide. It
// never stops the start: the keys are fetched again on demand, and
// /api/v1/readyz reports them meanwhile.
func (m *Main) checkIssuers(ctx context.Context, all []auth.Issuer) {
	ctx, cancel := context.WithTimeout(ctx, issuerCheckTimeout)
	defer cancel()
	_ = m.verifier.Check(ctx) // per issuer below; the verifier logs each failure's cause too
	for _, iss := range all {
		if iss.JWKSURL == "" {
			continue
		}
		result, ok := m.jwksFetches.result(iss.JWKSURL)
		if !ok {
			result = "no answer within " + issuerCheckTimeout.String()
		}
		if result == fetchOK {
			m.Logger.Info("token issuer reached: its keys are fetched", "issuer", iss.Issuer, "jwks_url", iss.JWKSURL)
			continue
		}
		m.Logger.Warn("token issuer not reached: its tokens are answered 503 keys_unavailable until its keys are fetched (see /api/v1/readyz)",
			"issuer", iss.Issuer, "jwks_url", iss.JWKSURL, "result", result)
	}
}

// fetchOK is fetchLog's result of a key set answered 200.
const fetchOK = "HTTP 200"

// fetchLog is the verifier's transport: it remembers how the last fetch of
// each URL went, for checkIssuers.
type fetchLog struct {
	base http.RoundTripper
	mu   sync.Mutex
	last map[string]string // URL → fetchOK, "HTTP <status>" or the error
}

func (f *fetchLog) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := f.base.RoundTrip(r)
	result := fetchOK
	switch {
	case err != nil:
		result = err.Error()
	case resp.StatusCode != http.StatusOK:
		result = "HTTP " + strconv.Itoa(resp.StatusCode)
	}
	f.mu.Lock()
	f.last[r.URL.String()] = result
	f.mu.Unlock()
	return resp, err
}

// result reports how the last fetch of url went, if there was one.
func (f *fetchLog) result(url string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.last[url]
	return r, ok
}

// outboxGather is how long the outbox worker lets finished exchanges gather
// after the first one wakes it: a claim per exchange would take the
// store's write lock just as the app's next post wants it (issue 25).
const outboxGather = 20 * time.Millisecond

// startOutbox runs the worker that delivers finished exchanges from the
// store's outbox to Supabase's chat_records. Locally (the emulator, or no
// Supabase at all) the store is their only home, so a local sink just
// acknowledges them.
func (m *Main) startOutbox(bg context.Context, serviceKey string) {
	cfg := m.Config
	var sink gymbro.ChatSink = localSink{}
	if cfg.SupabaseURL != "" && serviceKey != "" {
		sink = supabase.NewChatSink(supabase.ChatSinkConfig{URL: cfg.SupabaseURL, ServiceRoleKey: serviceKey})
	} else if cfg.SupabaseURL != "" {
		m.Logger.Warn("SUPABASE_SERVICE_ROLE_KEY is not set: chat records stay in the local store and are not synced to Supabase")
	}
	m.Outbox = outbox.NewWorker(outbox.Options{Store: m.Store, Sink: sink, Owner: cfg.InstanceID, BatchSize: cfg.SyncBatchSize,
		Gather: outboxGather, Logger: m.Logger})
	m.wg.Add(1)
	go func() { defer m.wg.Done(); _ = m.Outbox.Run(bg) }()
}

// startChat builds the chat service and ends what a previous run left
// unfinished.
func (m *Main) startChat(ctx, bg context.Context, model gymbro.Model, mx *metrics.Metrics) error {
	cfg := m.Config
	var limiter ratelimit.Limiter
	if cfg.RateLimit > 0 && m.redis != nil {
		// One budget for the whole fleet, on the Redis server's clock.
		limiter = redislimit.New(m.redis, cfg.RedisPrefix+"ratelimit:", cfg.RateLimit, time.Minute, nil)
	} else if cfg.RateLimit > 0 {
		limiter = ratelimit.NewMemory(cfg.RateLimit, time.Minute, nil)
	}
	m.Chat = chat.New(chat.Options{
		Store: m.Store, Log: m.Log, Model: model,
		SystemPrompt: cfg.AISystemPrompt, HistoryTurns: cfg.AIHistoryTurns, HistoryChars: cfg.AIHistoryChars,
		MaxMessageChars: cfg.MaxMessageChars, MaxRunning: cfg.MaxRunning, DailyTokens: cfg.AIDailyTokens, Limiter: limiter,
		InstanceID: cfg.InstanceID, LeaseTTL: cfg.LeaseTTL, EventLogGrace: cfg.EventLogGrace, StoreGrace: cfg.StoreGrace,
		Logger: m.Logger, Observer: mx, OnFinish: m.Outbox.Notify, Trace: ttftTrace(cfg.TraceTTFT),
	})
	// With the in-process log nothing of a running generation survives a
	// restart, so every unfinished exchange is interrupted; with Redis other
	// instances may be mid-generation, so only lapsed leases are. From then
	// on lapsed leases are ended from time to time: another instance's, or
	// this one's generations that ended their stream while the store was
	// behind.
	n, err := m.Chat.Recover(ctx, m.redis == nil)
	if err != nil {
		return fmt.Errorf("recover interrupted generations: %w", err)
	}
	if n > 0 {
		m.Logger.Info("marked unfinished generations interrupted", "count", n)
	}
	m.wg.Add(1)
	go func() { defer m.wg.Done(); m.Chat.RunRecovery(bg, cfg.LeaseTTL/2) }()
	return nil
}

// ttftTrace is the chat's step trace when GYMBRO_TRACE_TTFT is set: the
// last 8,192 exchanges, for the load tool's ttft breakdown.
func ttftTrace(on bool) *chat.Trace {
	if !on {
		return nil
	}
	return chat.NewTrace(8192)
}

// serverOptions gathers what the HTTP layer serves besides the chat.
func (m *Main) serverOptions(id identity, mx *metrics.Metrics) (httpapi.Options, error) {
	cfg := m.Config
	authClient := supabase.NewAuthClient(supabase.AuthConfig{URL: id.supabaseURL, AnonKey: id.anonKey, ServiceRoleKey: id.serviceKey,
		HTTPClient: &http.Client{Transport: m.emulatorTransport()}})
	router := m.identityRouter(authClient, id, mx)
	if err := m.registerFirebase(router, mx); err != nil {
		return httpapi.Options{}, err
	}
	mail, err := mailapi.NewMailSlurp(mailapi.MailSlurpOptions{BaseURL: cfg.MailAPIURL})
	if err != nil {
		return httpapi.Options{}, fmt.Errorf("GYMBRO_MAIL_API_URL: %w", err)
	}
	testUsers, err := testusers.New(testusers.Options{
		Auth: authClient, ServiceKeySet: id.serviceKey != "", Verifier: m.verifier, Mail: mail,
		Enabled: cfg.TestUsersEnabled, Production: cfg.Production(), Admins: operators(cfg, id), SupabaseIssuer: supabaseIssuer(id),
		Prefixes: cfg.TestUsersPrefixes, EmailDomain: cfg.TestUsersEmailDomain, PerMinute: cfg.TestUsersPerMinute,
		Logger: m.Logger,
	})
	if err != nil {
		return httpapi.Options{}, fmt.Errorf("test users: %w", err)
	}
	consoleFS, built := web.Dist()
	if !built {
		consoleFS = nil
		m.Logger.Warn("the console is not built; run `make web` (make run does it) to serve it at /")
	}
	var emu http.Handler
	if m.Emulator != nil {
		emu = m.Emulator.Handler()
	}
	// Offered to the console only on a loopback address: anyone who can
	// reach the service could read it from /api/v1/console/config.
	operator := id.operator
	if !cfg.ListensOnLoopback() {
		operator = nil
	}
	return httpapi.Options{
		Version: version, MaxBodyBytes: cfg.MaxBodyBytes, BodyReadTimeout: cfg.BodyReadTimeout,
		CORSOrigins: cfg.CORSOrigins, SelfOrigins: m.selfOrigins(), CORSLocalhost: !cfg.Production(),
		CheckHost: !cfg.Production(), AllowedHosts: m.allowedHosts(), Streams: m.streamCap(),
		SSEHeartbeat: cfg.SSEHeartbeat, SSERetry: cfg.SSERetry, Checks: m.readinessChecks(),
		Console: consoleFS, AuthEmulator: emu, Identity: router, TestUsers: testUsers, Logger: m.Logger,
		Metrics: mx, MetricsHandler: m.publicMetrics(mx),
		Sessions: router, SessionCheckAll: cfg.SessionCheck == config.SessionCheckAll,
		ConsoleConfig: func() httpapi.ConsoleConfig {
			return httpapi.ConsoleConfig{
				Env: cfg.Env, AuthURL: id.supabaseURL + "/auth/v1", AnonKey: id.anonKey, Emulator: m.Emulator != nil,
				TestUsersEnabled: cfg.TestUsersEnabled, DevOperator: operator, Version: version,
			}
		},
	}, nil
}

// identityRouter sends the questions only a user's provider can answer
// (details for /me?details=true, session checks) to the provider of the
// token's issuer: here Supabase's (the project, or the local emulator) for
// the Supabase issuer. A principal of an issuer with no provider gets 404
// user_not_found for details and no session check; it never reaches
// another provider. Other providers register beside Supabase.
func (m *Main) identityRouter(client *supabase.AuthClient, id identity, mx *metrics.Metrics) *idrouter.Router {
	r := idrouter.NewRouter()
	if id.supabaseURL == "" {
		return r
	}
	var details gymbro.IdentityProvider
	if id.serviceKey != "" {
		details = supabase.NewIdentityProvider(client, supabase.IdentityOptions{})
	}
	var sessions gymbro.SessionChecker
	if s := m.sessionChecker(client, id, mx); s != nil {
		sessions = s
	}
	r.Register(supabaseIssuer(id), details, sessions)
	return r
}

// registerFirebase routes Firebase users' details and session checks to
// Firebase Auth's accounts:lookup, when there is a client to ask. Without
// one (no service account outside production, which config warns about)
// Firebase users have no details and no session check.
func (m *Main) registerFirebase(r *idrouter.Router, mx *metrics.Metrics) error {
	client, err := m.firebaseClient()
	if err != nil || client == nil {
		return err
	}
	cfg := m.Config
	iss := firebaseIssuer(cfg).Issuer
	if cfg.FirebaseEmulatorHost != "" {
		m.Logger.Info("Firebase Auth emulator: its unsigned tokens are accepted (development only)",
			"host", cfg.FirebaseEmulatorHost, "project", cfg.FirebaseProjectID)
	}
	var sessions gymbro.SessionChecker
	if cfg.SessionCheck != config.SessionCheckOff {
		mx.DeclareSessionProviders(gymbro.ProviderFirebase)
		sessions = firebase.NewSessionChecker(firebase.SessionCheckConfig{Client: client, Issuer: iss, Cache: sessioncheck.Config{
			TTL: cfg.SessionCheckTTL, Stale: cfg.SessionCheckStale, Logger: m.Logger,
			Observe: func(r sessioncheck.Result) { mx.SessionCheck(gymbro.ProviderFirebase, string(r)) },
		}})
	}
	r.Register(iss, firebase.NewIdentityProvider(client, ttlcache.Options{}), sessions)
	return nil
}

// firebaseClient asks Firebase Auth about its users: the Auth emulator
// with FIREBASE_AUTH_EMULATOR_HOST, Identity Toolkit as the service
// account otherwise; nil without either (or without Firebase).
func (m *Main) firebaseClient() (*firebase.Client, error) {
	cfg := m.Config
	key := cfg.FirebaseServiceAccountJSON.Reveal()
	if cfg.FirebaseProjectID == "" || (cfg.FirebaseEmulatorHost == "" && key == "") {
		return nil, nil
	}
	c, err := firebase.NewClient(firebase.Config{ProjectID: cfg.FirebaseProjectID, EmulatorHost: cfg.FirebaseEmulatorHost,
		ServiceAccountJSON: []byte(key), BaseURL: m.IdentityToolkitURL})
	if err != nil {
		return nil, fmt.Errorf("Firebase service account (FIREBASE_SERVICE_ACCOUNT_JSON or GOOGLE_APPLICATION_CREDENTIALS): %w", err)
	}
	return c, nil
}

// supabaseIssuer is the iss of the Supabase project's tokens; "" without
// one.
func supabaseIssuer(id identity) string {
	if id.supabaseURL == "" {
		return ""
	}
	return id.supabaseURL + "/auth/v1"
}

// sessionChecker confirms Supabase sessions with Auth's GET /user, unless
// GYMBRO_SESSION_CHECK=off or there is no Supabase issuer (or anon key) to
// ask; nil then.
func (m *Main) sessionChecker(client *supabase.AuthClient, id identity, mx *metrics.Metrics) *supabase.SessionChecker {
	cfg := m.Config
	if cfg.SessionCheck == config.SessionCheckOff || id.supabaseURL == "" || id.anonKey == "" {
		return nil
	}
	mx.DeclareSessionProviders(gymbro.ProviderSupabase)
	return supabase.NewSessionChecker(supabase.SessionCheckConfig{
		Client: client, Issuer: supabaseIssuer(id),
		TTL: cfg.SessionCheckTTL, Stale: cfg.SessionCheckStale, Logger: m.Logger,
		Observe: func(r supabase.SessionResult) { mx.SessionCheck(gymbro.ProviderSupabase, string(r)) },
	})
}

// readinessChecks are what /api/v1/readyz reports on.
func (m *Main) readinessChecks() []httpapi.Check {
	return []httpapi.Check{
		{Name: "store", Check: func(ctx context.Context) (map[string]any, error) { return nil, m.Store.Ping(ctx) }},
		{Name: "event_log", Check: func(ctx context.Context) (map[string]any, error) { return nil, m.Log.Ping(ctx) }},
		{Name: "jwks", Check: func(ctx context.Context) (map[string]any, error) { return nil, m.verifier.Check(ctx) }},
		{Name: "sync_outbox", Check: func(ctx context.Context) (map[string]any, error) {
			st, err := m.Outbox.Stats(ctx)
			if err != nil {
				return nil, err
			}
			d := map[string]any{"pending": st.Pending, "dead": st.Dead}
			if !st.OldestPending.IsZero() {
				d["oldest_pending_seconds"] = int(time.Since(st.OldestPending).Seconds())
			}
			if st.Dead > 0 {
				// Dead records need an operator (gymbro sync retry) but do
				// not make this instance unable to serve.
				m.Logger.WarnContext(ctx, "sync outbox has dead records; fix the cause, then run `gymbro sync retry`", "dead", st.Dead)
			}
			return d, nil
		}},
	}
}

// serve starts the HTTP server on the listener, over TLS when configured.
func (m *Main) serve() error {
	m.http = &http.Server{
		Handler:           m.Server,
		ReadHeaderTimeout: 10 * time.Second,
		// Headers beyond this answer 431. It leaves room for the largest
		// token the verifier reads (8 KiB) and then some.
		MaxHeaderBytes: m.Config.MaxHeaderBytes,
		IdleTimeout:    120 * time.Second,
		// No WriteTimeout: SSE streams are long; each SSE write sets its own deadline.
		ErrorLog: slog.NewLogLogger(m.Logger.Handler(), slog.LevelWarn),
	}
	ln := m.ln
	if cfg := m.Config; cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			m.http = nil
			return fmt.Errorf("GYMBRO_TLS_CERT/GYMBRO_TLS_KEY: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}})
	}
	m.serveErr = make(chan error, 1)
	go func() { m.serveErr <- m.http.Serve(ln) }()
	return nil
}

// Close shuts down in the order that loses nothing: running generations end
// (interrupted, persisted, appended) so open streams deliver that, then
// streams close, the HTTP server drains, and the stores close.
func (m *Main) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), m.Config.ShutdownTimeout)
	defer cancel()
	start := time.Now()
	var errs []error
	interrupted, streams := 0, 0
	if m.Chat != nil {
		interrupted = m.Chat.Running()
	}
	if m.Server != nil {
		streams = m.Server.OpenStreams()
	}
	if m.http != nil {
		m.Logger.Info("shutting down", "generations_running", interrupted, "timeout", m.Config.ShutdownTimeout)
	}
	if m.Chat != nil {
		if err := m.Chat.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop generations: %w", err))
		}
	}
	if m.Server != nil {
		m.Server.CloseStreams()
	}
	if m.Outbox != nil {
		// Deliver what can be delivered before the deadline; the rest
		// waits in the outbox for the next start.
		if err := m.Outbox.Flush(ctx); err != nil {
			m.Logger.Warn("sync outbox not fully flushed at shutdown; the rest is delivered after the next start", "err", err)
		}
	}
	if m.http != nil {
		if err := m.http.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http shutdown: %w", err))
			m.http.Close()
		}
		if err := <-m.serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	if m.cancel != nil {
		m.cancel()
	}
	m.wg.Wait()
	for i := len(m.closers) - 1; i >= 0; i-- {
		if err := m.closers[i](); err != nil {
			errs = append(errs, err)
		}
	}
	m.closers = nil
	if m.http != nil {
		m.Logger.Info("shut down", "streams_closed", streams, "generations_interrupted", interrupted,
			"took", time.Since(start).Round(time.Millisecond), "errors", len(errs))
	}
	return errors.Join(errs...)
}

func (m *Main) openStore(ctx context.Context) error {
	if dsn := m.Config.DatabaseURL.Reveal(); dsn != "" {
		opts := []postgres.Option{postgres.WithTimeout(m.Config.DatabaseTimeout), postgres.WithLogger(m.Logger)}
		if m.Config.DatabaseSchema != "" {
			opts = append(opts, postgres.WithSchema(m.Config.DatabaseSchema))
		}
		if m.Config.DatabasePooler == config.PoolerTransaction {
			opts = append(opts, postgres.WithTransactionPooler())
		}
		db, err := postgres.Open(ctx, dsn, opts...)
		if err != nil {
			return fmt.Errorf("PostgreSQL (GYMBRO_DATABASE_URL): %w", err)
		}
		m.Store = db
		m.closers = append(m.closers, db.Close)
		return nil
	}
	// Every command that opens the store makes the directory, as serve does.
	if err := datadir.Create(m.Config.DataDir); err != nil {
		return fmt.Errorf("SQLite in GYMBRO_DATA_DIR: %w", err)
	}
	db, err := sqlite.Open(ctx, filepath.Join(m.Config.DataDir, "gymbro.db"))
	if err != nil {
		return fmt.Errorf("SQLite in GYMBRO_DATA_DIR: %w", err)
	}
	m.Store = db
	m.closers = append(m.closers, db.Close)
	return nil
}

func (m *Main) openLog(ctx context.Context) error {
	if u := m.Config.RedisURL.Reveal(); u != "" {
		redislog.SetLogger(m.Logger)
		c, err := redislog.NewClient(m.Config.RedisMode, u)
		if err != nil {
			return fmt.Errorf("GYMBRO_REDIS_URL (GYMBRO_REDIS_MODE=%s): %w", m.Config.RedisMode, err)
		}
		m.redis = c
		m.closers = append(m.closers, m.redis.Close)
		if err := m.checkRedisMode(ctx); err != nil {
			return err
		}
		l, err := redislog.New(m.redis, redislog.Options{TTL: m.Config.EventTTL, Prefix: m.Config.RedisPrefix, Logger: m.Logger})
		if err != nil {
			return fmt.Errorf("Redis event log: %w", err)
		}
		m.Log = l
		m.closers = append(m.closers, l.Close)
		return nil
	}
	l := inmem.NewEventLog(inmem.Options{TTL: m.Config.EventTTL})
	m.Log = l
	m.closers = append(m.closers, l.Close)
	return nil
}

// checkRedisMode refuses to start on a Redis of another kind than
// GYMBRO_REDIS_MODE says (a cluster node as one endpoint answers MOVED for
// most keys). A Redis that does not answer yet is no reason to refuse: the
// service starts, says so, and readiness reports it until it answers.
func (m *Main) checkRedisMode(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	err := redislog.CheckMode(ctx, m.redis)
	if _, wrong := errors.AsType[*redislog.ModeError](err); wrong {
		return err
	}
	if err != nil {
		m.Logger.Warn("Redis does not answer yet; starting anyway (readiness reports it)", "mode", m.Config.RedisMode, "err", err)
	}
	return nil
}

// openModel builds the model: the routed models of GYMBRO_AI_CONFIG, one
// OpenAI-compatible endpoint, or the demo coach. Each path has the
// per-model metrics, under the model's configured name.
func (m *Main) openModel(mx *metrics.Metrics) (gymbro.Model, error) {
	cfg := m.Config
	if cfg.AIRouting != nil {
		return m.openRouter(cfg.AIRouting, mx)
	}
	if cfg.AIProvider != "openai" {
		mx.DeclareModels(demo.ModelName)
		return modelrouter.Observed(demo.ModelName, demo.New(demo.Options{}), mx), nil
	}
	model, err := openai.New(openai.Config{
		APIKey: cfg.OpenAIAPIKey.Reveal(), BaseURL: cfg.OpenAIBaseURL, Model: cfg.AIModel,
		FirstChunkTimeout: cfg.AIFirstChunkTimeout, IdleTimeout: cfg.AIIdleTimeout, TotalTimeout: cfg.AITotalTimeout,
		MaxConcurrent: cfg.AIMaxConcurrent,
	})
	if err != nil {
		return nil, fmt.Errorf("OpenAI model: %w", err)
	}
	mx.DeclareModels(model.Name())
	return modelrouter.Observed(model.Name(), model, mx), nil
}

// openRouter builds one OpenAI-compatible model per entry of the file, in
// fallback order, behind a modelrouter.Router. With several models each
// retries nothing by default: the next model is the retry.
func (m *Main) openRouter(rc *config.AIRouting, mx *metrics.Metrics) (gymbro.Model, error) {
	cfg := m.Config
	routes := make([]modelrouter.Route, 0, len(rc.Models))
	for _, am := range rc.Models {
		retries := am.MaxRetries
		switch {
		case retries == 0:
			retries = -1 // openai.Config: negative is none, zero the default
		case retries < 0 && len(rc.Models) > 1:
			retries = -1
		case retries < 0:
			retries = 0 // one model: openai's default retries
		}
		model, err := openai.New(openai.Config{
			APIKey: am.APIKey.Reveal(), BaseURL: am.BaseURL, Model: am.Model,
			FirstChunkTimeout: cfg.AIFirstChunkTimeout, IdleTimeout: cfg.AIIdleTimeout, TotalTimeout: cfg.AITotalTimeout,
			MaxRetries: retries, MaxConcurrent: cfg.AIMaxConcurrent,
		})
		if err != nil {
			return nil, fmt.Errorf("model %q of GYMBRO_AI_CONFIG: %w", am.Name, err)
		}
		routes = append(routes, modelrouter.Route{Name: am.Name, Model: model})
		m.Logger.Info("AI model", "name", am.Name, "model", model, "key_from", am.APIKeyEnv)
	}
	r, err := modelrouter.New(routes, modelrouter.Options{
		Failures: rc.BreakerFailures, Cooldown: rc.BreakerCooldown, Observer: mx, Logger: m.Logger,
	})
	if err != nil {
		return nil, err
	}
	mx.DeclareModels(r.Names()...)
	m.Logger.Info("AI models in fallback order", "models", strings.Join(r.Names(), " → "),
		"breaker_failures", rc.BreakerFailures, "breaker_cooldown", rc.BreakerCooldown)
	return r, nil
}

func (m *Main) storeName() string {
	if m.Config.DatabaseURL != "" {
		return "postgres"
	}
	return "sqlite"
}

func (m *Main) logName() string {
	if m.redis != nil {
		if mode := m.Config.RedisMode; mode != config.RedisStandalone {
			return "redis " + mode
		}
		return "redis"
	}
	return "in-process"
}

// devOperator makes sure the development operator account exists in the
// emulator, with a password generated once and kept in the data directory.
func (m *Main) devOperator(ctx context.Context) (*httpapi.Credentials, error) {
	path := filepath.Join(m.Config.DataDir, "dev-operator.json")
	var c httpapi.Credentials
	if b, err := os.ReadFile(path); err == nil && json.Unmarshal(b, &c) == nil && c.Email != "" {
		if err := datadir.Restrict(path); err != nil { // an earlier version's may be 0644
			return nil, err
		}
	} else {
		b := make([]byte, 18)
		_, _ = rand.Read(b)
		c = httpapi.Credentials{Email: "operator@gymbro.local", Password: base64.RawURLEncoding.EncodeToString(b)}
		data, _ := json.Marshal(c)
		if err := datadir.WriteFile(path, data); err != nil {
			return nil, err
		}
	}
	if _, _, err := m.Emulator.EnsureUser(ctx, c.Email, c.Password, map[string]any{"username": "operator"}); err != nil {
		return nil, fmt.Errorf("development operator: %w", err)
	}
	return &c, nil
}

// issuers lists every issuer whose tokens are accepted.
func issuers(cfg *config.Config, supabaseURL string) []auth.Issuer {
	var out []auth.Issuer
	if supabaseURL != "" {
		var secret []byte
		if s := cfg.SupabaseJWTSecret.Reveal(); s != "" {
			secret = []byte(s)
		}
		out = append(out, auth.SupabaseIssuer(supabaseURL, secret))
	}
	if cfg.FirebaseProjectID != "" {
		out = append(out, firebaseIssuer(cfg))
	}
	for _, o := range cfg.OIDCIssuers {
		out = append(out, auth.OIDCIssuer(o.Issuer, o.Audience, o.JWKSURL, o.Algorithms))
	}
	return out
}

// firebaseIssuer is the Firebase project's issuer: with
// FIREBASE_AUTH_EMULATOR_HOST (development only) the Auth emulator's,
// whose tokens are unsigned; Google-signed tokens otherwise.
func firebaseIssuer(cfg *config.Config) auth.Issuer {
	if cfg.FirebaseEmulatorHost != "" {
		return auth.FirebaseEmulatorIssuer(cfg.FirebaseProjectID, cfg.FirebaseEmulatorHost)
	}
	return auth.FirebaseIssuer(cfg.FirebaseProjectID, cfg.FirebaseJWKSURL)
}

// streamCap bounds each user's open streams: across the fleet with Redis,
// in this process otherwise; nil when GYMBRO_MAX_STREAMS_PER_USER=0.
func (m *Main) streamCap() httpapi.StreamCap {
	n := m.Config.MaxStreams
	switch {
	case n == 0:
		return nil
	case m.redis != nil:
		c := redislimit.NewStreamCap(m.redis, m.Config.RedisPrefix+"streams:", n, 0, httpapi.TooManyStreams)
		m.closers = append(m.closers, func() error { c.Close(); return nil })
		return c
	}
	return httpapi.NewMemoryStreamCap(n)
}

// operators may make and reuse any test user: GYMBRO_TEST_USERS_ADMINS and,
// locally, the development operator.
func operators(cfg *config.Config, id identity) []string {
	out := slices.Clone(cfg.TestUsersAdmins)
	if id.operator != nil {
		out = append(out, id.operator.Email)
	}
	return out
}

// publicMetrics is the /metrics handler of the main listener, or nil when
// GYMBRO_METRICS_ADDR moves it to a listener of its own (started here).
func (m *Main) publicMetrics(mx *metrics.Metrics) http.Handler {
	addr := m.Config.MetricsAddr
	if addr == "" {
		return mx.Handler()
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		m.Logger.Error("GYMBRO_METRICS_ADDR: cannot listen; /metrics is not served", "addr", addr, "err", err)
		return nil
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", mx.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(m.Logger.Handler(), slog.LevelWarn)}
	m.MetricsURL = "http://" + ln.Addr().String()
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(ln) }()
	m.closers = append(m.closers, func() error { err := srv.Close(); <-served; return err })
	m.Logger.Info("metrics served apart from the API", "url", m.MetricsURL+"/metrics")
	return nil
}

// selfOrigins are the origins this service is reached at.
func (m *Main) selfOrigins() []string {
	out := []string{m.URL}
	if m.Config.PublicURL != "" {
		out = append(out, m.Config.PublicURL)
	}
	return out
}

// allowedHosts are the host names a development server answers besides IP
// addresses and localhost: GYMBRO_PUBLIC_URL's and GYMBRO_HTTP_ADDR's.
func (m *Main) allowedHosts() []string {
	var out []string
	if u, err := url.Parse(m.Config.PublicURL); err == nil && u.Hostname() != "" {
		out = append(out, strings.ToLower(u.Hostname()))
	}
	if h, _, err := net.SplitHostPort(m.Config.HTTPAddr); err == nil && h != "" {
		out = append(out, strings.ToLower(h))
	}
	return out
}

// localSink is the chat sink when there is no Supabase project to sync to:
// the exchange already lives in our store, so delivery is a no-op.
type localSink struct{}

func (localSink) Upsert(context.Context, []gymbro.ChatRecord) error { return nil }
