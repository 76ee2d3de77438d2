// Package chat is the use-case at the heart of GymBro: accept a user's
// message, generate the coach's reply detached from the request, persist it,
// and publish every step to the message's event log for SSE subscribers.
package chat

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/ratelimit"
)

// Error codes of the chat use-case.
const (
	CodeTextEmpty             = "text_empty"
	CodeTextTooLong           = "text_too_long"
	CodeTextInvalidUTF8       = "text_invalid_utf8"
	CodeTextControlCharacter  = "text_control_character"
	CodeInvalidConversationID = "invalid_conversation_id"
	CodeIdempotencyKeyInvalid = "idempotency_key_invalid"
	CodeTooManyRunning        = gymbro.CodeTooManyRunning
	CodeMessageNotFound       = gymbro.CodeMessageNotFound
	CodeAlreadyFinished       = "already_finished"
	CodePersistFailed         = "persist_failed"
)

// Options configures a Service. Store, Log and Model are required.
type Options struct {
	Store           gymbro.Store
	Log             gymbro.EventLog
	Model           gymbro.Model
	SystemPrompt    string
	HistoryTurns    int               // earlier exchanges the model sees; 0: none (config.Load defaults it to 20)
	HistoryChars    int               // budget for their text; 0: none (config.Load defaults it to 24000)
	MaxMessageChars int               // default 8000
	MaxRunning      int               // running generations per user; default 3
	Limiter         ratelimit.Limiter // messages per user; nil: none
	DailyTokens     int64             // tokens one user's exchanges may use per UTC day; 0: unlimited
	InstanceID      string
	LeaseTTL        time.Duration // default 15s
	CheckpointEvery time.Duration // how often a partial reply is saved; default 2s
	// EventLogGrace is how long a running generation holds its events
	// through an event-log outage before it gives up; default 30s.
	EventLogGrace time.Duration
	// MaxHeldBytes bounds the events one generation holds; default 1 MiB.
	MaxHeldBytes int
	// StoreGrace is how long a generation retries storing its result
	// while the store cannot take it (each attempt bounded by the store)
	// before it ends its stream without it; default 10s.
	StoreGrace time.Duration
	Logger     *slog.Logger
	Now        func() time.Time
	Observer   Observer
	// OnFinish is called after an exchange is persisted with its outbox
	// record (the sync worker's wake-up); it must not block.
	OnFinish func()
	// Trace, when set, records each exchange's steps to its first delta
	// (GYMBRO_TRACE_TTFT); nil records nothing.
	Trace *Trace
}

// Observer receives generation outcomes for metrics; nil disables it.
type Observer interface {
	GenerationStarted()
	GenerationFinished(status gymbro.Status, firstChunk time.Duration)
	// EventsHeld adds delta to the events held in memory through an
	// event-log outage; AppendRetried counts each retry of held events.
	EventsHeld(delta int)
	AppendRetried()
	// BudgetRefused counts a post refused by the daily token budget.
	BudgetRefused()
}

// FirstTokenObserver, when the Observer implements it too, receives each
// reply's time to first token: from the post's acceptance to its first
// content_delta in the log, and the model's own part of it, from asking
// the model to its first chunk. model is the configured name of the model
// that answered.
type FirstTokenObserver interface {
	FirstToken(model string, ttft, modelTTFT time.Duration)
}

// Service runs the chat use-case.
type Service struct {
	opts       Options
	store      gymbro.Store
	log        gymbro.EventLog
	model      gymbro.Model
	logger     *slog.Logger
	firstToken FirstTokenObserver // nil unless the Observer is one

	base     context.Context // parent of every generation; canceled at shutdown
	stopBase context.CancelCauseFunc
	wg       sync.WaitGroup

	mu      sync.Mutex
	running map[string]*generation
}

type generation struct {
	cancel context.CancelCauseFunc
	done   chan struct{}
	// queued receives the outcome of the post's queued append: nil, or
	// errRefused when it failed and the post is refused.
	queued chan error
	// stored is the exchange as it was stored, read-only: what a stream
	// opened on this instance needs of it (StreamTarget).
	stored gymbro.Message
	// accepted is when its post reached Post, for the time to first token.
	accepted time.Time
}

// refuse ends a generation whose post is refused, before it appended or
// stored anything, and waits until it has.
func (g *generation) refuse() {
	g.queued <- errRefused
	g.cancel(errRefused)
	<-g.done
}

var (
	errCanceledByUser = errors.New("canceled by the user")
	errShutdown       = errors.New("the server is shutting down")
	errRefused        = errors.New("the post was refused")
)

// New returns a Service.
func New(opts Options) *Service {
	if opts.HistoryTurns <= 0 || opts.HistoryChars <= 0 {
		opts.HistoryTurns, opts.HistoryChars = 0, 0 // no history
	}
	if opts.MaxMessageChars == 0 {
		opts.MaxMessageChars = 8000
	}
	if opts.MaxRunning == 0 {
		opts.MaxRunning = 3
	}
	if opts.LeaseTTL == 0 {
		opts.LeaseTTL = 15 * time.Second
	}
	if opts.CheckpointEvery == 0 {
		opts.CheckpointEvery = 2 * time.Second
	}
	if opts.EventLogGrace == 0 {
		opts.EventLogGrace = 30 * time.Second
	}
	if opts.StoreGrace == 0 {
		opts.StoreGrace = 10 * time.Second
	}
	if opts.MaxHeldBytes == 0 {
		opts.MaxHeldBytes = 1 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.InstanceID == "" {
		opts.InstanceID = uuid.NewString()
	}
	base, stop := context.WithCancelCause(context.Background())
	firstToken, _ := opts.Observer.(FirstTokenObserver)
	return &Service{
		opts: opts, store: opts.Store, log: opts.Log, model: opts.Model, logger: opts.Logger, firstToken: firstToken,
		base: base, stopBase: stop, running: map[string]*generation{},
	}
}

// Log returns the event log SSE subscribers read.
func (s *Service) Log() gymbro.EventLog { return s.log }

// Trace returns the exchanges' step trace; nil when tracing is off.
func (s *Service) Trace() *Trace { return s.opts.Trace }

// PostInput is a user's new message.
type PostInput struct {
	Text           string
	ConversationID string
	IdempotencyKey string
	TraceID        string
}

// Post validates and stores the message (taken by this instance's
// generation in the same transaction), starts generating the reply in the
// background and appends its queued event. The generation asks the model
// at once but appends nothing before the queued event is in; Post returns
// without waiting for the model. replayed reports an idempotent repeat of
// an earlier Post.
func (s *Service) Post(ctx context.Context, p *gymbro.Principal, in PostInput) (m *gymbro.Message, replayed bool, err error) {
	arrived := s.opts.Now()
	text, err := s.check(in)
	if err != nil {
		return nil, false, err
	}
	if s.opts.Limiter != nil {
		ok, wait, err := s.opts.Limiter.Allow(ctx, "msg:"+p.UID)
		if err != nil {
			return nil, false, err
		}
		if !ok {
			return nil, false, &gymbro.Error{Kind: gymbro.KindRateLimited, Code: gymbro.CodeRateLimited, Message: "Too many messages; wait before sending another.", RetryAfter: wait}
		}
	}
	now := s.opts.Now().UTC()
	id := newID()
	s.opts.Trace.start(id)
	m, replayed, err = s.store.CreateMessage(ctx, gymbro.NewMessage{
		ID:                id,
		ConversationID:    in.ConversationID,
		NewConversationID: newID(),
		UserID:            p.UID,
		Provider:          p.Provider,
		Text:              text,
		TraceID:           in.TraceID,
		IdempotencyKey:    in.IdempotencyKey,
		RequestHash:       requestHash(text, in.ConversationID),
		MaxRunning:        s.opts.MaxRunning, // checked atomically by the store, after a replay
		DailyTokens:       s.opts.DailyTokens,
		Lease:             gymbro.Lease{Owner: s.opts.InstanceID, Until: now.Add(s.opts.LeaseTTL)},
		Now:               now,
	})
	if gymbro.ErrorCode(err) == gymbro.CodeBudgetExhausted && s.opts.Observer != nil {
		s.opts.Observer.BudgetRefused()
	}
	if err != nil || replayed {
		return m, replayed, err
	}
	s.opts.Trace.Mark(m.ID, StepStored)
	// The exchange is stored: what follows must happen even if the client
	// hangs up now, or it would be left running until its lease lapsed.
	ctx = context.WithoutCancel(ctx)
	// The model's first chunk is what the user waits for: its request goes
	// out now, while the queued event is appended and the 202 written.
	g := s.start(m, p, in.ConversationID == "", arrived)
	if _, err := s.log.Append(ctx, queuedEvent(m)); err != nil {
		g.refuse()
		s.refuse(ctx, m)
		return nil, false, gymbro.Unavailable(err, "The event log")
	}
	s.opts.Trace.Mark(m.ID, StepQueuedAppended)
	g.queued <- nil
	// The client meets the exchange as its event stream begins: queued.
	// (The store holds it working from the start, under the generation's
	// lease; the working event follows.)
	accepted := *m
	accepted.Status = gymbro.StatusQueued
	return &accepted, false, nil
}

// check validates a post's input and returns its text, trimmed.
func (s *Service) check(in PostInput) (string, error) {
	text := strings.TrimSpace(in.Text)
	switch {
	case !utf8.ValidString(in.Text):
		return "", gymbro.Errorf(gymbro.KindUnprocessable, CodeTextInvalidUTF8, "text must be valid UTF-8.")
	case hasControl(in.Text):
		// PostgreSQL refuses NUL in text (SQLSTATE 22021) and Supabase would
		// refuse the chat record forever; SQLite would store it. Refusing
		// every C0 control but tab, CR and LF keeps both stores alike.
		return "", gymbro.Errorf(gymbro.KindUnprocessable, CodeTextControlCharacter,
			"text must not contain control characters (NUL and other C0 controls; tab, CR and LF are fine).")
	case text == "":
		return "", gymbro.Errorf(gymbro.KindUnprocessable, CodeTextEmpty, "text must not be empty.")
	case utf8.RuneCountInString(text) > s.opts.MaxMessageChars:
		return "", gymbro.Errorf(gymbro.KindUnprocessable, CodeTextTooLong, "text must be at most %d characters.", s.opts.MaxMessageChars)
	}
	if in.ConversationID != "" {
		if _, err := uuid.Parse(in.ConversationID); err != nil {
			return "", gymbro.Errorf(gymbro.KindUnprocessable, CodeInvalidConversationID, "conversation_id must be a UUID returned by an earlier message.")
		}
	}
	if k := in.IdempotencyKey; k != "" && (len(k) > 255 || !printableASCII(k)) {
		return "", gymbro.Errorf(gymbro.KindInvalid, CodeIdempotencyKeyInvalid, "Idempotency-Key must be 1-255 printable ASCII characters.")
	}
	return text, nil
}

// refuse undoes a stored exchange whose queued event could not be
// appended, so the 503 leaves nothing behind and a retry with the same
// Idempotency-Key runs anew. If the store cannot delete it either, the
// exchange is ended as failed so it neither hangs nor counts against the
// user's running cap.
func (s *Service) refuse(ctx context.Context, m *gymbro.Message) {
	err := s.store.DiscardMessage(ctx, m.ID, s.opts.InstanceID)
	if err == nil {
		return
	}
	s.logger.Warn("discard refused message", "message_id", m.ID, "err", err)
	_, _ = s.finish(ctx, m, 0, gymbro.Result{Status: gymbro.StatusFailed, ErrorCode: gymbro.CodeUnavailable,
		ErrorMessage: "The event log is unavailable; try again."})
}

// Message returns the caller's exchange.
func (s *Service) Message(ctx context.Context, p *gymbro.Principal, id string) (*gymbro.Message, error) {
	if _, err := uuid.Parse(id); err != nil {
		return nil, gymbro.MessageNotFound() // exactly as an absent one
	}
	return s.store.Message(ctx, p.UID, id)
}

// StreamTarget returns the caller's exchange for its event stream. While
// this instance generates it, it is the exchange as stored, from memory:
// a stream needs only its owner and that it is not finished, and reads
// the rest from the log; otherwise it is read as Message does. That
// spares the stream that an app opens right after its post a store round
// trip before its first events.
func (s *Service) StreamTarget(ctx context.Context, p *gymbro.Principal, id string) (*gymbro.Message, error) {
	s.mu.Lock()
	g := s.running[id]
	s.mu.Unlock()
	if g != nil && g.stored.UserID == p.UID {
		m := g.stored
		return &m, nil
	}
	return s.Message(ctx, p, id)
}

// Cancel stops the caller's running generation and returns the exchange as
// it ended. Canceling a canceled exchange is a no-op; one that completed or
// failed answers already_finished.
func (s *Service) Cancel(ctx context.Context, p *gymbro.Principal, id string) (*gymbro.Message, error) {
	m, err := s.Message(ctx, p, id)
	if err != nil {
		return nil, err
	}
	if m.Status.Terminal() {
		if m.Status == gymbro.StatusCanceled {
			return m, nil
		}
		return nil, gymbro.Errorf(gymbro.KindConflict, CodeAlreadyFinished, "The reply already finished with status %s.", m.Status)
	}
	s.mu.Lock()
	g := s.running[id]
	s.mu.Unlock()
	if g == nil {
		// Another instance runs it (or it has just ended): finish it here.
		// The store arbitrates; the other instance's next append finds the
		// log closed and stops.
		seq, err := s.lastSeq(ctx, id)
		if err != nil {
			return nil, err
		}
		return s.finish(ctx, m, seq, gymbro.Result{Status: gymbro.StatusCanceled, Reply: m.Reply, ErrorCode: gymbro.CodeCanceled, ErrorMessage: "Canceled by the user."})
	}
	g.cancel(errCanceledByUser)
	select {
	case <-g.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.store.Message(ctx, p.UID, id)
}

// Conversations lists the caller's conversations, most recent first.
func (s *Service) Conversations(ctx context.Context, p *gymbro.Principal, page gymbro.Page) ([]*gymbro.Conversation, string, error) {
	return s.store.Conversations(ctx, p.UID, page)
}

// ConversationMessages lists one of the caller's conversations, newest first.
func (s *Service) ConversationMessages(ctx context.Context, p *gymbro.Principal, conversationID string, page gymbro.Page) ([]*gymbro.Message, string, error) {
	if _, err := uuid.Parse(conversationID); err != nil {
		return nil, "", gymbro.ConversationNotFound() // exactly as an absent one
	}
	return s.store.ConversationMessages(ctx, p.UID, conversationID, page)
}

// TerminalEvent rebuilds the terminal event of a finished exchange from the
// store, for a subscriber that arrives after its log expired.
func TerminalEvent(m *gymbro.Message) gymbro.Event {
	ev := gymbro.Event{MessageID: m.ID, Seq: m.LastSeq, Status: m.Status, Content: m.Reply}
	if m.CompletedAt != nil {
		ev.At = *m.CompletedAt
	} else {
		ev.At = m.UpdatedAt
	}
	switch m.Status {
	case gymbro.StatusCompleted:
		ev.Type = gymbro.EventCompleted
		ev.Model, ev.FinishReason = m.Model, m.FinishReason
		u := m.Usage
		ev.Usage = &u
	case gymbro.StatusCanceled:
		ev.Type = gymbro.EventCanceled
	default:
		ev.Type = gymbro.EventError
		ev.Code, ev.Message = m.ErrorCode, m.ErrorMessage
		retry := gymbro.RetryableCode(m.ErrorCode)
		ev.Retryable = &retry
	}
	return ev
}

// Shutdown interrupts running generations (each ends with error code
// interrupted, persisted and appended) and waits for them until ctx ends.
func (s *Service) Shutdown(ctx context.Context) error {
	s.stopBase(errShutdown)
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Running reports how many generations this instance runs.
func (s *Service) Running() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.running)
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }

func requestHash(text, conversationID string) string {
	h := sha256.New()
	h.Write([]byte(conversationID))
	h.Write([]byte{0})
	h.Write([]byte(text))
	return hex.EncodeToString(h.Sum(nil))
}

// hasControl reports whether s holds a C0 control character other than
// tab, CR and LF.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
			return true
		}
	}
	return false
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
