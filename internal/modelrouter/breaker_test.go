package modelrouter_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/modelrouter"
)

// switchable answers with ok or fails with ai_unavailable, as set.
type switchable struct{ down atomic.Bool }

func (s *switchable) script(ctx context.Context, n int, emit func(string) error) (gymbro.ModelResult, error) {
	if s.down.Load() {
		return failing(gymbro.CodeAIUnavailable)(ctx, n, emit)
	}
	return answer("ok")(ctx, n, emit)
}

func (f *fixture) wantAnswer(t *testing.T, model string) {
	t.Helper()
	got := f.stream(t.Context())
	if got.err != nil || got.res.Model != model {
		t.Fatalf("answered by %q (err %v), want %q", got.res.Model, got.err, model)
	}
}

func (f *fixture) wantCalls(t *testing.T, primary, backup int) {
	t.Helper()
	if p, b := f.primary.Calls(), f.backup.Calls(); p != primary || b != backup {
		t.Fatalf("calls primary %d backup %d, want %d and %d", p, b, primary, backup)
	}
}

func (f *fixture) wantState(t *testing.T, model string, s modelrouter.State) {
	t.Helper()
	if got := f.router.States()[model]; got != s {
		t.Fatalf("%s breaker %s, want %s", model, got, s)
	}
	if got := f.obs.state(model); got != int(s) {
		t.Fatalf("%s breaker gauge %d, want %d", model, got, s)
	}
}

func TestBreakerSkipsAFailingModelUntilTheCooldownEnds(t *testing.T) {
	p := &switchable{}
	p.down.Store(true)
	f := newFixture(t, p.script, answer("ok"))
	for i := 1; i <= 3; i++ {
		f.wantAnswer(t, "backup")
		f.wantCalls(t, i, i)
	}
	f.wantState(t, "primary", modelrouter.Open)

	// Open: skipped, with no fallback counted.
	f.obs.take()
	f.wantAnswer(t, "backup")
	f.wantCalls(t, 3, 4)
	if ev := f.obs.take(); len(ev) != 1 || ev[0] != "request backup ok" {
		t.Errorf("observed %q", ev)
	}
	f.clock.Advance(modelrouter.DefaultCooldown - time.Millisecond)
	f.wantAnswer(t, "backup")
	f.wantCalls(t, 3, 5)

	// Half-open: one try; its failure opens the breaker for another cool-down.
	f.clock.Advance(time.Millisecond)
	f.wantAnswer(t, "backup")
	f.wantCalls(t, 4, 6)
	f.wantState(t, "primary", modelrouter.Open)
	f.wantAnswer(t, "backup")
	f.wantCalls(t, 4, 7)

	// Recovered: the next probe succeeds and closes it.
	p.down.Store(false)
	f.clock.Advance(modelrouter.DefaultCooldown)
	f.wantAnswer(t, "primary")
	f.wantState(t, "primary", modelrouter.Closed)
	f.wantAnswer(t, "primary")
	f.wantCalls(t, 6, 7)
}

func TestBreakerCountsConsecutiveFailuresOnly(t *testing.T) {
	p := &switchable{}
	f := newFixture(t, p.script, answer("ok"))
	for _, down := range []bool{true, true, false, true, true} {
		p.down.Store(down)
		f.stream(t.Context())
	}
	f.wantState(t, "primary", modelrouter.Closed)
	f.stream(t.Context())
	f.wantState(t, "primary", modelrouter.Open)
	f.wantCalls(t, 6, 5)
}

// While the half-open probe is in flight, other requests skip the model.
func TestHalfOpenLetsExactlyOneRequestThrough(t *testing.T) {
	probing, release := make(chan struct{}), make(chan struct{})
	f := newFixture(t, func(ctx context.Context, n int, emit func(string) error) (gymbro.ModelResult, error) {
		if n <= 3 {
			return failing(gymbro.CodeAIUnavailable)(ctx, n, emit)
		}
		if n == 4 {
			close(probing)
			<-release
		}
		return answer("ok")(ctx, n, emit)
	}, answer("ok"))
	for range 3 {
		f.stream(t.Context())
	}
	f.clock.Advance(modelrouter.DefaultCooldown)

	probe := make(chan reply, 1)
	go func() { probe <- f.stream(context.Background()) }()
	select {
	case <-probing:
	case <-time.After(10 * time.Second):
		t.Fatal("the probe never reached the primary")
	}
	f.wantState(t, "primary", modelrouter.HalfOpen)
	for range 3 {
		f.wantAnswer(t, "backup")
	}
	f.wantCalls(t, 4, 6)

	close(release)
	if got := <-probe; got.err != nil || got.res.Model != "primary" {
		t.Fatalf("probe = %+v", got)
	}
	f.wantState(t, "primary", modelrouter.Closed)
	f.wantAnswer(t, "primary")
}

// With every breaker open a request still tries one model: the one whose
// cool-down ends first.
func TestAllOpenTriesTheModelThatRecoversFirst(t *testing.T) {
	p, b := &switchable{}, &switchable{}
	p.down.Store(true)
	f := newFixture(t, p.script, b.script)
	for range 3 {
		f.wantAnswer(t, "backup") // primary opens at t0, until t0+30s
	}
	f.clock.Advance(10 * time.Second)
	b.down.Store(true)
	for range 3 {
		f.stream(t.Context()) // backup opens at t0+10s, until t0+40s
	}
	f.wantState(t, "backup", modelrouter.Open)
	f.wantCalls(t, 3, 6)

	f.clock.Advance(time.Second)
	got := f.stream(t.Context()) // primary's cool-down ends first; its failure restarts it (until t0+41s)
	if gymbro.ErrorCode(got.err) != gymbro.CodeAIUnavailable || !gymbro.RetryableCode(gymbro.ErrorCode(got.err)) {
		t.Fatalf("err = %v", got.err)
	}
	f.wantCalls(t, 4, 6)

	b.down.Store(false)
	f.wantAnswer(t, "backup") // now backup's ends first; its success closes it
	f.wantState(t, "backup", modelrouter.Closed)
	f.wantState(t, "primary", modelrouter.Open)
	f.wantAnswer(t, "backup")
	f.wantCalls(t, 4, 8)
}
