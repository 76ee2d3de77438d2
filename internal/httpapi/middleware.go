package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

type traceKey struct{}

// TraceID returns the request's trace id.
func TraceID(ctx context.Context) string {
	if l, ok := ctx.Value(traceKey{}).(*requestLog); ok {
		return l.traceID
	}
	return ""
}

// requestLog collects what the access log line reports; handlers deeper in
// the chain (authentication) fill in the uid.
type requestLog struct {
	traceID string
	uid     string
	code    string
	start   time.Time
	status  int   // set by a handler that hijacked the connection
	bytes   int64 // body bytes written on a hijacked connection
	// stream marks an SSE stream, whose line also says lastEventID: the
	// id the client would resume after.
	stream      bool
	lastEventID int64
	// detached marks a request whose connection outlives its handler (a
	// parked stream): the line is written when it really ends, by the
	// function detach returned, not by observe.
	detached bool
}

// requestLogOf returns r's access-log record, or nil outside observe.
func requestLogOf(r *http.Request) *requestLog {
	l, _ := r.Context().Value(traceKey{}).(*requestLog)
	return l
}

// validTraceID accepts 1-128 characters of [A-Za-z0-9._-], so a caller's id
// can be echoed into headers and logs without injection.
func validTraceID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// newTraceID returns 128 random bits in hex (one allocation: the string).
func newTraceID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	var out [32]byte
	hex.Encode(out[:], b[:])
	return string(out[:])
}

// traceIDFromTraceparent takes the trace id of a W3C traceparent header so
// one id ties our logs to the caller's distributed trace.
func traceIDFromTraceparent(h string) string {
	parts := strings.Split(h, "-")
	if len(parts) == 4 && len(parts[1]) == 32 && validTraceID(parts[1]) && parts[1] != strings.Repeat("0", 32) {
		return parts[1]
	}
	return ""
}

// statusRecorder remembers the status a handler wrote, and passes flushes
// through (SSE needs them) via Unwrap for http.ResponseController.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	body   *guardedBody // nil for a request without a body
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
		r.body.answeredUnread(r.ResponseWriter)
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
		r.body.answeredUnread(r.ResponseWriter)
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// guardedBody bounds how long a request body may take to arrive (a read
// deadline per request, cleared once the body is read, so it never cuts a
// stream the way http.Server.ReadTimeout would), and remembers whether it
// was read to the end.
type guardedBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	http1   bool
	readAll bool
}

// guardBody puts a read deadline of timeout on r's body, when it has one.
func guardBody(w http.ResponseWriter, r *http.Request, timeout time.Duration) *guardedBody {
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	b := &guardedBody{ReadCloser: r.Body, rc: http.NewResponseController(w), http1: r.ProtoMajor == 1}
	if timeout > 0 {
		_ = b.rc.SetReadDeadline(time.Now().Add(timeout))
	}
	r.Body = b
	return b
}

func (b *guardedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.readAll {
		b.readAll = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// answeredUnread is called as the answer starts. An answer to a request
// whose body was not read (a 401, 413, 429… refused before it) closes the
// connection instead of draining the body: net/http would otherwise read up
// to 256 KiB of it first, which a client trickling one byte at a time turns
// into a connection held without end.
func (b *guardedBody) answeredUnread(w http.ResponseWriter) {
	if b == nil || b.readAll {
		return
	}
	if b.http1 {
		w.Header().Set("Connection", "close")
	}
	_ = b.rc.SetReadDeadline(time.Now()) // the drain after the answer ends at once
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// observe is the outermost middleware: trace id, access log, and recovery
// from panics into a 500 problem body.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.now()
		id := r.Header.Get("X-Trace-Id")
		if !validTraceID(id) {
			id = traceIDFromTraceparent(r.Header.Get("traceparent"))
			if id == "" {
				id = newTraceID()
			}
		}
		w.Header()["X-Trace-Id"] = []string{id} // the key is canonical already
		l := &requestLog{traceID: id, start: start}
		r = r.WithContext(context.WithValue(r.Context(), traceKey{}, l))
		rec := &statusRecorder{ResponseWriter: w, body: guardBody(w, r, s.opts.BodyReadTimeout)}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.logger.ErrorContext(r.Context(), "panic", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				if rec.status == 0 {
					writeProblem(rec, r, http.StatusInternalServerError, gymbro.CodeInternal, "An internal error occurred.", nil)
				}
			}
			if l.detached {
				return // the stream's end writes the line
			}
			status := rec.status
			if status == 0 {
				status = l.status
			}
			s.endRequest(r.Context(), r.Method, r.URL.Path, r.Pattern, l, status, rec.bytes+l.bytes)
		}()
		next.ServeHTTP(rec, r)
	})
}

// endRequest writes the access-log line of a request that ends now and
// observes its duration, once per request: for a stream, when the stream
// ends, so the line and gymbro_http_request_duration_seconds tell how long
// it was open and how much it sent.
func (s *Server) endRequest(ctx context.Context, method, path, pattern string, l *requestLog, status int, bytes int64) {
	d := s.now().Sub(l.start)
	s.logRequest(ctx, method, path, l, status, bytes, d)
	if s.metrics != nil {
		s.metrics.ObserveRequest(pattern, status, d)
	}
}

// detach hands the access-log line of r over to its stream, whose
// connection outlives the handler (a parked stream), and returns what
// writes it at the stream's end with the bytes sent and the id the client
// would resume after. It keeps copies of the few strings the line needs,
// not the request: a parked stream must stay small.
func (s *Server) detach(r *http.Request, l *requestLog) (end func(bytes, lastEventID int64)) {
	l.detached = true
	line := requestLog{traceID: strings.Clone(l.traceID), uid: strings.Clone(l.uid), code: l.code, start: l.start, stream: true}
	method, path, pattern := strings.Clone(r.Method), strings.Clone(r.URL.Path), r.Pattern // a pattern is the route table's own string
	return func(bytes, lastEventID int64) {
		line.lastEventID = lastEventID
		ctx := context.WithValue(context.Background(), traceKey{}, &line) // for trace_id, as observe's context gives
		s.endRequest(ctx, method, path, pattern, &line, http.StatusOK, bytes)
	}
}

// logRequest writes the access-log line of a request that took d. The
// attributes go to slog as values (LogAttrs): no []any to build and no
// boxing of each value, on a line written for every request.
func (s *Server) logRequest(ctx context.Context, method, path string, l *requestLog, status int, bytes int64, d time.Duration) {
	if !s.logger.Enabled(ctx, slog.LevelInfo) {
		return
	}
	attrs := [8]slog.Attr{
		slog.String("method", method),
		slog.String("path", path), // never the query: it could carry a token someone put there
		slog.Int("status", status),
		slog.Float64("duration_ms", float64(d.Microseconds())/1000),
		slog.Int64("bytes", bytes),
	}
	n := 5
	if l.stream {
		attrs[n] = slog.Int64("last_event_id", l.lastEventID)
		n++
	}
	if l.uid != "" {
		attrs[n] = slog.String("uid", l.uid)
		n++
	}
	if l.code != "" {
		attrs[n] = slog.String("code", l.code)
		n++
	}
	s.logger.LogAttrs(ctx, slog.LevelInfo, "request", attrs[:n]...)
}

// Header values set on every answer, shared: assigning them skips
// canonicalizing the key and allocating the value's slice. Nothing changes
// a value in place, and Header.Add on one of these keys copies the slice.
var (
	hdrNosniff    = []string{"nosniff"}
	hdrDeny       = []string{"DENY"}
	hdrNoReferrer = []string{"no-referrer"}
	hdrSameOrigin = []string{"same-origin"}
	hdrHSTS       = []string{"max-age=63072000; includeSubDomains"}
	hdrNoStore    = []string{"no-store"}
)

// secure sets headers that cost nothing and close common holes: no MIME
// sniffing, no framing (clickjacking), no referrer leaks, and HSTS under TLS.
func (s *Server) secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["X-Content-Type-Options"] = hdrNosniff
		h["X-Frame-Options"] = hdrDeny
		h["Referrer-Policy"] = hdrNoReferrer
		h["Cross-Origin-Opener-Policy"] = hdrSameOrigin
		if r.TLS != nil {
			h["Strict-Transport-Security"] = hdrHSTS
		}
		next.ServeHTTP(w, r)
	})
}

// limitBody caps request bodies so a client cannot make us buffer without
// bound; decodeJSON turns the overflow into a 413 problem.
func (s *Server) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes)
		}
		next.ServeHTTP(w, r)
	})
}

// cors answers browsers from the allowed origins: the configured ones, the
// service's own, and in development any localhost port. Never any origin:
// in development the console config hands out the operator's password,
// and a page on another site must not be able to read it.
func (s *Server) cors(next http.Handler) http.Handler {
	allowAll := slices.Contains(s.opts.CORSOrigins, "*")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" || !(allowAll || slices.Contains(s.opts.CORSOrigins, origin) || s.selfOrigin(origin) ||
			s.opts.CORSLocalhost && localOrigin(origin)) {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Add("Vary", "Origin")
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Expose-Headers", "X-Trace-Id, Retry-After, WWW-Authenticate, GymBro-Replay-From, Location")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Idempotency-Key, Last-Event-ID, X-Trace-Id, apikey, X-Client-Info, X-Supabase-Api-Version")
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// selfOrigin reports whether origin is one this service is reached at.
func (s *Server) selfOrigin(origin string) bool { return slices.Contains(s.opts.SelfOrigins, origin) }

// localOrigin reports whether origin is http(s) on a loopback host.
func localOrigin(origin string) bool {
	u, err := url.Parse(origin)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Path == "" && loopbackName(u.Hostname())
}

func loopbackName(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// sameOrigin reports whether r comes from a page of this service, or from
// no web page at all (curl, an app): a browser says where a request comes
// from in Sec-Fetch-Site, or at least in Origin on a cross-origin fetch.
func (s *Server) sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin" || site == "none"
	}
	if origin := r.Header.Get("Origin"); origin != "" {
		return s.selfOrigin(origin)
	}
	return true
}

// CodeHostNotAllowed answers a Host header a development server does not
// serve (421).
const CodeHostNotAllowed = "host_not_allowed"

// checkHost answers 421 Misdirected Request to a Host header that names
// neither an IP address, a localhost name nor an allowed host (only when
// Options.CheckHost is set). DNS rebinding needs a name the attacker
// controls; IP addresses and localhost cannot be rebound.
func (s *Server) checkHost(next http.Handler) http.Handler {
	if !s.opts.CheckHost {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.ToLower(strings.Trim(host, "[]"))
		if net.ParseIP(host) != nil || loopbackName(host) || slices.Contains(s.opts.AllowedHosts, host) {
			next.ServeHTTP(w, r)
			return
		}
		writeProblem(w, r, http.StatusMisdirectedRequest, CodeHostNotAllowed,
			"This server does not answer for that host name; use its address or localhost, or set GYMBRO_PUBLIC_URL.", nil)
	})
}

// RequireUser is the Go form of the seed's get_current_user: it verifies the
// bearer token and puts the Principal in the request context, or answers 401
// (503 when the keys to decide cannot be had).
func (s *Server) RequireUser(next http.HandlerFunc) http.Handler {
	return s.requireUser(next, s.opts.SessionCheckAll)
}

// RequireSession is RequireUser for the writes that cost something (a
// model reply, a test user): it also confirms with the issuer that the
// token's session is live (signed-out, banned and deleted users get 401
// session_revoked), when Options.Sessions is set.
func (s *Server) RequireSession(next http.HandlerFunc) http.Handler {
	return s.requireUser(next, true)
}

func (s *Server) requireUser(next http.HandlerFunc, checkSession bool) http.Handler {
	checkSession = checkSession && s.opts.Sessions != nil
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A user's data and refusals are never for a shared cache (an SSE
		// stream sets its own no-cache).
		w.Header()["Cache-Control"] = hdrNoStore
		l, _ := r.Context().Value(traceKey{}).(*requestLog)
		p, token, err := s.authenticate(r)
		if err == nil && checkSession {
			err = s.opts.Sessions.CheckSession(r.Context(), p, token)
		}
		if err != nil {
			if l != nil {
				l.code = gymbro.ErrorCode(err)
			}
			if s.metrics != nil {
				s.metrics.AuthFailure(gymbro.ErrorCode(err))
			}
			s.writeError(w, r, err)
			return
		}
		if l != nil {
			l.uid = p.UID
		}
		next(w, r.WithContext(gymbro.NewContextWithPrincipal(r.Context(), p)))
	})
}

// authenticate verifies the bearer token and returns its principal and the
// token itself (for a session check).
func (s *Server) authenticate(r *http.Request) (*gymbro.Principal, string, error) {
	vs := r.Header["Authorization"] // as Header.Values: the key is canonical
	if len(vs) > 1 {
		// RFC 6750 §2: one method, one token; which one counts must not
		// depend on which header a proxy happens to keep.
		return nil, "", gymbro.Errorf(gymbro.KindUnauthenticated, "token_malformed", "Send exactly one Authorization header.")
	}
	h := ""
	if len(vs) == 1 {
		h = vs[0]
	}
	if h == "" {
		return nil, "", gymbro.Errorf(gymbro.KindUnauthenticated, "token_missing", "Send the access token as Authorization: Bearer <token>.")
	}
	scheme, token, ok := strings.Cut(h, " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return nil, "", gymbro.Errorf(gymbro.KindUnauthenticated, "token_malformed", "The Authorization header must be \"Bearer <token>\".")
	}
	p, err := s.verifier.Verify(r.Context(), token)
	return p, token, err
}

func principal(r *http.Request) *gymbro.Principal {
	return gymbro.PrincipalFromContext(r.Context())
}

func (s *Server) now() time.Time {
	if s.opts.Now != nil {
		return s.opts.Now()
	}
	return time.Now()
}
