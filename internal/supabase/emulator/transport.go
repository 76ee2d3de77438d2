package emulator

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Transport returns an http.RoundTripper that serves every request for a
// URL under the emulator's issuer (Options.Issuer: its key set, the Admin
// API, /user, /token) with the emulator's own handler, in this process,
// and hands any other request to next (http.DefaultTransport when nil).
//
// The service reaches its own emulator through it. The issuer's URL is the
// public one (GYMBRO_PUBLIC_URL): what tokens name and what phones dial.
// Whoever answers there (a tunnel, a name the machine no longer holds)
// must never receive the service key, users' tokens or test users'
// passwords, nor hand the service a key set to trust; in process, nothing
// leaves, and these calls are no client's requests in the access log.
func (e *Emulator) Transport(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	u, err := url.Parse(e.opts.Issuer)
	if err != nil {
		u = &url.URL{} // Open takes any issuer string; this one matches no request
	}
	return &inProcess{e: e, next: next, scheme: u.Scheme, host: strings.ToLower(u.Host), prefix: strings.TrimRight(u.Path, "/")}
}

// inProcess is the RoundTripper of Transport.
type inProcess struct {
	e                    *Emulator
	next                 http.RoundTripper
	scheme, host, prefix string
}

// RoundTrip implements http.RoundTripper.
func (t *inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	rest, ok := t.route(req.URL)
	if !ok {
		return t.next.RoundTrip(req)
	}
	r := req.Clone(req.Context()) // a RoundTripper must not change req
	r.URL.Path, r.URL.RawPath = rest, ""
	r.RequestURI = r.URL.RequestURI()
	r.RemoteAddr = "in-process"
	if r.Body == nil {
		r.Body = http.NoBody
	}
	w := &recorder{header: http.Header{}}
	t.e.handler.ServeHTTP(w, r)
	if req.Body != nil {
		req.Body.Close()
	}
	return w.response(req), nil
}

// route reports whether u is under the issuer, and its path relative to it.
func (t *inProcess) route(u *url.URL) (string, bool) {
	if t.host == "" || u.Scheme != t.scheme || strings.ToLower(u.Host) != t.host {
		return "", false
	}
	rest, ok := strings.CutPrefix(u.Path, t.prefix)
	if !ok || (rest != "" && rest[0] != '/') {
		return "", false
	}
	if rest == "" {
		rest = "/"
	}
	return rest, true
}

// recorder is the http.ResponseWriter of an in-process request: the
// emulator answers small JSON bodies, so the whole answer is kept.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *recorder) Header() http.Header { return w.header }

func (w *recorder) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *recorder) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(p)
}

func (w *recorder) response(req *http.Request) *http.Response {
	w.WriteHeader(http.StatusOK)
	h := w.header.Clone()
	h.Set("Content-Length", strconv.Itoa(w.body.Len()))
	return &http.Response{
		Status: strconv.Itoa(w.status) + " " + http.StatusText(w.status), StatusCode: w.status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: h,
		Body: io.NopCloser(bytes.NewReader(w.body.Bytes())), ContentLength: int64(w.body.Len()), Request: req,
	}
}
