package gymbro

import (
	"errors"
	"fmt"
	"time"
)

// Kind is the class of a failure. It decides the HTTP status; the Code
// names the precise reason for clients.
type Kind uint8

// Kinds of failure. The HTTP layer maps each to one status code.
const (
	KindInternal        Kind = iota // 500: a bug or an unexpected failure; never shown in detail
	KindInvalid                     // 400: the request is malformed
	KindUnauthenticated             // 401: no valid credential
	KindForbidden                   // 403: authenticated but not allowed
	KindNotFound                    // 404: absent, or not the caller's
	KindConflict                    // 409: clashes with the current state
	KindTooLarge                    // 413: a body or field over its limit
	KindUnprocessable               // 422: well-formed but semantically wrong
	KindRateLimited                 // 429: slow down; see Error.RetryAfter
	KindUnavailable                 // 503: a dependency is down; try again
	KindUpstream                    // 502: a dependency answered wrongly
	KindTimeout                     // 504: a dependency did not answer in time
	KindRequestTimeout              // 408: the client sent its request too slowly
)

// Stable error codes shared by several packages. Packages define their own
// codes beside these (auth failures, AI failures, sync failures); every code
// a client can see is listed in docs/API_CONTRACTS.md.
const (
	CodeInternal         = "internal"
	CodeInvalidRequest   = "invalid_request"
	CodeInvalidJSON      = "invalid_json"
	CodeValidation       = "validation_failed"
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeBodyTooLarge     = "body_too_large"
	CodeUnavailable      = "unavailable"
	CodeRateLimited      = "rate_limited"
	CodeInterrupted      = "interrupted"
	CodeCanceled         = "canceled"
	CodeTooManyRunning   = "too_many_running"
)

// Not-found codes of the store. A resource of another user answers the
// same as one that does not exist, so ids cannot be probed.
const (
	CodeMessageNotFound      = "message_not_found"
	CodeConversationNotFound = "conversation_not_found"
	CodeOutboxItemNotFound   = "outbox_item_not_found"
)

// MessageNotFound is the error for an exchange that is absent or not the
// caller's.
func MessageNotFound() *Error {
	return Errorf(KindNotFound, CodeMessageNotFound, "The message does not exist.")
}

// ConversationNotFound is the error for a conversation that is absent or
// not the caller's.
func ConversationNotFound() *Error {
	return Errorf(KindNotFound, CodeConversationNotFound, "The conversation does not exist.")
}

// OutboxItemNotFound is the error for an outbox item that is not there.
func OutboxItemNotFound() *Error {
	return Errorf(KindNotFound, CodeOutboxItemNotFound, "The outbox item does not exist.")
}

// OutageRetryAfter is what the answer to an outage asks a client to wait:
// long enough for a pooled connection to be replaced or a replica
// promoted, short enough that a user barely notices.
const OutageRetryAfter = 2 * time.Second

// Unavailable is the error of an outage of what (for example "The store"
// or "The event log"): 503 with Retry-After, keeping err as the hidden
// cause.
func Unavailable(err error, what string) *Error {
	return &Error{Kind: KindUnavailable, Code: CodeUnavailable, Message: what + " is unavailable; try again.",
		RetryAfter: OutageRetryAfter, Err: err}
}

// TooManyRunning is the error of a post refused by the running cap.
func TooManyRunning() *Error {
	return &Error{Kind: KindRateLimited, Code: CodeTooManyRunning, RetryAfter: 2 * time.Second,
		Message: "Too many replies are still being generated for you; wait for one to finish."}
}

// Error is the one error type the domain speaks. Message is safe to show to
// a client; Err is the cause, kept for logs and errors.Is, never shown.
type Error struct {
	Kind       Kind
	Code       string
	Message    string
	RetryAfter time.Duration // for KindRateLimited and KindUnavailable; zero when unknown
	Err        error
}

// Errorf returns an *Error of the given kind and code with a formatted
// client-safe message.
func Errorf(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error that keeps err as its hidden cause.
func Wrap(err error, kind Kind, code, message string) *Error {
	return &Error{Kind: kind, Code: code, Message: message, Err: err}
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// ErrorKind returns the kind of err: that of the first *Error in its chain,
// KindInternal otherwise.
func ErrorKind(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

// ErrorCode returns the code of the first *Error in err's chain, "internal"
// for any other error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) && e.Code != "" {
		return e.Code
	}
	return CodeInternal
}

// ErrorMessage returns the client-safe message of err. Errors that are not
// *Error collapse to a generic sentence so internal details never leak.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Message != "" {
		return e.Message
	}
	return "An internal error occurred."
}

// RetryableCode reports whether a generation that ended with the error
// code may succeed when the user sends the message again: the one
// definition behind an error event's "retryable". Only a request the model
// refused as malformed, or a text over the limit, will fail the same way.
func RetryableCode(code string) bool {
	switch code {
	case CodeAIBadRequest, "text_too_long":
		return false
	}
	return true
}
