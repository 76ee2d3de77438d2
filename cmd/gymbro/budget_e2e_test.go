package main

import (
	"net/http"
	"strconv"
	"testing"
	"time"
)

// TestDailyBudgetOverHTTP: with GYMBRO_AI_DAILY_TOKENS a user who used the
// day's budget is refused with 429 budget_exhausted and a Retry-After that
// runs to midnight UTC, /me/usage shows the count, and another user is
// unaffected.
func TestDailyBudgetOverHTTP(t *testing.T) {
	a := startApp(t, map[string]string{"GYMBRO_AI_DAILY_TOKENS": "10"})
	tok := a.user("budget@example.com")
	p := a.post(tok, "Plan my week.", "")
	if s := a.events(tok, p.MessageID, "", 0); s.data[len(s.data)-1].Usage.TotalTokens <= 10 {
		t.Fatalf("the demo reply used %+v tokens; the test needs more than the budget", s.data[len(s.data)-1].Usage)
	}
	var u struct {
		Day         string    `json:"day"`
		TokensUsed  int64     `json:"tokens_used"`
		TokensLimit *int64    `json:"tokens_limit"`
		ResetsAt    time.Time `json:"resets_at"`
	}
	a.do("GET", "/api/v1/me/usage", tok, nil).json(t, &u)
	now := time.Now().UTC()
	if u.TokensUsed <= 10 || u.TokensLimit == nil || *u.TokensLimit != 10 || u.Day != now.Format(time.DateOnly) || !u.ResetsAt.After(now) {
		t.Fatalf("usage %+v", u)
	}
	r := a.do("POST", "/api/v1/messages", tok, map[string]string{"text": "Again."})
	if r.status != http.StatusTooManyRequests || r.problem(t)["code"] != "budget_exhausted" {
		t.Fatalf("over the budget: %d %s", r.status, r.body)
	}
	secs, err := strconv.Atoi(r.header.Get("Retry-After"))
	if want := time.Until(u.ResetsAt); err != nil || secs <= 0 || time.Duration(secs)*time.Second > want+2*time.Second {
		t.Errorf("Retry-After %q, want about %v (until midnight UTC)", r.header.Get("Retry-After"), want)
	}
	a.post(a.user("other@example.com"), "Mine.", "")
}
