package modelrouter

import (
	"sync"
	"time"
)

// State is a circuit breaker's state; its value is what the
// gymbro_model_breaker_state gauge shows.
type State int

// Breaker states.
const (
	Closed   State = 0 // requests go through
	HalfOpen State = 1 // the cool-down is over: one request tries the model
	Open     State = 2 // the model is skipped until the cool-down ends
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case HalfOpen:
		return "half-open"
	}
	return "open"
}

// verdict is what one request's result says about the model's health.
type verdict int

const (
	healthy   verdict = iota // it answered (a 400 included: the server is up)
	unhealthy                // 429, 5xx, timeout, connection failure
	unknown                  // the caller stopped first
)

// breaker counts a model's consecutive failures. After failures of them it
// opens for cooldown; then one request (the probe) may try the model:
// success closes it, failure opens it again.
type breaker struct {
	failures int
	cooldown time.Duration
	onChange func(State)

	mu      sync.Mutex
	state   State
	streak  int       // consecutive unhealthy verdicts
	until   time.Time // when Open ends
	probing bool      // the half-open probe is in flight
}

// allow reports whether a request may try the model at now, and whether
// it is the half-open probe, which must report back through done.
func (b *breaker) allow(now time.Time) (ok, probe bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case Closed:
		return true, false
	case Open:
		if now.Before(b.until) {
			return false, false
		}
		b.set(HalfOpen)
	}
	if b.probing {
		return false, false
	}
	b.probing = true
	return true, true
}

// readyAt is when the model may next be tried: the end of the cool-down,
// or now when it is closed or half-open.
func (b *breaker) readyAt(now time.Time) time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == Open && now.Before(b.until) {
		return b.until
	}
	return now
}

// done records one request's verdict; probe is what allow returned (false
// for a request made without asking allow).
func (b *breaker) done(now time.Time, v verdict, probe bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if probe {
		b.probing = false
	}
	switch v {
	case healthy:
		b.streak = 0
		b.set(Closed)
	case unhealthy:
		b.streak++
		// Any failure while not closed (the probe's, or a try made while
		// every model was open) restarts the cool-down.
		if b.state != Closed || b.streak >= b.failures {
			b.until = now.Add(b.cooldown)
			b.set(Open)
		}
	}
}

// set changes the state and reports it; b.mu is held.
func (b *breaker) set(s State) {
	if b.state == s {
		return
	}
	b.state = s
	if b.onChange != nil {
		b.onChange(s)
	}
}

// State returns the breaker's state for tests and the start-up log.
func (b *breaker) State() State {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}
