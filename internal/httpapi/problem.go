package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// jsonType names a Go type as the JSON value a client should send.
func jsonType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Pointer:
		return jsonType(t.Elem())
	}
	return "an object"
}

// defaultRetryAfterSeconds is the Retry-After of a 503 or 429 whose cause
// did not say how long to wait: short, since outages of a pooled
// connection or a failover mostly last seconds.
const defaultRetryAfterSeconds = 2

// CodeBodyTimeout answers a request whose body did not arrive within
// Options.BodyReadTimeout (408; the connection closes).
const CodeBodyTimeout = "body_timeout"

// StatusClientClosedRequest is what the access log and the request metrics
// record for a request whose client hung up before its answer was ready
// (nginx's 499): it is not sent to anyone.
const StatusClientClosedRequest = 499

// Problem is an RFC 9457 problem details body with the two extension members
// every GymBro error carries: a stable code and the request's trace id.
type Problem struct {
	Type      string       `json:"type"`
	Title     string       `json:"title"`
	Status    int          `json:"status"`
	Detail    string       `json:"detail"`
	Code      string       `json:"code"`
	RequestID string       `json:"request_id"`
	Errors    []FieldError `json:"errors,omitempty"`
}

// FieldError names one invalid field of a request body.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// StatusOf maps an error's kind to its HTTP status.
func StatusOf(err error) int {
	switch gymbro.ErrorKind(err) {
	case gymbro.KindInvalid:
		return http.StatusBadRequest
	case gymbro.KindUnauthenticated:
		return http.StatusUnauthorized
	case gymbro.KindForbidden:
		return http.StatusForbidden
	case gymbro.KindNotFound:
		return http.StatusNotFound
	case gymbro.KindConflict:
		return http.StatusConflict
	case gymbro.KindTooLarge:
		return http.StatusRequestEntityTooLarge
	case gymbro.KindUnprocessable:
		return http.StatusUnprocessableEntity
	case gymbro.KindRateLimited:
		return http.StatusTooManyRequests
	case gymbro.KindUnavailable:
		return http.StatusServiceUnavailable
	case gymbro.KindUpstream:
		return http.StatusBadGateway
	case gymbro.KindTimeout:
		return http.StatusGatewayTimeout
	case gymbro.KindRequestTimeout:
		return http.StatusRequestTimeout
	}
	return http.StatusInternalServerError
}

// writeError answers err as a problem body. Errors that are not a
// *gymbro.Error are bugs or unexpected failures: they are logged with their
// cause and shown only as "internal", so no internal detail reaches a client.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	s.writeErrorFields(w, r, err, nil)
}

func (s *Server) writeErrorFields(w http.ResponseWriter, r *http.Request, err error, fields []FieldError) {
	status := StatusOf(err)
	code := gymbro.ErrorCode(err)
	if status >= 500 && r.Context().Err() != nil && errors.Is(err, r.Context().Err()) {
		// The client hung up; the failure is its leaving, not ours. Nobody
		// reads this answer: its status is for the access log and the
		// metrics, which should count a client that left, not a 500.
		s.logger.DebugContext(r.Context(), "request abandoned by the client", "code", code)
		w.WriteHeader(StatusClientClosedRequest)
		return
	}
	if status >= 500 {
		s.logger.ErrorContext(r.Context(), "request failed", "code", code, "err", err)
	}
	var e *gymbro.Error
	switch {
	case errors.As(err, &e) && e.RetryAfter > 0:
		secs := int((e.RetryAfter + 999_999_999) / 1_000_000_000)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
	case status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests:
		// Every 503 and 429 says when to come back, so clients pace their
		// retries even when the failure did not know (an outage).
		w.Header().Set("Retry-After", strconv.Itoa(defaultRetryAfterSeconds))
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", bearerChallenge(code, gymbro.ErrorMessage(err)))
	}
	writeProblem(w, r, status, code, gymbro.ErrorMessage(err), fields)
}

// bearerChallenge builds the RFC 6750 §3 challenge. A request without any
// credentials gets no error attribute (§3.1: the client did not try, so there
// is nothing to report); every rejected token gets error="invalid_token".
func bearerChallenge(code, description string) string {
	if code == "token_missing" {
		return `Bearer realm="gymbro"`
	}
	// error_description is a quoted-string limited to printable ASCII
	// without '"' and '\' (RFC 6750 §3).
	clean := strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return -1
		}
		return r
	}, description)
	return `Bearer realm="gymbro", error="invalid_token", error_description="` + clean + `"`
}

func writeProblem(w http.ResponseWriter, r *http.Request, status int, code, detail string, fields []FieldError) {
	p := Problem{
		Type:      "about:blank",
		Title:     http.StatusText(status),
		Status:    status,
		Detail:    detail,
		Code:      code,
		RequestID: TraceID(r.Context()),
		Errors:    fields,
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(p)
}

// writeJSON answers v as JSON with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		slog.Debug("write json", "err", err)
	}
}

// decodeJSON reads a JSON request body into v, refusing unknown fields,
// trailing data and bodies over the server's limit, each with its own code.
func decodeJSON(r *http.Request, v any) error { return decodeBody(r, v, false) }

// decodeOptionalJSON is decodeJSON for a body whose fields are all
// optional: an empty body (a bare curl -X POST) means every default, while
// a body that is present must still be one JSON object.
func decodeOptionalJSON(r *http.Request, v any) error { return decodeBody(r, v, true) }

func decodeBody(r *http.Request, v any, optional bool) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		return gymbro.Errorf(gymbro.KindInvalid, "unsupported_media_type", "Send the body as application/json.")
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return gymbro.Errorf(gymbro.KindTooLarge, gymbro.CodeBodyTooLarge, "The request body is larger than %d bytes.", tooLarge.Limit)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return gymbro.Errorf(gymbro.KindRequestTimeout, CodeBodyTimeout, "The request body did not arrive in time; send it at once.")
		}
		return gymbro.Wrap(err, gymbro.KindInvalid, gymbro.CodeInvalidRequest, "The request body could not be read.")
	}
	if optional && len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	// encoding/json would quietly turn invalid UTF-8 into U+FFFD; refuse it
	// instead, so what we store is what the client meant.
	if !utf8.Valid(body) {
		return gymbro.Errorf(gymbro.KindInvalid, "invalid_utf8", "The request body must be valid UTF-8.")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var syntax *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syntax):
			return gymbro.Errorf(gymbro.KindInvalid, gymbro.CodeInvalidJSON, "The body is not valid JSON (at byte %d).", syntax.Offset)
		case errors.As(err, &typ) && typ.Field == "":
			return gymbro.Errorf(gymbro.KindInvalid, gymbro.CodeInvalidJSON, "The body must be a JSON object.")
		case errors.As(err, &typ):
			return gymbro.Errorf(gymbro.KindInvalid, gymbro.CodeInvalidJSON, "Field %q must be %s.", typ.Field, jsonType(typ.Type))
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return gymbro.Errorf(gymbro.KindInvalid, gymbro.CodeInvalidJSON, "Unknown field %s.", strings.TrimPrefix(err.Error(), "json: unknown field "))
		case errors.Is(err, io.EOF):
			return gymbro.Errorf(gymbro.KindInvalid, gymbro.CodeInvalidJSON, "The request body is empty; send a JSON object.")
		}
		return gymbro.Errorf(gymbro.KindInvalid, gymbro.CodeInvalidJSON, "The body is not valid JSON.")
	}
	if dec.More() {
		return gymbro.Errorf(gymbro.KindInvalid, gymbro.CodeInvalidJSON, "The body must hold exactly one JSON object.")
	}
	return nil
}
