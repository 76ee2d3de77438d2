package main

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gymbro/gymbro-api/internal/gymbro"
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

// TestCanceledPromptsAreCharged: posts whose prompt reached the model and
// were canceled before its first token (the model never answers) still
// count their prompt's estimate, system prompt included, at once; once
// they reach the budget, the next post is refused. Before, each counted
// nothing, and the budget never refused.
func TestCanceledPromptsAreCharged(t *testing.T) {
	ai := newFakeOpenAI(t)
	a := startApp(t, map[string]string{
		"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": ai.URL + "/v1", "GYMBRO_AI_MODEL": "gpt-fake",
		"GYMBRO_AI_DAILY_TOKENS": "1500", "GYMBRO_MAX_RUNNING_PER_USER": "100", "GYMBRO_RATE_LIMIT": "0",
	})
	tok := a.user("canceler@example.com")
	system := a.main.Config.AISystemPrompt
	var charged int64
	for i := 0; charged < 1500; i++ {
		text := fmt.Sprintf("[hang] %d %s", i, strings.Repeat("How much should I squat? ", 60))
		text = strings.TrimSpace(text) // as the service stores it
		p := a.post(tok, text, "")
		waitFor(t, "the prompt to reach the model", func() bool {
			ai.mu.Lock()
			defer ai.mu.Unlock()
			return ai.calls[text] > 0
		})
		if r := a.do("POST", "/api/v1/messages/"+p.MessageID+"/cancel", tok, nil); r.status != http.StatusOK {
			t.Fatalf("cancel: %d %s", r.status, r.body)
		}
		charged += gymbro.EstimateTokens(len(system) + len(text))
		var u struct {
			TokensUsed int64 `json:"tokens_used"`
		}
		a.do("GET", "/api/v1/me/usage", tok, nil).json(t, &u)
		if u.TokensUsed != charged {
			t.Fatalf("after %d canceled posts: tokens_used %d, want the prompts' estimate %d", i+1, u.TokensUsed, charged)
		}
	}
	r := a.do("POST", "/api/v1/messages", tok, map[string]string{"text": "[hang] one more"})
	if r.status != http.StatusTooManyRequests || r.problem(t)["code"] != "budget_exhausted" {
		t.Fatalf("a post past the budget: %d %s", r.status, r.body)
	}
}
