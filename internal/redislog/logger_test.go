package redislog_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gymbro/gymbro-api/internal/redislog"
	"github.com/gymbro/gymbro-api/internal/testenv"
)

// TestSetLoggerRoutesLibraryMessages: a client whose server cannot be
// reached makes go-redis log its dial failures; after SetLogger they are
// JSON records of the service's logger, not bare lines on standard error.
func TestSetLoggerRoutesLibraryMessages(t *testing.T) {
	buf := &testenv.LogBuffer{}
	redislog.SetLogger(slog.New(slog.NewJSONHandler(buf, nil)))
	t.Cleanup(func() { redislog.SetLogger(slog.New(slog.NewTextHandler(os.Stderr, nil))) })

	// A Sentinel client with no sentinel listening logs each failed lookup.
	c := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:    "nobody",
		SentinelAddrs: []string{"127.0.0.1:1"},
		DialTimeout:   100 * time.Millisecond,
		MaxRetries:    -1,
	})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("ping through a sentinel that is not there succeeded")
	}
	line, _, _ := strings.Cut(buf.String(), "\n")
	var rec struct {
		Level     string `json:"level"`
		Msg       string `json:"msg"`
		Component string `json:"component"`
	}
	if err := json.Unmarshal([]byte(line), &rec); err != nil {
		t.Fatalf("go-redis did not log through the logger as JSON: %q (%v)", line, err)
	}
	if rec.Level != "WARN" || rec.Component != "go-redis" || !strings.Contains(rec.Msg, "sentinel") {
		t.Fatalf("record = %+v, want a WARN from component go-redis about the sentinel", rec)
	}
}
