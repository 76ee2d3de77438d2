package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// RedisSentinelMaster is the name the test sentinels monitor.
const RedisSentinelMaster = "gymbro"

// RedisSentinel is a Redis master, one replica and sentinels watching them,
// started by a test in its temporary directory from Debian's redis-server
// and redis-sentinel, on free loopback ports. The sentinels declare the
// master down after a second without an answer and promote the replica.
// Everything stops when the test ends.
type RedisSentinel struct {
	Servers   []*RedisServer // the master, then the replica, as started
	Sentinels []*RedisServer
	// URL reaches the master through the sentinels as GYMBRO_REDIS_URL
	// does in sentinel mode: redis://sentinel1?master_name=gymbro&addr=sentinel2.
	URL string
}

// StartRedisSentinel starts the master, its replica and n sentinels (a
// quorum of n/2+1), and waits until the replica is in sync and every
// sentinel knows the replica.
func StartRedisSentinel(t testing.TB, n int) *RedisSentinel {
	t.Helper()
	requireRedisBinaries(t, "redis-server", "redis-sentinel")
	dir := t.TempDir()
	ports := redisFreePorts(t, 2+n)
	s := &RedisSentinel{}
	master := startRedisProcess(t, dir, "master", ports[0], "redis-server", redisServerArgs(dir, "master", ports[0])...)
	replica := startRedisProcess(t, dir, "replica", ports[1], "redis-server",
		append(redisServerArgs(dir, "replica", ports[1]), "--replicaof", "127.0.0.1", strconv.Itoa(ports[0]))...)
	s.Servers = []*RedisServer{master, replica}
	s.awaitRole(t, replica.Addr, "master_link_status:up")

	var addrs []string
	for i := range n {
		name := "sentinel" + strconv.Itoa(i+1)
		conf := filepath.Join(dir, name+".conf")
		body := fmt.Sprintf(`port %d
bind 127.0.0.1
dir %s
logfile %s.log
sentinel monitor %s 127.0.0.1 %d %d
sentinel down-after-milliseconds %s 1000
sentinel failover-timeout %s 4000
`, ports[2+i], dir, name, RedisSentinelMaster, ports[0], n/2+1, RedisSentinelMaster, RedisSentinelMaster)
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		sn := startRedisProcess(t, dir, name, ports[2+i], "redis-sentinel", conf)
		s.Sentinels = append(s.Sentinels, sn)
		addrs = append(addrs, sn.Addr)
	}
	s.awaitReplicas(t, 1)
	s.URL = "redis://" + addrs[0] + "?master_name=" + RedisSentinelMaster
	for _, a := range addrs[1:] {
		s.URL += "&addr=" + a
	}
	return s
}

// Master returns the address the first sentinel gives for the master.
func (s *RedisSentinel) Master(t testing.TB) string {
	t.Helper()
	c := redis.NewSentinelClient(&redis.Options{Addr: s.Sentinels[0].Addr})
	defer c.Close()
	addr, err := c.GetMasterAddrByName(context.Background(), RedisSentinelMaster).Result()
	if err != nil {
		t.Fatalf("sentinel: %v", err)
	}
	return addr[0] + ":" + addr[1]
}

// KillMaster kills the current master's process (SIGKILL, no goodbye) and
// returns its address.
func (s *RedisSentinel) KillMaster(t testing.TB) string {
	t.Helper()
	addr := s.Master(t)
	s.kill(t, addr)
	return addr
}

func (s *RedisSentinel) kill(t testing.TB, addr string) {
	t.Helper()
	for _, srv := range s.Servers {
		if srv.Addr == addr {
			srv.Kill()
			return
		}
	}
	t.Fatalf("%s is none of the servers started", addr)
}

// KillMasterLosingWrites stages the failover that loses data: it cuts the
// replica off the master (the replica's link is killed and cannot come
// back: its masterauth is one the master refuses), waits until the master
// has taken n more bytes of writes that the replica will never see, then
// kills the master. It returns the master's address.
func (s *RedisSentinel) KillMasterLosingWrites(t testing.TB, n int64) string {
	t.Helper()
	ctx := context.Background()
	addr := s.Master(t)
	var replicaAddr string
	for _, srv := range s.Servers {
		if srv.Addr != addr {
			replicaAddr = srv.Addr
		}
	}
	replica := redis.NewClient(&redis.Options{Addr: replicaAddr})
	defer replica.Close()
	if err := replica.ConfigSet(ctx, "masterauth", UniqueName("refused-")).Err(); err != nil {
		t.Fatal(err)
	}
	if err := replica.Do(ctx, "CLIENT", "KILL", "TYPE", "master").Err(); err != nil {
		t.Fatal(err)
	}
	master := redis.NewClient(&redis.Options{Addr: addr})
	defer master.Close()
	offset := func() (int64, bool) {
		info, err := master.Info(ctx, "replication").Result()
		if err != nil || !strings.Contains(info, "connected_slaves:0") {
			return 0, false
		}
		_, v, _ := strings.Cut(info, "master_repl_offset:")
		v, _, _ = strings.Cut(v, "\r\n")
		o, err := strconv.ParseInt(v, 10, 64)
		return o, err == nil
	}
	var start int64
	if err := redisAwait(func() (bool, error) { o, ok := offset(); start = o; return ok, nil }); err != nil {
		t.Fatalf("the master still counts its replica: %v", err)
	}
	if err := redisAwait(func() (bool, error) { o, ok := offset(); return ok && o >= start+n, nil }); err != nil {
		t.Fatalf("the master did not take %d bytes of writes: %v", n, err)
	}
	s.kill(t, addr)
	return addr
}

// Restart brings the server at addr (a master KillMaster killed) back as a
// replica of the current master, and waits until it is in sync and the
// sentinels count it, so that the next KillMaster has a replica to promote.
func (s *RedisSentinel) Restart(t testing.TB, addr string) {
	t.Helper()
	master := s.Master(t)
	host, port, _ := strings.Cut(master, ":")
	for _, srv := range s.Servers {
		if srv.Addr == addr {
			srv.Restart(t, "--replicaof", host, port)
			s.awaitRole(t, addr, "master_link_status:up")
			s.awaitReplicas(t, 1)
			return
		}
	}
	t.Fatalf("%s is none of the servers started", addr)
}

// awaitReplicas waits until every sentinel counts n replicas in good
// standing (not down).
func (s *RedisSentinel) awaitReplicas(t testing.TB, n int) {
	t.Helper()
	for _, sn := range s.Sentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr})
		err := redisAwait(func() (bool, error) {
			replicas, err := c.Replicas(context.Background(), RedisSentinelMaster).Result()
			if err != nil {
				return false, nil
			}
			up := 0
			for _, r := range replicas {
				if !strings.Contains(r["flags"], "down") && !strings.Contains(r["flags"], "disconnected") {
					up++
				}
			}
			return up == n, nil
		})
		c.Close()
		if err != nil {
			t.Fatalf("sentinel %s never counted %d replicas: %v", sn.Addr, n, err)
		}
	}
}

// AwaitPromotion waits until the sentinels name a master other than old
// and that server says it is a master.
func (s *RedisSentinel) AwaitPromotion(t testing.TB, old string) string {
	t.Helper()
	var addr string
	err := redisAwait(func() (bool, error) {
		c := redis.NewSentinelClient(&redis.Options{Addr: s.Sentinels[0].Addr})
		defer c.Close()
		a, err := c.GetMasterAddrByName(context.Background(), RedisSentinelMaster).Result()
		if err != nil || a[0]+":"+a[1] == old {
			return false, nil
		}
		addr = a[0] + ":" + a[1]
		return true, nil
	})
	if err != nil {
		t.Fatalf("no promotion after %s was killed: %v", old, err)
	}
	s.awaitRole(t, addr, "role:master")
	return addr
}

// awaitRole waits until INFO replication of the server at addr says want.
func (s *RedisSentinel) awaitRole(t testing.TB, addr, want string) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	err := redisAwait(func() (bool, error) {
		info, err := c.Info(context.Background(), "replication").Result()
		return err == nil && strings.Contains(info, want), nil
	})
	if err != nil {
		t.Fatalf("%s never said %q: %v", addr, want, err)
	}
}
