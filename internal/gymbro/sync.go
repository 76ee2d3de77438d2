package gymbro

import (
	"context"
	"time"
)

// ChatRecord is an exchange as it is written to Supabase's
// public.chat_records table.
type ChatRecord struct {
	ID       string `json:"id"`
	UserID   string `json:"user_id"` // the uid (see UserID)
	Provider string `json:"provider"`
	// ProviderUID is the user's id as their provider knows it (the token's
	// sub). Records enqueued by an earlier version lack it; their UserID is
	// that sub.
	ProviderUID      string         `json:"provider_uid,omitempty"`
	ConversationID   string         `json:"conversation_id"`
	UserMessage      string         `json:"user_message"`
	AIResponse       string         `json:"ai_response"`
	Status           Status         `json:"status"`
	ErrorCode        *string        `json:"error_code"`
	Model            *string        `json:"model"`
	PromptTokens     int64          `json:"prompt_tokens"`
	CompletionTokens int64          `json:"completion_tokens"`
	TotalTokens      int64          `json:"total_tokens"`
	TraceID          *string        `json:"trace_id"`
	Metadata         map[string]any `json:"metadata"`
	CreatedAt        time.Time      `json:"created_at"`
	CompletedAt      *time.Time     `json:"completed_at"`
}

// OutboxItem is a chat record waiting to be delivered.
type OutboxItem struct {
	ID        string // the message id
	Record    ChatRecord
	Attempts  int
	CreatedAt time.Time
	LastError string
}

// OutboxStats summarises the outbox.
type OutboxStats struct {
	Pending       int
	Dead          int
	OldestPending time.Time // zero when none pending
}

// Outbox is the durable queue of chat records, part of the Store so a
// record is enqueued in the same transaction that finishes its exchange.
type Outbox interface {
	// ClaimOutbox leases up to limit pending items that are due at now to
	// owner until leaseUntil, so concurrent workers (even on other
	// instances) never hold the same item.
	ClaimOutbox(ctx context.Context, owner string, now, leaseUntil time.Time, limit int) ([]OutboxItem, error)
	// AckOutbox removes delivered items.
	AckOutbox(ctx context.Context, ids []string) error
	// RetryOutbox releases an item to be tried again at next.
	RetryOutbox(ctx context.Context, id string, next time.Time, lastErr string) error
	// BuryOutbox parks an item as dead with the reason; it is not retried
	// until RedriveOutbox.
	BuryOutbox(ctx context.Context, id, reason string) error
	// RedriveOutbox makes every dead item pending again and returns how many.
	RedriveOutbox(ctx context.Context) (int, error)
	// OutboxStats counts pending and dead items.
	OutboxStats(ctx context.Context) (OutboxStats, error)
}

// Sync error codes.
const (
	CodeSyncRejected    = "sync_rejected"    // permanent: no retry can fix it
	CodeSyncUnavailable = "sync_unavailable" // transient: retry later
)

// ChatSink delivers chat records to where the team keeps them (Supabase).
type ChatSink interface {
	// Upsert writes records idempotently on id. An *Error of KindUnavailable,
	// KindTimeout or KindRateLimited (with RetryAfter when the server said)
	// is transient; any other error is permanent for these records.
	Upsert(ctx context.Context, records []ChatRecord) error
}

// ChatRecord is the row that finishing m enqueues for Supabase.
func (m *Message) ChatRecord() ChatRecord {
	meta := map[string]any{"last_seq": m.LastSeq}
	if m.FinishReason != "" {
		meta["finish_reason"] = m.FinishReason
	}
	if m.ErrorMessage != "" {
		meta["error_message"] = m.ErrorMessage
	}
	if m.Provider != ProviderSupabase && m.Provider != "" {
		// provider_uid alone does not tell two OIDC issuers' users apart;
		// the uid does (it names the issuer).
		meta["uid"] = m.UserID
	}
	return ChatRecord{
		ID:               m.ID,
		UserID:           m.UserID,
		Provider:         m.Provider,
		ProviderUID:      ProviderUIDOf(m.Provider, m.UserID),
		ConversationID:   m.ConversationID,
		UserMessage:      m.Text,
		AIResponse:       m.Reply,
		Status:           m.Status,
		ErrorCode:        nonEmpty(m.ErrorCode),
		Model:            nonEmpty(m.Model),
		PromptTokens:     m.Usage.PromptTokens,
		CompletionTokens: m.Usage.CompletionTokens,
		TotalTokens:      m.Usage.TotalTokens,
		TraceID:          nonEmpty(m.TraceID),
		Metadata:         meta,
		CreatedAt:        m.CreatedAt,
		CompletedAt:      m.CompletedAt,
	}
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
