package testenv

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// pgRunner runs PostgreSQL's and PgBouncer's programs for a test. Both
// refuse to run as root, so when the test runs as root (CI, this machine)
// they run as the postgres user, with their directories given to it.
type pgRunner struct {
	cred *syscall.Credential // nil: as the test's own user
	uid  int
	gid  int
}

// newPGRunner returns a runner, skipping t (failing it under CI) when the
// postgres user is needed and missing.
func newPGRunner(t testing.TB) *pgRunner {
	t.Helper()
	if os.Geteuid() != 0 {
		return &pgRunner{uid: -1, gid: -1}
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		pgSkipMissing(t, "the postgres user", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &pgRunner{cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, uid: uid, gid: gid}
}

// dir makes a directory under t.TempDir() that the runner's user owns. The
// test's temporary directory is private to root, so its ancestors below
// the system's temporary directory are opened for traversal (not reading).
func (r *pgRunner) dir(t testing.TB, name string) string {
	t.Helper()
	base := t.TempDir()
	d := filepath.Join(base, name)
	if err := os.Mkdir(d, 0o700); err != nil {
		t.Fatal(err)
	}
	if r.cred == nil {
		return d
	}
	for p := base; p != os.TempDir() && p != "/" && p != "."; p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(d, r.uid, r.gid); err != nil {
		t.Fatal(err)
	}
	return d
}

// command is name with args, run as the runner's user.
func (r *pgRunner) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: r.cred, Setpgid: true}
	if r.cred != nil {
		cmd.Env = append(cmd.Env, "HOME=/tmp", "USER=postgres")
	}
	return cmd
}

// run runs a short command to its end, failing t with its output.
func (r *pgRunner) run(t testing.TB, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := r.command(ctx, name, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", filepath.Base(name), args, err, out)
	}
}

// pgProcess is a server (postgres, pgbouncer) a test started and stops.
type pgProcess struct {
	name string
	cmd  *exec.Cmd
	out  *LogBuffer
	done chan struct{}
	err  error
}

// start starts a long-running server and waits until addr accepts TCP
// connections.
func (r *pgRunner) start(t testing.TB, addr, name string, args ...string) *pgProcess {
	t.Helper()
	p := &pgProcess{name: filepath.Base(name), out: &LogBuffer{}, done: make(chan struct{})}
	p.cmd = r.command(context.Background(), name, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited at start (%v):\n%s", p.name, p.err, p.out)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop(syscall.SIGKILL)
			t.Fatalf("%s does not accept connections at %s:\n%s", p.name, addr, p.out)
		}
	}
}

// stop sends sig and waits for the process to end, killing it after 30 s.
func (p *pgProcess) stop(sig syscall.Signal) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// running reports whether the process has not exited.
func (p *pgProcess) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// pgBinary finds a PostgreSQL program: in GYMBRO_TEST_PG_BINDIR, Debian's
// /usr/lib/postgresql/<version>/bin (15 first), or PATH.
func pgBinary(t testing.TB, name string) string {
	t.Helper()
	dirs := []string{os.Getenv("GYMBRO_TEST_PG_BINDIR"), "/usr/lib/postgresql/15/bin"}
	more, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	for _, d := range append(dirs, more...) {
		if d == "" {
			continue
		}
		if p := filepath.Join(d, name); isExecutable(p) {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	pgSkipMissing(t, name, fmt.Errorf("not in /usr/lib/postgresql/*/bin or PATH"))
	return ""
}

func isExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// pgSkipMissing skips t for want of what, or fails it under CI, where .ci/run
// installs everything a test needs.
func pgSkipMissing(t testing.TB, what string, err error) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is missing (%v); .ci/run must install it", what, err)
	}
	t.Skipf("%s is missing (%v); install it to run this test", what, err)
}

// pgFreePorts returns n loopback ports nothing listens on now.
func pgFreePorts(t testing.TB, n int) []int {
	t.Helper()
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return ports
}

// pgTail is the end of a server's output, for a failure message.
func pgTail(b *LogBuffer, n int) string {
	s := []byte(b.String())
	if len(s) > n {
		s = s[len(s)-n:]
		if i := bytes.IndexByte(s, '\n'); i >= 0 {
			s = s[i+1:]
		}
	}
	return string(s)
}
