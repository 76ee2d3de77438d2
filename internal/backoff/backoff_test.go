package backoff_test

import (
	"context"
	"testing"
	"time"

	"github.com/gymbro/gymbro-api/internal/backoff"
)

func TestStepDoublesToTheCap(t *testing.T) {
	p := backoff.Policy{Base: time.Second, Max: 10 * time.Second}
	want := []time.Duration{time.Second, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	for i, n := range []int{0, 1, 2, 3, 4, 5, 100} {
		if got := p.Step(n); got != want[i] {
			t.Errorf("Step(%d) = %v, want %v", n, got, want[i])
		}
	}
	if got := (backoff.Policy{}).Step(1); got != 100*time.Millisecond {
		t.Errorf("zero policy Step(1) = %v, want 100ms", got)
	}
}

func TestJitter(t *testing.T) {
	for _, tc := range []struct {
		jitter backoff.Jitter
		r      float64
		want   time.Duration
	}{
		{backoff.Equal, 0, 2 * time.Second},
		{backoff.Equal, 0.5, 3 * time.Second},
		{backoff.Full, 0, 0},
		{backoff.Full, 0.25, time.Second},
		{backoff.None, 0.9, 4 * time.Second},
	} {
		p := backoff.Policy{Base: time.Second, Max: time.Minute, Jitter: tc.jitter, Rand: func() float64 { return tc.r }}
		if got := p.Delay(3); got != tc.want {
			t.Errorf("jitter %d, rand %v: Delay(3) = %v, want %v", tc.jitter, tc.r, got, tc.want)
		}
	}
	// The real source stays within the step.
	p := backoff.Policy{Base: time.Second, Max: time.Minute}
	for range 100 {
		if d := p.Delay(2); d < time.Second || d > 2*time.Second {
			t.Fatalf("Delay(2) = %v, outside [1s, 2s]", d)
		}
	}
}

func TestSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := backoff.Sleep(ctx, time.Hour); err != context.Canceled {
		t.Fatalf("Sleep on a canceled ctx = %v, want context.Canceled", err)
	}
	if err := backoff.Sleep(context.Background(), time.Microsecond); err != nil {
		t.Fatalf("Sleep = %v", err)
	}
}
