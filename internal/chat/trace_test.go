package chat

import (
	"testing"
	"time"
)

// TestTrace: the first mark of a step counts, exchanges not started are
// ignored, the oldest is forgotten beyond the size, and a nil Trace is a
// no-op.
func TestTrace(t *testing.T) {
	now := time.Unix(100, 0)
	tr := NewTrace(2)
	tr.clock = func() time.Time { return now }
	tr.start("a")
	now = now.Add(time.Millisecond)
	tr.Mark("a", StepStored)
	now = now.Add(time.Millisecond)
	tr.Mark("a", StepStored) // not the first: ignored
	tr.Mark("nobody", StepStored)
	tr.connReused("a", true)
	steps, reused, ok := tr.Steps("a")
	if !ok || len(steps) != 2 || steps["post_received"] != time.Unix(100, 0).UnixNano() || steps["stored"] != time.Unix(100, 1e6).UnixNano() {
		t.Fatalf("steps %v, ok %v", steps, ok)
	}
	if reused == nil || !*reused {
		t.Errorf("reused %v, want true", reused)
	}
	if _, _, ok := tr.Steps("nobody"); ok {
		t.Error("an exchange never started is traced")
	}
	tr.start("b")
	tr.start("c") // forgets a
	if _, _, ok := tr.Steps("a"); ok {
		t.Error("the oldest exchange is still held beyond the trace's size")
	}
	if _, reused, ok := tr.Steps("c"); !ok || reused != nil {
		t.Errorf("c: ok %v, reused %v", ok, reused)
	}

	var off *Trace
	off.start("x")
	off.Mark("x", StepStored)
	if _, _, ok := off.Steps("x"); ok {
		t.Error("a nil trace holds something")
	}
	if ctx := off.modelContext(t.Context(), "x"); ctx != t.Context() {
		t.Error("a nil trace changed the model's context")
	}
	for s := range numSteps {
		if s.String() == "" || s.String() == "unknown" {
			t.Errorf("step %d has no name", s)
		}
	}
}
