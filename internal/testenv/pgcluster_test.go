package testenv_test

import (
	"context"
	"errors"
	neturl "net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gymbro/gymbro-api/internal/testenv"
)

// TestPGPair: a synchronous pair holds a commit while its standby is away
// and releases it when the standby is back; a promoted standby has every
// committed row and takes writes, and the multi-host URL finds it.
func TestPGPair(t *testing.T) {
	ctx := context.Background()
	p := testenv.StartPGPair(t, true)
	exec := func(url, sql string, timeout time.Duration) error {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		_, err = conn.Exec(ctx, sql)
		return err
	}
	url := p.URL("postgres")
	if err := exec(url, `CREATE TABLE t (n int)`, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Standby.Stop(t)
	if err := exec(url, `INSERT INTO t VALUES (1)`, time.Second); !errors.Is(err, context.DeadlineExceeded) && !pgconn.Timeout(err) {
		t.Fatalf("a commit without its synchronous standby = %v, want it to hang", err)
	}
	p.Standby.Start(t)
	p.AwaitStreaming(t)
	if err := exec(url, `INSERT INTO t VALUES (2)`, 10*time.Second); err != nil {
		t.Fatalf("a commit with the standby back: %v", err)
	}
	p.Primary.Stop(t)
	p.Standby.Promote(t)
	if err := exec(url, `INSERT INTO t VALUES (3)`, 10*time.Second); err != nil {
		t.Fatalf("a write on the promoted standby through the multi-host URL: %v", err)
	}
	conn, err := pgx.Connect(ctx, p.Standby.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil || n != 3 {
		t.Fatalf("rows on the promoted standby = %d (%v), want 3", n, err)
	}
}

// TestPgBouncer: PgBouncer in transaction mode forwards to the server, and
// a fresh database is reachable through it.
func TestPgBouncer(t *testing.T) {
	ctx := context.Background()
	url := testenv.PostgresDatabase(t, testenv.PostgresURL(t), "gymbro_testenv_")
	b := testenv.StartPgBouncer(t, url, 2)
	conn, err := pgx.Connect(ctx, b.URL(url))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var db string
	if err := conn.QueryRow(ctx, `SELECT current_database()`, pgx.QueryExecModeExec).Scan(&db); err != nil {
		t.Fatal(err)
	}
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.TrimPrefix(u.Path, "/"); db != want {
		t.Fatalf("database %q through PgBouncer, want %q", db, want)
	}
}
