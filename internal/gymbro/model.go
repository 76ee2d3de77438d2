package gymbro

import "context"

// Roles of a turn.
const (
	RoleSystem    = "system"
	RoleUser      = "user"
	RoleAssistant = "assistant"
)

// Turn is one message of the conversation the model sees.
type Turn struct {
	Role    string
	Content string
}

// ModelRequest asks a model for the next assistant turn.
type ModelRequest struct {
	System string // the coach persona
	Turns  []Turn // earlier turns, oldest first, ending with the user's new text
	User   string // an opaque, stable id of the end user, for the provider's abuse monitoring

	// Answering, when set, is called once with the name of the model that
	// answers, before its first delta reaches emit. A model that routes to
	// several others calls it; a single model may not.
	Answering func(model string)
}

// ModelResult describes a finished reply.
type ModelResult struct {
	Model        string
	FinishReason string
	Usage        Usage
}

// AI error codes; each is documented in docs/API_CONTRACTS.md.
const (
	CodeAITimeout     = "ai_timeout"
	CodeAIRateLimited = "ai_rate_limited"
	CodeAIUnavailable = "ai_unavailable"
	CodeAIBadRequest  = "ai_bad_request"
)

// Model streams a reply.
type Model interface {
	// Name is what completed.model reports when the provider names none.
	Name() string

	// Stream generates a reply to req, calling emit with each chunk of text
	// as it arrives. An error from emit stops the stream and is returned.
	// Failures are *Error with the AI codes above; ctx ending returns
	// ctx's error.
	Stream(ctx context.Context, req ModelRequest, emit func(delta string) error) (ModelResult, error)
}
