package chat_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gymbro/gymbro-api/internal/chat"
	"github.com/gymbro/gymbro-api/internal/gymbro"
)

func TestPostCompletes(t *testing.T) {
	e := newEnv(t, &script{chunks: []string{"Squat ", "twice ", "a week."}, usage: gymbro.Usage{PromptTokens: 9, CompletionTokens: 5, TotalTokens: 14}})
	m := e.post(t, "  plan?  ")
	if m.Status != gymbro.StatusQueued || m.Text != "plan?" {
		t.Fatalf("posted %+v, want queued with trimmed text", m)
	}
	evs := e.events(t, m.ID)
	want := []gymbro.EventType{gymbro.EventQueued, gymbro.EventWorking, gymbro.EventContentDelta, gymbro.EventContentDelta, gymbro.EventContentDelta, gymbro.EventCompleted}
	if got := types(t, evs); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	done := last(evs)
	if done.Content != "Squat twice a week." || done.Model != "scripted-1" || done.Usage.TotalTokens != 14 {
		t.Errorf("completed event %+v", done)
	}
	got := e.stored(t, m.ID)
	if got.Status != gymbro.StatusCompleted || got.Reply != "Squat twice a week." || got.LastSeq != done.Seq {
		t.Errorf("stored %+v", got)
	}
	if err := e.svc.Shutdown(context.Background()); err != nil { // waits for the generation's last step
		t.Fatal(err)
	}
	if started, finished := e.obs.started.Load(), e.obs.finished.Load(); started != 1 || finished != 1 {
		t.Errorf("observer saw %d started, %d finished", started, finished)
	}
	if u, err := e.svc.Usage(context.Background(), alice); err != nil || u.TokensUsed != 14 || u.TokensLimit != nil {
		t.Errorf("Usage = %+v, %v; want 14 tokens, no limit", u, err)
	}
}

func TestPostValidates(t *testing.T) {
	e := newEnv(t, &script{})
	for _, c := range []struct {
		in   chat.PostInput
		code string
	}{
		{chat.PostInput{Text: "   "}, chat.CodeTextEmpty},
		{chat.PostInput{Text: strings.Repeat("x", 8001)}, chat.CodeTextTooLong},
		{chat.PostInput{Text: "bad \xff"}, chat.CodeTextInvalidUTF8},
		{chat.PostInput{Text: "nul \x00 inside"}, chat.CodeTextControlCharacter},
		{chat.PostInput{Text: "escape \x1b[31m"}, chat.CodeTextControlCharacter},
		{chat.PostInput{Text: "trailing bell\a"}, chat.CodeTextControlCharacter},
		{chat.PostInput{Text: "hi", ConversationID: "nope"}, chat.CodeInvalidConversationID},
		{chat.PostInput{Text: "hi", IdempotencyKey: "tab\there"}, chat.CodeIdempotencyKeyInvalid},
		{chat.PostInput{Text: "hi", ConversationID: "01900000-0000-7000-8000-00000000ffff"}, gymbro.CodeConversationNotFound},
	} {
		_, _, err := e.svc.Post(context.Background(), alice, c.in)
		if gymbro.ErrorCode(err) != c.code {
			t.Errorf("Post(%+v) = %v, want %s", c.in, err, c.code)
		}
	}
	if n := e.model.calls.Load(); n != 0 {
		t.Errorf("the model was called %d times for refused posts", n)
	}
	if _, _, err := e.svc.Post(context.Background(), alice, chat.PostInput{Text: "tab\there,\r\nand a new line"}); err != nil {
		t.Errorf("tab, CR and LF refused: %v", err)
	}
}

func TestRunningCapRefuses(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	e := newEnv(t, &script{chunks: []string{"ok"}, hold: hold}, func(o *chat.Options) { o.MaxRunning = 2 })
	e.post(t, "one")
	e.post(t, "two")
	_, _, err := e.svc.Post(context.Background(), alice, chat.PostInput{Text: "three"})
	var ge *gymbro.Error
	if !errors.As(err, &ge) || ge.Code != gymbro.CodeTooManyRunning || ge.Kind != gymbro.KindRateLimited || ge.RetryAfter <= 0 {
		t.Fatalf("third post = %v, want too_many_running with Retry-After", err)
	}
	if _, _, err := e.svc.Post(context.Background(), &gymbro.Principal{UID: "bob"}, chat.PostInput{Text: "mine"}); err != nil {
		t.Fatalf("the cap is per user, but bob was refused: %v", err)
	}
}

// limiter allows the first n calls per key.
type limiter struct {
	n    int
	seen map[string]int
}

func (l *limiter) Allow(_ context.Context, key string) (bool, time.Duration, error) {
	l.seen[key]++
	if l.seen[key] > l.n {
		return false, 7 * time.Second, nil
	}
	return true, 0, nil
}

func TestRateLimitRefuses(t *testing.T) {
	lim := &limiter{n: 1, seen: map[string]int{}}
	e := newEnv(t, &script{chunks: []string{"ok"}}, func(o *chat.Options) { o.Limiter = lim })
	e.events(t, e.post(t, "one").ID)
	_, _, err := e.svc.Post(context.Background(), alice, chat.PostInput{Text: "two"})
	var ge *gymbro.Error
	if !errors.As(err, &ge) || ge.Code != gymbro.CodeRateLimited || ge.RetryAfter != 7*time.Second {
		t.Fatalf("second post = %v, want rate_limited, Retry-After 7s", err)
	}
	if lim.seen["msg:alice"] != 2 {
		t.Errorf("limiter keys %v", lim.seen)
	}
}

func TestIdempotentReplayStartsNothing(t *testing.T) {
	e := newEnv(t, &script{chunks: []string{"ok"}})
	in := chat.PostInput{IdempotencyKey: "k-1"}
	first := e.post(t, "hello", in)
	e.events(t, first.ID)
	again, replayed, err := e.svc.Post(context.Background(), alice, chat.PostInput{Text: "hello", IdempotencyKey: "k-1"})
	if err != nil || !replayed || again.ID != first.ID || again.Status != gymbro.StatusCompleted {
		t.Fatalf("replay = %+v, %v, %v", again, replayed, err)
	}
	if n := e.model.calls.Load(); n != 1 {
		t.Errorf("model called %d times, want 1", n)
	}
	_, _, err = e.svc.Post(context.Background(), alice, chat.PostInput{Text: "other text", IdempotencyKey: "k-1"})
	if gymbro.ErrorCode(err) != "idempotency_conflict" {
		t.Errorf("same key, other body = %v, want idempotency_conflict", err)
	}
}

func TestHistoryOnlyForFollowUps(t *testing.T) {
	e := newEnv(t, &script{chunks: []string{"answer"}}, func(o *chat.Options) { o.SystemPrompt = "coach" })
	first := e.post(t, "first question")
	e.events(t, first.ID)
	second := e.post(t, "follow-up", chat.PostInput{ConversationID: first.ConversationID})
	e.events(t, second.ID)
	reqs := e.model.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d model requests", len(reqs))
	}
	if len(reqs[0].Turns) != 1 || reqs[0].System != "coach" || reqs[0].User != "alice" {
		t.Errorf("first request %+v, want only the new text", reqs[0])
	}
	want := []gymbro.Turn{{Role: gymbro.RoleUser, Content: "first question"}, {Role: gymbro.RoleAssistant, Content: "answer"}, {Role: gymbro.RoleUser, Content: "follow-up"}}
	if !slices.Equal(reqs[1].Turns, want) {
		t.Errorf("follow-up turns %+v, want %+v", reqs[1].Turns, want)
	}
}

func TestHistoryBudgetKeepsTheLatest(t *testing.T) {
	e := newEnv(t, &script{chunks: []string{"0123456789"}}, func(o *chat.Options) { o.HistoryChars = 25 })
	first := e.post(t, "aaaaaaaaaa")
	e.events(t, first.ID)
	in := chat.PostInput{ConversationID: first.ConversationID}
	e.events(t, e.post(t, "bbbbbbbbbb", in).ID)
	e.events(t, e.post(t, "now", in).ID)
	reqs := e.model.requests()
	turns := reqs[2].Turns
	if len(turns) != 3 || turns[0].Content != "bbbbbbbbbb" {
		t.Errorf("turns %+v, want the latest exchange (20 chars) within 25 and the new text", turns)
	}
}

func TestModelErrorBeforeFirstChunk(t *testing.T) {
	for _, c := range []struct {
		err       error
		code      string
		retryable bool
	}{
		{gymbro.Errorf(gymbro.KindUnavailable, gymbro.CodeAIUnavailable, "down"), gymbro.CodeAIUnavailable, true},
		{gymbro.Errorf(gymbro.KindTimeout, gymbro.CodeAITimeout, "no first chunk in time"), gymbro.CodeAITimeout, true},
		{gymbro.Errorf(gymbro.KindRateLimited, gymbro.CodeAIRateLimited, "slow down"), gymbro.CodeAIRateLimited, true},
		{gymbro.Errorf(gymbro.KindInvalid, gymbro.CodeAIBadRequest, "bad"), gymbro.CodeAIBadRequest, false},
		{errors.New("a bug, not an *Error"), gymbro.CodeAIUnavailable, true},
	} {
		t.Run(c.code, func(t *testing.T) {
			e := newEnv(t, &script{err: c.err})
			m := e.post(t, "hi")
			evs := e.events(t, m.ID)
			end := last(evs)
			if end.Type != gymbro.EventError || end.Code != c.code || end.Retryable == nil || *end.Retryable != c.retryable {
				t.Fatalf("terminal %+v, want error %s retryable=%v", end, c.code, c.retryable)
			}
			if got := e.stored(t, m.ID); got.Status != gymbro.StatusFailed || got.ErrorCode != c.code {
				t.Errorf("stored %s %s", got.Status, got.ErrorCode)
			}
			if strings.Contains(end.Message, "a bug") {
				t.Errorf("an internal error leaked to the client: %q", end.Message)
			}
		})
	}
}

func TestModelErrorAfterChunksKeepsThePartialReply(t *testing.T) {
	e := newEnv(t, &script{chunks: []string{"Half ", "a plan"}, err: gymbro.Errorf(gymbro.KindTimeout, gymbro.CodeAITimeout, "idle")})
	m := e.post(t, "hi")
	evs := e.events(t, m.ID)
	want := []gymbro.EventType{gymbro.EventQueued, gymbro.EventWorking, gymbro.EventContentDelta, gymbro.EventContentDelta, gymbro.EventError}
	if got := types(t, evs); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	if got := e.stored(t, m.ID); got.Reply != "Half a plan" || got.ErrorCode != gymbro.CodeAITimeout {
		t.Errorf("stored reply %q code %s, want the partial reply", got.Reply, got.ErrorCode)
	}
}

func TestCancelWhileWorking(t *testing.T) {
	pause := make(chan struct{})
	e := newEnv(t, &script{chunks: []string{"first ", "never"}, pause: map[int]chan struct{}{0: pause}})
	m := e.post(t, "hi")
	e.events(t, m.ID, func(ev gymbro.Event) bool { return ev.Type == gymbro.EventContentDelta })
	got, err := e.svc.Cancel(context.Background(), alice, m.ID)
	if err != nil || got.Status != gymbro.StatusCanceled || got.Reply != "first " {
		t.Fatalf("Cancel = %+v, %v", got, err)
	}
	if end := last(e.events(t, m.ID)); end.Type != gymbro.EventCanceled {
		t.Errorf("terminal %+v", end)
	}
	if again, err := e.svc.Cancel(context.Background(), alice, m.ID); err != nil || again.Status != gymbro.StatusCanceled {
		t.Errorf("a second cancel = %+v, %v; want a no-op", again, err)
	}
}

func TestCancelWhileRunningOnAnotherInstance(t *testing.T) {
	e := newEnv(t, &script{})
	ctx := context.Background()
	// Stored (by another instance, say) but not generating here.
	m, _, err := e.store.CreateMessage(ctx, gymbro.NewMessage{ID: "01900000-0000-7000-8000-0000000000a1",
		NewConversationID: "01900000-0000-7000-8000-0000000000a2", UserID: "alice", Provider: "supabase", Text: "hi",
		Lease: gymbro.Lease{Owner: "another-instance", Until: time.Now().Add(time.Minute)}, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.svc.Cancel(ctx, alice, m.ID)
	if err != nil || got.Status != gymbro.StatusCanceled {
		t.Fatalf("Cancel = %+v, %v", got, err)
	}
	if evs := e.events(t, m.ID); last(evs).Type != gymbro.EventCanceled {
		t.Errorf("events %+v", evs)
	}
	if _, err := e.svc.Cancel(ctx, &gymbro.Principal{UID: "mallory"}, m.ID); gymbro.ErrorCode(err) != gymbro.CodeMessageNotFound {
		t.Errorf("another user's cancel = %v, want message_not_found", err)
	}
}

func TestCancelFinishedIsRefused(t *testing.T) {
	e := newEnv(t, &script{chunks: []string{"done"}})
	m := e.post(t, "hi")
	e.events(t, m.ID)
	if _, err := e.svc.Cancel(context.Background(), alice, m.ID); gymbro.ErrorCode(err) != chat.CodeAlreadyFinished {
		t.Fatalf("Cancel after completion = %v, want already_finished", err)
	}
}

func TestShutdownInterruptsGenerations(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	e := newEnv(t, &script{chunks: []string{"x"}, hold: hold})
	m := e.post(t, "hi")
	e.events(t, m.ID, func(ev gymbro.Event) bool { return ev.Type == gymbro.EventWorking })
	if err := e.svc.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if end := last(e.events(t, m.ID)); end.Type != gymbro.EventError || end.Code != gymbro.CodeInterrupted {
		t.Fatalf("terminal %+v, want error interrupted", end)
	}
	if e.svc.Running() != 0 {
		t.Errorf("%d generations still running", e.svc.Running())
	}
}

func TestBudgetRefusesOverTheLimit(t *testing.T) {
	e := newEnv(t, &script{chunks: []string{"ok"}, usage: gymbro.Usage{TotalTokens: 60}}, func(o *chat.Options) { o.DailyTokens = 100 })
	e.events(t, e.post(t, "one").ID)
	e.events(t, e.post(t, "two").ID) // started at 60 < 100, finishes at 120
	_, _, err := e.svc.Post(context.Background(), alice, chat.PostInput{Text: "three"})
	var ge *gymbro.Error
	if !errors.As(err, &ge) || ge.Code != gymbro.CodeBudgetExhausted || ge.RetryAfter <= 0 || ge.RetryAfter > 24*time.Hour {
		t.Fatalf("third post = %v, want budget_exhausted with Retry-After until midnight", err)
	}
	if e.obs.budget.Load() != 1 {
		t.Errorf("budget refusals counted %d", e.obs.budget.Load())
	}
	u, err := e.svc.Usage(context.Background(), alice)
	if err != nil || u.TokensUsed != 120 || u.TokensLimit == nil || *u.TokensLimit != 100 || !u.ResetsAt.After(time.Now()) {
		t.Fatalf("Usage = %+v, %v", u, err)
	}
	if _, _, err := e.svc.Post(context.Background(), &gymbro.Principal{UID: "bob"}, chat.PostInput{Text: "mine"}); err != nil {
		t.Fatalf("bob has his own budget: %v", err)
	}
}

// TestBudgetChargesSentPrompts: a prompt counts against the budget once it
// is sent, whatever becomes of its reply: canceled or interrupted by a
// shutdown before the first delta, it is still charged its estimate (the
// system prompt, the history and the text), and the budget then refuses.
func TestBudgetChargesSentPrompts(t *testing.T) {
	system := strings.Repeat("You are a coach. ", 20) // 340 bytes
	text := strings.Repeat("How do I squat? ", 120)   // 1,920 bytes
	want := gymbro.EstimateTokens(len(system) + len(strings.TrimSpace(text)))
	e := newEnv(t, &script{chunks: []string{"never sent"}, hold: make(chan struct{})},
		func(o *chat.Options) { o.DailyTokens = 500; o.SystemPrompt = system })
	ctx := context.Background()

	m := e.post(t, text)
	waitCalls(t, e.model, 1)
	if _, err := e.svc.Cancel(ctx, alice, m.ID); err != nil {
		t.Fatal(err)
	}
	if u, _ := e.svc.Usage(ctx, alice); u.TokensUsed != want {
		t.Fatalf("a prompt canceled before its first delta counted %d tokens, want its estimate %d", u.TokensUsed, want)
	}
	if _, _, err := e.svc.Post(ctx, alice, chat.PostInput{Text: "again"}); gymbro.ErrorCode(err) != gymbro.CodeBudgetExhausted {
		t.Fatalf("a post after the canceled one = %v, want budget_exhausted", err)
	}

	bob := &gymbro.Principal{UID: "bob", Provider: gymbro.ProviderSupabase}
	if _, _, err := e.svc.Post(ctx, bob, chat.PostInput{Text: text}); err != nil {
		t.Fatal(err)
	}
	waitCalls(t, e.model, 2)
	if err := e.svc.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if u, _ := e.svc.Usage(ctx, bob); u.TokensUsed != want {
		t.Fatalf("a prompt interrupted by a shutdown counted %d tokens, want %d", u.TokensUsed, want)
	}
}

// waitCalls waits until the model has been asked n times.
func waitCalls(t *testing.T, m *script, n int32) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for m.calls.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("the model was asked %d times, want %d", m.calls.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}
