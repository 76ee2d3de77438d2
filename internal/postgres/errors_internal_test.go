package postgres

import (
	"errors"
	"fmt"
	"io"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// TestDBErrClassifiesOutages: a connection lost under a statement, or a
// server saying it is going away, is unavailable (503), never internal.
func TestDBErrClassifiesOutages(t *testing.T) {
	for _, c := range []struct {
		err  error
		kind gymbro.Kind
	}{
		{io.ErrUnexpectedEOF, gymbro.KindUnavailable},
		{fmt.Errorf("read: %w", io.EOF), gymbro.KindUnavailable},
		{errors.New("conn closed"), gymbro.KindUnavailable},
		{fmt.Errorf("write: %w", syscall.ECONNRESET), gymbro.KindUnavailable},
		{fmt.Errorf("write: %w", syscall.EPIPE), gymbro.KindUnavailable},
		{&pgconn.PgError{Code: "57P01"}, gymbro.KindUnavailable}, // admin_shutdown
		{&pgconn.PgError{Code: "57P03"}, gymbro.KindUnavailable}, // cannot_connect_now
		{&pgconn.PgError{Code: "53300"}, gymbro.KindUnavailable}, // too_many_connections
		{&pgconn.PgError{Code: "08006"}, gymbro.KindUnavailable}, // connection_failure
		{&pgconn.PgError{Code: "42P01"}, gymbro.KindInternal},    // undefined_table: a bug
		{errors.New("something else"), gymbro.KindInternal},
	} {
		if got := gymbro.ErrorKind(dbErr(c.err)); got != c.kind {
			t.Errorf("dbErr(%v): kind %v, want %v", c.err, got, c.kind)
		}
	}
}
