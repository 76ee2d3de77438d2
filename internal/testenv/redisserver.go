package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisWait bounds each wait for a Redis server, cluster or sentinel to
// reach a state. It is a failure deadline, never a speed assertion; the
// machine may be loaded.
const redisWait = 30 * time.Second

// RedisServer is one redis-server (or sentinel) process a test started in
// its temporary directory, on a free loopback port.
type RedisServer struct {
	Addr string // 127.0.0.1:port
	Port int
	log  string

	program string
	args    []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// requireRedisBinaries skips t (fails it on CI) when a program it needs is
// not installed.
func requireRedisBinaries(t testing.TB, names ...string) {
	t.Helper()
	for _, name := range names {
		if _, err := exec.LookPath(name); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is not installed; CI must provide it (.ci/run installs it)", name)
			}
			t.Skipf("%s is not installed (apt-get install redis-server redis-sentinel redis-tools); it is needed to run this test", name)
		}
	}
}

// redisFreePorts returns n loopback ports nothing listens on now.
func redisFreePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln) // held until all are chosen, so none repeats
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// startRedisProcess runs program (redis-server or redis-sentinel) with
// args in dir, logging to name.log there, and stops it when t ends.
func startRedisProcess(t testing.TB, dir, name string, port int, program string, args ...string) *RedisServer {
	t.Helper()
	s := &RedisServer{Addr: "127.0.0.1:" + strconv.Itoa(port), Port: port, log: filepath.Join(dir, name+".log"),
		program: program, args: args}
	s.start(t, program, args...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s log (tail):\n%s", name, tail(s.log, 2000))
		}
		s.Kill()
	})
	return s
}

func (s *RedisServer) start(t testing.TB, program string, args ...string) {
	t.Helper()
	cmd := exec.Command(program, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", program, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	if err := s.awaitPing(); err != nil {
		s.Kill()
		t.Fatalf("%s on %s: %v; stderr %s; log:\n%s", program, s.Addr, err, stderr.String(), tail(s.log, 2000))
	}
}

// Restart starts a killed server again on its port, with its first
// arguments and extra ones after them.
func (s *RedisServer) Restart(t testing.TB, extra ...string) {
	t.Helper()
	s.Kill()
	s.start(t, s.program, append(append([]string(nil), s.args...), extra...)...)
}

// awaitPing waits until the server answers PING.
func (s *RedisServer) awaitPing() error {
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, DialTimeout: time.Second})
	defer c.Close()
	return redisAwait(func() (bool, error) {
		select {
		case <-s.done:
			return false, errors.New("the process exited")
		default:
		}
		return c.Ping(context.Background()).Err() == nil, nil
	})
}

// Kill ends the process at once (SIGKILL, as a crashed machine would) and
// waits for it. Killing a stopped server does nothing.
func (s *RedisServer) Kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// redisAwait polls cond every 20 ms until it holds, fails, or redisWait
// passes.
func redisAwait(cond func() (bool, error)) error {
	deadline := time.Now().Add(redisWait)
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v", redisWait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// redisServerArgs are the settings every test server shares: loopback only,
// no persistence, its files in dir.
func redisServerArgs(dir, name string, port int) []string {
	return []string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--logfile", name + ".log", "--save", "", "--appendonly", "no", "--daemonize", "no",
	}
}

// UniversalPrefix returns a key prefix that starts with prefix and no other
// test uses, and deletes its keys when t ends, on every master of a Redis
// Cluster (RedisPrefix scans one server).
func UniversalPrefix(t testing.TB, c redis.UniversalClient, prefix string) string {
	t.Helper()
	prefix = UniqueName(prefix) + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		clean := func(ctx context.Context, node *redis.Client) error {
			iter := node.Scan(ctx, 0, prefix+"*", 100).Iterator()
			var keys []string
			for iter.Next(ctx) {
				keys = append(keys, iter.Val())
			}
			for _, k := range keys {
				node.Del(ctx, k)
			}
			return iter.Err()
		}
		var err error
		switch cc := c.(type) {
		case *redis.ClusterClient:
			err = cc.ForEachMaster(ctx, clean)
		case *redis.Client:
			err = clean(ctx, cc)
		}
		if err != nil && !strings.Contains(err.Error(), "closed") {
			t.Errorf("deleting test keys: %v", err)
		}
	})
	return prefix
}

// StartRedisServer starts a standalone redis-server of the test's own, for
// a test that must be its only client (counting its commands, killing it).
func StartRedisServer(t testing.TB) *RedisServer {
	t.Helper()
	requireRedisBinaries(t, "redis-server")
	dir := t.TempDir()
	port := redisFreePorts(t, 1)[0]
	return startRedisProcess(t, dir, "redis", port, "redis-server", redisServerArgs(dir, "redis", port)...)
}
