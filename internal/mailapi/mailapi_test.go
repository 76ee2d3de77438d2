package mailapi_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/mailapi"
)

const testKey = "ms-test-key-0123456789abcdef"

// fakeMailSlurp speaks MailSlurp's inbox controller wire format: POST
// /inboxes with x-api-key, answering 201 with an Inbox JSON, 401 with
// {"message": …} on a wrong key.
type fakeMailSlurp struct {
	mu       sync.Mutex
	requests []*http.Request
	status   int    // when non-zero, answer this with body
	body     string // the body to answer with status
}

func (f *fakeMailSlurp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, r.Clone(context.Background()))
	status, body := f.status, f.body
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case status != 0:
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	case r.Method != http.MethodPost || r.URL.Path != "/inboxes":
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"message":"Not Found"}`))
	case r.Header.Get("x-api-key") != testKey:
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"message":"Invalid API KEY"}`))
	default:
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"id":"c5e6a3b0-8b4f-4d7a-9f1e-2a3b4c5d6e7f","userId":"u1",` +
			`"emailAddress":"c5e6a3b0-8b4f@mailslurp.biz","createdAt":"2026-01-02T03:04:05.000Z",` +
			`"expiresAt":null,"inboxType":"HTTP_INBOX","favourite":false,"readOnly":false}`))
	}
}

func (f *fakeMailSlurp) lastRequest(t *testing.T) *http.Request {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.requests) == 0 {
		t.Fatal("the mail API got no request")
	}
	return f.requests[len(f.requests)-1]
}

func newProvider(t *testing.T, f *fakeMailSlurp, opts mailapi.MailSlurpOptions) *mailapi.MailSlurp {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	opts.BaseURL = srv.URL + "/"
	opts.HTTPClient = srv.Client()
	p, err := mailapi.NewMailSlurp(opts)
	if err != nil {
		t.Fatalf("NewMailSlurp: %v", err)
	}
	return p
}

func TestCreateInbox(t *testing.T) {
	f := &fakeMailSlurp{}
	p := newProvider(t, f, mailapi.MailSlurpOptions{ExpiresIn: 90 * time.Minute})
	addr, err := p.CreateInbox(t.Context(), testKey)
	if err != nil {
		t.Fatalf("CreateInbox: %v", err)
	}
	if addr != "c5e6a3b0-8b4f@mailslurp.biz" {
		t.Errorf("address = %q", addr)
	}
	r := f.lastRequest(t)
	if r.Method != http.MethodPost || r.URL.Path != "/inboxes" {
		t.Errorf("request = %s %s, want POST /inboxes", r.Method, r.URL.Path)
	}
	if got := r.URL.Query().Get("expiresIn"); got != "5400000" {
		t.Errorf("expiresIn = %q, want 5400000 (ms)", got)
	}
	if strings.Contains(r.URL.RawQuery, testKey) {
		t.Error("the key is in the URL")
	}
}

func TestCreateInboxWithoutExpiry(t *testing.T) {
	f := &fakeMailSlurp{}
	p := newProvider(t, f, mailapi.MailSlurpOptions{})
	if _, err := p.CreateInbox(t.Context(), testKey); err != nil {
		t.Fatalf("CreateInbox: %v", err)
	}
	if q := f.lastRequest(t).URL.RawQuery; q != "" {
		t.Errorf("query = %q, want none", q)
	}
}

func TestCreateInboxFailures(t *testing.T) {
	tests := []struct {
		name        string
		key         string
		status      int
		body        string
		wantRefused bool
		wantInMsg   string
	}{
		{name: "wrong key", key: "nope", wantRefused: true, wantInMsg: "refused (HTTP 401)"},
		{name: "forbidden", key: testKey, status: 403, body: `{"message":"Plan limit"}`, wantRefused: true, wantInMsg: "refused (HTTP 403)"},
		{name: "empty key", key: "  ", wantRefused: true, wantInMsg: "empty"},
		{name: "server error", key: testKey, status: 500, body: `{"message":"boom"}`, wantInMsg: "HTTP 500): boom"},
		{name: "quota", key: testKey, status: 426, body: `{"error":"Upgrade required"}`, wantInMsg: "Upgrade required"},
		{name: "not json", key: testKey, status: 201, body: `<html>`, wantInMsg: "cannot read"},
		{name: "no address", key: testKey, status: 201, body: `{"id":"x"}`, wantInMsg: "emailAddress"},
		{name: "bad address", key: testKey, status: 201, body: `{"id":"x","emailAddress":"Evil <a@b.c>"}`, wantInMsg: "emailAddress"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeMailSlurp{status: tt.status, body: tt.body}
			p := newProvider(t, f, mailapi.MailSlurpOptions{})
			_, err := p.CreateInbox(t.Context(), tt.key)
			if got := gymbro.ErrorCode(err); got != mailapi.CodeMailAPIFailed {
				t.Fatalf("code = %q (%v), want mail_api_failed", got, err)
			}
			if k := gymbro.ErrorKind(err); k != gymbro.KindUpstream {
				t.Errorf("kind = %v, want KindUpstream", k)
			}
			if got := errors.Is(err, mailapi.ErrKeyRefused); got != tt.wantRefused {
				t.Errorf("errors.Is(ErrKeyRefused) = %v, want %v", got, tt.wantRefused)
			}
			if msg := gymbro.ErrorMessage(err); !strings.Contains(msg, tt.wantInMsg) {
				t.Errorf("message %q lacks %q", msg, tt.wantInMsg)
			}
			if strings.Contains(err.Error(), testKey) {
				t.Error("the error carries the key")
			}
		})
	}
}

func TestCreateInboxSendsKeyInHeader(t *testing.T) {
	f := &fakeMailSlurp{}
	p := newProvider(t, f, mailapi.MailSlurpOptions{})
	if _, err := p.CreateInbox(t.Context(), testKey); err != nil {
		t.Fatal(err)
	}
	if got := f.lastRequest(t).Header.Get("x-api-key"); got != testKey {
		t.Errorf("x-api-key = %q", got)
	}
}

func TestCreateInboxUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p, err := mailapi.NewMailSlurp(mailapi.MailSlurpOptions{BaseURL: "http://" + addr})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.CreateInbox(t.Context(), testKey)
	if gymbro.ErrorCode(err) != mailapi.CodeMailAPIFailed || gymbro.ErrorKind(err) != gymbro.KindUpstream {
		t.Fatalf("err = %v, want an upstream mail_api_failed", err)
	}
	if !strings.Contains(gymbro.ErrorMessage(err), "unreachable") {
		t.Errorf("message = %q", gymbro.ErrorMessage(err))
	}
}

func TestCreateInboxCallerCanceled(t *testing.T) {
	f := &fakeMailSlurp{}
	p := newProvider(t, f, mailapi.MailSlurpOptions{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := p.CreateInbox(ctx, testKey)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	var ge *gymbro.Error
	if errors.As(err, &ge) {
		t.Errorf("a caller's cancellation became %v", ge)
	}
}

func TestNewMailSlurpRejectsBadURL(t *testing.T) {
	for _, u := range []string{"ftp://x", "not a url", "http://", "/inboxes"} {
		if _, err := mailapi.NewMailSlurp(mailapi.MailSlurpOptions{BaseURL: u}); err == nil {
			t.Errorf("NewMailSlurp(%q) succeeded", u)
		}
	}
	p, err := mailapi.NewMailSlurp(mailapi.MailSlurpOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.LogValue().String(); got != mailapi.DefaultMailSlurpURL {
		t.Errorf("default base = %q", got)
	}
}
