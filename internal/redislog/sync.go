package redislog

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultReplicaWait bounds how long Sync waits for the replicas.
const DefaultReplicaWait = 250 * time.Millisecond

// syncScript reports a log's last seq and, when the log is open, renews its
// expiry: a write, so the WAIT that follows it on the connection waits for
// everything the master holds of the log (the replication offset is one
// stream). It counts the replicas in sync, for the next WAIT; a server
// that forbids INFO counts none.
//
// KEYS[1] stream, KEYS[2] closed mark; ARGV[1] open TTL ms.
// Returns {last, replicas online}.
var syncScript = redis.NewScript(`
local last = 0
local tail = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #tail > 0 then
  last = tonumber(string.match(tail[1][1], '^0%-(%d+)$'))
  if redis.call('EXISTS', KEYS[2]) == 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
  end
end
local replicas = 0
local ok, info = pcall(redis.call, 'INFO', 'replication')
if ok and type(info) == 'string' then
  for _ in string.gmatch(info, 'state=online') do replicas = replicas + 1 end
end
return {last, replicas}
`)

// Sync returns the seq of the last event of the message's log, once the
// master's replicas in sync have acknowledged everything the log holds (or
// DefaultReplicaWait passed): one round trip, the script and a WAIT. Redis
// replicates asynchronously and a failover promotes the replica with the
// most data, so what a writer saw in the log at Sync survives a failover
// after it; what it sees missing (last below what it appended: a failover
// before it) it writes again with AppendAt. A generation syncs once, when
// its stream ends, before its result is stored: a terminal event lost
// after that is rebuilt from the store at the seq after last.
func (l *EventLog) Sync(ctx context.Context, messageID string) (last int64, err error) {
	keys := []string{l.streamKey(messageID), l.closedKey(messageID)}
	conn, err := l.nodeOf(ctx, keys[0])
	if err != nil {
		return 0, unavailable(err)
	}
	var res *redis.Cmd
	replicas := l.replicas.Load()
	_, err = conn.Pipelined(ctx, func(p redis.Pipeliner) error {
		res = syncScript.Eval(ctx, p, keys, l.openTTL.Milliseconds()) // Eval: a pipeline cannot fall back from EVALSHA
		if replicas > 0 {
			p.Do(ctx, "WAIT", replicas, l.replicaWait.Milliseconds())
		}
		return nil
	})
	if err == nil {
		err = res.Err()
	}
	if err != nil {
		return 0, unavailable(err)
	}
	out, err := res.Int64Slice()
	if err != nil || len(out) != 2 {
		return 0, corrupt(fmt.Errorf("sync script replied %v: %v", res.Val(), err))
	}
	l.replicas.Store(out[1])
	if replicas <= 0 && out[1] > 0 {
		return l.Sync(ctx, messageID) // the first replicas seen: wait for them
	}
	return out[0], nil
}

// nodeOf returns the client whose connection holds key's writes, so that
// a WAIT pipelined after them waits for their replication: the key's
// master in a Redis Cluster, the client itself otherwise.
func (l *EventLog) nodeOf(ctx context.Context, key string) (redis.Cmdable, error) {
	if cc, ok := l.client.(*redis.ClusterClient); ok {
		return cc.MasterForKey(ctx, key)
	}
	return l.client, nil
}
