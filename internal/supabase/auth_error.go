package supabase

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// Error codes of failures to reach Supabase at all.
const (
	// CodeSupabaseUnavailable: no answer (503), or an answer that is not
	// Supabase Auth's (an HTML or empty 5xx from a gateway, a paused
	// project: 502). One code for "Supabase Auth is not there right now".
	CodeSupabaseUnavailable = "supabase_unavailable"
	CodeSupabaseTimeout     = "supabase_timeout"      // no answer in time: KindTimeout
	CodeSupabaseBadResponse = "supabase_bad_response" // an answer we cannot read: KindUpstream
)

// Supabase Auth error codes this package and its callers act on. The full
// list is Supabase Auth's internal/api/apierrors/errorcode.go.
const (
	AuthCodeEmailExists             = "email_exists"
	AuthCodeUserNotFound            = "user_not_found"
	AuthCodeInvalidCredentials      = "invalid_credentials"
	AuthCodeWeakPassword            = "weak_password"
	AuthCodeBadJWT                  = "bad_jwt"
	AuthCodeNotAdmin                = "not_admin"
	AuthCodeNoAuthorization         = "no_authorization"
	AuthCodeSessionNotFound         = "session_not_found"
	AuthCodeRefreshTokenNotFound    = "refresh_token_not_found"
	AuthCodeRefreshTokenAlreadyUsed = "refresh_token_already_used"
	AuthCodeEmailNotConfirmed       = "email_not_confirmed"
	AuthCodeUserBanned              = "user_banned"
)

// APIError is an error answer from Supabase Auth (or its gateway). Code is
// Supabase's error_code (email_exists, invalid_credentials, …) or, for
// OAuth-style answers of older servers, the OAuth error (invalid_grant).
// Find it with errors.As; it also unwraps to a *gymbro.Error whose Kind
// follows Status and whose Code is Code, so gymbro.ErrorKind works on it.
type APIError struct {
	Status     int
	Code       string // empty when the answer was not an Auth error body
	Message    string
	RetryAfter time.Duration // from Retry-After on a 429 or 503; zero when absent
}

// FromGateway reports whether the answer came from something in front of
// Supabase Auth (a proxy, a paused project) rather than Auth itself: a 5xx
// that names no Auth error code.
func (e *APIError) FromGateway() bool { return e.Code == "" && e.Status >= 500 }

func (e *APIError) Error() string {
	return fmt.Sprintf("supabase auth: %d %s: %s", e.Status, e.Code, e.Message)
}

// Unwrap returns the domain view of the failure.
func (e *APIError) Unwrap() error {
	switch {
	case e.FromGateway():
		return &gymbro.Error{Kind: gymbro.KindUpstream, Code: CodeSupabaseUnavailable, RetryAfter: e.RetryAfter,
			Message: fmt.Sprintf("Supabase Auth is unavailable: its address answered HTTP %d (%s) without an Auth error.", e.Status, e.Message)}
	case e.Code == "":
		return &gymbro.Error{Kind: gymbro.KindUpstream, Code: CodeSupabaseBadResponse, RetryAfter: e.RetryAfter,
			Message: fmt.Sprintf("Supabase Auth answered HTTP %d without an error code: %s", e.Status, e.Message)}
	}
	return &gymbro.Error{Kind: kindForStatus(e.Status), Code: e.Code, Message: e.Message, RetryAfter: e.RetryAfter}
}

func kindForStatus(status int) gymbro.Kind {
	switch status {
	case http.StatusBadRequest:
		return gymbro.KindInvalid
	case http.StatusUnauthorized:
		return gymbro.KindUnauthenticated
	case http.StatusForbidden:
		return gymbro.KindForbidden
	case http.StatusNotFound:
		return gymbro.KindNotFound
	case http.StatusConflict:
		return gymbro.KindConflict
	case http.StatusRequestEntityTooLarge:
		return gymbro.KindTooLarge
	case http.StatusUnprocessableEntity:
		return gymbro.KindUnprocessable
	case http.StatusTooManyRequests:
		return gymbro.KindRateLimited
	case http.StatusBadGateway, http.StatusServiceUnavailable:
		return gymbro.KindUnavailable
	case http.StatusGatewayTimeout:
		return gymbro.KindTimeout
	}
	if status >= 500 {
		return gymbro.KindUpstream
	}
	return gymbro.KindInvalid
}

// parseAPIError reads every error shape Supabase Auth has used:
//
//   - without X-Supabase-Api-Version: {"code": 422, "error_code": "email_exists", "msg": "…"}
//   - with 2024-01-01:                {"code": "email_exists", "message": "…"}
//   - OAuth-style (token endpoint):   {"error": "invalid_grant", "error_description": "…"}
//   - the gateway's 401:              {"message": "Invalid API key", "hint": "…"}
//
// and falls back to the X-Sb-Error-Code header, then to the status text.
func parseAPIError(resp *http.Response, body []byte) *APIError {
	e := &APIError{Status: resp.StatusCode}
	var raw struct {
		Code             json.RawMessage `json:"code"`
		ErrorCode        string          `json:"error_code"`
		Msg              string          `json:"msg"`
		Message          string          `json:"message"`
		Error            string          `json:"error"`
		ErrorDescription string          `json:"error_description"`
	}
	if json.Unmarshal(body, &raw) == nil {
		var s string
		if len(raw.Code) > 0 && json.Unmarshal(raw.Code, &s) == nil {
			e.Code = s // 2024-01-01 shape: code is the string error code
		}
		if raw.ErrorCode != "" {
			e.Code = raw.ErrorCode
		}
		if e.Code == "" && raw.Error != "" {
			e.Code = raw.Error
		}
		for _, m := range []string{raw.Msg, raw.Message, raw.ErrorDescription} {
			if m != "" {
				e.Message = m
				break
			}
		}
	}
	if e.Code == "" {
		e.Code = resp.Header.Get("X-Sb-Error-Code")
	}
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	if len(e.Message) > 512 {
		e.Message = e.Message[:512]
	}
	if v := resp.Header.Get("Retry-After"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			e.RetryAfter = time.Duration(n) * time.Second
		}
	}
	return e
}
