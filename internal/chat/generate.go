package chat

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"time"

	"github.com/gymbro/gymbro-api/internal/backoff"
	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// start runs the generation of m in the background, detached from the HTTP
// request that created it: a client that disconnects does not stop it. A
// message that opened its conversation has no history to read. The caller
// sends the outcome of the queued append on the generation's queued.
func (s *Service) start(m *gymbro.Message, p *gymbro.Principal, opened bool, accepted time.Time) *generation {
	ctx, cancel := context.WithCancelCause(s.base)
	g := &generation{cancel: cancel, done: make(chan struct{}), queued: make(chan error, 1), stored: *m, accepted: accepted}
	s.mu.Lock()
	s.running[m.ID] = g
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(g.done)
		defer func() {
			s.mu.Lock()
			delete(s.running, m.ID)
			s.mu.Unlock()
			cancel(nil)
		}()
		s.generate(ctx, m, p.UID, opened, g)
	}()
	return g
}

// generate streams the model's reply into the log, in steps: ask the model
// at once while the exchange is announced working (after its queued event;
// the store holds it working since its creation, under this instance's
// lease), stream the reply under a renewed lease, write out any events
// held through an event-log outage, then persist the result and publish
// the terminal event. The terminal step always persists before it
// publishes, so a reply a client saw completed is stored. A refused post
// (g.queued reports errRefused) ends it without a trace.
func (s *Service) generate(ctx context.Context, m *gymbro.Message, uid string, opened bool, g *generation) {
	// Persistence and the terminal append must outlive a canceled ctx.
	bg := context.WithoutCancel(ctx)
	started := s.opts.Now()
	s.opts.Trace.Mark(m.ID, StepGenerationStarted)
	out := s.newAppender(m) // the queued event is seq 1
	working := s.announce(bg, m, out, g.queued)
	leaseCtx, stopLease := context.WithCancel(ctx)
	go s.keepLease(leaseCtx, m.ID, func(cause error) { s.cancelLocal(m.ID, cause) })
	run := s.stream(ctx, m, uid, opened, out, started, working, g.accepted)
	stopLease()
	if err := working.wait(); errors.Is(err, errRefused) {
		return // the post discards the exchange
	} else if err != nil {
		s.fail(bg, m, out.Seq(), err)
		if s.opts.Observer != nil {
			s.opts.Observer.GenerationFinished(gymbro.StatusFailed, 0)
		}
		return
	}
	if err := out.Flush(s.base); err != nil {
		out.Drop()
		if run.err == nil {
			run.err = err
		}
	}
	r, mine := s.result(ctx, m, run)
	if mine {
		if _, err := s.finish(bg, m, out.Seq(), r); err != nil {
			s.logger.Error("finish generation", "message_id", m.ID, "err", err)
		}
	}
	if s.opts.Observer != nil {
		s.opts.Observer.GenerationFinished(r.Status, run.firstChunk)
	}
}

// announcement is the working event's append, made by a goroutine of its
// own while the model is asked: it waits for the post's queued event, then
// appends working with the generation's appender, which is the
// generation's again once wait has returned.
type announcement struct {
	done   chan error
	err    error
	waited bool
}

func (s *Service) announce(ctx context.Context, m *gymbro.Message, out *appender, queued <-chan error) *announcement {
	a := &announcement{done: make(chan error, 1)}
	go func() {
		if err := <-queued; err != nil {
			a.done <- err
			return
		}
		if s.opts.Observer != nil {
			s.opts.Observer.GenerationStarted()
		}
		err := out.Append(ctx, gymbro.Event{MessageID: m.ID, Type: gymbro.EventWorking, Status: gymbro.StatusWorking})
		if err == nil {
			s.opts.Trace.Mark(m.ID, StepWorkingAppended)
		}
		a.done <- err
	}()
	return a
}

// wait returns the outcome of the working append (errRefused for a
// refused post), waiting for it the first time.
func (a *announcement) wait() error {
	if !a.waited {
		a.err, a.waited = <-a.done, true
	}
	return a.err
}

// streamed is how the model's stream went.
type streamed struct {
	reply      strings.Builder
	res        gymbro.ModelResult
	err        error
	firstChunk time.Duration
	charged    int64 // the prompt's estimate, counted against the budget as it was sent
}

// stream asks the model and appends each chunk as a content_delta event,
// the first once the working event is in, checkpointing the reply so far
// every CheckpointEvery.
func (s *Service) stream(ctx context.Context, m *gymbro.Message, uid string, opened bool, out *appender, started time.Time, working *announcement, accepted time.Time) *streamed {
	run := &streamed{}
	req, err := s.request(ctx, m, uid, opened)
	if err != nil {
		run.err = err
		return run
	}
	wait := s.charge(m, &req)
	defer func() { run.charged = wait() }()
	lastSave := started
	var answering string // the model's name, for the first delta only
	req.Answering = func(name string) { answering = name }
	s.opts.Trace.Mark(m.ID, StepModelCalled)
	called := s.opts.Now()
	var modelTTFT time.Duration
	run.res, run.err = s.model.Stream(s.opts.Trace.modelContext(ctx, m.ID), req, func(delta string) error {
		if delta == "" {
			return nil
		}
		first := run.firstChunk == 0
		if first {
			now := s.opts.Now()
			run.firstChunk, modelTTFT = now.Sub(started), now.Sub(called)
			s.opts.Trace.Mark(m.ID, StepFirstChunk)
			if err := working.wait(); err != nil {
				return err
			}
		}
		run.reply.WriteString(delta)
		if err := out.Append(ctx, gymbro.Event{MessageID: m.ID, Type: gymbro.EventContentDelta, Delta: delta, Model: answering}); err != nil {
			return err
		}
		if first {
			s.opts.Trace.Mark(m.ID, StepFirstDeltaAppended)
			s.observeFirstToken(answering, s.opts.Now().Sub(accepted), modelTTFT)
			// The append readied the goroutines that deliver the delta;
			// let them run now, on this thread, rather than after the rest
			// of the reply (or once another thread gets a CPU).
			runtime.Gosched()
		}
		answering = ""
		if now := s.opts.Now(); now.Sub(lastSave) >= s.opts.CheckpointEvery {
			lastSave = now
			if err := s.store.SaveReply(ctx, m.ID, run.reply.String()); err != nil && ctx.Err() == nil {
				s.logger.Warn("checkpoint reply", "message_id", m.ID, "err", err)
			}
		}
		return nil
	})
	return run
}

// observeFirstToken reports a reply's time to first token, by the name of
// the model that answered (a router names it; a single model is its own).
func (s *Service) observeFirstToken(answering string, ttft, modelTTFT time.Duration) {
	if s.firstToken == nil {
		return
	}
	if answering == "" {
		answering = s.model.Name()
	}
	s.firstToken.FirstToken(answering, ttft, modelTTFT)
}

// result is the terminal result of a generation that ended with run, under
// ctx's cause. mine is false when someone else already ended the exchange
// (a cancel on another instance closed its log).
func (s *Service) result(ctx context.Context, m *gymbro.Message, run *streamed) (r gymbro.Result, mine bool) {
	r = gymbro.Result{Reply: run.reply.String(), Model: run.res.Model, FinishReason: run.res.FinishReason, Usage: run.res.Usage, Charged: run.charged}
	if r.Model == "" {
		r.Model = s.model.Name()
	}
	switch cause := context.Cause(ctx); {
	case run.err == nil:
		r.Status = gymbro.StatusCompleted
	case errors.Is(cause, errCanceledByUser):
		r.Status, r.ErrorCode, r.ErrorMessage = gymbro.StatusCanceled, gymbro.CodeCanceled, "Canceled by the user."
	case errors.Is(cause, errShutdown) || errors.Is(cause, errLeaseLost):
		r.Status, r.ErrorCode, r.ErrorMessage = gymbro.StatusInterrupted, gymbro.CodeInterrupted, "The server stopped while generating; send the message again."
	case gymbro.ErrorCode(run.err) == gymbro.CodeLogClosed:
		return gymbro.Result{Status: gymbro.StatusCanceled}, false
	default:
		r.Status, r.ErrorCode, r.ErrorMessage = gymbro.StatusFailed, gymbro.ErrorCode(run.err), gymbro.ErrorMessage(run.err)
		if _, ok := errors.AsType[*gymbro.Error](run.err); !ok {
			s.logger.Error("generation failed", "message_id", m.ID, "err", run.err)
			r.ErrorCode, r.ErrorMessage = gymbro.CodeAIUnavailable, "The AI coach failed unexpectedly; try again."
		}
	}
	return r, true
}

var errLeaseLost = errors.New("the generation's lease was lost")

// finishBackoff paces the retries of a result the store refused.
var finishBackoff = backoff.Policy{Base: 100 * time.Millisecond, Max: 2 * time.Second, Jitter: backoff.None}

func (s *Service) cancelLocal(id string, cause error) {
	s.mu.Lock()
	g := s.running[id]
	s.mu.Unlock()
	if g != nil {
		g.cancel(cause)
	}
}

func (s *Service) keepLease(ctx context.Context, id string, lost func(error)) {
	every(ctx, s.opts.LeaseTTL/3, func() bool {
		err := s.store.RenewLease(ctx, id, s.opts.InstanceID, s.opts.Now().Add(s.opts.LeaseTTL))
		if gymbro.ErrorKind(err) == gymbro.KindConflict {
			lost(errLeaseLost)
			return false
		}
		if err != nil && ctx.Err() == nil {
			s.logger.Warn("renew lease", "message_id", id, "err", err)
		}
		return true
	})
}

// every calls fn every interval until ctx ends or fn returns false.
func every(ctx context.Context, interval time.Duration, fn func() bool) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if !fn() {
				return
			}
		}
	}
}

func (s *Service) fail(ctx context.Context, m *gymbro.Message, seq int64, cause error) {
	s.logger.Error("generation failed", "message_id", m.ID, "err", cause)
	_, _ = s.finish(ctx, m, seq, gymbro.Result{Status: gymbro.StatusFailed, ErrorCode: gymbro.CodeUnavailable, ErrorMessage: "The reply could not be generated; try again."})
}

// finish persists r (with the outbox record) and only then appends the
// terminal event, whose seq is seq+1: this goroutine is the message's only
// writer. A reply that cannot be stored must not be reported complete, so
// while the store cannot take it persisting is retried for StoreGrace;
// past it the stream ends anyway, with a retryable persist_failed event
// that carries the reply, and recovery stores that ending once the store
// answers again (see Recover).
func (s *Service) finish(ctx context.Context, m *gymbro.Message, seq int64, r gymbro.Result) (*gymbro.Message, error) {
	r.LastSeq = seq + 1
	r.At = s.opts.Now().UTC()
	done, err := s.persist(ctx, m, r)
	if gymbro.ErrorKind(err) == gymbro.KindConflict {
		done, err = s.landed(ctx, m, r, err)
	}
	if err != nil {
		if gymbro.ErrorKind(err) != gymbro.KindConflict {
			// Still not stored: tell subscribers the truth.
			_, _ = s.log.Append(ctx, gymbro.Event{MessageID: m.ID, Type: gymbro.EventError, Status: gymbro.StatusFailed,
				Code: CodePersistFailed, Message: "The reply could not be saved; send the message again.", Retryable: ptr(true), Content: r.Reply})
		}
		return nil, err
	}
	if s.opts.OnFinish != nil {
		s.opts.OnFinish()
	}
	if _, err := s.log.Append(ctx, TerminalEvent(done)); err != nil && gymbro.ErrorCode(err) != gymbro.CodeLogClosed {
		// Subscribers rebuild the terminal event from the store.
		s.logger.Warn("append terminal event", "message_id", m.ID, "err", err)
	}
	return done, nil
}

// persist stores the result r of m, retrying what the store refused (an
// outage, a timeout: each attempt is bounded by the store) until
// StoreGrace has passed since the first attempt, or once more when the
// service shuts down. A conflict (the exchange already ended) is final.
func (s *Service) persist(ctx context.Context, m *gymbro.Message, r gymbro.Result) (*gymbro.Message, error) {
	start := s.opts.Now()
	for attempt := 1; ; attempt++ {
		done, err := s.store.FinishMessage(ctx, m, r)
		left := s.opts.StoreGrace - s.opts.Now().Sub(start)
		if err == nil || gymbro.ErrorKind(err) == gymbro.KindConflict || left <= 0 || ctx.Err() != nil {
			return done, err
		}
		if backoff.Sleep(s.base, min(finishBackoff.Delay(attempt), left)) != nil {
			return s.store.FinishMessage(ctx, m, r) // shutting down: one last try
		}
	}
}

// landed tells an exchange that an earlier attempt of r itself ended (its
// commit landed although its answer was lost: a timeout, a connection cut
// on the way back) from one someone else ended first (a cancel, recovery),
// and returns the stored exchange in the first case, conflict otherwise.
func (s *Service) landed(ctx context.Context, m *gymbro.Message, r gymbro.Result, conflict error) (*gymbro.Message, error) {
	stored, err := s.store.MessageByID(ctx, m.ID)
	if err != nil || stored.Status != r.Status || stored.LastSeq != r.LastSeq || stored.Reply != r.Reply {
		return nil, conflict
	}
	return stored, nil
}

// lastEvent returns the newest event in m's log (the zero Event if none).
func (s *Service) lastEvent(ctx context.Context, id string) (gymbro.Event, error) {
	var last gymbro.Event
	for {
		evs, err := s.log.Read(ctx, id, last.Seq, 1024)
		if err != nil {
			return gymbro.Event{}, err
		}
		if len(evs) == 0 {
			return last, nil
		}
		last = evs[len(evs)-1]
	}
}

// lastSeq returns the seq of the newest event in m's log (0 if none).
func (s *Service) lastSeq(ctx context.Context, id string) (int64, error) {
	ev, err := s.lastEvent(ctx, id)
	return ev.Seq, err
}

// request builds the model's input: the persona, the conversation's earlier
// finished exchanges within the configured budget, and the new text.
func (s *Service) request(ctx context.Context, m *gymbro.Message, uid string, opened bool) (gymbro.ModelRequest, error) {
	req := gymbro.ModelRequest{System: s.opts.SystemPrompt, User: uid}
	if s.opts.HistoryTurns > 0 && !opened {
		hist, err := s.store.History(ctx, m.ConversationID, m.ID, s.opts.HistoryTurns)
		if err != nil {
			return req, err
		}
		budget := s.opts.HistoryChars
		start := len(hist)
		for i := len(hist) - 1; i >= 0; i-- { // keep the most recent that fit
			cost := len(hist[i].Text) + len(hist[i].Reply)
			if cost > budget {
				break
			}
			budget -= cost
			start = i
		}
		for _, h := range hist[start:] {
			req.Turns = append(req.Turns, gymbro.Turn{Role: gymbro.RoleUser, Content: h.Text}, gymbro.Turn{Role: gymbro.RoleAssistant, Content: h.Reply})
		}
	}
	req.Turns = append(req.Turns, gymbro.Turn{Role: gymbro.RoleUser, Content: m.Text})
	return req, nil
}

// Recover ends exchanges whose generation can no longer finish: with all set
// (one instance, in-process log: nothing survives a restart) every queued or
// working exchange; otherwise those whose lease lapsed (an instance died, or
// its generation gave up on a store that was behind). An exchange whose log
// already ends in a terminal event (its generation ended the stream while
// the store could not take the result) is stored as that event says, reply
// included, and nothing is appended; any other gets error code
// interrupted, persisted, then appended.
func (s *Service) Recover(ctx context.Context, all bool) (int, error) {
	now := s.opts.Now()
	if all {
		now = now.Add(100 * 365 * 24 * time.Hour)
	}
	n := 0
	for {
		ms, err := s.store.ExpiredLeases(ctx, now, 100)
		if err != nil {
			return n, err
		}
		progressed := false
		for _, m := range ms {
			s.mu.Lock()
			_, mine := s.running[m.ID]
			s.mu.Unlock()
			// An earlier version stored an exchange queued, with no lease
			// until its generation took it moments later (maybe on another
			// instance, in a rolling deploy): only one older than a lease
			// is abandoned.
			if mine || (!all && m.Status == gymbro.StatusQueued && m.CreatedAt.After(now.Add(-s.opts.LeaseTTL))) {
				continue
			}
			last, err := s.lastEvent(ctx, m.ID)
			if err != nil {
				return n, err
			}
			if s.recoverOne(ctx, m, last) == nil {
				n++
				progressed = true
			}
		}
		if len(ms) < 100 || !progressed {
			return n, nil
		}
	}
}

// recoverOne ends an abandoned exchange whose log ends with last; see
// Recover.
func (s *Service) recoverOne(ctx context.Context, m *gymbro.Message, last gymbro.Event) error {
	if last.Type.Terminal() {
		_, err := s.persist(ctx, m, endedAs(last, m, s.opts.Now().UTC()))
		return err
	}
	_, err := s.finish(ctx, m, last.Seq, gymbro.Result{Status: gymbro.StatusInterrupted, Reply: m.Reply,
		ErrorCode: gymbro.CodeInterrupted, ErrorMessage: "The server stopped while generating; send the message again."})
	return err
}

// endedAs is the result a terminal event told subscribers, to store at at.
func endedAs(ev gymbro.Event, m *gymbro.Message, at time.Time) gymbro.Result {
	r := gymbro.Result{Status: ev.Status, Reply: ev.Content, ErrorCode: ev.Code, ErrorMessage: ev.Message,
		Model: ev.Model, FinishReason: ev.FinishReason, LastSeq: ev.Seq, At: at}
	switch {
	case r.Status.Terminal():
	case ev.Type == gymbro.EventCompleted:
		r.Status = gymbro.StatusCompleted
	case ev.Type == gymbro.EventCanceled:
		r.Status = gymbro.StatusCanceled
	default:
		r.Status = gymbro.StatusFailed
	}
	if r.Reply == "" {
		r.Reply = m.Reply
	}
	if ev.Usage != nil {
		r.Usage = *ev.Usage
	}
	return r
}

// RunRecovery calls Recover every interval until ctx ends, so an instance
// that dies mid-generation leaves no stream waiting for longer than about
// LeaseTTL + interval.
func (s *Service) RunRecovery(ctx context.Context, interval time.Duration) {
	every(ctx, interval, func() bool {
		if n, err := s.Recover(ctx, false); err != nil && ctx.Err() == nil {
			s.logger.Warn("recover interrupted generations", "err", err)
		} else if n > 0 {
			s.logger.Info("recovered interrupted generations", "count", n)
		}
		return true
	})
}

func ptr[T any](v T) *T { return &v }
