package chat

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// start runs the generation of m in the background, detached from the HTTP
// request that created it: a client that disconnects does not stop it.
func (s *Service) start(m *gymbro.Message, p *gymbro.Principal) {
	ctx, cancel := context.WithCancelCause(s.base)
	g := &generation{cancel: cancel, done: make(chan struct{})}
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
		s.generate(ctx, m, p.UID)
	}()
}

// generate streams the model's reply into the log. Its terminal step always
// persists before it publishes, so a reply a client saw completed is stored.
func (s *Service) generate(ctx context.Context, m *gymbro.Message, uid string) {
	// Persistence and the terminal append must outlive a canceled ctx.
	bg := context.WithoutCancel(ctx)
	started := s.opts.Now()
	// bg, not ctx: a shutdown racing the start must still end the exchange
	// as interrupted below rather than leave it queued.
	if err := s.store.StartMessage(bg, m.ID, s.opts.InstanceID, started.Add(s.opts.LeaseTTL)); err != nil {
		s.logger.Warn("start generation", "message_id", m.ID, "err", err)
		return // another instance or a cancel got there first
	}
	if s.opts.Observer != nil {
		s.opts.Observer.GenerationStarted()
	}
	seq := int64(1) // queued
	ev, err := s.log.Append(bg, gymbro.Event{MessageID: m.ID, Type: gymbro.EventWorking, Status: gymbro.StatusWorking})
	if err != nil {
		s.fail(bg, m, seq, err)
		return
	}
	seq = ev.Seq

	// Renew the lease while the model streams; losing it (another instance
	// declared us dead, or a cancel landed elsewhere) stops the generation.
	leaseCtx, stopLease := context.WithCancel(ctx)
	defer stopLease()
	go s.keepLease(leaseCtx, m.ID, func(cause error) { s.cancelLocal(m.ID, cause) })

	var reply strings.Builder
	var firstChunk time.Duration
	var res gymbro.ModelResult
	lastSave := s.opts.Now()
	req, err := s.request(ctx, m, uid)
	var answering string // the model's name, for the first delta only
	req.Answering = func(name string) { answering = name }
	if err == nil {
		res, err = s.model.Stream(ctx, req, func(delta string) error {
			if delta == "" {
				return nil
			}
			if firstChunk == 0 {
				firstChunk = s.opts.Now().Sub(started)
			}
			reply.WriteString(delta)
			ev, err := s.log.Append(ctx, gymbro.Event{MessageID: m.ID, Type: gymbro.EventContentDelta, Delta: delta, Model: answering})
			if err != nil {
				return err
			}
			answering = ""
			seq = ev.Seq
			if now := s.opts.Now(); now.Sub(lastSave) >= s.opts.CheckpointEvery {
				lastSave = now
				if err := s.store.SaveReply(ctx, m.ID, reply.String()); err != nil && ctx.Err() == nil {
					s.logger.Warn("checkpoint reply", "message_id", m.ID, "err", err)
				}
			}
			return nil
		})
	}
	stopLease()
	r := gymbro.Result{Reply: reply.String(), Model: res.Model, FinishReason: res.FinishReason, Usage: res.Usage}
	if r.Model == "" {
		r.Model = s.model.Name()
	}
	switch cause := context.Cause(ctx); {
	case err == nil:
		r.Status = gymbro.StatusCompleted
	case errors.Is(cause, errCanceledByUser):
		r.Status, r.ErrorCode, r.ErrorMessage = gymbro.StatusCanceled, gymbro.CodeCanceled, "Canceled by the user."
	case errors.Is(cause, errShutdown) || errors.Is(cause, errLeaseLost):
		r.Status, r.ErrorCode, r.ErrorMessage = gymbro.StatusInterrupted, gymbro.CodeInterrupted, "The server stopped while generating; send the message again."
	case gymbro.ErrorCode(err) == gymbro.CodeLogClosed:
		// Someone else ended this exchange (a cancel on another instance).
		if s.opts.Observer != nil {
			s.opts.Observer.GenerationFinished(gymbro.StatusCanceled, firstChunk)
		}
		return
	default:
		r.Status, r.ErrorCode, r.ErrorMessage = gymbro.StatusFailed, gymbro.ErrorCode(err), gymbro.ErrorMessage(err)
		if _, ok := errors.AsType[*gymbro.Error](err); !ok {
			s.logger.Error("generation failed", "message_id", m.ID, "err", err)
			r.ErrorCode, r.ErrorMessage = gymbro.CodeAIUnavailable, "The AI coach failed unexpectedly; try again."
		}
	}
	if _, err := s.finish(bg, m, seq, r); err != nil {
		s.logger.Error("finish generation", "message_id", m.ID, "err", err)
	}
	if s.opts.Observer != nil {
		s.opts.Observer.GenerationFinished(r.Status, firstChunk)
	}
}

var errLeaseLost = errors.New("the generation's lease was lost")

func (s *Service) cancelLocal(id string, cause error) {
	s.mu.Lock()
	g := s.running[id]
	s.mu.Unlock()
	if g != nil {
		g.cancel(cause)
	}
}

func (s *Service) keepLease(ctx context.Context, id string, lost func(error)) {
	t := time.NewTicker(s.opts.LeaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			err := s.store.RenewLease(ctx, id, s.opts.InstanceID, s.opts.Now().Add(s.opts.LeaseTTL))
			if gymbro.ErrorKind(err) == gymbro.KindConflict {
				lost(errLeaseLost)
				return
			}
			if err != nil && ctx.Err() == nil {
				s.logger.Warn("renew lease", "message_id", id, "err", err)
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
// writer. Persisting is retried for a while, because a reply that cannot be
// stored must not be reported complete.
func (s *Service) finish(ctx context.Context, m *gymbro.Message, seq int64, r gymbro.Result) (*gymbro.Message, error) {
	r.LastSeq = seq + 1
	r.At = s.opts.Now().UTC()
	const attempts = 8 // about 25 s of backoff in all
	var done *gymbro.Message
	var err error
	wait := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		done, err = s.store.FinishMessage(ctx, m.ID, r)
		if err == nil || gymbro.ErrorKind(err) == gymbro.KindConflict || attempt >= attempts || ctx.Err() != nil {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
		case <-s.base.Done():
			attempt = attempts - 1 // shutting down: one last try
		}
		t.Stop()
		wait *= 2
	}
	if err != nil {
		if gymbro.ErrorKind(err) != gymbro.KindConflict {
			// Still not stored: tell subscribers the truth. The lease lapses
			// and the exchange is marked interrupted by recovery.
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

// lastSeq returns the seq of the newest event in m's log (0 if none).
func (s *Service) lastSeq(ctx context.Context, id string) (int64, error) {
	var last int64
	for {
		evs, err := s.log.Read(ctx, id, last, 1024)
		if err != nil {
			return 0, err
		}
		if len(evs) == 0 {
			return last, nil
		}
		last = evs[len(evs)-1].Seq
	}
}

// request builds the model's input: the persona, the conversation's earlier
// finished exchanges within the configured budget, and the new text.
func (s *Service) request(ctx context.Context, m *gymbro.Message, uid string) (gymbro.ModelRequest, error) {
	req := gymbro.ModelRequest{System: s.opts.SystemPrompt, User: uid}
	if s.opts.HistoryTurns > 0 {
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
// working exchange; otherwise those whose lease lapsed (an instance died).
// Each gets error code interrupted, persisted, then appended.
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
			// A queued exchange has no lease until its generation starts,
			// moments after it was stored (maybe on another instance):
			// only one older than a lease is abandoned.
			if mine || (!all && m.Status == gymbro.StatusQueued && m.CreatedAt.After(now.Add(-s.opts.LeaseTTL))) {
				continue
			}
			seq, err := s.lastSeq(ctx, m.ID)
			if err != nil {
				return n, err
			}
			_, err = s.finish(ctx, m, seq, gymbro.Result{Status: gymbro.StatusInterrupted, Reply: m.Reply,
				ErrorCode: gymbro.CodeInterrupted, ErrorMessage: "The server stopped while generating; send the message again."})
			if err == nil {
				n++
				progressed = true
			}
		}
		if len(ms) < 100 || !progressed {
			return n, nil
		}
	}
}

// RunRecovery calls Recover every interval until ctx ends, so an instance
// that dies mid-generation leaves no stream waiting for longer than about
// LeaseTTL + interval.
func (s *Service) RunRecovery(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := s.Recover(ctx, false); err != nil && ctx.Err() == nil {
				s.logger.Warn("recover interrupted generations", "err", err)
			} else if n > 0 {
				s.logger.Info("recovered interrupted generations", "count", n)
			}
		}
	}
}

func ptr[T any](v T) *T { return &v }
