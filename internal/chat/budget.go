package chat

import (
	"context"
	"time"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// chargeTimeout bounds the store call that charges a prompt.
const chargeTimeout = 10 * time.Second

// charge counts the estimate of req's prompt (the system prompt, the
// history and the text) against m's user's daily budget as the request
// goes to the model, so that an exchange canceled, failed or interrupted
// before its reply ends still pays for what it sent. The store call runs
// beside the model's request, never before it: the first token does not
// wait for it. wait blocks until it is done and reports what was charged:
// nothing without a budget, or when the store refused (the finish then
// counts the text's estimate, as it did before charges).
func (s *Service) charge(m *gymbro.Message, req *gymbro.ModelRequest) (wait func() int64) {
	if s.opts.DailyTokens <= 0 {
		return func() int64 { return 0 }
	}
	n, day := req.EstimatePrompt(), gymbro.UsageDay(s.opts.Now())
	done := make(chan int64, 1)
	go func() {
		// Not the generation's context: a cancel must not undo the charge.
		ctx, cancel := context.WithTimeout(context.Background(), chargeTimeout)
		defer cancel()
		if err := s.store.ChargeTokens(ctx, m.UserID, day, n); err != nil {
			s.logger.Warn("charge the prompt against the budget", "message_id", m.ID, "tokens", n, "err", err)
			n = 0
		}
		done <- n
	}()
	return func() int64 { return <-done }
}
