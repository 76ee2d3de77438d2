package gymbro

import (
	"context"
	"time"
)

// Status is where an exchange is in its life.
type Status string

// Statuses of an exchange. Completed, Failed, Canceled and Interrupted are
// terminal: once there, an exchange never changes again.
const (
	StatusQueued      Status = "queued"
	StatusWorking     Status = "working"
	StatusCompleted   Status = "completed"
	StatusFailed      Status = "error"
	StatusCanceled    Status = "canceled"
	StatusInterrupted Status = "interrupted" // its instance stopped or died mid-generation
)

// Terminal reports whether s is a final status.
func (s Status) Terminal() bool {
	switch s {
	case StatusCompleted, StatusFailed, StatusCanceled, StatusInterrupted:
		return true
	}
	return false
}

// Usage counts the tokens a model spent on one reply.
type Usage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	TotalTokens      int64 `json:"total_tokens"`
}

// Conversation is a thread of exchanges owned by one user.
type Conversation struct {
	ID        string    `json:"id"`
	UserID    string    `json:"user_id"`
	Title     string    `json:"title"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Message is one exchange: the user's text and the coach's reply, known to
// clients by its id (the message_id).
type Message struct {
	ID             string     `json:"id"`
	ConversationID string     `json:"conversation_id"`
	UserID         string     `json:"user_id"`
	Provider       string     `json:"provider"`
	Text           string     `json:"text"`
	Reply          string     `json:"reply"`
	Status         Status     `json:"status"`
	ErrorCode      string     `json:"error_code,omitempty"`
	ErrorMessage   string     `json:"error_message,omitempty"`
	Model          string     `json:"model,omitempty"`
	FinishReason   string     `json:"finish_reason,omitempty"`
	Usage          Usage      `json:"usage"`
	TraceID        string     `json:"trace_id,omitempty"`
	LastSeq        int64      `json:"last_seq"` // seq of the terminal event once terminal; 0 before
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	CompletedAt    *time.Time `json:"completed_at,omitempty"`
}

// Lease is a generation's hold on a running exchange: Owner (an instance
// id) holds it until Until and renews it while the reply streams. An
// exchange whose lease lapses is ended as interrupted by whichever
// instance recovers it.
type Lease struct {
	Owner string
	Until time.Time
}

// NewMessage is what a client's POST becomes before it is stored.
type NewMessage struct {
	ID                string // chosen by the caller (a UUID)
	ConversationID    string // empty: start a new conversation (its id is NewConversationID)
	NewConversationID string
	UserID            string
	Provider          string
	Text              string
	TraceID           string
	IdempotencyKey    string // empty: none
	RequestHash       string // hash of the request body, compared on an idempotent replay
	// MaxRunning > 0 refuses the exchange (KindRateLimited, code
	// too_many_running) when the user already has this many queued or
	// working, checked in the creating transaction so concurrent posts, on
	// any instance, cannot overshoot it. An idempotent replay is answered
	// before the check.
	MaxRunning int
	// DailyTokens > 0 refuses the exchange (KindRateLimited, code
	// budget_exhausted) when the user's exchanges already used this many
	// tokens on the UTC day of Now. Exchanges running when the budget runs
	// out still finish, so it can be exceeded by at most their tokens.
	DailyTokens int64
	// Lease is the generation's hold: the exchange is stored already taken
	// by it (status working), because the instance that accepts a post is
	// the one that generates its reply, at once. Taking it in the creating
	// transaction spares every post a second write.
	Lease Lease
	Now   time.Time
}

// Result is how a generation ended; the store records it atomically with the
// outbox record that syncs the exchange to Supabase.
type Result struct {
	Status       Status // a terminal status
	Reply        string
	ErrorCode    string
	ErrorMessage string
	Model        string
	FinishReason string
	Usage        Usage
	LastSeq      int64 // the seq of the terminal event that will be appended
	At           time.Time
	// Charged is what the exchange's generation already added to the
	// user's token count (UsageLedger.ChargeTokens) as its prompt was sent;
	// finishing adds only the rest.
	Charged int64
}

// Finished returns a copy of m with the terminal result r applied at at:
// the exchange as FinishMessage stores it.
func (m *Message) Finished(r Result, at time.Time) *Message {
	done := *m
	done.Status, done.Reply, done.ErrorCode, done.ErrorMessage = r.Status, r.Reply, r.ErrorCode, r.ErrorMessage
	done.Model, done.FinishReason, done.Usage, done.LastSeq = r.Model, r.FinishReason, r.Usage, r.LastSeq
	done.UpdatedAt, done.CompletedAt = at, &at
	return &done
}

// Page asks for one page of a cursor-paginated list, newest first.
type Page struct {
	Cursor string // opaque, from the previous page's NextCursor; empty for the first page
	Limit  int
}

// Store persists conversations, exchanges and the sync outbox. SQLite and
// PostgreSQL implement it and pass the same contract suite (storetest).
type Store interface {
	// CreateMessage stores a new exchange, working under in.Lease. It fails
	// with KindInvalid (code lease_missing) without a lease owner. With an
	// IdempotencyKey that the user used before it returns the earlier
	// exchange and replayed=true, or an *Error with code
	// idempotency_conflict (KindConflict) when the RequestHash differs. A
	// ConversationID the user does not own fails with KindNotFound, code
	// conversation_not_found. See NewMessage.MaxRunning for
	// too_many_running.
	CreateMessage(ctx context.Context, in NewMessage) (m *Message, replayed bool, err error)

	// Message returns the user's exchange, or KindNotFound (code
	// message_not_found) when it does not exist or is another user's.
	Message(ctx context.Context, userID, id string) (*Message, error)

	// MessageByID returns an exchange whoever owns it, for internal use.
	MessageByID(ctx context.Context, id string) (*Message, error)

	// RenewLease extends owner's lease on a working exchange; KindConflict
	// when owner no longer holds it.
	RenewLease(ctx context.Context, id, owner string, leaseUntil time.Time) error

	// SaveReply records the reply so far of a working exchange (a checkpoint,
	// so a crash keeps the partial text).
	SaveReply(ctx context.Context, id, reply string) error

	// FinishMessage records the terminal result of m and, in the same
	// transaction, enqueues the exchange's chat record in the outbox and
	// adds its tokens to the user's count for the UTC day of r.At; it
	// returns m.Finished(r, r.At). m is the exchange as CreateMessage
	// returned it or as read since: its id names it, and its fields set at
	// creation (which never change) fill the record, which is therefore
	// built before the write and written with it in one statement where
	// the dialect allows. It fails with KindConflict (message_terminal)
	// when the exchange is already terminal, and with KindInternal when
	// m's creation fields are not the stored ones.
	FinishMessage(ctx context.Context, m *Message, r Result) (*Message, error)

	// DiscardMessage deletes an exchange that owner holds and has not
	// finished, with its conversation when no other exchange is in it: the
	// undo of a CreateMessage whose request is then refused before its
	// generation runs, so a retry with the same idempotency key runs anew.
	// KindConflict (message_not_held) when it has finished or another
	// holds it.
	DiscardMessage(ctx context.Context, id, owner string) error

	// ExpiredLeases returns exchanges that are queued or working and whose
	// lease ended before now (or that have no lease, as an earlier version
	// stored them queued, and were created before now), at most limit of
	// them, oldest first.
	ExpiredLeases(ctx context.Context, now time.Time, limit int) ([]*Message, error)

	// Conversations lists the user's conversations, most recently updated first.
	Conversations(ctx context.Context, userID string, p Page) (items []*Conversation, next string, err error)

	// ConversationMessages lists one of the user's conversations, newest
	// first; KindNotFound (conversation_not_found) when it is not theirs.
	ConversationMessages(ctx context.Context, userID, conversationID string, p Page) (items []*Message, next string, err error)

	// History returns up to limit finished exchanges of a conversation that
	// precede the exchange before, oldest first: the model's context.
	History(ctx context.Context, conversationID, before string, limit int) ([]*Message, error)

	// CountRunning counts the user's exchanges that are queued or working.
	CountRunning(ctx context.Context, userID string) (int, error)

	UsageLedger
	Outbox

	// Ping reports whether the store can serve requests.
	Ping(ctx context.Context) error
	Close() error
}
