package testenv

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// RedisCluster is a Redis Cluster of three masters (no replicas) that a
// test started in its temporary directory, from Debian's redis-server and
// redis-cli, on free loopback ports. It stops when the test ends.
type RedisCluster struct {
	Nodes []*RedisServer
	// URL reaches the cluster as GYMBRO_REDIS_URL does in cluster mode:
	// redis://node1?addr=node2&addr=node3.
	URL string
}

// StartRedisCluster starts the nodes, joins them with redis-cli --cluster
// create, and waits until every node reports cluster_state:ok.
func StartRedisCluster(t testing.TB) *RedisCluster {
	t.Helper()
	requireRedisBinaries(t, "redis-server", "redis-cli")
	dir := t.TempDir()
	ports := redisFreePorts(t, 6) // three clients' ports, three cluster-bus ports
	c := &RedisCluster{}
	var addrs []string
	for i := range 3 {
		name := "node" + strconv.Itoa(i+1)
		args := append(redisServerArgs(dir, name, ports[i]),
			"--cluster-enabled", "yes", "--cluster-config-file", name+".conf",
			"--cluster-port", strconv.Itoa(ports[3+i]), "--cluster-node-timeout", "2000")
		n := startRedisProcess(t, dir, name, ports[i], "redis-server", args...)
		c.Nodes = append(c.Nodes, n)
		addrs = append(addrs, n.Addr)
	}
	create := exec.Command("redis-cli", append([]string{"--cluster", "create"}, append(addrs, "--cluster-replicas", "0", "--cluster-yes")...)...)
	if out, err := create.CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, n := range c.Nodes {
		node := redis.NewClient(&redis.Options{Addr: n.Addr})
		err := redisAwait(func() (bool, error) {
			info, err := node.ClusterInfo(context.Background()).Result()
			return err == nil && strings.Contains(info, "cluster_state:ok"), nil
		})
		node.Close()
		if err != nil {
			t.Fatalf("cluster node %s did not reach cluster_state:ok: %v", n.Addr, err)
		}
	}
	c.URL = "redis://" + addrs[0] + "?addr=" + addrs[1] + "&addr=" + addrs[2]
	return c
}

// Client returns a cluster client, closed when t ends.
func (c *RedisCluster) Client(t testing.TB) *redis.ClusterClient {
	t.Helper()
	opts, err := redis.ParseClusterURL(c.URL)
	if err != nil {
		t.Fatal(err)
	}
	cc := redis.NewClusterClient(opts)
	t.Cleanup(func() { cc.Close() })
	return cc
}
