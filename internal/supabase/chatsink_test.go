package supabase_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/supabase"
	"github.com/gymbro/gymbro-api/internal/supabasetest"
)

const sinkKey = "sb_secret_chatSinkTestKey0123456789"

func strp(s string) *string { return &s }

func record(provider, uid string) gymbro.ChatRecord {
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	done := created.Add(3 * time.Second)
	return gymbro.ChatRecord{
		ID: uuid.NewString(), UserID: uid, Provider: provider, ConversationID: uuid.NewString(),
		UserMessage: "how deep should I squat?", AIResponse: "to parallel", Status: gymbro.StatusCompleted,
		Model: strp("demo"), PromptTokens: 3, CompletionTokens: 4, TotalTokens: 7, TraceID: strp("trace-1"),
		Metadata: map[string]any{"finish_reason": "stop"}, CreatedAt: created, CompletedAt: &done,
	}
}

func TestChatSinkUpsertsRows(t *testing.T) {
	ctx := context.Background()
	fake := supabasetest.New(t, sinkKey)
	sink := supabase.NewChatSink(supabase.ChatSinkConfig{URL: fake.URL() + "/", ServiceRoleKey: sinkKey})

	supaUID := uuid.NewString()
	supa := record(gymbro.ProviderSupabase, supaUID)
	fire := record(gymbro.ProviderFirebase, "firebase:kL3x9FirebaseUid0000000000")
	fire.ProviderUID = "kL3x9FirebaseUid0000000000"
	fire.Status, fire.ErrorCode, fire.AIResponse, fire.Metadata, fire.Model = gymbro.StatusFailed, strp("ai_unavailable"), "", nil, nil
	// Enqueued by an earlier version: no provider_uid, and user_id the bare sub.
	legacy := record(gymbro.ProviderFirebase, "kL3x9FirebaseUid0000000000")
	if err := sink.Upsert(ctx, []gymbro.ChatRecord{supa, fire, legacy}); err != nil {
		t.Fatalf("Upsert: %v", err)
	}
	if v := fake.Violations(); len(v) != 0 {
		t.Fatalf("wire contract broken: %v", v)
	}

	wantSupa := map[string]any{
		"id": supa.ID, "user_id": supaUID, "provider": "supabase", "provider_uid": supaUID,
		"conversation_id": supa.ConversationID, "user_message": supa.UserMessage, "ai_response": "to parallel",
		"status": "completed", "error_code": nil, "model": "demo", "prompt_tokens": float64(3),
		"completion_tokens": float64(4), "total_tokens": float64(7), "trace_id": "trace-1",
		"metadata": map[string]any{"finish_reason": "stop"}, "created_at": "2026-01-02T03:04:05Z",
		"completed_at": "2026-01-02T03:04:08Z",
	}
	if diff := cmp.Diff(wantSupa, fake.Row(supa.ID)); diff != "" {
		t.Errorf("supabase row (-want +got):\n%s", diff)
	}
	// A Firebase uid is not a Supabase uid: the sub lives in provider_uid only.
	for _, r := range []gymbro.ChatRecord{fire, legacy} {
		got := fake.Row(r.ID)
		if got["user_id"] != nil || got["provider"] != "firebase" || got["provider_uid"] != "kL3x9FirebaseUid0000000000" {
			t.Errorf("firebase row identity = %v/%v/%v, want nil/firebase/the sub", got["user_id"], got["provider"], got["provider_uid"])
		}
	}
	got := fake.Row(fire.ID)
	if diff := cmp.Diff(map[string]any{}, got["metadata"]); diff != "" {
		t.Errorf("nil metadata must be sent as {} (NOT NULL column): %s", diff)
	}
	if got["status"] != "error" || got["error_code"] != "ai_unavailable" || got["model"] != nil {
		t.Errorf("firebase row status = %v %v %v", got["status"], got["error_code"], got["model"])
	}

	// A re-delivery merges: the same ids land once, with the newer values.
	supa.AIResponse = "to parallel, or deeper if mobile"
	if err := sink.Upsert(ctx, []gymbro.ChatRecord{supa}); err != nil {
		t.Fatalf("second Upsert: %v", err)
	}
	if fake.Len() != 3 || fake.Row(supa.ID)["ai_response"] != supa.AIResponse {
		t.Errorf("after re-delivery: %d rows, ai_response %v", fake.Len(), fake.Row(supa.ID)["ai_response"])
	}
	if err := sink.Upsert(ctx, nil); err != nil || fake.Requests() != 2 {
		t.Errorf("empty Upsert: err %v, %d requests (want no request)", err, fake.Requests())
	}
}

func TestChatSinkWrongKeyIsPermanent(t *testing.T) {
	fake := supabasetest.New(t, sinkKey)
	sink := supabase.NewChatSink(supabase.ChatSinkConfig{URL: fake.URL(), ServiceRoleKey: "sb_secret_wrong"})
	err := sink.Upsert(context.Background(), []gymbro.ChatRecord{record("supabase", uuid.NewString())})
	if gymbro.ErrorCode(err) != gymbro.CodeSyncRejected || gymbro.ErrorKind(err) != gymbro.KindUnprocessable {
		t.Fatalf("wrong key: %v, want sync_rejected", err)
	}
	if strings.Contains(err.Error(), "sb_secret_wrong") {
		t.Errorf("error leaks the key: %v", err)
	}
}

func TestChatSinkErrorClassification(t *testing.T) {
	pgrst204 := `{"code":"PGRST204","message":"Could not find the 'x' column of 'chat_records' in the schema cache","details":null,"hint":null}`
	tests := []struct {
		name       string
		status     int
		header     http.Header
		body       string
		kind       gymbro.Kind
		code       string
		retryAfter time.Duration
		inMessage  string
	}{
		{"ok 201", 201, nil, "", 0, "", 0, ""},
		{"ok 200 merged", 200, nil, "", 0, "", 0, ""},
		{"ok 204", 204, nil, "", 0, "", 0, ""},
		{"bad column", 400, nil, pgrst204, gymbro.KindUnprocessable, gymbro.CodeSyncRejected, 0, "PGRST204: Could not find the 'x' column"},
		{"bad key", 401, nil, `{"message":"Invalid API key","hint":"Double check your Supabase ` + "`anon`" + ` or ` + "`service_role`" + ` API key."}`, gymbro.KindUnprocessable, gymbro.CodeSyncRejected, 0, "Invalid API key"},
		{"forbidden", 403, nil, `{"code":"42501","message":"permission denied for table chat_records","details":null,"hint":null}`, gymbro.KindUnprocessable, gymbro.CodeSyncRejected, 0, "42501"},
		{"missing table", 404, nil, `{"code":"PGRST205","message":"Could not find the table 'public.chat_records' in the schema cache","details":null,"hint":"Perhaps you meant the table 'public.chat_record'"}`, gymbro.KindUnprocessable, gymbro.CodeSyncRejected, 0, "hint: Perhaps"},
		{"missing relation", 404, nil, `{"code":"42P01","message":"relation \"public.chat_records\" does not exist","details":null,"hint":null}`, gymbro.KindUnprocessable, gymbro.CodeSyncRejected, 0, "42P01"},
		{"conflict", 409, nil, `{"code":"23505","message":"duplicate key value violates unique constraint","details":"Key (x)=(1) already exists.","hint":null}`, gymbro.KindUnprocessable, gymbro.CodeSyncRejected, 0, "(Key (x)=(1) already exists.)"},
		{"unprocessable", 422, nil, `not json`, gymbro.KindUnprocessable, gymbro.CodeSyncRejected, 0, "HTTP 422"},
		{"request timeout", 408, nil, ``, gymbro.KindTimeout, gymbro.CodeSyncUnavailable, 0, ""},
		{"rate limited", 429, http.Header{"Retry-After": {"7"}}, ``, gymbro.KindRateLimited, gymbro.CodeSyncUnavailable, 7 * time.Second, ""},
		{"rate limited, date", 429, http.Header{"Retry-After": {"Fri, 02 Jan 2026 03:05:05 GMT"}}, ``, gymbro.KindRateLimited, gymbro.CodeSyncUnavailable, 60 * time.Second, ""},
		{"server error", 500, nil, `{"code":"40001","message":"could not serialize access","details":null,"hint":null}`, gymbro.KindUnavailable, gymbro.CodeSyncUnavailable, 0, "40001"},
		{"database down", 503, http.Header{"Retry-After": {"3"}}, `{"code":"PGRST001","message":"Database client error. Retrying the connection.","details":null,"hint":null}`, gymbro.KindUnavailable, gymbro.CodeSyncUnavailable, 3 * time.Second, "PGRST001"},
		{"bad gateway", 502, nil, `<html>bad gateway</html>`, gymbro.KindUnavailable, gymbro.CodeSyncUnavailable, 0, "HTTP 502"},
		{"gateway timeout", 504, nil, ``, gymbro.KindTimeout, gymbro.CodeSyncUnavailable, 0, ""},
		{"echoed key is cut", 400, nil, `{"code":"X","message":"bad apikey ` + sinkKey + `"}`, gymbro.KindUnprocessable, gymbro.CodeSyncRejected, 0, "bad apikey ***"},
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header()[k] = v
				}
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			sink := supabase.NewChatSink(supabase.ChatSinkConfig{URL: srv.URL, ServiceRoleKey: sinkKey, Now: func() time.Time { return now }})
			err := sink.Upsert(context.Background(), []gymbro.ChatRecord{record("supabase", uuid.NewString())})
			if tt.code == "" {
				if err != nil {
					t.Fatalf("Upsert: %v, want success", err)
				}
				return
			}
			var ge *gymbro.Error
			if !errors.As(err, &ge) {
				t.Fatalf("Upsert: %v, want *gymbro.Error", err)
			}
			if ge.Kind != tt.kind || ge.Code != tt.code || ge.RetryAfter != tt.retryAfter {
				t.Errorf("got kind %d code %s retry %v, want %d %s %v", ge.Kind, ge.Code, ge.RetryAfter, tt.kind, tt.code, tt.retryAfter)
			}
			if !strings.Contains(ge.Message, tt.inMessage) {
				t.Errorf("message %q lacks %q", ge.Message, tt.inMessage)
			}
			if strings.Contains(err.Error(), sinkKey) {
				t.Errorf("error leaks the key: %v", err)
			}
		})
	}
}

func TestChatSinkTransportFailures(t *testing.T) {
	// Nothing listens here any more: connection refused is an outage.
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	sink := supabase.NewChatSink(supabase.ChatSinkConfig{URL: url, ServiceRoleKey: sinkKey})
	err := sink.Upsert(context.Background(), []gymbro.ChatRecord{record("supabase", uuid.NewString())})
	if gymbro.ErrorKind(err) != gymbro.KindUnavailable || gymbro.ErrorCode(err) != gymbro.CodeSyncUnavailable {
		t.Errorf("refused: %v, want KindUnavailable sync_unavailable", err)
	}

	// A server that never answers: our timeout is an outage too.
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	sink = supabase.NewChatSink(supabase.ChatSinkConfig{URL: slow.URL, ServiceRoleKey: sinkKey, Timeout: 50 * time.Millisecond})
	err = sink.Upsert(context.Background(), []gymbro.ChatRecord{record("supabase", uuid.NewString())})
	if gymbro.ErrorKind(err) != gymbro.KindUnavailable || gymbro.ErrorCode(err) != gymbro.CodeSyncUnavailable {
		t.Errorf("timeout: %v, want KindUnavailable sync_unavailable", err)
	}

	// The caller's own cancellation is not an outage.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = sink.Upsert(ctx, []gymbro.ChatRecord{record("supabase", uuid.NewString())})
	if !errors.Is(err, context.Canceled) || gymbro.ErrorCode(err) == gymbro.CodeSyncUnavailable {
		t.Errorf("canceled: %v, want context.Canceled", err)
	}
}

func TestChatSinkLogsNoKey(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	cfg := supabase.ChatSinkConfig{URL: "https://abc.supabase.co", ServiceRoleKey: sinkKey}
	log.Info("config", "sink", cfg, "client", supabase.NewChatSink(cfg))
	if strings.Contains(buf.String(), sinkKey) || !strings.Contains(buf.String(), "sb_secret_***") {
		t.Errorf("log = %s", buf.String())
	}
}
