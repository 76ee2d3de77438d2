// Package outage is the one place that decides whether an error from
// PostgreSQL, SQLite or Redis means the dependency cannot be reached right
// now (a failover, a restart, a partition, an overloaded server) rather
// than a bug. Both stores and both event logs ask it, so every outage is
// answered alike: 503 with Retry-After, never 500.
package outage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/redis/go-redis/v9"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// RetryAfter is what an outage answer asks a client to wait.
const RetryAfter = gymbro.OutageRetryAfter

// Is reports whether err means the dependency is unreachable for now.
func Is(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	return connectionTrouble(err) || postgresOutage(err) || redisOutage(err)
}

// connectionTrouble is a connection refused, reset, closed or timed out
// under the statement, whichever driver saw it.
func connectionTrouble(err error) bool {
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed)
}

// postgresOutage: pgx's "the statement never reached the server", a failed
// connect, a connection pgx found closed, and the SQLSTATEs of connection
// exceptions (class 08), a shutting-down server (57P01-57P03) and too many
// connections (53300).
func postgresOutage(err error) bool {
	var (
		connErr *pgconn.ConnectError
		pgErr   *pgconn.PgError
	)
	switch {
	case pgconn.SafeToRetry(err), pgconn.Timeout(err), errors.As(err, &connErr):
		return true
	case errors.As(err, &pgErr):
		c := pgErr.Code
		return strings.HasPrefix(c, "08") || c == "57P01" || c == "57P02" || c == "57P03" || c == "53300"
	}
	return strings.Contains(err.Error(), "conn closed")
}

// redisOutage: a replica still loading or read-only after a failover, no
// master, a cluster down or resharding, and go-redis's pool timing out.
func redisOutage(err error) bool {
	return redis.IsLoadingError(err) || redis.IsReadOnlyError(err) || redis.IsMasterDownError(err) ||
		redis.IsClusterDownError(err) || redis.IsTryAgainError(err) || errors.Is(err, redis.ErrPoolTimeout)
}

// Wrap returns err as the 503 of an outage of what; see gymbro.Unavailable.
func Wrap(err error, what string) *gymbro.Error { return gymbro.Unavailable(err, what) }

// NoAnswer is the error of an HTTP call to a dependency that got no answer.
// The caller's own cancellation passes through, wrapped with pkg, so a
// closed browser tab is not mistaken for an outage; a deadline or a network
// timeout becomes timedOut and anything else unreachable, each keeping err
// as its cause.
func NoAnswer(ctx context.Context, err error, pkg string, timedOut, unreachable gymbro.Error) error {
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return fmt.Errorf("%s: %w", pkg, context.Cause(ctx))
	}
	e := unreachable
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		e = timedOut
	}
	e.Err = err
	return &e
}
