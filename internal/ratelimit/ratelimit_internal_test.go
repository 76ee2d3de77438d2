package ratelimit

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gymbro/gymbro-api/internal/testenv"
)

func TestSlidingWindow(t *testing.T) {
	clk := testenv.NewClock(time.Unix(1_700_000_000, 0))
	t0 := clk.Now()
	l := NewMemory(3, time.Minute, clk.Now)
	at := func(d time.Duration) (bool, time.Duration) {
		clk.Advance(t0.Add(d).Sub(clk.Now()))
		ok, wait, err := l.Allow(context.Background(), "a")
		if err != nil {
			t.Fatal(err)
		}
		return ok, wait
	}
	for i, d := range []time.Duration{0, 20 * time.Second, 40 * time.Second} {
		if ok, _ := at(d); !ok {
			t.Fatalf("call %d refused", i)
		}
	}
	// A fixed window starting at t0+60s would allow 3 more at once; the
	// sliding window frees one slot at a time.
	if ok, wait := at(59 * time.Second); ok || wait != time.Second {
		t.Errorf("at 59s: ok=%v wait=%v, want refused for 1s", ok, wait)
	}
	if ok, _ := at(60 * time.Second); !ok {
		t.Error("at 60s the first call has left the window")
	}
	if ok, wait := at(61 * time.Second); ok || wait != 19*time.Second {
		t.Errorf("at 61s: ok=%v wait=%v, want refused for 19s", ok, wait)
	}
	if ok, _, _ := l.Allow(context.Background(), "b"); !ok {
		t.Error("keys are counted apart")
	}
}

func TestForgetsIdleCallers(t *testing.T) {
	clk := testenv.NewClock(time.Unix(1_700_000_000, 0))
	l := NewMemory(1, time.Minute, clk.Now)
	for i := range sweepAbove + 10 {
		l.Allow(context.Background(), fmt.Sprint("caller-", i))
	}
	clk.Advance(2 * time.Minute)
	l.Allow(context.Background(), "late")
	if n := l.keys(); n != 1 {
		t.Errorf("the limiter holds %d callers after they went idle, want 1", n)
	}
}
