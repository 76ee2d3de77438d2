package chat

import (
	"context"
	"time"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// DailyUsage is what a user's exchanges spent on one UTC day, against the
// daily token budget: the body of GET /api/v1/me/usage.
type DailyUsage struct {
	Day         string    `json:"day"` // YYYY-MM-DD, UTC
	TokensUsed  int64     `json:"tokens_used"`
	TokensLimit *int64    `json:"tokens_limit"` // null: unlimited
	ResetsAt    time.Time `json:"resets_at"`
}

// Usage returns the caller's token use today (UTC).
func (s *Service) Usage(ctx context.Context, p *gymbro.Principal) (DailyUsage, error) {
	now := s.opts.Now().UTC()
	u := DailyUsage{Day: gymbro.UsageDay(now), ResetsAt: gymbro.UsageResets(now)}
	if s.opts.DailyTokens > 0 {
		u.TokensLimit = ptr(s.opts.DailyTokens)
	}
	n, err := s.store.TokensUsed(ctx, p.UID, u.Day)
	if err != nil {
		return DailyUsage{}, err
	}
	u.TokensUsed = n
	return u, nil
}
