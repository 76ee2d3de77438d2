package gymbro

import (
	"context"
	"time"
)

// EventType names an SSE event.
type EventType string

// Event types in the order a generation emits them. Exactly one of
// Completed, Error and Canceled ends every log.
const (
	EventQueued       EventType = "queued"
	EventWorking      EventType = "working"
	EventContentDelta EventType = "content_delta"
	EventCompleted    EventType = "completed"
	EventError        EventType = "error"
	EventCanceled     EventType = "canceled"
)

// Known reports whether t is one of the event types above.
func (t EventType) Known() bool {
	switch t {
	case EventQueued, EventWorking, EventContentDelta, EventCompleted, EventError, EventCanceled:
		return true
	}
	return false
}

// Terminal reports whether t ends a message's log.
func (t EventType) Terminal() bool {
	return t == EventCompleted || t == EventError || t == EventCanceled
}

// Event is one entry of a message's log, also the data of one SSE event.
// Seq is the SSE id: per message, starting at 1, gap-free.
type Event struct {
	MessageID      string    `json:"message_id"`
	Seq            int64     `json:"seq"`
	Type           EventType `json:"type"`
	At             time.Time `json:"at"`
	ConversationID string    `json:"conversation_id,omitempty"` // queued
	Status         Status    `json:"status,omitempty"`          // queued, working, terminal
	Delta          string    `json:"delta,omitempty"`           // content_delta
	Content        string    `json:"content,omitempty"`         // completed (full reply); error/canceled (partial)
	Model          string    `json:"model,omitempty"`           // completed; the first content_delta, when several models may answer
	FinishReason   string    `json:"finish_reason,omitempty"`   // completed
	Usage          *Usage    `json:"usage,omitempty"`           // completed
	Code           string    `json:"code,omitempty"`            // error
	Message        string    `json:"message,omitempty"`         // error
	Retryable      *bool     `json:"retryable,omitempty"`       // error
}

// Clone returns a copy of ev that shares nothing with it: what its
// pointers point to is copied too. Logs that keep events in memory hand
// out clones, so no reader or writer can change another's.
func (ev Event) Clone() Event {
	if ev.Usage != nil {
		u := *ev.Usage
		ev.Usage = &u
	}
	if ev.Retryable != nil {
		r := *ev.Retryable
		ev.Retryable = &r
	}
	return ev
}

// Validate checks what every event log requires of an event to append.
func (ev Event) Validate() error {
	if ev.MessageID == "" {
		return Errorf(KindInvalid, CodeValidation, "An event needs a message id.")
	}
	if !ev.Type.Known() {
		return Errorf(KindInvalid, CodeValidation, "Unknown event type %q.", ev.Type)
	}
	return nil
}

// CodeLogClosed is the error code of an append after the terminal event.
const CodeLogClosed = "log_closed"

// EventLog is the per-message, append-only, seq-numbered log that SSE
// subscribers replay and follow. The in-process and Redis Streams
// implementations pass the same contract suite (eventlogtest).
type EventLog interface {
	// Append assigns ev the next seq of ev.MessageID and stores it. After a
	// terminal event the log is closed: a further Append fails with
	// KindConflict (code log_closed), and the log expires after the TTL.
	Append(ctx context.Context, ev Event) (Event, error)

	// Read returns up to max events of the message with seq > after, in
	// order. A log that never existed or has expired reads as empty.
	Read(ctx context.Context, messageID string, after int64, max int) ([]Event, error)

	// Watch returns a channel that receives a value (coalesced, never
	// blocking the writer) whenever the message's log may have grown, and a
	// function that stops the watch. Register before Read so no append is
	// missed. Watching costs no goroutine per watcher.
	Watch(messageID string) (ch <-chan struct{}, stop func())

	// Ping reports whether the log can serve requests.
	Ping(ctx context.Context) error
	Close() error
}

// AppendNotifier is implemented by event logs that can call back on every
// append, from any instance, so a server can hold idle streams without a
// goroutine (and its stack) each.
type AppendNotifier interface {
	// OnAppend registers fn, called with the id of a message whose log may
	// have grown, or with "" when any log may have (a notification channel
	// reconnected and may have lost some). fn must not block. The returned
	// function unregisters fn.
	OnAppend(fn func(messageID string)) (stop func())
}
