package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/gymbro/gymbro-api/internal/config"
	"github.com/gymbro/gymbro-api/internal/sse"
	"github.com/gymbro/gymbro-api/internal/testenv"
)

// BenchmarkRedisPerExchange measures what one exchange costs Redis in each
// mode: a post, its generation by the demo coach (a reply of about 20
// chunks), and one SSE subscriber reading it to the end, on one instance
// with the rate limit and the stream cap on. It starts servers of its own,
// so their counters (INFO commandstats and stats, CLUSTER INFO) count this
// instance alone, and reports per exchange the commands, the bytes the
// clients sent and received, and in a cluster the PUBLISH messages the
// cluster bus carried between the nodes; -v logs the commands by name.
//
//	go test -run '^$' -bench BenchmarkRedisPerExchange -benchtime 20x -v ./cmd/gymbro
func BenchmarkRedisPerExchange(b *testing.B) {
	for _, mode := range []string{config.RedisStandalone, config.RedisCluster, config.RedisSentinel} {
		b.Run(mode, func(b *testing.B) {
			var url string
			var nodes []string // the masters whose counters are read
			switch mode {
			case config.RedisStandalone:
				s := testenv.StartRedisServer(b)
				url, nodes = "redis://"+s.Addr, []string{s.Addr}
			case config.RedisCluster:
				c := testenv.StartRedisCluster(b)
				url = c.URL
				for _, n := range c.Nodes {
					nodes = append(nodes, n.Addr)
				}
			case config.RedisSentinel:
				s := testenv.StartRedisSentinel(b, 1)
				url, nodes = s.URL, []string{s.Servers[0].Addr}
			}
			base, tok := costApp(b, mode, url)
			before := redisCounters(b, nodes)
			for b.Loop() {
				exchange(b, base, tok)
			}
			after := redisCounters(b, nodes)
			reportRedisCost(b, before, after)
		})
	}
}

// costApp starts an instance on SQLite and the Redis at url, and returns
// its URL and a user's token.
func costApp(b *testing.B, mode, url string) (string, string) {
	c := newCostClient(b, map[string]string{
		"GYMBRO_REDIS_MODE": mode, "GYMBRO_REDIS_URL": url,
		"GYMBRO_RATE_LIMIT": "100000", "GYMBRO_MAX_RUNNING_PER_USER": "1000",
	})
	return c.m.URL, c.tok
}

// exchange posts a message and reads its stream to the terminal event.
func exchange(b *testing.B, base, tok string) {
	req, _ := http.NewRequest("POST", base+"/api/v1/messages", strings.NewReader(`{"text":"How do I squat deeper?"}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	var p posted
	err = json.NewDecoder(res.Body).Decode(&p)
	res.Body.Close()
	if err != nil || res.StatusCode != http.StatusAccepted {
		b.Fatalf("post: %d %v", res.StatusCode, err)
	}
	req, _ = http.NewRequest("GET", base+"/api/v1/messages/"+p.MessageID+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	r := sse.NewReader(res.Body)
	for {
		ev, err := r.Next()
		if errors.Is(err, io.EOF) {
			b.Fatal("the stream ended without a terminal event")
		}
		if err != nil {
			b.Fatal(err)
		}
		if ev.Type == "completed" || ev.Type == "error" || ev.Type == "canceled" {
			return
		}
	}
}

// redisCounters sums the masters' counters: calls per command, client
// bytes in and out (replication excluded), cluster-bus PUBLISH messages.
func redisCounters(b *testing.B, nodes []string) map[string]int64 {
	out := map[string]int64{}
	ctx := context.Background()
	for _, addr := range nodes {
		c := redis.NewClient(&redis.Options{Addr: addr})
		info, err := c.Info(ctx, "commandstats", "stats").Result()
		if err != nil {
			b.Fatal(err)
		}
		if ci, err := c.ClusterInfo(ctx).Result(); err == nil {
			info += ci
		}
		c.Close()
		for _, line := range strings.Split(info, "\r\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			if name, ok := strings.CutPrefix(k, "cmdstat_"); ok {
				calls, _, _ := strings.Cut(strings.TrimPrefix(v, "calls="), ",")
				n, _ := strconv.ParseInt(calls, 10, 64)
				out["cmd "+name] += n
				continue
			}
			switch k {
			case "total_net_input_bytes", "total_net_output_bytes", "total_net_repl_input_bytes", "total_net_repl_output_bytes",
				"cluster_stats_messages_publish_sent", "cluster_stats_messages_publishshard_sent":
				n, _ := strconv.ParseInt(v, 10, 64)
				out[k] += n
			}
		}
	}
	return out
}

func reportRedisCost(b *testing.B, before, after map[string]int64) {
	per := func(k string) float64 { return float64(after[k]-before[k]) / float64(b.N) }
	var cmds float64
	var lines []string
	for k := range after {
		if name, ok := strings.CutPrefix(k, "cmd "); ok && name != "info" && name != "cluster|info" && after[k] > before[k] {
			cmds += per(k)
			lines = append(lines, fmt.Sprintf("%s %.2f", name, per(k)))
		}
	}
	sort.Strings(lines)
	b.Logf("Redis commands per exchange: %s", strings.Join(lines, ", "))
	b.ReportMetric(cmds, "redis-cmds/exchange")
	b.ReportMetric(per("total_net_input_bytes")-per("total_net_repl_input_bytes"), "redis-bytes-in/exchange")
	b.ReportMetric(per("total_net_output_bytes")-per("total_net_repl_output_bytes"), "redis-bytes-out/exchange")
	if after["cluster_stats_messages_publish_sent"] > 0 {
		b.ReportMetric(per("cluster_stats_messages_publish_sent"), "bus-publish-msgs/exchange")
	}
	b.ReportMetric(0, "ns/op")
}
