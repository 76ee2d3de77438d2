// Package openai is the gymbro.Model for any server that speaks OpenAI's
// Chat Completions API with streaming: OpenAI itself, DeepSeek, Qwen
// (DashScope compatible mode), vLLM, Ollama and the like, selected by
// Config.BaseURL. It uses the official SDK (github.com/openai/openai-go/v3)
// to send requests and read HTTP errors, reads the streamed chunks itself
// (chunks.go: the few fields it needs, several times cheaper than the
// SDK's decoder) and does its own retries and timeouts, because a
// streamed reply can only be retried before its first chunk: once a delta
// has reached the client a second attempt would duplicate it.
//
// Timeouts: FirstChunkTimeout bounds the wait from sending the request to
// the first chunk, IdleTimeout the silence between chunks, TotalTimeout the
// whole call (waiting for a slot and retries included). The first two are
// one timer, re-armed per chunk, that cancels the attempt's context; that
// catches a server that accepted the connection and then stalls, which
// http.Client.Timeout (a bound on the whole body) cannot tell apart from a
// long, healthy reply.
//
// Failures become *gymbro.Error with the AI codes of the domain:
// ai_timeout (KindTimeout), ai_rate_limited (KindRateLimited, with
// RetryAfter when the server said), ai_unavailable (KindUnavailable: 5xx,
// connection errors, a stream cut short) and ai_bad_request (KindUpstream:
// any other 4xx; our key, model name or request is wrong, not the user).
// A caller's own cancellation comes back as ctx.Err(), unwrapped.
package openai

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	sdk "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/gymbro/gymbro-api/internal/backoff"
	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// Defaults for the zero fields of Config.
const (
	DefaultBaseURL           = "https://api.openai.com/v1"
	DefaultModel             = "gpt-4o-mini"
	DefaultFirstChunkTimeout = 20 * time.Second
	DefaultIdleTimeout       = 30 * time.Second
	DefaultTotalTimeout      = 2 * time.Minute
	DefaultMaxRetries        = 2
	DefaultMaxConcurrent     = 64
)

// Retry pacing. maxRetryAfter is the longest server-requested pause we
// honour; a longer one fails at once with ai_rate_limited and its
// RetryAfter, which is more useful to the client than a silent minute.
const maxRetryAfter = 30 * time.Second

// retryBackoff paces retries the server gave no Retry-After for: equal
// jitter, so synchronized clients spread out after a shared outage while
// each still waits a sensible minimum.
var retryBackoff = backoff.Policy{Base: 500 * time.Millisecond, Max: 8 * time.Second}

// Config configures a Model. Zero fields take the defaults above.
type Config struct {
	APIKey  string // sent as "Authorization: Bearer"; may be empty only with a BaseURL (local servers need none)
	BaseURL string // the API root, e.g. https://api.deepseek.com/v1 or http://127.0.0.1:11434/v1
	Model   string // the model id sent with each request

	FirstChunkTimeout time.Duration // request sent → first chunk
	IdleTimeout       time.Duration // between two chunks
	TotalTimeout      time.Duration // the whole Stream call

	// MaxRetries is how many more attempts a generation may make after a
	// 429, a 5xx or a connection error, and only before its first chunk.
	// Zero means DefaultMaxRetries; negative means none.
	MaxRetries int

	// MaxConcurrent caps the generations in flight through this Model;
	// further calls wait for a slot (as long as their ctx allows). Build one
	// Model per process so the cap is process-wide.
	MaxConcurrent int

	// HTTPClient sends the requests; nil means a client on a transport
	// like http.DefaultTransport that keeps a connection per generation in
	// flight for the next (see newTransport). Its Timeout must be zero or
	// longer than any reply, since it bounds the whole streamed body.
	HTTPClient *http.Client

	// Sleep waits d or until ctx ends, between retries; nil uses a timer.
	// Tests inject it to observe the backoff without waiting.
	Sleep func(ctx context.Context, d time.Duration) error
}

// LogValue masks the API key so a logged Config cannot leak it.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("base_url", c.BaseURL),
		slog.String("model", c.Model),
		slog.String("api_key", mask(c.APIKey)),
		slog.Duration("first_chunk_timeout", c.FirstChunkTimeout),
		slog.Duration("idle_timeout", c.IdleTimeout),
		slog.Duration("total_timeout", c.TotalTimeout),
		slog.Int("max_retries", c.MaxRetries),
		slog.Int("max_concurrent", c.MaxConcurrent),
	)
}

// String masks the API key too, for fmt's %v and %s.
func (c Config) String() string { return c.LogValue().String() }

// GoString masks the API key for %#v.
func (c Config) GoString() string { return c.String() }

func mask(secret string) string {
	if secret == "" {
		return ""
	}
	return "[redacted]"
}

// Model streams replies from an OpenAI-compatible server. It is safe for
// concurrent use.
type Model struct {
	client     sdk.ChatCompletionService
	model      string
	baseURL    string
	firstChunk time.Duration
	idle       time.Duration
	total      time.Duration
	maxRetries int
	slots      chan struct{}
	waiting    atomic.Int64
	sleep      func(context.Context, time.Duration) error
	now        func() time.Time
}

// New validates cfg, fills in its defaults and returns a Model. It makes no
// request; the first Stream finds out whether the key works.
func New(cfg Config) (*Model, error) {
	if err := validate(&cfg); err != nil {
		return nil, err
	}
	cfg = withDefaults(cfg)
	return &Model{
		client:     newService(cfg),
		model:      cfg.Model,
		baseURL:    cfg.BaseURL,
		firstChunk: cfg.FirstChunkTimeout,
		idle:       cfg.IdleTimeout,
		total:      cfg.TotalTimeout,
		maxRetries: cfg.MaxRetries,
		slots:      make(chan struct{}, cfg.MaxConcurrent),
		sleep:      cfg.Sleep,
		now:        time.Now,
	}, nil
}

// validate checks cfg, filling in DefaultBaseURL, which needs an API key.
func validate(cfg *Config) error {
	if cfg.BaseURL == "" {
		if cfg.APIKey == "" {
			return gymbro.Errorf(gymbro.KindInvalid, gymbro.CodeValidation, "openai: an API key is required for %s", DefaultBaseURL)
		}
		cfg.BaseURL = DefaultBaseURL
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return gymbro.Errorf(gymbro.KindInvalid, gymbro.CodeValidation, "openai: base URL must be an absolute http(s) URL")
	}
	if u.User != nil {
		// Credentials in the URL would end up in error messages and logs.
		return gymbro.Errorf(gymbro.KindInvalid, gymbro.CodeValidation, "openai: base URL must not carry credentials; use the API key")
	}
	if cfg.FirstChunkTimeout < 0 || cfg.IdleTimeout < 0 || cfg.TotalTimeout < 0 || cfg.MaxConcurrent < 0 {
		return gymbro.Errorf(gymbro.KindInvalid, gymbro.CodeValidation, "openai: timeouts and MaxConcurrent must not be negative")
	}
	return nil
}

// withDefaults returns a valid cfg with its zero fields set to the
// defaults; a negative MaxRetries means none.
func withDefaults(cfg Config) Config {
	cfg.Model = cmp.Or(cfg.Model, DefaultModel)
	cfg.FirstChunkTimeout = cmp.Or(cfg.FirstChunkTimeout, DefaultFirstChunkTimeout)
	cfg.IdleTimeout = cmp.Or(cfg.IdleTimeout, DefaultIdleTimeout)
	cfg.TotalTimeout = cmp.Or(cfg.TotalTimeout, DefaultTotalTimeout)
	cfg.MaxConcurrent = cmp.Or(cfg.MaxConcurrent, DefaultMaxConcurrent)
	switch {
	case cfg.MaxRetries == 0:
		cfg.MaxRetries = DefaultMaxRetries
	case cfg.MaxRetries < 0:
		cfg.MaxRetries = 0
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Transport: newTransport(cfg.MaxConcurrent)}
	}
	if cfg.Sleep == nil {
		cfg.Sleep = backoff.Sleep
	}
	return cfg
}

// newService builds the SDK's chat completion service from explicit
// options only: openai.NewClient would also read OPENAI_* variables
// (organization, project, custom headers) behind the configuration's back.
func newService(cfg Config) sdk.ChatCompletionService {
	return sdk.NewChatCompletionService(
		option.WithBaseURL(cfg.BaseURL),
		option.WithAPIKey(cfg.APIKey),
		option.WithHTTPClient(reuseClient(cfg.HTTPClient)),
		// Our retries, not the SDK's: it would retry a stream whose
		// connection broke after some deltas were already emitted.
		option.WithMaxRetries(0),
	)
}

// LogValue describes the Model without its key.
func (m *Model) LogValue() slog.Value {
	return slog.GroupValue(slog.String("base_url", m.baseURL), slog.String("model", m.model))
}

// Name returns the configured model id.
func (m *Model) Name() string { return m.model }

// Stats counts the generations holding a slot and those waiting for one.
type Stats struct {
	InFlight int
	Waiting  int
}

// Stats reports how busy the Model is, for metrics and readiness.
func (m *Model) Stats() Stats {
	return Stats{InFlight: len(m.slots), Waiting: int(m.waiting.Load())}
}

// Sentinel causes of the contexts this package cancels itself, so a
// canceled read can be told apart from the caller hanging up.
var (
	errFirstChunkTimeout = errors.New("no first chunk within the first-chunk timeout")
	errIdleTimeout       = errors.New("no chunk within the idle timeout")
	errTotalTimeout      = errors.New("reply not finished within the total timeout")
)

// Stream sends req as a streaming chat completion and calls emit with each
// content delta. See the package doc for timeouts, retries and errors.
func (m *Model) Stream(ctx context.Context, req gymbro.ModelRequest, emit func(delta string) error) (gymbro.ModelResult, error) {
	body, err := m.body(req)
	if err != nil {
		return gymbro.ModelResult{}, err
	}
	tctx, cancel := context.WithTimeoutCause(ctx, m.total, errTotalTimeout)
	defer cancel()

	if err := m.acquire(tctx); err != nil {
		if ctx.Err() != nil {
			return gymbro.ModelResult{}, ctx.Err()
		}
		return gymbro.ModelResult{}, gymbro.Wrap(err, gymbro.KindTimeout, gymbro.CodeAITimeout,
			"The AI coach is busy and no slot freed up in time.")
	}
	defer m.release()

	for attempt := 0; ; attempt++ {
		res, started, err := m.attempt(tctx, body, emit)
		if err == nil {
			return res, nil
		}
		if ctx.Err() != nil {
			return gymbro.ModelResult{}, ctx.Err()
		}
		var ee emitError
		if errors.As(err, &ee) {
			return gymbro.ModelResult{}, ee.err
		}
		if started || attempt >= m.maxRetries {
			return gymbro.ModelResult{}, err
		}
		delay, ok := m.retryDelay(tctx, err, attempt)
		if !ok {
			return gymbro.ModelResult{}, err
		}
		if serr := m.sleep(tctx, delay); serr != nil {
			if ctx.Err() != nil {
				return gymbro.ModelResult{}, ctx.Err()
			}
			return gymbro.ModelResult{}, err
		}
	}
}

// emitError carries the error of the caller's emit through unchanged.
type emitError struct{ err error }

func (e emitError) Error() string { return e.err.Error() }
func (e emitError) Unwrap() error { return e.err }

// attempt makes one request and streams its reply. started reports whether
// any chunk arrived, after which the generation must not be retried.
func (m *Model) attempt(ctx context.Context, body []byte, emit func(string) error) (res gymbro.ModelResult, started bool, err error) {
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var gotChunk atomic.Bool
	timer := time.AfterFunc(m.firstChunk, func() {
		if gotChunk.Load() {
			cancel(errIdleTimeout)
		} else {
			cancel(errFirstChunkTimeout)
		}
	})
	defer timer.Stop()

	// The SDK sends the request (its body encoded by m.body; the empty
	// params are replaced) and maps HTTP errors; the reply, an event
	// stream, is read here (see chunks.go).
	var httpRes *http.Response
	_, err = m.client.New(actx, sdk.ChatCompletionNewParams{}, option.WithRequestBody("application/json", body),
		option.WithResponseBodyInto(&httpRes))
	if httpRes != nil && httpRes.Body != nil {
		defer httpRes.Body.Close()
	}
	if err != nil {
		return res, false, m.classify(actx, err, httpRes, false)
	}
	stream := newChunkStream(httpRes.Body)
	for stream.Next() {
		// Our own time spent in emit is not the server's silence.
		if !timer.Stop() {
			break // the timer fired: actx is canceled, the cause says why
		}
		started = true
		gotChunk.Store(true)
		if err := takeChunk(&res, stream.Current(), emit); err != nil {
			return res, started, err
		}
		timer.Reset(m.idle)
	}
	err = stream.Err()
	if err == nil && actx.Err() == nil {
		res, err = m.finished(res)
		return res, started, err
	}
	if err == nil {
		err = context.Cause(actx)
	}
	return res, started, m.classify(actx, err, httpRes, started)
}

// takeChunk adds a streamed chunk to res and emits its content; only an
// emit failure is returned, as an emitError.
func takeChunk(res *gymbro.ModelResult, chunk *chunk, emit func(string) error) error {
	if chunk.Model != "" {
		res.Model = chunk.Model
	}
	if chunk.Usage != nil {
		res.Usage = gymbro.Usage{
			PromptTokens:     chunk.Usage.PromptTokens,
			CompletionTokens: chunk.Usage.CompletionTokens,
			TotalTokens:      chunk.Usage.TotalTokens,
		}
	}
	for _, c := range chunk.Choices {
		if c.Index != 0 {
			continue // we ask for one choice; ignore any other
		}
		if c.Delta.Content != "" {
			if err := emit(c.Delta.Content); err != nil {
				return emitError{err}
			}
		}
		if c.FinishReason != "" {
			res.FinishReason = c.FinishReason
		}
	}
	return nil
}

// finished is the outcome of a stream that ended cleanly. Without a
// finish_reason the connection was cut (a proxy's timeout, say) and the
// reply is truncated; otherwise the model is the one asked for when the
// server named none.
func (m *Model) finished(res gymbro.ModelResult) (gymbro.ModelResult, error) {
	if res.FinishReason == "" {
		return res, gymbro.Errorf(gymbro.KindUnavailable, gymbro.CodeAIUnavailable,
			"The AI service ended the reply before it was finished.")
	}
	if res.Model == "" {
		res.Model = m.model
	}
	return res, nil
}

// classify turns what went wrong with one attempt into a *gymbro.Error.
// Messages are for the end user; the SDK's error, which never includes the
// key, is kept as the hidden cause.
func (m *Model) classify(actx context.Context, err error, httpRes *http.Response, started bool) error {
	switch cause := context.Cause(actx); {
	case errors.Is(cause, errFirstChunkTimeout):
		return gymbro.Wrap(err, gymbro.KindTimeout, gymbro.CodeAITimeout, "The AI service did not start answering in time.")
	case errors.Is(cause, errIdleTimeout):
		return gymbro.Wrap(err, gymbro.KindTimeout, gymbro.CodeAITimeout, "The AI service stopped answering mid-reply.")
	case errors.Is(cause, errTotalTimeout):
		return gymbro.Wrap(err, gymbro.KindTimeout, gymbro.CodeAITimeout, "The AI service did not finish the reply in time.")
	}

	status := 0
	var header http.Header
	var apiErr *sdk.Error
	if errors.As(err, &apiErr) {
		status = apiErr.StatusCode
		if apiErr.Response != nil {
			header = apiErr.Response.Header
		}
	} else if httpRes != nil && httpRes.StatusCode >= 400 {
		// An error body that is not OpenAI's JSON (a gateway's HTML page)
		// makes the SDK fail to decode it; the status still tells.
		status, header = httpRes.StatusCode, httpRes.Header
	}
	switch {
	case status == http.StatusTooManyRequests:
		e := gymbro.Wrap(err, gymbro.KindRateLimited, gymbro.CodeAIRateLimited, "The AI service is rate limiting us; try again shortly.")
		e.RetryAfter, _ = retryAfter(header, m.now())
		return e
	case status == http.StatusRequestTimeout || status == http.StatusGatewayTimeout:
		return gymbro.Wrap(err, gymbro.KindTimeout, gymbro.CodeAITimeout, "The AI service timed out.")
	case status >= 500:
		e := gymbro.Wrap(err, gymbro.KindUnavailable, gymbro.CodeAIUnavailable, "The AI service is unavailable; try again shortly.")
		e.RetryAfter, _ = retryAfter(header, m.now())
		return e
	case status >= 400:
		return gymbro.Wrap(err, gymbro.KindUpstream, gymbro.CodeAIBadRequest, "The AI service rejected the request; the service's AI configuration needs attention.")
	}

	if typ, ok := streamErrorType(err); ok {
		switch {
		case strings.Contains(typ, "rate_limit") || strings.Contains(typ, "quota"):
			return gymbro.Wrap(err, gymbro.KindRateLimited, gymbro.CodeAIRateLimited, "The AI service is rate limiting us; try again shortly.")
		case strings.Contains(typ, "invalid_request"):
			return gymbro.Wrap(err, gymbro.KindUpstream, gymbro.CodeAIBadRequest, "The AI service rejected the request; the service's AI configuration needs attention.")
		}
		return gymbro.Wrap(err, gymbro.KindUnavailable, gymbro.CodeAIUnavailable, "The AI service failed while answering.")
	}

	var netErr interface{ Timeout() bool }
	if errors.As(err, &netErr) && netErr.Timeout() {
		return gymbro.Wrap(err, gymbro.KindTimeout, gymbro.CodeAITimeout, "The AI service timed out.")
	}
	if started {
		return gymbro.Wrap(err, gymbro.KindUnavailable, gymbro.CodeAIUnavailable, "The connection to the AI service broke mid-reply.")
	}
	// Refused, reset or unresolvable connections, and anything else that
	// kept a request from getting an answer: worth another try.
	return gymbro.Wrap(err, gymbro.KindUnavailable, gymbro.CodeAIUnavailable, "The AI service could not be reached; try again shortly.")
}

// retryDelay says how long to wait before retrying after err, and whether
// to retry at all: only rate limits and unavailability are transient, and
// not when the wait would outlast the call's deadline.
func (m *Model) retryDelay(ctx context.Context, err error, attempt int) (time.Duration, bool) {
	var e *gymbro.Error
	if !errors.As(err, &e) || (e.Kind != gymbro.KindRateLimited && e.Kind != gymbro.KindUnavailable) {
		return 0, false
	}
	delay := e.RetryAfter
	if delay > maxRetryAfter {
		return 0, false
	}
	if delay == 0 {
		delay = retryBackoff.Delay(attempt + 1) // attempt counts from 0
	}
	if deadline, ok := ctx.Deadline(); ok && m.now().Add(delay).After(deadline) {
		return 0, false
	}
	return delay, true
}
