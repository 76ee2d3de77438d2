package emulator

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// httpError is an error answered the way Supabase Auth answers it.
type httpError struct {
	status  int
	code    string // error_code, also sent as X-Sb-Error-Code
	msg     string
	reasons []string // weak_password only
	commit  bool     // commit the transaction despite the error (reuse detection)
}

func (e *httpError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.code, e.msg) }

func newError(status int, code, msg string) *httpError {
	return &httpError{status: status, code: code, msg: msg}
}

// apiVersion20240101 is the first X-Supabase-Api-Version that changes the
// error body; earlier or unparsable versions get the initial shape, as
// Supabase Auth's DetermineClosestAPIVersion decides.
var apiVersion20240101 = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func newErrorShape(r *http.Request) bool {
	v, err := time.Parse("2006-01-02", r.Header.Get("X-Supabase-Api-Version"))
	return err == nil && !v.Before(apiVersion20240101)
}

// writeError answers err. Unknown errors become a 500 without detail; the
// cause goes to the log only.
func (e *Emulator) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var he *httpError
	if !errors.As(err, &he) {
		e.log.ErrorContext(r.Context(), "auth emulator: request failed",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("error", err))
		he = newError(http.StatusInternalServerError, "unexpected_failure",
			"Unexpected failure, please check server logs for more information")
	}
	w.Header().Set("X-Sb-Error-Code", he.code)
	type weak struct {
		Reasons []string `json:"reasons"`
	}
	if newErrorShape(r) {
		w.Header().Set("X-Supabase-Api-Version", "2024-01-01")
		body := struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Weak    *weak  `json:"weak_password,omitempty"`
		}{Code: he.code, Message: he.msg}
		if he.reasons != nil {
			body.Weak = &weak{he.reasons}
		}
		writeJSON(w, he.status, body)
		return
	}
	body := struct {
		Code      int    `json:"code"`
		ErrorCode string `json:"error_code"`
		Msg       string `json:"msg"`
		Weak      *weak  `json:"weak_password,omitempty"`
	}{Code: he.status, ErrorCode: he.code, Msg: he.msg}
	if he.reasons != nil {
		body.Weak = &weak{he.reasons}
	}
	writeJSON(w, he.status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decodeBody reads a JSON body of at most 1 MiB. The decoder's message is
// not echoed: it can quote the input, which may hold a password.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		return newError(http.StatusBadRequest, "bad_json", "Could not parse request body as JSON")
	}
	return nil
}

type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// routes is the whole route table, relative to /auth/v1.
func (e *Emulator) routes() http.Handler {
	mux := http.NewServeMux()
	h := func(fn handlerFunc) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := fn(w, r); err != nil {
				e.writeError(w, r, err)
			}
		})
	}
	key := e.requireAPIKey
	admin := func(fn handlerFunc) http.Handler { return key(h(e.requireAdmin(fn))) }

	mux.Handle("GET /health", h(e.health))
	mux.Handle("GET /.well-known/jwks.json", h(e.jwks))
	mux.Handle("POST /admin/users", admin(e.adminCreateUser))
	mux.Handle("GET /admin/users", admin(e.adminListUsers))
	mux.Handle("GET /admin/users/{id}", admin(e.adminGetUser))
	mux.Handle("PUT /admin/users/{id}", admin(e.adminUpdateUser))
	mux.Handle("DELETE /admin/users/{id}", admin(e.adminDeleteUser))
	mux.Handle("POST /token", key(h(e.token)))
	mux.Handle("GET /user", key(h(e.getUser)))
	mux.Handle("POST /logout", key(h(e.logout)))
	mux.Handle("/", key(h(func(w http.ResponseWriter, r *http.Request) error {
		return newError(http.StatusNotFound, "not_found", "Not found")
	})))
	return mux
}

// requireAPIKey does what the Supabase API gateway does in front of Auth:
// a request must carry one of the project's API keys in apikey. The
// comparison is constant-time so response timing reveals nothing about the
// key (a classic remote timing attack on string equality).
func (e *Emulator) requireAPIKey(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := r.Header.Get("apikey")
		if k == "" {
			e.writeGatewayError(w, "no_api_key", "No API key found in request")
			return
		}
		if !equalKey(k, e.anon) && !equalKey(k, e.service) {
			e.writeGatewayError(w, "invalid_api_key", "Invalid API key")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// writeGatewayError answers like the gateway, whose 401 body is
// {"message", "hint"} rather than Auth's.
func (e *Emulator) writeGatewayError(w http.ResponseWriter, code, msg string) {
	w.Header().Set("X-Sb-Error-Code", code)
	writeJSON(w, http.StatusUnauthorized, map[string]string{
		"message": msg,
		"hint":    "Double check your Supabase `anon` or `service_role` API key.",
	})
}

func equalKey(a, b string) bool {
	return b != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// bearer returns the Authorization bearer token, or no_authorization.
func bearer(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		if t := strings.TrimSpace(h[7:]); t != "" {
			return t, nil
		}
	}
	return "", newError(http.StatusUnauthorized, "no_authorization", "This endpoint requires a Bearer token")
}

// requireAdmin admits the service-role key itself (what the gateway turns
// into a service_role JWT) or a JWT we signed whose role is an admin role.
func (e *Emulator) requireAdmin(next handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		tok, err := bearer(r)
		if err != nil {
			return err
		}
		switch {
		case equalKey(tok, e.service):
		case equalKey(tok, e.anon):
			// The gateway turns the publishable key into an anon JWT.
			return newError(http.StatusForbidden, "not_admin", "User not allowed")
		default:
			c, err := e.parseJWT(tok)
			if err != nil {
				return err
			}
			if role, _ := c["role"].(string); role != "service_role" && role != "supabase_admin" {
				return newError(http.StatusForbidden, "not_admin", "User not allowed")
			}
		}
		return next(w, r)
	}
}

func (e *Emulator) health(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{
		"version":     "gymbro-emulator",
		"name":        "GoTrue",
		"description": "GoTrue is a user registration and authentication API",
	})
	return nil
}

// jwks publishes the public signing keys. max-age=600 matches Supabase; a
// verifier that meets a new kid refetches early.
func (e *Emulator) jwks(w http.ResponseWriter, r *http.Request) error {
	keys := e.keys.published(e.now(), e.opts.AccessTokenTTL)
	out := struct {
		Keys []jwk `json:"keys"`
	}{Keys: make([]jwk, 0, len(keys))}
	for i := len(keys) - 1; i >= 0; i-- { // current key first
		k, err := keys[i].publicJWK()
		if err != nil {
			return err
		}
		out.Keys = append(out.Keys, k)
	}
	w.Header().Set("Cache-Control", "public, max-age=600")
	writeJSON(w, http.StatusOK, out)
	return nil
}
