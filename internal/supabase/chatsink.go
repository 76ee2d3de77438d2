package supabase

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// ChatSinkConfig configures a ChatSink.
type ChatSinkConfig struct {
	// URL is the project base, e.g. https://abc.supabase.co; the sink posts
	// to URL + "/rest/v1/chat_records".
	URL string
	// ServiceRoleKey is the secret key (legacy service_role JWT or
	// sb_secret_…). The table's RLS lets only this role write.
	ServiceRoleKey string
	// HTTPClient is the client to use; default a fresh *http.Client.
	HTTPClient *http.Client
	// Timeout bounds each call; default 10s.
	Timeout time.Duration
	// Now reads the clock for Retry-After given as an HTTP date; default
	// time.Now.
	Now func() time.Time
}

// LogValue keeps the key out of logs.
func (c ChatSinkConfig) LogValue() slog.Value {
	return slog.GroupValue(slog.String("url", c.URL),
		slog.String("service_role_key", maskKey(c.ServiceRoleKey)), slog.Duration("timeout", c.Timeout))
}

// ChatSink is the gymbro.ChatSink that upserts chat records into the
// project's public.chat_records table through PostgREST (Supabase's Data
// API). It is safe for concurrent use.
type ChatSink struct {
	endpoint string // URL + "/rest/v1/chat_records?on_conflict=id"
	key      string
	http     *http.Client
	timeout  time.Duration
	now      func() time.Time
}

var _ gymbro.ChatSink = (*ChatSink)(nil)

// NewChatSink returns a sink for the project at cfg.URL.
func NewChatSink(cfg ChatSinkConfig) *ChatSink {
	s := &ChatSink{
		endpoint: strings.TrimRight(cfg.URL, "/") + "/rest/v1/chat_records?on_conflict=id",
		key:      cfg.ServiceRoleKey,
		now:      cfg.Now,
	}
	s.http, s.timeout = httpDefaults(cfg.HTTPClient, cfg.Timeout)
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

// LogValue shows where the sink writes, never its key.
func (s *ChatSink) LogValue() slog.Value { return slog.StringValue(s.endpoint) }

// chatRow is one row of public.chat_records as PostgREST takes it: the
// record's columns, with user_id replaced and provider_uid added. Every
// row carries every key: PostgREST takes a bulk insert's columns from the
// first object, so rows must agree.
type chatRow struct {
	gymbro.ChatRecord
	// UserID shadows the record's user_id (encoding/json keeps the
	// shallower field of a name).
	UserID      *string `json:"user_id"`
	ProviderUID string  `json:"provider_uid"`
}

// rowOf maps the domain record to the table. The record's user_id is our
// uid; the table's user_id is a Supabase Auth uid (a UUID that the RLS
// policy compares with auth.uid()), so only a Supabase uid goes there, and
// every provider's own id (the token's sub, Firebase's included) goes to
// provider_uid. A record enqueued before uids were namespaced has no
// provider_uid; its user_id was that sub.
func rowOf(r gymbro.ChatRecord) chatRow {
	row := chatRow{ChatRecord: r, ProviderUID: cmp.Or(r.ProviderUID, r.UserID)}
	if row.Provider == "" {
		row.Provider = gymbro.ProviderSupabase // the column's default
	}
	if row.Provider == gymbro.ProviderSupabase {
		if u, err := uuid.Parse(r.UserID); err == nil {
			s := u.String()
			row.UserID = &s
		}
	}
	if row.Metadata == nil {
		row.Metadata = map[string]any{} // the column is NOT NULL; JSON null would be rejected
	}
	row.CreatedAt = r.CreatedAt.UTC()
	return row
}

// Upsert writes records in one request, idempotent on id: PostgREST turns
// Prefer: resolution=merge-duplicates with ?on_conflict=id into
// INSERT … ON CONFLICT (id) DO UPDATE, so a retried batch lands once.
// return=minimal spares the server from sending the rows back. Transient
// failures are KindUnavailable, KindTimeout or KindRateLimited with code
// sync_unavailable; a rejection no retry can fix is KindUnprocessable with
// code sync_rejected.
func (s *ChatSink) Upsert(ctx context.Context, records []gymbro.ChatRecord) error {
	if len(records) == 0 {
		return nil
	}
	rows := make([]chatRow, len(records))
	for i, r := range records {
		rows[i] = rowOf(r)
	}
	body, err := json.Marshal(rows)
	if err != nil {
		return gymbro.Wrap(err, gymbro.KindUnprocessable, gymbro.CodeSyncRejected, "A chat record cannot be encoded as JSON.")
	}
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodPost, s.endpoint, bytes.NewReader(body))
	if err != nil {
		return gymbro.Wrap(err, gymbro.KindUnprocessable, gymbro.CodeSyncRejected, "The Supabase URL is not usable.")
	}
	req.Header.Set("apikey", s.key)
	req.Header.Set("Authorization", "Bearer "+s.key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Prefer", "resolution=merge-duplicates,return=minimal")
	resp, err := s.http.Do(req)
	if err != nil {
		return s.transportError(ctx, err)
	}
	defer resp.Body.Close()
	// An error body is small; a success with return=minimal is empty. Read
	// a bounded amount so the connection can be reused.
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch resp.StatusCode {
	case http.StatusOK, http.StatusCreated, http.StatusNoContent:
		return nil
	}
	return s.statusError(resp, b)
}

// transportError classifies a failure to get an answer. The caller's own
// cancellation passes through unchanged so it is not taken for an outage.
func (s *ChatSink) transportError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("supabase: chat sink: %w", context.Cause(ctx))
	}
	return gymbro.Wrap(err, gymbro.KindUnavailable, gymbro.CodeSyncUnavailable, "Supabase REST is unreachable.")
}

// restError is PostgREST's error body, PostgreSQL's error fields as JSON
// (docs.postgrest.org, "Errors"): code is a SQLSTATE or PGRSTxxx.
type restError struct {
	Code    string  `json:"code"`
	Message string  `json:"message"`
	Details *string `json:"details"`
	Hint    *string `json:"hint"`
}

// statusError turns a non-success answer into a *gymbro.Error. Timeouts,
// rate limits and server-side failures (PostgREST maps a lost database
// connection to 503, serialization failures and the like to 500) are worth
// retrying; any other 4xx (a missing column PGRST204, a missing table
// PGRST205/42P01, a bad key, a constraint) will fail the same way again.
func (s *ChatSink) statusError(resp *http.Response, body []byte) error {
	detail := s.describe(resp, body)
	status := resp.StatusCode
	cause := fmt.Errorf("supabase: POST /rest/v1/chat_records: %d %s", status, detail)
	transient := func(kind gymbro.Kind, msg string) error {
		return &gymbro.Error{Kind: kind, Code: gymbro.CodeSyncUnavailable, Message: msg,
			RetryAfter: retryAfter(resp.Header.Get("Retry-After"), s.now()), Err: cause}
	}
	switch {
	case status == http.StatusRequestTimeout || status == http.StatusGatewayTimeout:
		return transient(gymbro.KindTimeout, "Supabase REST timed out: "+detail)
	case status == http.StatusTooManyRequests:
		return transient(gymbro.KindRateLimited, "Supabase REST is rate limiting: "+detail)
	case status >= 500:
		return transient(gymbro.KindUnavailable, "Supabase REST is failing: "+detail)
	case status >= 400:
		return &gymbro.Error{Kind: gymbro.KindUnprocessable, Code: gymbro.CodeSyncRejected,
			Message: "Supabase rejected the chat records: " + detail, Err: cause}
	}
	// A 1xx, another 2xx or a redirect the client did not follow: not an
	// answer PostgREST gives, so most likely a proxy in the way. Keep the
	// records and try again rather than bury them.
	return transient(gymbro.KindUnavailable, "Supabase REST answered unexpectedly: "+detail)
}

// describe renders the error body for logs and the outbox's last_error:
// "HTTP 400 PGRST204: message (details) hint: …". The key is cut out in
// case a proxy echoed a header back, and the text is bounded.
func (s *ChatSink) describe(resp *http.Response, body []byte) string {
	var e restError
	var out string
	if err := json.Unmarshal(body, &e); err == nil && (e.Code != "" || e.Message != "") {
		out = fmt.Sprintf("HTTP %d %s: %s", resp.StatusCode, e.Code, e.Message)
		if e.Details != nil && *e.Details != "" {
			out += " (" + *e.Details + ")"
		}
		if e.Hint != nil && *e.Hint != "" {
			out += " hint: " + *e.Hint
		}
	} else {
		out = "HTTP " + resp.Status
	}
	if s.key != "" {
		out = strings.ReplaceAll(out, s.key, "***")
	}
	if len(out) > 500 {
		out = strings.ToValidUTF8(out[:500], "") + "…"
	}
	return out
}

// retryAfter reads Retry-After as delay-seconds or an HTTP date (RFC 9110
// §10.2.3); zero when absent or unreadable.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
