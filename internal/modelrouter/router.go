// Package modelrouter is a gymbro.Model over several models tried in a
// fixed order, as an AI gateway (LiteLLM, say) would do in front of
// them: when one fails before any text of its reply was streamed, with a
// failure another model may not share (a 429, a 5xx, a connection failure,
// the first-chunk timeout: codes ai_rate_limited, ai_unavailable and
// ai_timeout), the next one answers and the client sees no error. Once
// text has streamed, a failure ends the reply as is: a second model would
// repeat or contradict what the client already shows. A 400
// (ai_bad_request) never falls back: the request or our configuration is
// wrong, and every model would refuse it.
//
// Each model has a circuit breaker. After Failures consecutive failures
// it is open: skipped for Cooldown. Then it is half-open: exactly one
// request tries it, and success closes it while failure opens it again.
// When every model is open, a request still tries the one whose cool-down
// ends first rather than failing untried: with two or three models that
// costs one request to a model that is probably down, and it spares the
// user an error when the outage was shorter than the cool-down.
package modelrouter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// Defaults for the zero fields of Options.
const (
	DefaultFailures = 3
	DefaultCooldown = 30 * time.Second
)

// Route is one model and the name logs, metrics and stored records call it.
type Route struct {
	Name  string
	Model gymbro.Model
}

// Observer learns what the router does, for metrics. Outcomes are "ok",
// "error" (the model failed) and "canceled" (the caller stopped first).
type Observer interface {
	ModelRequest(model, outcome string)
	ModelFailure(model, code string)
	ModelFallback(from, to string)
	ModelBreaker(model string, state int)
	ModelTokens(model string, usage gymbro.Usage)
}

// Options configures a Router. Every field is optional.
type Options struct {
	Failures int              // consecutive failures that open a breaker; DefaultFailures when 0
	Cooldown time.Duration    // how long an open breaker skips its model; DefaultCooldown when 0
	Now      func() time.Time // the breakers' clock; time.Now when nil
	Observer Observer
	Logger   *slog.Logger // slog.Default() when nil
}

// Router implements gymbro.Model over its routes. It is safe for
// concurrent use.
type Router struct {
	routes []*route
	now    func() time.Time
	obs    Observer
	logger *slog.Logger
}

type route struct {
	Route
	breaker *breaker
}

// New returns a Router that tries routes in order. Names must be unique
// and non-empty.
func New(routes []Route, opts Options) (*Router, error) {
	if len(routes) == 0 {
		return nil, errors.New("modelrouter: no models")
	}
	if opts.Failures <= 0 {
		opts.Failures = DefaultFailures
	}
	if opts.Cooldown <= 0 {
		opts.Cooldown = DefaultCooldown
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	r := &Router{now: opts.Now, obs: opts.Observer, logger: opts.Logger}
	seen := map[string]bool{}
	for _, rt := range routes {
		if rt.Name == "" || rt.Model == nil || seen[rt.Name] {
			return nil, fmt.Errorf("modelrouter: model %q: names must be unique and non-empty, with a model", rt.Name)
		}
		seen[rt.Name] = true
		b := &breaker{failures: opts.Failures, cooldown: opts.Cooldown}
		if r.obs != nil {
			name := rt.Name
			b.onChange = func(s State) { r.obs.ModelBreaker(name, int(s)) }
			r.obs.ModelBreaker(name, int(Closed))
		}
		r.routes = append(r.routes, &route{Route: rt, breaker: b})
	}
	return r, nil
}

// Name returns the first model's name, what completed.model reports if
// a reply somehow names none.
func (r *Router) Name() string { return r.routes[0].Name }

// Names lists the models in the order they are tried.
func (r *Router) Names() []string {
	names := make([]string, len(r.routes))
	for i, rt := range r.routes {
		names[i] = rt.Name
	}
	return names
}

// States reports each model's breaker state, by name.
func (r *Router) States() map[string]State {
	out := make(map[string]State, len(r.routes))
	for _, rt := range r.routes {
		out[rt.Name] = rt.breaker.State()
	}
	return out
}

// Stream asks the models in order until one answers; see the package doc.
// The result's Model is the configured name of the model that answered.
// When every model tried failed, the error is ai_unavailable (retryable)
// wrapping the last failure, or the one failure itself when only one
// model was tried.
func (r *Router) Stream(ctx context.Context, req gymbro.ModelRequest, emit func(delta string) error) (gymbro.ModelResult, error) {
	answering := req.Answering
	req.Answering = nil // a nested router must not announce itself too
	var failed []error
	var last *route
	for _, rt := range r.routes {
		ok, probe := rt.breaker.allow(r.now())
		if !ok {
			continue
		}
		r.fellBack(last, rt, failed)
		res, next, err := r.try(ctx, rt, probe, req, answering, emit)
		if !next {
			return res, err
		}
		failed, last = append(failed, err), rt
	}
	if len(failed) == 0 {
		// Every breaker is open: try the model that recovers first.
		res, next, err := r.try(ctx, r.soonest(), false, req, answering, emit)
		if !next {
			return res, err
		}
		failed = append(failed, err)
	}
	return gymbro.ModelResult{}, allFailed(failed)
}

// try streams one model's reply. next reports that it failed before any
// text reached emit, in a way the next model may not share.
func (r *Router) try(ctx context.Context, rt *route, probe bool, req gymbro.ModelRequest, answering func(string), emit func(string) error) (res gymbro.ModelResult, next bool, err error) {
	var emitted bool
	var emitErr error
	res, err = rt.Model.Stream(ctx, req, func(delta string) error {
		if delta == "" {
			return nil
		}
		if !emitted {
			emitted = true
			if answering != nil {
				answering(rt.Name)
			}
		}
		if err := emit(delta); err != nil {
			emitErr = err
			return err
		}
		return nil
	})
	v, outcome := judge(ctx, err, emitErr)
	rt.breaker.done(r.now(), v, probe)
	observe(r.obs, rt.Name, outcome, err, res)
	if err != nil {
		return res, v == unhealthy && !emitted, err
	}
	res.Model = rt.Name
	return res, false, nil
}

// judge reads one model's result: what it says of the model's health,
// and the outcome label of gymbro_model_requests_total.
func judge(ctx context.Context, err, emitErr error) (verdict, string) {
	switch {
	case err == nil:
		return healthy, "ok"
	case emitErr != nil && errors.Is(err, emitErr), ctx.Err() != nil:
		return unknown, "canceled"
	}
	switch gymbro.ErrorCode(err) {
	case gymbro.CodeAIUnavailable, gymbro.CodeAIRateLimited, gymbro.CodeAITimeout:
		return unhealthy, "error"
	}
	// A 400 or our own bug: the model answered, and another would
	// refuse the same request.
	return healthy, "error"
}

// observe tells obs (when set) what one request to the model called name
// came to.
func observe(obs Observer, name, outcome string, err error, res gymbro.ModelResult) {
	if obs == nil {
		return
	}
	obs.ModelRequest(name, outcome)
	switch outcome {
	case "ok":
		obs.ModelTokens(name, res.Usage)
	case "error":
		obs.ModelFailure(name, gymbro.ErrorCode(err))
	}
}

// Observed returns model with each of its requests told to obs under name,
// exactly as a Router tells its models' (by outcome, failures by code,
// tokens): for a deployment of one model, which needs no router, no
// fallback and no breaker, but the same per-model metrics. The reply, its
// Model and its errors pass through unchanged.
func Observed(name string, model gymbro.Model, obs Observer) gymbro.Model {
	return &observed{name: name, model: model, obs: obs}
}

type observed struct {
	name  string
	model gymbro.Model
	obs   Observer
}

func (o *observed) Name() string { return o.model.Name() }

func (o *observed) Stream(ctx context.Context, req gymbro.ModelRequest, emit func(delta string) error) (gymbro.ModelResult, error) {
	var emitErr error
	res, err := o.model.Stream(ctx, req, func(delta string) error {
		if err := emit(delta); err != nil {
			emitErr = err
			return err
		}
		return nil
	})
	_, outcome := judge(ctx, err, emitErr)
	observe(o.obs, o.name, outcome, err, res)
	return res, err
}

// fellBack logs and counts the move from a failed model to the next.
func (r *Router) fellBack(from, to *route, failed []error) {
	if from == nil {
		return
	}
	err := failed[len(failed)-1]
	r.logger.Warn("model failed before answering; falling back", "from", from.Name, "to", to.Name, "code", gymbro.ErrorCode(err), "err", err)
	if r.obs != nil {
		r.obs.ModelFallback(from.Name, to.Name)
	}
}

// soonest returns the model whose breaker closes first, the earlier in
// order on a tie.
func (r *Router) soonest() *route {
	now := r.now()
	best, bestAt := r.routes[0], r.routes[0].breaker.readyAt(now)
	for _, rt := range r.routes[1:] {
		if at := rt.breaker.readyAt(now); at.Before(bestAt) {
			best, bestAt = rt, at
		}
	}
	return best
}

// allFailed is the error of a generation no model answered.
func allFailed(errs []error) error {
	last := errs[len(errs)-1]
	if len(errs) == 1 {
		return last
	}
	e := gymbro.Wrap(errors.Join(errs...), gymbro.KindUnavailable, gymbro.CodeAIUnavailable,
		"No AI model is available right now; try again shortly.")
	for _, err := range errs {
		var ge *gymbro.Error
		if errors.As(err, &ge) && ge.RetryAfter > 0 && (e.RetryAfter == 0 || ge.RetryAfter < e.RetryAfter) {
			e.RetryAfter = ge.RetryAfter
		}
	}
	return e
}
