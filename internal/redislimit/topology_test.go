package redislimit_test

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/gymbro/gymbro-api/internal/testenv"
)

// TestTopologies runs the fleet limiter and stream cap on a 3-master Redis
// Cluster and through Sentinel: each script has one key, so one slot, and
// the stream cap's renewal pipeline spans the nodes of its users' keys.
func TestTopologies(t *testing.T) {
	cluster := testenv.StartRedisCluster(t)
	sentinel := testenv.StartRedisSentinel(t, 1)
	for _, tp := range []struct {
		name   string
		client func(t *testing.T) redis.UniversalClient
	}{
		{"cluster", func(t *testing.T) redis.UniversalClient { return cluster.Client(t) }},
		{"sentinel", func(t *testing.T) redis.UniversalClient {
			opts, err := redis.ParseFailoverURL(sentinel.URL)
			if err != nil {
				t.Fatal(err)
			}
			c := redis.NewFailoverClient(opts)
			t.Cleanup(func() { c.Close() })
			return c
		}},
	} {
		t.Run(tp.name, func(t *testing.T) {
			c1, c2 := tp.client(t), tp.client(t)
			t.Run("SlidingWindow", func(t *testing.T) { slidingWindow(t, c1, testenv.UniversalPrefix(t, c1, "gymbrotest:rl:")) })
			t.Run("SharedBudget", func(t *testing.T) { sharedBudget(t, c1, c2, testenv.UniversalPrefix(t, c1, "gymbrotest:rl:")) })
			t.Run("StreamCap", func(t *testing.T) { streamCapAcrossInstances(t, c1, testenv.UniversalPrefix(t, c1, "gymbrotest:rl:")) })
		})
	}
}
