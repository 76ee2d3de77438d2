package postgres_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/postgres"
	"github.com/gymbro/gymbro-api/internal/storetest"
	"github.com/gymbro/gymbro-api/internal/testenv"
)

// TestStoreThroughTransactionPooler runs the store suite through PgBouncer
// in transaction mode, with two server connections for every store's
// eight: each transaction may land on another server connection, so any
// session state (a prepared statement, the search_path) would show.
func TestStoreThroughTransactionPooler(t *testing.T) {
	url := testenv.PostgresURL(t)
	bouncer := testenv.StartPgBouncer(t, url, 2)
	storetest.Run(t, func(t *testing.T) gymbro.Store {
		schema := testenv.PostgresSchema(t, url, "gymbro_test_")
		db := open(t, bouncer.URL(url), schema, postgres.WithTransactionPooler(), postgres.WithMaxConns(8))
		t.Cleanup(func() { db.Close() })
		return db
	})
}

// TestMigrateConcurrentThroughTransactionPooler: instances that start at
// once through a transaction pooler on a schema that does not exist yet
// all open it: the transaction-scoped lock makes their migrations (and the
// schema's creation) take turns.
func TestMigrateConcurrentThroughTransactionPooler(t *testing.T) {
	ctx := context.Background()
	url := testenv.PostgresURL(t)
	bouncer := testenv.StartPgBouncer(t, url, 4)
	schema := testenv.UniqueName("gymbro_test_")
	t.Cleanup(func() { dropSchema(t, url, schema) })
	dbs := openAtOnce(t, 4, bouncer.URL(url), schema, postgres.WithTransactionPooler())
	if t.Failed() {
		return
	}
	in := gymbro.NewMessage{ID: uuid.NewString(), NewConversationID: uuid.NewString(), UserID: "u",
		Text: "x", Lease: gymbro.Lease{Owner: "w", Until: time.Now().Add(time.Minute)}, Now: time.Now()}
	if _, _, err := dbs[1].CreateMessage(ctx, in); err != nil {
		t.Fatal(err)
	}
	if _, err := dbs[2].Message(ctx, "u", in.ID); err != nil {
		t.Fatalf("another instance does not see the message: %v", err)
	}
	var tables int
	if err := queryRow(t, url, `SELECT count(*) FROM pg_tables WHERE schemaname = $1`, schema).Scan(&tables); err != nil || tables < 4 {
		t.Fatalf("%d tables in %s (%v): the tables must land in the store's schema", tables, schema, err)
	}
}

// TestSessionModeBehindTransactionPooler: a store opened for a session
// (the default) behind a transaction pooler fails in a way that says
// what to set: with a schema at once (PgBouncer refuses the search_path
// startup parameter), without one as soon as a prepared statement meets
// another server connection: the call answers unavailable (503), Ping
// fails from then on, and the log names GYMBRO_DATABASE_POOLER=transaction
// once.
func TestSessionModeBehindTransactionPooler(t *testing.T) {
	ctx := context.Background()
	url := testenv.PostgresDatabase(t, testenv.PostgresURL(t), "gymbro_test_")
	bouncer := testenv.StartPgBouncer(t, url, 4)
	_, err := postgres.Open(ctx, bouncer.URL(url), postgres.WithSchema("gymbro"))
	if gymbro.ErrorKind(err) != gymbro.KindUnavailable || !strings.Contains(err.Error(), "GYMBRO_DATABASE_POOLER=transaction") {
		t.Fatalf("Open with a schema = %v, want unavailable naming GYMBRO_DATABASE_POOLER=transaction", err)
	}

	var logs testenv.LogBuffer
	db, err := postgres.Open(ctx, bouncer.URL(url), postgres.WithMaxConns(8), postgres.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err != nil {
		// Migrations may already meet another server connection.
		if gymbro.ErrorKind(err) != gymbro.KindUnavailable || !strings.Contains(err.Error(), "GYMBRO_DATABASE_POOLER=transaction") {
			t.Fatalf("Open = %v, want success or unavailable naming GYMBRO_DATABASE_POOLER=transaction", err)
		}
		return
	}
	defer db.Close()
	mismatch := hammer(t, db)
	if gymbro.ErrorKind(mismatch) != gymbro.KindUnavailable {
		t.Fatalf("a prepared statement on another server connection = %v, want unavailable", mismatch)
	}
	err = db.Ping(ctx)
	if gymbro.ErrorKind(err) != gymbro.KindUnavailable || !strings.Contains(err.Error(), "GYMBRO_DATABASE_POOLER=transaction") {
		t.Fatalf("Ping after the mismatch = %v, want unavailable naming the setting", err)
	}
	if n := strings.Count(logs.String(), "set GYMBRO_DATABASE_POOLER=transaction"); n != 1 {
		t.Errorf("the log names the setting %d times, want once:\n%s", n, logs.String())
	}
}

// hammer runs the store's statements from several goroutines until one
// fails, and returns that failure; the pooler then hands pgx's cached
// statements to server connections that never prepared them.
func hammer(t *testing.T, db *postgres.DB) error {
	t.Helper()
	ctx := context.Background()
	var (
		once  sync.Once
		first error
		wg    sync.WaitGroup
		stop  atomic.Bool
	)
	deadline := time.Now().Add(20 * time.Second)
	for w := range 8 {
		wg.Go(func() {
			for !stop.Load() && time.Now().Before(deadline) {
				in := gymbro.NewMessage{ID: uuid.NewString(), NewConversationID: uuid.NewString(), UserID: "u" + string(rune('a'+w)),
					Text: "x", Lease: gymbro.Lease{Owner: "w", Until: time.Now().Add(time.Minute)}, Now: time.Now()}
				_, _, err := db.CreateMessage(ctx, in)
				if err == nil {
					_, err = db.Message(ctx, in.UserID, in.ID)
				}
				if err != nil {
					once.Do(func() { first = err })
					stop.Store(true)
				}
			}
		})
	}
	wg.Wait()
	if first == nil {
		t.Fatal("20 s of traffic through a transaction pooler met no prepared-statement error")
	}
	return first
}

// TestTimeoutBoundsAHungStore: while another session holds a lock the
// store's statements wait for (as behind a hung commit), each call fails
// as store_timeout with Retry-After once the store's timeout passes,
// instead of waiting for the lock; and the store works again after.
func TestTimeoutBoundsAHungStore(t *testing.T) {
	ctx := context.Background()
	url := testenv.PostgresURL(t)
	schema := testenv.PostgresSchema(t, url, "gymbro_test_")
	db := open(t, url, schema, postgres.WithTimeout(300*time.Millisecond))
	defer db.Close()
	in := gymbro.NewMessage{ID: uuid.NewString(), NewConversationID: uuid.NewString(), UserID: "u",
		Text: "x", Lease: gymbro.Lease{Owner: "w", Until: time.Now().Add(time.Minute)}, Now: time.Now()}
	m, _, err := db.CreateMessage(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	tx, err := admin.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE `+pgx.Identifier{schema, "messages"}.Sanitize()+` IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func() error{
		"read":   func() error { _, err := db.Message(ctx, "u", m.ID); return err },
		"update": func() error { return db.SaveReply(ctx, m.ID, "partial") },
		"transaction": func() error {
			in.ID, in.NewConversationID = uuid.NewString(), uuid.NewString()
			_, _, err := db.CreateMessage(ctx, in)
			return err
		},
		"finish": func() error {
			_, err := db.FinishMessage(ctx, m, gymbro.Result{Status: gymbro.StatusCompleted, Reply: "r"})
			return err
		},
	} {
		err := call()
		ge, ok := errors.AsType[*gymbro.Error](err)
		if !ok || ge.Kind != gymbro.KindTimeout || ge.Code != "store_timeout" || ge.RetryAfter <= 0 {
			t.Errorf("%s behind a held lock = %v, want store_timeout with Retry-After", name, err)
		}
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := db.FinishMessage(ctx, m, gymbro.Result{Status: gymbro.StatusCompleted, Reply: "r"}); err != nil {
		t.Fatalf("finish once the lock is gone: %v", err)
	}
}

func queryRow(t *testing.T, url, sql string, args ...any) pgx.Row {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	return conn.QueryRow(ctx, sql, args...)
}

func dropSchema(t *testing.T, url, schema string) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Error(err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
		t.Errorf("drop schema: %v", err)
	}
}

// storeExchange is what one exchange asks of the store: the create, the
// history read, a checkpoint, the finish and a read of the result.
func storeExchange(ctx context.Context, db *postgres.DB) error {
	in := gymbro.NewMessage{ID: uuid.NewString(), NewConversationID: uuid.NewString(), UserID: "u", Text: "How many squats?",
		IdempotencyKey: uuid.NewString(), MaxRunning: 1000, Lease: gymbro.Lease{Owner: "w", Until: time.Now().Add(time.Minute)}, Now: time.Now()}
	m, _, err := db.CreateMessage(ctx, in)
	if err != nil {
		return err
	}
	if _, err := db.History(ctx, m.ConversationID, m.ID, 20); err != nil {
		return err
	}
	if err := db.SaveReply(ctx, m.ID, "partial"); err != nil {
		return err
	}
	if _, err := db.FinishMessage(ctx, m, gymbro.Result{Status: gymbro.StatusCompleted, Reply: "r"}); err != nil {
		return err
	}
	_, err = db.Message(ctx, "u", m.ID)
	return err
}

// BenchmarkTransactionPooler compares, alternately (testenv.Alternate),
// what exchanges cost the store on a direct connection with the session
// setting and with the transaction setting (every statement parsed and
// planned anew, the schema set per transaction), and with the transaction
// setting with and without a schema (what set_config costs).
//
//	go test -run '^$' -bench BenchmarkTransactionPooler -benchtime 3x ./internal/postgres
func BenchmarkTransactionPooler(b *testing.B) {
	ctx := context.Background()
	url := testenv.PostgresDatabase(b, testenv.PostgresURL(b), "gymbro_bench_")
	withSchema := open(b, url, "gymbro", postgres.WithTransactionPooler(), postgres.WithMaxConns(8))
	defer withSchema.Close()
	noSchema, err := postgres.Open(ctx, url, postgres.WithTransactionPooler(), postgres.WithMaxConns(8))
	if err != nil {
		b.Fatal(err)
	}
	defer noSchema.Close()
	session := open(b, url, "gymbro2", postgres.WithMaxConns(8))
	defer session.Close()
	b.Run("schema-vs-none", func(b *testing.B) {
		testenv.Alternate(b, "schema", "noschema", 400, func(z bool) error {
			if z {
				return storeExchange(ctx, noSchema)
			}
			return storeExchange(ctx, withSchema)
		})
	})
	b.Run("session-vs-tx", func(b *testing.B) {
		testenv.Alternate(b, "session", "tx", 400, func(z bool) error {
			if z {
				return storeExchange(ctx, withSchema)
			}
			return storeExchange(ctx, session)
		})
	})
}
