package gymbro

import (
	"context"
	"time"
)

// CodeBudgetExhausted refuses a post when the user's exchanges have used
// their daily token budget (429, Retry-After until the next UTC midnight).
const CodeBudgetExhausted = "budget_exhausted"

// UsageDay is the UTC day, YYYY-MM-DD, that tokens spent at t count against.
func UsageDay(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// UsageResets is when the UTC day of t ends and its budget resets.
func UsageResets(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC)
}

// BudgetExhausted is the error of a post refused by the daily token budget
// at now; it asks the client to come back when the day resets.
func BudgetExhausted(now time.Time) *Error {
	return &Error{Kind: KindRateLimited, Code: CodeBudgetExhausted, RetryAfter: UsageResets(now).Sub(now),
		Message: "You have used today's AI budget; it resets at midnight UTC."}
}

// UsageLedger keeps what users spent. The store keeps it, so every
// instance of a fleet on one PostgreSQL enforces the same budget.
type UsageLedger interface {
	// TokensUsed returns the tokens the user's exchanges used on day
	// (YYYY-MM-DD, UTC): what was charged as their prompts were sent, and
	// what their finishes added (see Message.BudgetTokens).
	TokensUsed(ctx context.Context, userID, day string) (int64, error)
	// ChargeTokens adds tokens to the user's count for day at once: the
	// estimate of a prompt sent to the model, counted before its reply
	// ends so that no cancel, failure or crash makes it free. The
	// exchange's finish then adds only the rest (see Result.Charged).
	ChargeTokens(ctx context.Context, userID, day string, tokens int64) error
}

// EstimateTokens is the budget's estimate of the tokens in text of n bytes
// when the model reports none: four bytes a token, rounded up.
func EstimateTokens(n int) int64 { return int64(n+3) / 4 }

// EstimatePrompt is the estimate of req's prompt tokens: the system prompt
// and every turn, the history included.
func (req *ModelRequest) EstimatePrompt() int64 {
	n := len(req.System)
	for _, t := range req.Turns {
		n += len(t.Content)
	}
	return EstimateTokens(n)
}

// BudgetTokens is what an exchange counts against its user's daily budget
// in all, charged of it having been counted when its prompt was sent: the
// tokens the model reported, or when it reported none and wrote a reply an
// estimate of the user's text and the reply; and never less than charged
// plus an estimate of the reply, so that a reported usage lower than the
// charge refunds nothing. Its finish adds BudgetTokens(charged) - charged.
func (m *Message) BudgetTokens(charged int64) int64 {
	n := m.Usage.TotalTokens
	if n == 0 {
		n = m.Usage.PromptTokens + m.Usage.CompletionTokens
	}
	if n == 0 && m.Reply != "" {
		n = EstimateTokens(len(m.Text) + len(m.Reply))
	}
	if charged > 0 {
		n = max(n, charged+EstimateTokens(len(m.Reply)))
	}
	return n
}
