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

// Usage reads what users spent. The store keeps it, so every instance of a
// fleet on one PostgreSQL enforces the same budget.
type UsageReader interface {
	// TokensUsed returns the tokens the user's exchanges used on day
	// (YYYY-MM-DD, UTC): prompt and completion, as the model reported them.
	TokensUsed(ctx context.Context, userID, day string) (int64, error)
}

// BudgetTokens is what an exchange counts against its user's daily budget:
// the tokens the model reported, or when it reported none and wrote a reply
// an estimate of four characters a token of the user's text and the reply.
func (m *Message) BudgetTokens() int64 {
	if m.Usage.TotalTokens > 0 {
		return m.Usage.TotalTokens
	}
	if n := m.Usage.PromptTokens + m.Usage.CompletionTokens; n > 0 {
		return n
	}
	if m.Reply == "" {
		return 0 // nothing was generated
	}
	return int64(len(m.Text)+len(m.Reply)+3) / 4
}
