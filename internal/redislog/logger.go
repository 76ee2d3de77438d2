package redislog

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/redis/go-redis/v9"
)

// SetLogger sends go-redis's own messages (a pool that cannot dial, a
// Sentinel that does not answer, a cluster slot map being reloaded) to
// logger as warnings tagged component=go-redis, instead of the library's
// default: unstructured lines on standard error that bypass the service's
// log format and level. go-redis keeps one logger for the whole process,
// so the last call wins.
func SetLogger(logger *slog.Logger) {
	if logger == nil {
		return
	}
	redis.SetLogger(libraryLogger{logger.With("component", "go-redis")})
}

type libraryLogger struct{ l *slog.Logger }

func (g libraryLogger) Printf(ctx context.Context, format string, v ...any) {
	g.l.WarnContext(ctx, strings.TrimSpace(fmt.Sprintf(format, v...)))
}
