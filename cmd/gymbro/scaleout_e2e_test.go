package main

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/testenv"
)

// TestOnPostgresAndRedis runs the message loop on the scale-out parts, with
// our tables in their own schema (GYMBRO_DATABASE_SCHEMA) and our Redis
// keys under their own prefix (GYMBRO_REDIS_PREFIX).
func TestOnPostgresAndRedis(t *testing.T) {
	pgURL, redisURL := testenv.PostgresURL(t), testenv.RedisURL(t)
	schema := testenv.UniqueName("gymbro_e2e_")
	prefix := testenv.UniqueName("e2e") + ":"
	ctx := context.Background()
	t.Cleanup(func() {
		if conn, err := pgx.Connect(ctx, pgURL); err == nil {
			_, _ = conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
			conn.Close(ctx)
		}
	})
	a := startApp(t, map[string]string{
		"GYMBRO_DATABASE_URL": pgURL, "GYMBRO_DATABASE_SCHEMA": schema,
		"GYMBRO_REDIS_URL": redisURL, "GYMBRO_REDIS_PREFIX": prefix,
	})
	tok := a.user("scale@example.com")
	p := a.post(tok, "How many sets for hypertrophy?", "")
	s := a.events(tok, p.MessageID, "", 0)
	checkOrder(t, s.data, 1)
	if last := s.data[len(s.data)-1]; last.Type != gymbro.EventCompleted {
		t.Fatalf("ended with %+v", last)
	}

	conn, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var status string
	if err := conn.QueryRow(ctx, "SELECT status FROM "+pgx.Identifier{schema, "messages"}.Sanitize()+" WHERE id = $1", p.MessageID).Scan(&status); err != nil || status != "completed" {
		t.Fatalf("message in schema %s: %q, %v", schema, status, err)
	}
	opts, _ := redis.ParseURL(redisURL)
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	keys, err := rdb.Keys(ctx, prefix+"*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("no Redis keys under %q: %v", prefix, err)
	}
	a.stop()
	rdb.Del(ctx, keys...) // the log's own TTL would remove them in an hour
}
