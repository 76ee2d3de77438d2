package testenv

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PgBouncer is a PgBouncer a test runs in front of a PostgreSQL server, in
// pool_mode = transaction: each transaction may run on a different server
// connection, as behind Supabase's transaction pooler (Supavisor, port
// 6543). It stops when the test ends.
type PgBouncer struct {
	Port int
	proc *pgProcess
}

// StartPgBouncer starts PgBouncer in transaction mode in t.TempDir() on a
// free port, forwarding every database to the PostgreSQL server of rawURL
// (a postgres:// URL; trust authentication, as on this machine) with at
// most poolSize server connections per database and user. It skips t (or
// fails it under CI) when the pgbouncer binary is missing.
func StartPgBouncer(t testing.TB, rawURL string, poolSize int) *PgBouncer {
	t.Helper()
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		pgSkipMissing(t, "pgbouncer", err)
	}
	u, err := url.Parse(rawURL)
	if err != nil || u.Hostname() == "" {
		t.Fatalf("testenv: cannot put PgBouncer in front of %q: not a URL with a host", rawURL)
	}
	port := u.Port()
	if port == "" {
		port = "5432"
	}
	run := newPGRunner(t)
	dir := run.dir(t, "pgbouncer")
	b := &PgBouncer{Port: pgFreePorts(t, 1)[0]}
	user := u.User.Username()
	conf := fmt.Sprintf(`[databases]
* = host=%s port=%s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s
admin_users = %s
stats_users = %s
pool_mode = transaction
default_pool_size = %d
max_client_conn = 500
`, u.Hostname(), port, b.Port, filepath.Join(dir, "users.txt"), user, user, poolSize)
	write := func(name, content string) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if run.cred != nil {
			if err := os.Chown(p, run.uid, run.gid); err != nil {
				t.Fatal(err)
			}
		}
	}
	write("users.txt", strconv.Quote(user)+` ""`+"\n")
	write("pgbouncer.ini", conf)
	b.proc = run.start(t, "127.0.0.1:"+strconv.Itoa(b.Port), bin, filepath.Join(dir, "pgbouncer.ini"))
	t.Cleanup(func() { b.proc.stop(syscall.SIGTERM) }) // SIGTERM: immediate shutdown
	return b
}

// URL returns rawURL with its host replaced by PgBouncer's, so it reaches
// the same server and database through the pooler.
func (b *PgBouncer) URL(rawURL string) string {
	u, _ := url.Parse(rawURL)
	u.Host = "127.0.0.1:" + strconv.Itoa(b.Port)
	return u.String()
}

// Log is what PgBouncer has logged so far.
func (b *PgBouncer) Log() string { return b.proc.out.String() }

// PostgresDatabase creates a database no other test uses on the server of
// url and drops it when t ends, and returns url naming it: for a test
// that needs a fresh database rather than a schema (what a fresh
// deployment meets, or a store left on the default search_path).
func PostgresDatabase(t testing.TB, rawURL, prefix string) string {
	t.Helper()
	name := UniqueName(prefix)
	exec := func(sql string) error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, rawURL)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	quoted := pgx.Identifier{name}.Sanitize()
	if err := exec(`CREATE DATABASE ` + quoted); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		if err := exec(`DROP DATABASE ` + quoted + ` WITH (FORCE)`); err != nil {
			t.Errorf("drop database: %v", err)
		}
	})
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}
