package modelrouter_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/modelrouter"
	"github.com/gymbro/gymbro-api/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var _ gymbro.Model = (*modelrouter.Router)(nil)

// fakeModel answers each call with its script; n counts calls from 1.
type fakeModel struct {
	name   string
	mu     sync.Mutex
	calls  int
	script func(ctx context.Context, n int, emit func(string) error) (gymbro.ModelResult, error)
}

func (f *fakeModel) Name() string { return f.name }

func (f *fakeModel) Stream(ctx context.Context, req gymbro.ModelRequest, emit func(string) error) (gymbro.ModelResult, error) {
	f.mu.Lock()
	f.calls++
	n := f.calls
	f.mu.Unlock()
	if req.Answering != nil {
		return gymbro.ModelResult{}, errors.New("the router passed Answering down")
	}
	return f.script(ctx, n, emit)
}

func (f *fakeModel) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// answer streams deltas and succeeds.
func answer(deltas ...string) func(context.Context, int, func(string) error) (gymbro.ModelResult, error) {
	return func(_ context.Context, _ int, emit func(string) error) (gymbro.ModelResult, error) {
		for _, d := range deltas {
			if err := emit(d); err != nil {
				return gymbro.ModelResult{}, err
			}
		}
		return gymbro.ModelResult{Model: "provider-id", FinishReason: "stop", Usage: gymbro.Usage{PromptTokens: 10, CompletionTokens: int64(len(deltas)), TotalTokens: 10 + int64(len(deltas))}}, nil
	}
}

// failing streams deltas, then fails with code.
func failing(code string, deltas ...string) func(context.Context, int, func(string) error) (gymbro.ModelResult, error) {
	return func(_ context.Context, _ int, emit func(string) error) (gymbro.ModelResult, error) {
		for _, d := range deltas {
			if err := emit(d); err != nil {
				return gymbro.ModelResult{}, err
			}
		}
		return gymbro.ModelResult{}, aiError(code)
	}
}

func aiError(code string) *gymbro.Error {
	kind := map[string]gymbro.Kind{
		gymbro.CodeAIUnavailable: gymbro.KindUnavailable, gymbro.CodeAIRateLimited: gymbro.KindRateLimited,
		gymbro.CodeAITimeout: gymbro.KindTimeout, gymbro.CodeAIBadRequest: gymbro.KindUpstream,
	}[code]
	return gymbro.Errorf(kind, code, "fake %s", code)
}

// recorder is an Observer that keeps what it was told.
type recorder struct {
	mu     sync.Mutex
	events []string
	states map[string]int
	tokens map[string]int64
}

func (r *recorder) add(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, fmt.Sprintf(format, args...))
}

func (r *recorder) ModelRequest(model, outcome string) { r.add("request %s %s", model, outcome) }
func (r *recorder) ModelFailure(model, code string)    { r.add("failure %s %s", model, code) }
func (r *recorder) ModelFallback(from, to string)      { r.add("fallback %s %s", from, to) }
func (r *recorder) ModelBreaker(model string, state int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.states == nil {
		r.states = map[string]int{}
	}
	r.states[model] = state
}
func (r *recorder) ModelTokens(model string, u gymbro.Usage) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tokens == nil {
		r.tokens = map[string]int64{}
	}
	r.tokens[model] += u.TotalTokens
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ev := r.events
	r.events = nil
	return ev
}

func (r *recorder) state(model string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.states[model]
}

type fixture struct {
	primary, backup *fakeModel
	router          *modelrouter.Router
	clock           *testenv.Clock
	obs             *recorder
}

func newFixture(t *testing.T, primary, backup func(context.Context, int, func(string) error) (gymbro.ModelResult, error)) *fixture {
	t.Helper()
	f := &fixture{
		primary: &fakeModel{name: "gpt-x", script: primary},
		backup:  &fakeModel{name: "qwen-y", script: backup},
		clock:   testenv.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)),
		obs:     &recorder{},
	}
	r, err := modelrouter.New([]modelrouter.Route{{Name: "primary", Model: f.primary}, {Name: "backup", Model: f.backup}},
		modelrouter.Options{Now: f.clock.Now, Observer: f.obs, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	f.router = r
	return f
}

// reply is what one Stream call produced.
type reply struct {
	deltas    []string
	answering []string
	res       gymbro.ModelResult
	err       error
}

func (f *fixture) stream(ctx context.Context) reply {
	var out reply
	req := gymbro.ModelRequest{Turns: []gymbro.Turn{{Role: gymbro.RoleUser, Content: "hi"}},
		Answering: func(name string) { out.answering = append(out.answering, name) }}
	out.res, out.err = f.router.Stream(ctx, req, func(d string) error {
		out.deltas = append(out.deltas, d)
		return nil
	})
	return out
}

func TestFirstModelAnswers(t *testing.T) {
	f := newFixture(t, answer("Squat ", "deep."), answer("never"))
	got := f.stream(t.Context())
	if got.err != nil {
		t.Fatal(got.err)
	}
	want := reply{deltas: []string{"Squat ", "deep."}, answering: []string{"primary"},
		res: gymbro.ModelResult{Model: "primary", FinishReason: "stop", Usage: gymbro.Usage{PromptTokens: 10, CompletionTokens: 2, TotalTokens: 12}}}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(reply{})); diff != "" {
		t.Errorf("reply (-want +got):\n%s", diff)
	}
	if f.backup.Calls() != 0 {
		t.Errorf("backup called %d times", f.backup.Calls())
	}
	if ev := f.obs.take(); !slices.Equal(ev, []string{"request primary ok"}) {
		t.Errorf("observed %q", ev)
	}
	if f.obs.tokens["primary"] != 12 {
		t.Errorf("tokens = %v", f.obs.tokens)
	}
}

// A failure another model may not share, before any text, falls back.
func TestFallsBackBeforeContent(t *testing.T) {
	for _, code := range []string{gymbro.CodeAIUnavailable, gymbro.CodeAIRateLimited, gymbro.CodeAITimeout} {
		t.Run(code, func(t *testing.T) {
			f := newFixture(t, failing(code), answer("From ", "backup."))
			got := f.stream(t.Context())
			if got.err != nil {
				t.Fatal(got.err)
			}
			if !slices.Equal(got.deltas, []string{"From ", "backup."}) || !slices.Equal(got.answering, []string{"backup"}) || got.res.Model != "backup" {
				t.Errorf("reply = %+v", got)
			}
			want := []string{"request primary error", "failure primary " + code, "fallback primary backup", "request backup ok"}
			if ev := f.obs.take(); !slices.Equal(ev, want) {
				t.Errorf("observed %q, want %q", ev, want)
			}
		})
	}
}

// An empty delta (a role chunk) is not content: the router may still
// fall back after it.
func TestEmptyDeltaIsNotContent(t *testing.T) {
	f := newFixture(t, failing(gymbro.CodeAITimeout, ""), answer("ok"))
	got := f.stream(t.Context())
	if got.err != nil || got.res.Model != "backup" || !slices.Equal(got.deltas, []string{"ok"}) {
		t.Errorf("reply = %+v", got)
	}
}

func TestBadRequestDoesNotFallBack(t *testing.T) {
	f := newFixture(t, failing(gymbro.CodeAIBadRequest), answer("never"))
	got := f.stream(t.Context())
	if gymbro.ErrorCode(got.err) != gymbro.CodeAIBadRequest || f.backup.Calls() != 0 || len(got.answering) != 0 {
		t.Errorf("err = %v, backup calls = %d, answering = %q", got.err, f.backup.Calls(), got.answering)
	}
	// The server answered: a 400 does not count against its breaker.
	for range 5 {
		f.stream(t.Context())
	}
	if f.primary.Calls() != 6 || f.obs.state("primary") != int(modelrouter.Closed) {
		t.Errorf("primary calls = %d, state = %d", f.primary.Calls(), f.obs.state("primary"))
	}
}

// After text has streamed, a failure ends the reply: no second model.
func TestFailureAfterContentDoesNotFallBack(t *testing.T) {
	f := newFixture(t, failing(gymbro.CodeAIUnavailable, "Half ", "a reply"), answer("never"))
	got := f.stream(t.Context())
	var e *gymbro.Error
	if !errors.As(got.err, &e) || e.Code != gymbro.CodeAIUnavailable || e.Message != "fake ai_unavailable" {
		t.Fatalf("err = %v, want the primary's own error", got.err)
	}
	if f.backup.Calls() != 0 || !slices.Equal(got.deltas, []string{"Half ", "a reply"}) || !slices.Equal(got.answering, []string{"primary"}) {
		t.Errorf("backup calls = %d, reply = %+v", f.backup.Calls(), got)
	}
}

func TestAllDown(t *testing.T) {
	retryIn := func(code string, d time.Duration) func(context.Context, int, func(string) error) (gymbro.ModelResult, error) {
		return func(context.Context, int, func(string) error) (gymbro.ModelResult, error) {
			e := aiError(code)
			e.RetryAfter = d
			return gymbro.ModelResult{}, e
		}
	}
	f := newFixture(t, retryIn(gymbro.CodeAIUnavailable, 7*time.Second), retryIn(gymbro.CodeAIRateLimited, 3*time.Second))
	got := f.stream(t.Context())
	var e *gymbro.Error
	if !errors.As(got.err, &e) || e.Code != gymbro.CodeAIUnavailable || !gymbro.RetryableCode(gymbro.ErrorCode(got.err)) || e.RetryAfter != 3*time.Second {
		t.Fatalf("err = %#v, want ai_unavailable, retryable, retry after 3s", got.err)
	}
	if f.primary.Calls() != 1 || f.backup.Calls() != 1 || len(got.deltas) != 0 {
		t.Errorf("calls %d/%d, deltas %q", f.primary.Calls(), f.backup.Calls(), got.deltas)
	}
}

// The caller's own failures pass through untouched and say nothing about
// the model's health.
func TestCallerFailuresPassThrough(t *testing.T) {
	f := newFixture(t, answer("a", "b"), answer("never"))
	errLog := errors.New("event log down")
	for range 5 {
		_, err := f.router.Stream(t.Context(), gymbro.ModelRequest{}, func(string) error { return errLog })
		if !errors.Is(err, errLog) {
			t.Fatalf("err = %v, want the emit error", err)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	canceled := &fakeModel{name: "c", script: func(ctx context.Context, _ int, _ func(string) error) (gymbro.ModelResult, error) {
		return gymbro.ModelResult{}, ctx.Err()
	}}
	f.primary.script = canceled.script
	for range 5 {
		if got := f.stream(ctx); !errors.Is(got.err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", got.err)
		}
	}
	if f.backup.Calls() != 0 || f.obs.state("primary") != int(modelrouter.Closed) {
		t.Errorf("backup calls = %d, primary state = %d", f.backup.Calls(), f.obs.state("primary"))
	}
	if ev := f.obs.take(); len(ev) != 10 || ev[0] != "request primary canceled" || ev[9] != "request primary canceled" {
		t.Errorf("observed %q", ev)
	}
}

// TestObservedCountsOneModel: a single model outside a router is counted
// as the router counts its models, and its reply passes unchanged.
func TestObservedCountsOneModel(t *testing.T) {
	obs := &recorder{}
	for _, script := range []func(context.Context, int, func(string) error) (gymbro.ModelResult, error){
		answer("Squat ", "deep."), failing(gymbro.CodeAIRateLimited, "Squat "),
	} {
		m := modelrouter.Observed("gpt-4o-mini", &fakeModel{name: "gpt-4o-mini", script: script}, obs)
		var deltas []string
		res, err := m.Stream(t.Context(), gymbro.ModelRequest{}, func(d string) error { deltas = append(deltas, d); return nil })
		if m.Name() != "gpt-4o-mini" || deltas[0] != "Squat " || (err == nil && res.Model != "provider-id") {
			t.Errorf("passed through: name %q deltas %q result %+v err %v", m.Name(), deltas, res, err)
		}
	}
	canceled := modelrouter.Observed("demo", &fakeModel{name: "demo", script: answer("a", "b")}, obs)
	stop := errors.New("client left")
	if _, err := canceled.Stream(t.Context(), gymbro.ModelRequest{}, func(string) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("err = %v", err)
	}
	want := []string{"request gpt-4o-mini ok", "request gpt-4o-mini error", "failure gpt-4o-mini ai_rate_limited", "request demo canceled"}
	if ev := obs.take(); !slices.Equal(ev, want) {
		t.Errorf("observed %q, want %q", ev, want)
	}
	if obs.tokens["gpt-4o-mini"] != 12 || len(obs.states) != 0 {
		t.Errorf("tokens %v, breaker states %v (a single model has no breaker)", obs.tokens, obs.states)
	}
}
