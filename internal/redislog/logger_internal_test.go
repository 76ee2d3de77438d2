package redislog

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/gymbro/gymbro-api/internal/testenv"
)

// TestLibraryLoggerLevels: go-redis's reports of a change (a new Sentinel
// master) are info, its reports of trouble warnings.
func TestLibraryLoggerLevels(t *testing.T) {
	for msg, want := range map[string]string{
		`sentinel: new master="gymbro" addr="10.0.0.2:6379"`:                         "level=INFO",
		"redis: connection pool: failed to dial after 5 attempts: dial tcp: refused": "level=WARN",
		"redis: discarding bad PubSub connection: EOF":                               "level=WARN",
	} {
		logs := &testenv.LogBuffer{}
		libraryLogger{slog.New(slog.NewTextHandler(logs, nil))}.Printf(context.Background(), "%s\n", msg)
		if got := logs.String(); !strings.Contains(got, want) {
			t.Errorf("%q logged as %q, want %s", msg, got, want)
		}
	}
}
