package redislog

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strings"

	"github.com/redis/go-redis/v9"
)

// SetLogger sends go-redis's own messages (a pool that cannot dial, a
// Sentinel that does not answer, a new master) to logger, tagged
// component=go-redis, failures as warnings and the rest as info, instead of
// the library's default: unstructured lines on standard error that bypass
// the service's log format and level. go-redis keeps one logger for the
// whole process, so the last call wins.
func SetLogger(logger *slog.Logger) {
	if logger == nil {
		return
	}
	redis.SetLogger(libraryLogger{logger.With("component", "go-redis")})
}

type libraryLogger struct{ l *slog.Logger }

func (g libraryLogger) Printf(ctx context.Context, format string, v ...any) {
	msg := strings.TrimSpace(fmt.Sprintf(format, v...))
	level := slog.LevelInfo // "sentinel: new master …" and the like
	if trouble.MatchString(msg) {
		level = slog.LevelWarn
	}
	g.l.Log(ctx, level, msg)
}

// trouble matches go-redis messages that report a failure rather than a
// change (a pool that cannot dial, a command that failed, a lost
// connection).
var trouble = regexp.MustCompile(`(?i)fail|error|refused|timeout|lost|panic|discard|unable`)
