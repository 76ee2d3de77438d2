package redislog_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gymbro/gymbro-api/internal/eventlogtest"
	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/redislog"
	"github.com/gymbro/gymbro-api/internal/testenv"
)

// topology is one way of reaching Redis: a mode and its URL.
type topology struct {
	mode string
	url  string
}

func (tp topology) client(t testing.TB) redis.UniversalClient {
	t.Helper()
	c, err := redislog.NewClient(tp.mode, tp.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// runTopology runs the event-log contract and the cross-instance
// notification on tp: in a cluster the append script's keys share a slot,
// and its PUBLISH reaches the other instance's subscription wherever that
// landed.
func runTopology(t *testing.T, tp topology) {
	c := tp.client(t)
	if err := redislog.CheckMode(context.Background(), c); err != nil {
		t.Fatalf("CheckMode: %v", err)
	}
	t.Run("Contract", func(t *testing.T) {
		eventlogtest.Run(t, func(t *testing.T, ttl time.Duration, now func() time.Time) gymbro.EventLog {
			return newLogOn(t, c, redislog.Options{Prefix: testenv.UniversalPrefix(t, c, "gymbrotest:"), TTL: ttl, Now: now})
		})
	})
	t.Run("CrossInstance", func(t *testing.T) {
		crossInstance(t, c, tp.client(t), testenv.UniversalPrefix(t, c, "gymbrotest:"))
	})
}

// TestCluster runs the log on a 3-master Redis Cluster, and checks that a
// node reached as one endpoint, which answers MOVED for most keys, is
// refused by CheckMode (and readiness), naming cluster mode; and that a
// plain server reached in cluster mode is refused too.
func TestCluster(t *testing.T) {
	cluster := testenv.StartRedisCluster(t)
	runTopology(t, topology{redislog.ModeCluster, cluster.URL})

	ctx := context.Background()
	node := topology{redislog.ModeStandalone, "redis://" + cluster.Nodes[0].Addr}.client(t)
	err := redislog.CheckMode(ctx, node)
	if me, ok := errors.AsType[*redislog.ModeError](err); !ok || me.Want != redislog.ModeCluster || !strings.Contains(err.Error(), "GYMBRO_REDIS_MODE=cluster") {
		t.Errorf("CheckMode(standalone client, cluster node) = %v, want a ModeError naming GYMBRO_REDIS_MODE=cluster", err)
	}
	l := newLogOn(t, node, redislog.Options{Prefix: testenv.UniversalPrefix(t, node, "gymbrotest:")})
	if err := l.Ping(ctx); gymbro.ErrorKind(err) != gymbro.KindUnavailable {
		t.Errorf("Ping = %v, want unavailable", err)
	}
	// Keys of other nodes' slots answer MOVED: an outage (503), not a bug.
	var moved error
	for i := 0; i < 20 && moved == nil; i++ {
		_, moved = l.Append(ctx, gymbro.Event{MessageID: testenv.UniqueName("m"), Type: gymbro.EventQueued})
	}
	if gymbro.ErrorKind(moved) != gymbro.KindUnavailable {
		t.Errorf("Append with MOVED = %v, want unavailable", moved)
	}

	plain := topology{redislog.ModeCluster, testenv.RedisURL(t)}.client(t)
	err = redislog.CheckMode(ctx, plain)
	if me, ok := errors.AsType[*redislog.ModeError](err); !ok || me.Want != redislog.ModeStandalone {
		t.Errorf("CheckMode(cluster client, plain Redis) = %v, want a ModeError for standalone", err)
	}
}

// TestSentinel runs the log through Sentinel, then kills the master:
// appends fail as an outage while the sentinel promotes the replica, then
// succeed on the new master, and the subscription follows.
func TestSentinel(t *testing.T) {
	s := testenv.StartRedisSentinel(t, 1)
	tp := topology{redislog.ModeSentinel, s.URL}
	runTopology(t, tp)
	t.Run("SyncWaitsForTheReplica", func(t *testing.T) { syncWaits(t, s, tp.client(t)) })
	t.Run("NoReplicasIsAnOutage", func(t *testing.T) { noReplicas(t, s, tp.client(t)) })
	t.Run("FollowsPromotion", func(t *testing.T) { followsPromotion(t, s, tp.client(t)) })
}

// noReplicas: a master that min-replicas-to-write keeps from writing
// answers NOREPLICAS, which is an outage (held and retried), not a bug.
func noReplicas(t *testing.T, s *testenv.RedisSentinel, c redis.UniversalClient) {
	l := newLogOn(t, c, redislog.Options{Prefix: testenv.UniversalPrefix(t, c, "gymbrotest:")})
	master := redis.NewClient(&redis.Options{Addr: s.Master(t)})
	defer master.Close()
	ctx := context.Background()
	if err := master.ConfigSet(ctx, "min-replicas-to-write", "5").Err(); err != nil {
		t.Fatal(err)
	}
	defer master.ConfigSet(ctx, "min-replicas-to-write", "0")
	_, err := l.Append(ctx, gymbro.Event{MessageID: "m", Type: gymbro.EventQueued})
	if gymbro.ErrorKind(err) != gymbro.KindUnavailable || !strings.Contains(err.Error(), "NOREPLICAS") {
		t.Errorf("Append refused by min-replicas-to-write = %v, want unavailable", err)
	}
}

// syncWaits checks that Sync, once it has seen the replica, sends the
// master a WAIT for it.
func syncWaits(t *testing.T, s *testenv.RedisSentinel, c redis.UniversalClient) {
	l := newLogOn(t, c, redislog.Options{Prefix: testenv.UniversalPrefix(t, c, "gymbrotest:")})
	master := redis.NewClient(&redis.Options{Addr: s.Master(t)})
	defer master.Close()
	ctx := context.Background()
	waits := func() string {
		stats := master.Info(ctx, "commandstats").Val()
		_, after, _ := strings.Cut(stats, "cmdstat_wait:calls=")
		n, _, _ := strings.Cut(after, ",")
		return n
	}
	before := waits()
	ev, err := l.Append(ctx, gymbro.Event{MessageID: "m", Type: gymbro.EventQueued})
	if err != nil {
		t.Fatal(err)
	}
	if last, err := l.Sync(ctx, "m"); err != nil || last != ev.Seq {
		t.Fatalf("Sync = %d, %v", last, err)
	}
	if after := waits(); after == before {
		t.Errorf("no WAIT reached the master (calls %q before, %q after)", before, after)
	}
}

// TestNewClient checks each mode's URL form and that errors never repeat
// the URL's password.
func TestNewClient(t *testing.T) {
	for _, c := range []struct {
		mode, url string
		want      string // a type name, or the error's text
	}{
		{redislog.ModeStandalone, "redis://:pw@10.0.0.1:6379/2", "*redis.Client"},
		{"", "rediss://10.0.0.1:6380", "*redis.Client"},
		{redislog.ModeCluster, "redis://10.0.0.1:7000?addr=10.0.0.2:7000&addr=10.0.0.3:7000", "*redis.ClusterClient"},
		{redislog.ModeSentinel, "redis://10.0.0.1:26379?master_name=gymbro&addr=10.0.0.2:26379", "*redis.Client"},
		{redislog.ModeStandalone, "redis://:pw@10.0.0.1:26379?master_name=gymbro", "GYMBRO_REDIS_MODE=sentinel"},
		{redislog.ModeStandalone, "redis://:pw@10.0.0.1:7000?addr=10.0.0.2:7000", "GYMBRO_REDIS_MODE=cluster"},
		{redislog.ModeSentinel, "redis://:pw@10.0.0.1:26379", "master_name"},
		{redislog.ModeStandalone, "redis://:pw@10.0.0.1:port", "invalid port"},
		{"replicated", "redis://10.0.0.1", "unknown Redis mode"},
	} {
		cl, err := redislog.NewClient(c.mode, c.url)
		got := ""
		if err != nil {
			got = err.Error()
		} else {
			got = typeName(cl)
			cl.Close()
		}
		if !strings.Contains(got, c.want) || strings.Contains(got, "pw") {
			t.Errorf("NewClient(%q, %q) = %q, want %q and no password", c.mode, c.url, got, c.want)
		}
	}
}

func typeName(c redis.UniversalClient) string {
	switch c.(type) {
	case *redis.ClusterClient:
		return "*redis.ClusterClient"
	case *redis.Client:
		return "*redis.Client"
	}
	return "?"
}

// followsPromotion kills the master under a log over c and appends until
// an append on the new master is announced.
func followsPromotion(t *testing.T, s *testenv.RedisSentinel, c redis.UniversalClient) {
	l := newLogOn(t, c, redislog.Options{Prefix: testenv.UniversalPrefix(t, c, "gymbrotest:"), BlockFor: 200 * time.Millisecond})
	ctx := context.Background()
	id := testenv.UniqueName("m")
	ch, stop := l.Watch(id)
	defer stop()
	waitFor(t, ch, "the first subscription")
	if _, err := l.Append(ctx, gymbro.Event{MessageID: id, Type: gymbro.EventQueued}); err != nil {
		t.Fatal(err)
	}
	old := s.KillMaster(t)
	if _, err := l.Append(ctx, gymbro.Event{MessageID: id, Type: gymbro.EventWorking}); gymbro.ErrorKind(err) != gymbro.KindUnavailable {
		t.Errorf("Append with the master gone = %v, want unavailable", err)
	}
	s.AwaitPromotion(t, old)
	// Appends work again once the client has found the new master, and one
	// of them is announced once the subscription is back.
	deadline := time.Now().Add(30 * time.Second)
	for woken := false; !woken; {
		if time.Now().After(deadline) {
			t.Fatal("no append after the promotion was announced")
		}
		for drained(ch) {
		}
		if _, err := l.Append(ctx, gymbro.Event{MessageID: id, Type: gymbro.EventContentDelta}); err != nil {
			if gymbro.ErrorKind(err) != gymbro.KindUnavailable {
				t.Fatalf("Append after the promotion: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		select {
		case <-ch:
			woken = true
		case <-time.After(time.Second):
		}
	}
	if err := l.Ping(ctx); err != nil {
		t.Errorf("Ping on the new master: %v", err)
	}
}

// drained reports whether ch had no wake-up pending, taking it if it had.
func drained(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return false
	default:
		return true
	}
}
