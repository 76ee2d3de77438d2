// Package testenv connects tests to the real PostgreSQL and Redis that every
// development and CI machine runs. A test that needs one skips on a laptop
// without it, saying why, but fails when CI is set: there a missing service
// is a broken machine, not a reason to pass.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// Default addresses of the local services; overridable for other set-ups.
const (
	defaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	defaultRedisURL    = "redis://127.0.0.1:6379/0"
)

// PostgresURL returns the URL of the test PostgreSQL (GYMBRO_TEST_DATABASE_URL
// or the local default), skipping or failing t when it is not reachable.
func PostgresURL(t testing.TB) string {
	t.Helper()
	return serviceURL(t, "PostgreSQL", "GYMBRO_TEST_DATABASE_URL", defaultPostgresURL, "127.0.0.1:5432")
}

// RedisURL returns the URL of the test Redis (GYMBRO_TEST_REDIS_URL or the
// local default), skipping or failing t when it is not reachable.
func RedisURL(t testing.TB) string {
	t.Helper()
	return serviceURL(t, "Redis", "GYMBRO_TEST_REDIS_URL", defaultRedisURL, "127.0.0.1:6379")
}

// serviceURL returns the URL in env, or def after probing addr, the local
// default's address.
func serviceURL(t testing.TB, what, env, def, addr string) string {
	t.Helper()
	url := os.Getenv(env)
	if url == "" {
		url = def
	}
	require(t, what, addr, os.Getenv(env) == "")
	return url
}

// RedisClient connects to the test Redis and closes the client when t
// ends; name, when set, is the connections' CLIENT SETNAME so a test can
// find and kill them.
func RedisClient(t testing.TB, name string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	opt.ClientName = name
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

// RedisPrefix returns a key prefix that starts with prefix and no other
// test uses, and deletes its keys on c when t ends.
func RedisPrefix(t testing.TB, c *redis.Client, prefix string) string {
	t.Helper()
	prefix = UniqueName(prefix) + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		iter := c.Scan(ctx, 0, prefix+"*", 100).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Errorf("scanning test keys: %v", err)
		}
		for _, k := range keys {
			c.Del(ctx, k) // one by one: the keys live in different cluster slots
		}
	})
	return prefix
}

// UniqueName returns prefix followed by random hex, for a schema, database or
// key prefix that no other test (or parallel run) uses.
func UniqueName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func require(t testing.TB, what, addr string, probe bool) {
	t.Helper()
	if !probe {
		return // a custom URL: let the test's own connection report problems
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err == nil {
		conn.Close()
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not reachable at %s (%v); CI must provide it", what, addr, err)
	}
	t.Skipf("%s is not reachable at %s (%v); start it to run this test", what, addr, err)
}

// PostgresSchema creates a schema no other test uses in the database at url
// and drops it, with everything in it, when t ends. prefix names its owner.
func PostgresSchema(t testing.TB, url, prefix string) string {
	t.Helper()
	ctx := context.Background()
	schema := UniqueName(prefix)
	exec := func(sql string) error {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	quoted := pgx.Identifier{schema}.Sanitize()
	if err := exec(`CREATE SCHEMA ` + quoted); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		if err := exec(`DROP SCHEMA ` + quoted + ` CASCADE`); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	return schema
}

// Clock is a time source a test moves by hand, for code that takes
// Now func() time.Time; safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a Clock set to t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
