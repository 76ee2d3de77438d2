package testenv

import (
	"context"
	"fmt"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PGServer is a PostgreSQL server of the test's own, in t.TempDir() on a
// free port: unlike the machine's shared server, a test may stop, restart
// and promote it. It stops when the test ends.
type PGServer struct {
	Name     string
	Port     int
	dir      string
	run      *pgRunner
	proc     *pgProcess
	settings []string // more -c name=value
}

// StartPGServer starts a PostgreSQL server of the test's own (initdb),
// with settings (name=value, as postgres -c takes them) over the
// defaults: for a test that needs what the shared server does not have,
// such as shared_preload_libraries=pg_stat_statements.
func StartPGServer(t testing.TB, settings ...string) *PGServer {
	t.Helper()
	run := newPGRunner(t)
	s := &PGServer{Name: "server", Port: pgFreePorts(t, 1)[0], dir: run.dir(t, "server"), run: run, settings: settings}
	run.run(t, pgBinary(t, "initdb"), "-D", s.dir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	s.Start(t)
	return s
}

// PGPair is a primary and a streaming standby, as a high-availability
// PostgreSQL runs: the standby is made with pg_basebackup -R from the
// primary and replays its WAL.
type PGPair struct {
	Primary, Standby *PGServer
}

// StartPGPair starts a PostgreSQL primary (initdb) and a standby streaming
// from it (pg_basebackup -R). With synchronous set, the primary waits for
// the standby on every commit (synchronous_standby_names = '*'), so a
// commit hangs while the standby is away. The setting is made on the
// primary after the base backup, so a promoted standby does not inherit it.
func StartPGPair(t testing.TB, synchronous bool) *PGPair {
	t.Helper()
	run := newPGRunner(t)
	ports := pgFreePorts(t, 2)
	primary := &PGServer{Name: "primary", Port: ports[0], dir: run.dir(t, "primary"), run: run}
	run.run(t, pgBinary(t, "initdb"), "-D", primary.dir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	primary.Start(t)
	standby := &PGServer{Name: "standby", Port: ports[1], dir: run.dir(t, "standby"), run: run}
	run.run(t, pgBinary(t, "pg_basebackup"), "-h", "127.0.0.1", "-p", strconv.Itoa(primary.Port), "-U", "postgres",
		"-D", standby.dir, "-R", "-X", "stream", "-c", "fast", "--no-sync")
	standby.Start(t)
	if synchronous {
		primary.Exec(t, `ALTER SYSTEM SET synchronous_standby_names = '*'`)
		primary.Exec(t, `SELECT pg_reload_conf()`)
	}
	p := &PGPair{Primary: primary, Standby: standby}
	p.AwaitStreaming(t)
	return p
}

// URL is the URL of database db on the pair: both hosts, and
// target_session_attrs=read-write so a client connects to whichever is the
// primary (the multi-host URL the deployment guide documents).
func (p *PGPair) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/%s?sslmode=disable&target_session_attrs=read-write&connect_timeout=2",
		p.Primary.Port, p.Standby.Port, db)
}

// AwaitStreaming waits until the standby streams from the primary, in
// sync when the primary asks for a synchronous standby.
func (p *PGPair) AwaitStreaming(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var state, mode string
		err := p.Primary.queryRow(`SELECT state, sync_state FROM pg_stat_replication LIMIT 1`, &state, &mode)
		if err == nil && state == "streaming" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the standby does not stream (%s %s, %v):\n%s", state, mode, err, pgTail(p.Standby.proc.out, 2000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// URL is the URL of database db on this server alone.
func (s *PGServer) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.Port, db)
}

// Start starts the server (again, after Stop).
func (s *PGServer) Start(t testing.TB) {
	t.Helper()
	args := []string{"-D", s.dir, "-p", strconv.Itoa(s.Port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=" + s.dir,
		"-c", "fsync=off", "-c", "max_connections=200", "-c", "shared_buffers=16MB",
		"-c", "cluster_name=" + s.Name, "-c", "wal_sender_timeout=5s", "-c", "wal_receiver_status_interval=1s"}
	for _, kv := range s.settings {
		args = append(args, "-c", kv)
	}
	s.proc = s.run.start(t, "127.0.0.1:"+strconv.Itoa(s.Port), pgBinary(t, "postgres"), args...)
	proc := s.proc
	t.Cleanup(func() { proc.stop(syscall.SIGQUIT) }) // immediate: the test is over
	s.awaitAccepting(t)
}

// awaitAccepting waits until the server accepts queries, which it does
// a moment after it listens (and a standby only once it is consistent).
func (s *PGServer) awaitAccepting(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var one int
		err := s.queryRow(`SELECT 1`, &one)
		if err == nil {
			return
		}
		if time.Now().After(deadline) || !s.proc.running() {
			t.Fatalf("PostgreSQL %s does not answer (%v):\n%s", s.Name, err, pgTail(s.proc.out, 2000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop shuts the server down the fast way (clients are disconnected, a
// primary first sends its standby all its WAL) and waits until it is gone.
func (s *PGServer) Stop(t testing.TB) {
	t.Helper()
	s.proc.stop(syscall.SIGINT)
}

// Promote makes a standby the primary and waits until it accepts writes.
func (s *PGServer) Promote(t testing.TB) {
	t.Helper()
	var ok bool
	if err := s.queryRow(`SELECT pg_promote(true, 30)`, &ok); err != nil || !ok {
		t.Fatalf("promote %s: %v (%v)", s.Name, ok, err)
	}
}

// Exec runs sql on database postgres, failing t on an error.
func (s *PGServer) Exec(t testing.TB, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		t.Fatalf("%s: %v", s.Name, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %s: %v", s.Name, sql, err)
	}
}

func (s *PGServer) queryRow(sql string, dest ...any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return conn.QueryRow(ctx, sql).Scan(dest...)
}
