package redislog

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The modes NewClient knows, as GYMBRO_REDIS_MODE names them.
const (
	ModeStandalone = "standalone"
	ModeCluster    = "cluster"
	ModeSentinel   = "sentinel"
)

// NewClient returns the client for a Redis reached in mode through rawURL,
// read by go-redis's own parser for that mode: ParseURL for one endpoint
// (a server, or a managed service's primary endpoint), ParseClusterURL for
// a Redis Cluster (redis://node1:6379?addr=node2:6379&addr=node3:6379; any
// node will do, the client learns the others), ParseFailoverURL for
// Sentinel (redis://sentinel1:26379?master_name=NAME&addr=sentinel2:26379;
// the client asks the sentinels for the master and follows a promotion).
// It does no I/O. Errors never repeat the URL, which may hold a password.
func NewClient(mode, rawURL string) (redis.UniversalClient, error) {
	switch mode {
	case ModeStandalone, "":
		o, err := redis.ParseURL(rawURL)
		if err != nil {
			return nil, parseError(err, rawURL)
		}
		return redis.NewClient(o), nil
	case ModeCluster:
		o, err := redis.ParseClusterURL(rawURL)
		if err != nil {
			return nil, parseError(err, rawURL)
		}
		return redis.NewClusterClient(o), nil
	case ModeSentinel:
		o, err := redis.ParseFailoverURL(rawURL)
		if err != nil {
			return nil, parseError(err, rawURL)
		}
		if o.MasterName == "" {
			return nil, errors.New("sentinel mode needs master_name=<the name the sentinels monitor> in the URL")
		}
		return redis.NewFailoverClient(o), nil
	}
	return nil, fmt.Errorf("unknown Redis mode %q (want %s, %s or %s)", mode, ModeStandalone, ModeCluster, ModeSentinel)
}

// parseError drops the URL from err (url.Error quotes it whole) and names
// the mode a query option belongs to, when the URL was meant for another.
func parseError(err error, rawURL string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	q := ""
	if u, perr := url.Parse(rawURL); perr == nil {
		q = u.RawQuery
	}
	switch msg := err.Error(); {
	case strings.Contains(msg, "unexpected option") && strings.Contains(q, "master_name="):
		return fmt.Errorf("%w (master_name is for Sentinel: set GYMBRO_REDIS_MODE=%s)", err, ModeSentinel)
	case strings.Contains(msg, "unexpected option") && strings.Contains(q, "addr="):
		return fmt.Errorf("%w (addr lists Redis Cluster nodes: set GYMBRO_REDIS_MODE=%s)", err, ModeCluster)
	}
	return err
}

// ModeError is CheckMode's answer when the server is not of the kind the
// client was made for: the other mode would work, this one cannot.
type ModeError struct {
	Want string // the mode that fits the server
}

func (e *ModeError) Error() string {
	if e.Want == ModeCluster {
		return "the Redis at GYMBRO_REDIS_URL is a Redis Cluster node, and commands for keys on other nodes would fail with MOVED: set GYMBRO_REDIS_MODE=cluster"
	}
	return "the Redis at GYMBRO_REDIS_URL is not a Redis Cluster node: set GYMBRO_REDIS_MODE=standalone (or sentinel)"
}

// CheckMode asks the server whether it can serve and is the kind c was made
// for: a cluster node reached by a single-endpoint client (standalone or
// Sentinel) serves only its own slots, and a server without cluster
// support cannot be used by a cluster client; either is a *ModeError. A
// Redis Cluster must also report cluster_state:ok. It costs one round
// trip. A server that forbids the INFO or CLUSTER INFO it asks (a managed
// service's ACL) is taken at its word that it answers PING.
func CheckMode(ctx context.Context, c redis.UniversalClient) error {
	if cc, ok := c.(*redis.ClusterClient); ok {
		return checkCluster(ctx, cc)
	}
	var ping *redis.StatusCmd
	var info *redis.StringCmd
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		ping = p.Ping(ctx)
		info = p.Info(ctx, "cluster")
		return nil
	})
	if err := ping.Err(); err != nil {
		return err
	}
	if err != nil && !isReply(info.Err()) {
		return err
	}
	if strings.Contains(info.Val(), "cluster_enabled:1") {
		return &ModeError{Want: ModeCluster}
	}
	return nil
}

func checkCluster(ctx context.Context, c *redis.ClusterClient) error {
	info, err := c.ClusterInfo(ctx).Result()
	switch {
	case err != nil && strings.Contains(err.Error(), "cluster support disabled"):
		return &ModeError{Want: ModeStandalone}
	case isReply(err):
		return c.Ping(ctx).Err()
	case err != nil:
		return err
	case !strings.Contains(info, "cluster_state:ok"):
		return errors.New("the Redis Cluster reports cluster_state other than ok")
	}
	return nil
}

// isReply reports whether err is an error reply of the server (as opposed
// to a connection that failed).
func isReply(err error) bool {
	var reply redis.Error
	return errors.As(err, &reply)
}
