// Package httpapi is the HTTP face of the service: the route table, the
// middleware chain, RFC 9457 problem errors, and the SSE writer.
package httpapi

import (
	"context"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gymbro/gymbro-api/internal/chat"
	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// Check is one dependency that /api/v1/readyz reports on.
type Check struct {
	Name string
	// Check returns nil when the dependency is usable. A non-nil detail
	// map is shown beside its state (e.g. the outbox's dead count).
	Check func(ctx context.Context) (detail map[string]any, err error)
}

// Metrics receives what the HTTP layer observes; nil disables it.
type Metrics interface {
	ObserveRequest(route string, status int, d time.Duration)
	AuthFailure(code string)
	StreamOpened()
	StreamClosed()
}

// ConsoleConfig is what GET /api/v1/console/config tells the console.
type ConsoleConfig struct {
	Env              string       `json:"env"`
	AuthURL          string       `json:"auth_url"`
	AnonKey          string       `json:"anon_key"`
	Emulator         bool         `json:"emulator"`
	TestUsersEnabled bool         `json:"test_users_enabled"`
	DevOperator      *Credentials `json:"dev_operator"`
	Version          string       `json:"version"`
}

// Credentials is an email and password offered to the console.
type Credentials struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

// Options configures a Server; zero values get the documented defaults.
type Options struct {
	Version     string
	CORSOrigins []string
	// SelfOrigins are the origins this service is reached at (its listen
	// URL, GYMBRO_PUBLIC_URL): allowed CORS, and same-origin for the
	// console's config.
	SelfOrigins []string
	// CORSLocalhost also allows http(s)://localhost, 127.0.0.1 and [::1] on
	// any port (development: a console or app served by a dev server).
	CORSLocalhost bool
	// CheckHost answers 421 to a Host that is not an IP address, a
	// localhost name or one of AllowedHosts: in development that stops DNS
	// rebinding, where a web page's own name resolves to 127.0.0.1.
	CheckHost    bool
	AllowedHosts []string
	// Streams caps the SSE streams one user holds open; nil: no cap.
	Streams      StreamCap
	MaxBodyBytes int64 // default 1 MiB
	// BodyReadTimeout bounds how long a request body may take to arrive
	// (408 body_timeout beyond it); 0: no bound. Streams are not affected.
	BodyReadTimeout time.Duration
	SSEHeartbeat    time.Duration // default 15s
	SSERetry        time.Duration // default 3s
	Checks          []Check
	Console         fs.FS // the built console; nil serves a "how to build" page
	ConsoleConfig   func() ConsoleConfig
	AuthEmulator    http.Handler     // mounted at /auth/v1 when set (development only)
	TestUsers       gymbro.TestUsers // nil: the test-user endpoint answers test_users_disabled
	// Identity answers /me?details=true; it must ask only the provider of
	// the principal's issuer (an identity.Router). Nil: no details.
	Identity gymbro.IdentityProvider
	// Sessions confirms that a token's session is live, with the provider
	// of its issuer only (an identity.Router); nil checks nothing. It runs
	// on the costly writes, and on every authenticated request when
	// SessionCheckAll is set (GYMBRO_SESSION_CHECK=all).
	Sessions        gymbro.SessionChecker
	SessionCheckAll bool
	Metrics         Metrics
	// MetricsHandler serves GET /metrics (Prometheus) when set. It carries
	// no user data but is operational detail: keep it off the public
	// internet at the load balancer.
	MetricsHandler http.Handler
	Logger         *slog.Logger
	Now            func() time.Time
}

// Server holds the domain services the handlers call.
type Server struct {
	verifier gymbro.Verifier
	chat     *chat.Service
	opts     Options
	logger   *slog.Logger
	metrics  Metrics
	handler  http.Handler
	closing  chan struct{}
	park     *parker      // nil without a chat service
	streams  atomic.Int64 // open SSE streams, parked or not
	meBodies *meCache     // GET /api/v1/me bodies of recent principals
}

// streamOpened and streamClosed count an SSE stream in and out.
func (s *Server) streamOpened() {
	s.streams.Add(1)
	if s.metrics != nil {
		s.metrics.StreamOpened()
	}
}

func (s *Server) streamClosed() {
	s.streams.Add(-1)
	if s.metrics != nil {
		s.metrics.StreamClosed()
	}
}

// New returns a Server. Close (or Shutdown) ends its open streams.
func New(v gymbro.Verifier, c *chat.Service, opts Options) *Server {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 1 << 20
	}
	if opts.SSEHeartbeat <= 0 {
		opts.SSEHeartbeat = 15 * time.Second
	}
	if opts.SSERetry <= 0 {
		opts.SSERetry = 3 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Server{verifier: v, chat: c, opts: opts, logger: opts.Logger, metrics: opts.Metrics, closing: make(chan struct{}), meBodies: newMeCache()}
	if c != nil {
		s.park = newParker(s, c.Log())
	}
	mux := http.NewServeMux()
	for _, rt := range s.routes() {
		pattern := rt.Pattern
		if rt.Method != "" {
			pattern = rt.Method + " " + pattern
		}
		mux.Handle(pattern, rt.Handler)
	}
	s.handler = s.observe(s.secure(s.checkHost(s.cors(s.limitBody(s.problems(mux))))))
	return s
}

// ServeHTTP serves a request through the middleware chain.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// CloseStreams ends every open SSE stream; call it when shutdown begins so
// http.Server.Shutdown does not wait for streams that never end by
// themselves. Clients reconnect elsewhere with Last-Event-ID.
func (s *Server) CloseStreams() {
	select {
	case <-s.closing:
	default:
		close(s.closing)
	}
	if s.park != nil {
		s.park.close()
	}
}

// OpenStreams reports how many SSE streams are open, parked or not.
func (s *Server) OpenStreams() int { return int(s.streams.Load()) }

// Route is one entry of the route table.
type Route struct {
	Method  string
	Pattern string
	Handler http.Handler
	// Public routes are not part of the API description (console, emulator).
	Public bool
}

// Routes returns the route table, for the API description's test.
func (s *Server) Routes() []Route { return s.routes() }

// routes is the whole route table, so one screen shows the API.
func (s *Server) routes() []Route {
	api := func(method, pattern string, h http.Handler) Route {
		return Route{Method: method, Pattern: pattern, Handler: h}
	}
	rs := []Route{
		api("GET", "/api/v1/healthz", http.HandlerFunc(s.handleHealthz)),
		api("GET", "/api/v1/readyz", http.HandlerFunc(s.handleReadyz)),
		api("GET", "/api/v1/me", s.RequireUser(s.handleMe)),
		api("GET", "/api/v1/me/usage", s.RequireUser(s.handleUsage)),
		api("POST", "/api/v1/messages", s.RequireSession(s.handlePostMessage)),
		api("GET", "/api/v1/messages/{id}", s.RequireUser(s.handleGetMessage)),
		api("GET", "/api/v1/messages/{id}/events", s.RequireUser(s.handleEvents)),
		api("POST", "/api/v1/messages/{id}/cancel", s.RequireUser(s.handleCancel)),
		api("GET", "/api/v1/conversations", s.RequireUser(s.handleConversations)),
		api("GET", "/api/v1/conversations/{id}/messages", s.RequireUser(s.handleConversationMessages)),
		api("POST", "/api/v1/llm/tests/create-mail-user", s.RequireSession(s.handleCreateTestUser)),
		api("GET", "/api/v1/console/config", http.HandlerFunc(s.handleConsoleConfig)),
		api("GET", "/api/v1/openapi.json", http.HandlerFunc(s.handleOpenAPI)),
		{Method: "GET", Pattern: "/docs", Handler: http.HandlerFunc(s.handleDocs), Public: true},
		{Method: "GET", Pattern: "/", Handler: s.consoleHandler(), Public: true},
	}
	if s.chat != nil && s.chat.Trace() != nil {
		rs = append(rs, Route{Method: "GET", Pattern: "/debug/ttft/{id}", Handler: s.RequireUser(s.handleTTFTTrace), Public: true})
	}
	if s.opts.MetricsHandler != nil {
		rs = append(rs, Route{Method: "GET", Pattern: "/metrics", Handler: s.opts.MetricsHandler, Public: true})
	}
	if s.opts.AuthEmulator != nil {
		// The emulator routes its own methods; Supabase clients reach it at
		// <base>/auth/v1 exactly as they reach hosted Supabase Auth.
		emu := http.StripPrefix("/auth/v1", s.opts.AuthEmulator)
		for _, method := range []string{"GET", "POST", "PUT", "DELETE"} {
			rs = append(rs, Route{Method: method, Pattern: "/auth/v1/", Handler: emu, Public: true})
		}
	}
	return rs
}

// problems answers what the mux itself would answer in plain text (no
// route: 404; a route for another method: 405 with Allow) as problem bodies.
func (s *Server) problems(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		probe := &headerProbe{header: http.Header{}}
		h.ServeHTTP(probe, r)
		if allow := allowedMethods(mux, r); probe.status == http.StatusMethodNotAllowed && allow != "" {
			w.Header().Set("Allow", allow)
			writeProblem(w, r, http.StatusMethodNotAllowed, gymbro.CodeMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path+"; allowed: "+allow+".", nil)
			return
		}
		writeProblem(w, r, http.StatusNotFound, gymbro.CodeNotFound, "No such endpoint: "+r.Method+" "+r.URL.Path+". See /api/v1/openapi.json.", nil)
	})
}

// allowedMethods lists the methods r's path has a route for. The mux's own
// Allow header would also name GET and HEAD for every path, because the
// console's catch-all "GET /" matches them all.
func allowedMethods(mux *http.ServeMux, r *http.Request) string {
	var allow []string
	for _, m := range []string{"GET", "POST", "PUT", "DELETE", "PATCH"} {
		r2 := r.Clone(r.Context())
		r2.Method = m
		if _, pattern := mux.Handler(r2); pattern != "" && pattern != "GET /" {
			allow = append(allow, m)
		}
	}
	return strings.Join(allow, ", ")
}

// headerProbe records what the mux's fallback handler would write.
type headerProbe struct {
	header http.Header
	status int
}

func (p *headerProbe) Header() http.Header         { return p.header }
func (p *headerProbe) Write(b []byte) (int, error) { return len(b), nil }
func (p *headerProbe) WriteHeader(code int)        { p.status = code }
