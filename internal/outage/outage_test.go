package outage_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/redis/go-redis/v9"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/outage"
)

// redisErr is an error as go-redis returns a server's error reply.
type redisErr string

func (e redisErr) Error() string { return string(e) }
func (redisErr) RedisError()     {}

// TestIs: a connection lost under a statement, or a server saying it is
// going away, read-only or still loading, is an outage (503), never a bug.
func TestIs(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{io.ErrUnexpectedEOF, true},
		{fmt.Errorf("read: %w", io.EOF), true},
		{errors.New("conn closed"), true},
		{fmt.Errorf("write: %w", syscall.ECONNRESET), true},
		{fmt.Errorf("write: %w", syscall.EPIPE), true},
		{&pgconn.PgError{Code: "57P01"}, true},  // admin_shutdown
		{&pgconn.PgError{Code: "57P03"}, true},  // cannot_connect_now
		{&pgconn.PgError{Code: "53300"}, true},  // too_many_connections
		{&pgconn.PgError{Code: "08006"}, true},  // connection_failure
		{&pgconn.PgError{Code: "42P01"}, false}, // undefined_table: a bug
		{errors.New("something else"), false},
		{fmt.Errorf("dial: %w", syscall.ECONNREFUSED), true},
		{&pgconn.ConnectError{}, true},
		{redisErr("LOADING Redis is loading the dataset in memory"), true},
		{redisErr("READONLY You can't write against a read only replica."), true},
		{redisErr("MASTERDOWN Link with MASTER is down"), true},
		{redisErr("CLUSTERDOWN The cluster is down"), true},
		{redisErr("TRYAGAIN Multiple keys request during rehashing of slot"), true},
		{redis.ErrPoolTimeout, true},
		{redisErr("ERR unknown command"), false},
		{redisErr("NOSCRIPT No matching script"), false},
		{nil, false},
	} {
		if got := outage.Is(c.err); got != c.want {
			t.Errorf("Is(%v) = %v, want %v", c.err, got, c.want)
		}
	}
	if e := outage.Wrap(io.EOF, "The store"); e.RetryAfter != outage.RetryAfter || e.Message != "The store is unavailable; try again." {
		t.Errorf("Wrap = %+v", e)
	}
}

// TestNoAnswer: the caller's own cancellation passes through as itself; a
// deadline is the timeout error, anything else the unreachable one, each
// keeping the cause.
func TestNoAnswer(t *testing.T) {
	timedOut := gymbro.Error{Kind: gymbro.KindTimeout, Code: "t"}
	down := gymbro.Error{Kind: gymbro.KindUnavailable, Code: "d"}
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	err := outage.NoAnswer(gone, fmt.Errorf("dial: %w", context.Canceled), "pkg", timedOut, down)
	if !errors.Is(err, context.Canceled) || gymbro.ErrorKind(err) != gymbro.KindInternal || !strings.HasPrefix(err.Error(), "pkg: ") {
		t.Errorf("caller gone: %v", err)
	}
	live := context.Background()
	refused := errors.New("connection refused")
	for _, c := range []struct {
		err  error
		code string
	}{
		{context.DeadlineExceeded, "t"},
		{refused, "d"},
		{fmt.Errorf("dial: %w", context.Canceled), "d"}, // not the caller's: ctx is live
	} {
		err := outage.NoAnswer(live, c.err, "pkg", timedOut, down)
		if gymbro.ErrorCode(err) != c.code || !errors.Is(err, c.err) {
			t.Errorf("NoAnswer(%v) = %v, want code %s wrapping it", c.err, err, c.code)
		}
	}
}
