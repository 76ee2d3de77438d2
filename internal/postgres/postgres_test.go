package postgres_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/postgres"
	"github.com/gymbro/gymbro-api/internal/storetest"
	"github.com/gymbro/gymbro-api/internal/testenv"
)

func open(t testing.TB, url, schema string, opts ...postgres.Option) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(context.Background(), url, append([]postgres.Option{postgres.WithSchema(schema)}, opts...)...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return db
}

func TestStore(t *testing.T) {
	url := testenv.PostgresURL(t)
	storetest.Run(t, func(t *testing.T) gymbro.Store {
		schema := testenv.PostgresSchema(t, url, "gymbro_test_")
		db := open(t, url, schema, postgres.WithMaxConns(8))
		t.Cleanup(func() { db.Close() }) // runs before the schema is dropped
		return db
	})
}

func TestMigrateIdempotentAndConcurrent(t *testing.T) {
	ctx := context.Background()
	url := testenv.PostgresURL(t)
	schema := testenv.PostgresSchema(t, url, "gymbro_test_")
	// Several instances starting at once: the advisory lock makes them take
	// turns, and all but the first find nothing to do.
	dbs := openAtOnce(t, 4, url, schema)
	if t.Failed() {
		return
	}
	if err := dbs[0].Migrate(ctx); err != nil {
		t.Fatalf("Migrate again: %v", err)
	}
	in := gymbro.NewMessage{ID: uuid.NewString(), NewConversationID: uuid.NewString(), UserID: "u",
		Text: "x", Lease: gymbro.Lease{Owner: "w", Until: time.Now().Add(time.Minute)}, Now: time.Now()}
	if _, _, err := dbs[1].CreateMessage(ctx, in); err != nil {
		t.Fatal(err)
	}
	if _, err := dbs[2].Message(ctx, "u", in.ID); err != nil {
		t.Fatalf("another instance does not see the message: %v", err)
	}
}

func TestUnavailable(t *testing.T) {
	// Nothing listens on port 1: the error is KindUnavailable and keeps the
	// password out of its text.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := postgres.Open(ctx, "postgres://u:s3cret-pw@127.0.0.1:1/db?sslmode=disable&connect_timeout=2")
	if gymbro.ErrorKind(err) != gymbro.KindUnavailable {
		t.Fatalf("err = %v, want KindUnavailable", err)
	}
	if ge, ok := errors.AsType[*gymbro.Error](err); !ok || ge.RetryAfter <= 0 || ge.Message != "The store is unavailable; try again." {
		t.Errorf("outage error %+v, want a message and a Retry-After", ge)
	}
	if got := gymbro.ErrorMessage(err); got == "" {
		t.Errorf("client message = %q", got)
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error leaks the password: %v", err)
	}
	_, err = postgres.Open(ctx, "postgres://u:s3cret-pw@[::1/db")
	if gymbro.ErrorKind(err) != gymbro.KindInvalid {
		t.Fatalf("bad URL: err = %v, want KindInvalid", err)
	}
	if e := err.Error(); strings.Contains(e, "s3cret") {
		t.Errorf("error leaks the password: %s", e)
	}
}

func BenchmarkCreateMessage(b *testing.B) {
	url := testenv.PostgresURL(b)
	db := open(b, url, testenv.PostgresSchema(b, url, "gymbro_test_"), postgres.WithMaxConns(16))
	defer db.Close()
	storetest.BenchmarkCreateMessage(b, db, 8)
}

// TestFinishIsAtomic: a finish whose outbox insert fails changes nothing.
func TestFinishIsAtomic(t *testing.T) {
	ctx := context.Background()
	url := testenv.PostgresURL(t)
	schema := testenv.PostgresSchema(t, url, "gymbro_test_")
	db := open(t, url, schema)
	defer db.Close()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	storetest.FinishIsAtomic(t, db, func(id string) {
		if _, err := conn.Exec(ctx, `INSERT INTO `+pgx.Identifier{schema, "outbox"}.Sanitize()+
			` (id, record, next_attempt_at, created_at) VALUES ($1, '{}', now(), now())`, id); err != nil {
			t.Fatal(err)
		}
	})
}

// TestDeadConnectionsAreAnOutage: when the server ends every pooled
// connection (a restart, a failover), the store answers unavailable (503),
// never internal (500), and the next calls work on fresh connections.
func TestDeadConnectionsAreAnOutage(t *testing.T) {
	url := testenv.PostgresURL(t)
	schema := testenv.PostgresSchema(t, url, "gymbro_test_")
	app := testenv.UniqueName("gymbro_kill_")
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	db := open(t, url+sep+"application_name="+app, schema, postgres.WithMaxConns(4))
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()
	warm := func() {
		for range 4 {
			if _, err := db.OutboxStats(ctx); err != nil {
				t.Fatalf("OutboxStats: %v", err)
			}
		}
	}
	warm()
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	for round := range 3 {
		if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, app); err != nil {
			t.Fatal(err)
		}
		ok := false
		for range 8 {
			_, err := db.OutboxStats(ctx)
			if err == nil {
				ok = true
				break
			}
			if k := gymbro.ErrorKind(err); k != gymbro.KindUnavailable {
				t.Fatalf("round %d: a dead connection gave %v (kind %v), want unavailable", round, err, k)
			}
		}
		if !ok {
			t.Fatalf("round %d: the store did not recover on fresh connections", round)
		}
		warm()
	}
}

// TestDeadPooledConnectionCostsNothing: every pooled connection dies (a
// proxy resets them, as a failover does) and the database is back at once;
// the next statements, single or in a transaction, run on fresh
// connections instead of failing.
func TestDeadPooledConnectionCostsNothing(t *testing.T) {
	url := testenv.PostgresURL(t)
	proxy, proxied := testenv.Proxied(t, url)
	schema := testenv.PostgresSchema(t, url, "gymbro_test_")
	db := open(t, proxied, schema, postgres.WithMaxConns(1))
	defer db.Close()
	ctx := context.Background()
	in := gymbro.NewMessage{ID: uuid.NewString(), NewConversationID: uuid.NewString(), UserID: "u1", Text: "x", Lease: gymbro.Lease{Owner: "w", Until: time.Now().Add(time.Minute)}, Now: time.Now()}
	if _, _, err := db.CreateMessage(ctx, in); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		name string
		run  func() error
	}{
		{"read", func() error { _, err := db.Message(ctx, "u1", in.ID); return err }},
		{"update", func() error { return db.SaveReply(ctx, in.ID, "partial") }},
		{"transaction", func() error {
			_, _, err := db.CreateMessage(ctx, gymbro.NewMessage{ID: uuid.NewString(), NewConversationID: uuid.NewString(), UserID: "u1", Text: "y", Lease: gymbro.Lease{Owner: "w", Until: time.Now().Add(time.Minute)}, Now: time.Now()})
			return err
		}},
	} {
		proxy.Cut()
		proxy.Restore()
		if err := step.run(); err != nil {
			t.Errorf("%s on a dead pooled connection: %v", step.name, err)
		}
	}
}

// TestBudgetAcrossInstances: two instances on one database take 20
// concurrent posts of one user near the end of the daily budget. Each is
// admitted or refused whole; the user ends over the budget by at most the
// exchanges that were already running, and is then refused everywhere.
func TestBudgetAcrossInstances(t *testing.T) {
	ctx := context.Background()
	url := testenv.PostgresURL(t)
	schema := testenv.PostgresSchema(t, url, "gymbro_test_")
	a, b := open(t, url, schema), open(t, url, schema)
	defer a.Close()
	defer b.Close()
	const limit, each, running = 100, 50, 3
	at := time.Now().UTC()
	post := func(db *postgres.DB) (*gymbro.Message, error) {
		m, _, err := db.CreateMessage(ctx, gymbro.NewMessage{ID: uuid.NewString(), NewConversationID: uuid.NewString(),
			UserID: "spender", Text: "x", MaxRunning: running, DailyTokens: limit,
			Lease: gymbro.Lease{Owner: "w", Until: at.Add(time.Minute)}, Now: at})
		return m, err
	}
	finish := func(m *gymbro.Message, tokens int64) {
		if _, err := a.FinishMessage(ctx, m, gymbro.Result{Status: gymbro.StatusCompleted, Reply: "r", Usage: gymbro.Usage{TotalTokens: tokens}, At: at}); err != nil {
			t.Fatal(err)
		}
	}
	first, err := post(a)
	if err != nil {
		t.Fatal(err)
	}
	finish(first, limit-10) // 10 tokens left
	var (
		mu       sync.Mutex
		admitted []*gymbro.Message
		wg       sync.WaitGroup
	)
	for i := range 20 {
		db := []*postgres.DB{a, b}[i%2]
		wg.Go(func() {
			m, err := post(db)
			switch gymbro.ErrorCode(err) {
			case "":
				mu.Lock()
				admitted = append(admitted, m)
				mu.Unlock()
			case gymbro.CodeTooManyRunning:
			default:
				t.Errorf("post: %v", err)
			}
		})
	}
	wg.Wait()
	if len(admitted) != running {
		t.Fatalf("admitted %d, want the running cap %d", len(admitted), running)
	}
	for _, m := range admitted {
		finish(m, each)
	}
	used, err := b.TokensUsed(ctx, "spender", gymbro.UsageDay(at))
	if err != nil || used > limit+running*each {
		t.Fatalf("used %d (%v): over the budget by more than the %d running exchanges", used, err, running)
	}
	for _, db := range []*postgres.DB{a, b} {
		if _, err := post(db); gymbro.ErrorCode(err) != gymbro.CodeBudgetExhausted {
			t.Errorf("post over the budget = %v, want budget_exhausted", err)
		}
	}
}

// TestMigrationToNamespacedUIDs: the migration moves a Firebase user's
// rows, stored under the bare sub, to firebase:<sub>; see
// storetest.LegacyUIDs.
func TestMigrationToNamespacedUIDs(t *testing.T) {
	ctx := context.Background()
	url := testenv.PostgresURL(t)
	schema := testenv.PostgresSchema(t, url, "gymbro_test_")
	db := open(t, url, schema)
	legacy := storetest.StoreLegacyUIDs(t, db)
	db.Close()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, `DELETE FROM `+pgx.Identifier{schema, "schema_migrations"}.Sanitize()+` WHERE version = 3`)
	conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	db = open(t, url, schema)
	defer db.Close()
	legacy.Check(t, db)
}

// openAtOnce opens n stores on schema at the same time, as n instances
// starting together do, and closes them when the test ends; a failed Open
// fails the test (the caller checks t.Failed).
func openAtOnce(t *testing.T, n int, url, schema string, opts ...postgres.Option) []*postgres.DB {
	t.Helper()
	dbs := make([]*postgres.DB, n)
	errs := make(chan error, n)
	for i := range n {
		go func() {
			db, err := postgres.Open(context.Background(), url, append([]postgres.Option{postgres.WithSchema(schema)}, opts...)...)
			dbs[i] = db
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("concurrent Open: %v", err)
		}
	}
	for _, db := range dbs {
		if db != nil {
			t.Cleanup(func() { db.Close() })
		}
	}
	return dbs
}
