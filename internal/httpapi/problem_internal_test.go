package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/testenv"
)

// TestAbandonedRequestIs499: a request that failed because its client hung
// up is recorded as 499 and logged at debug, not as a 500 logged as an
// error; the same failure while the client still waits stays a 500.
func TestAbandonedRequestIs499(t *testing.T) {
	logs := &testenv.LogBuffer{}
	s := &Server{logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := httptest.NewRequest(http.MethodPost, "/api/v1/messages", nil).WithContext(ctx)
	w := httptest.NewRecorder()
	s.writeError(w, r, gymbro.Wrap(ctx.Err(), gymbro.KindUnavailable, "store_unavailable", "The store is unavailable."))
	if w.Code != StatusClientClosedRequest {
		t.Fatalf("abandoned request answered %d, want %d", w.Code, StatusClientClosedRequest)
	}
	if got := logs.String(); strings.Contains(got, "level=ERROR") || !strings.Contains(got, "request abandoned by the client") {
		t.Fatalf("log = %q, want one debug line saying the client left", got)
	}

	w = httptest.NewRecorder()
	r = httptest.NewRequest(http.MethodPost, "/api/v1/messages", nil)
	s.writeError(w, r, errors.Join(context.Canceled, errors.New("a canceled context of its own")))
	if w.Code != http.StatusInternalServerError || !strings.Contains(logs.String(), "level=ERROR") {
		t.Fatalf("a failure while the client waits answered %d; log %q", w.Code, logs.String())
	}
}
