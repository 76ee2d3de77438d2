package supabase_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gymbro/gymbro-api/internal/testenv"
)

// migrationFile is the Supabase CLI migration that users apply to their
// project; the test applies it byte for byte.
var migrationFile = filepath.Join("..", "..", "supabase", "migrations", "20260101000000_chat_records.sql")

// supabaseBase is the least of a Supabase database that the migration relies
// on: the API roles, the auth schema and auth.uid() as Supabase defines it.
// Roles are cluster-wide and other test runs may create them at the same
// moment, so creation tolerates losing that race; they are never dropped.
const supabaseBase = `
DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
		BEGIN CREATE ROLE anon NOLOGIN NOINHERIT;
		EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END;
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
		BEGIN CREATE ROLE authenticated NOLOGIN NOINHERIT;
		EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END;
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
		BEGIN CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
		EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END;
	END IF;
END
$$;
CREATE SCHEMA auth;
GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
	SELECT coalesce(
		nullif(current_setting('request.jwt.claim.sub', true), ''),
		(nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
	)::uuid
$$;
`

// freshDatabase creates a database no other test uses, with the Supabase
// base installed, and drops it when t ends.
func freshDatabase(t *testing.T) *pgx.ConnConfig {
	t.Helper()
	ctx := context.Background()
	url := testenv.PostgresURL(t)
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	name := testenv.UniqueName("gymbro_rls_")
	if _, err := admin.Exec(ctx, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize()); err != nil {
		admin.Close(ctx)
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		defer admin.Close(ctx)
		if _, err := admin.Exec(ctx, `DROP DATABASE `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`); err != nil {
			t.Errorf("drop database: %v", err)
		}
	})
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatalf("parse url: %v", err)
	}
	cfg.Database = name
	return cfg
}

func connect(t *testing.T, cfg *pgx.ConnConfig) *pgx.Conn {
	t.Helper()
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// asRole runs fn in a transaction as role with the JWT subject sub, the way
// PostgREST does for each request (SET LOCAL ROLE plus request.jwt.claims).
func asRole(t *testing.T, conn *pgx.Conn, role, sub string, fn func(tx pgx.Tx) error) error {
	t.Helper()
	ctx := context.Background()
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	defer tx.Rollback(ctx)
	claims := `{"role":"` + role + `"}`
	if sub != "" {
		claims = `{"role":"` + role + `","sub":"` + sub + `"}`
	}
	if _, err := tx.Exec(ctx, `SELECT set_config('request.jwt.claims', $1, true)`, claims); err != nil {
		t.Fatalf("set claims: %v", err)
	}
	if _, err := tx.Exec(ctx, `SET LOCAL ROLE `+pgx.Identifier{role}.Sanitize()); err != nil {
		t.Fatalf("set role %s: %v", role, err)
	}
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

const insertRecord = `INSERT INTO public.chat_records
	(id, user_id, provider, provider_uid, conversation_id, user_message, ai_response, status, created_at)
	VALUES ($1, $2, $3, $4, $5, 'how do I squat?', 'feet shoulder-width apart', 'completed', now())`

func wantSQLState(t *testing.T, what string, err error, state string) {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != state {
		t.Errorf("%s: got %v, want SQLSTATE %s", what, err, state)
	}
}

func TestMigrationRowLevelSecurity(t *testing.T) {
	ctx := context.Background()
	cfg := freshDatabase(t)
	conn := connect(t, cfg)
	if _, err := conn.Exec(ctx, supabaseBase); err != nil {
		t.Fatalf("install Supabase base: %v", err)
	}
	sql, err := os.ReadFile(migrationFile)
	if err != nil {
		t.Fatalf("read migration: %v", err)
	}
	if _, err := conn.Exec(ctx, string(sql)); err != nil {
		t.Fatalf("apply migration: %v", err)
	}
	// Pasting it into the SQL editor a second time must not fail either.
	if _, err := conn.Exec(ctx, string(sql)); err != nil {
		t.Fatalf("apply migration again: %v", err)
	}

	userA, userB := uuid.NewString(), uuid.NewString()
	conv := uuid.NewString()
	recA1, recA2, recB, recFirebase := uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString()

	// The service role writes, RLS or not.
	err = asRole(t, conn, "service_role", "", func(tx pgx.Tx) error {
		for _, r := range []struct{ id, user, provider, uid string }{
			{recA1, userA, "supabase", userA},
			{recA2, userA, "supabase", userA},
			{recB, userB, "supabase", userB},
			{recFirebase, "", "firebase", "firebaseUid0123456789abcdef"},
		} {
			var user *string
			if r.user != "" {
				user = &r.user
			}
			if _, err := tx.Exec(ctx, insertRecord, r.id, user, r.provider, r.uid, conv); err != nil {
				return err
			}
		}
		// The upsert the REST sink asks PostgREST for: a re-delivery merges.
		_, err := tx.Exec(ctx, `INSERT INTO public.chat_records
			(id, user_id, provider, provider_uid, conversation_id, user_message, ai_response, status, created_at)
			VALUES ($1, $2::uuid, 'supabase', $2::text, $3, 'how do I squat?', 'merged', 'completed', now())
			ON CONFLICT (id) DO UPDATE SET ai_response = excluded.ai_response`, recA1, userA, conv)
		return err
	})
	if err != nil {
		t.Fatalf("insert as service_role: %v", err)
	}

	visible := func(role, sub string) ([]string, error) {
		var ids []string
		err := asRole(t, conn, role, sub, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, `SELECT id::text FROM public.chat_records ORDER BY id`)
			if err != nil {
				return err
			}
			ids, err = pgx.CollectRows(rows, pgx.RowTo[string])
			return err
		})
		return ids, err
	}

	t.Run("authenticated sees only their own rows", func(t *testing.T) {
		got, err := visible("authenticated", userA)
		if err != nil {
			t.Fatalf("select as A: %v", err)
		}
		want := map[string]bool{recA1: true, recA2: true}
		if len(got) != len(want) || !want[got[0]] || !want[got[1]] {
			t.Errorf("A sees %v, want exactly %s and %s", got, recA1, recA2)
		}
		got, err = visible("authenticated", userB)
		if err != nil {
			t.Fatalf("select as B: %v", err)
		}
		if len(got) != 1 || got[0] != recB {
			t.Errorf("B sees %v, want only %s", got, recB)
		}
		// A token without sub (auth.uid() null) matches nothing, not everything.
		got, err = visible("authenticated", "")
		if err != nil {
			t.Fatalf("select without sub: %v", err)
		}
		if len(got) != 0 {
			t.Errorf("no sub sees %v, want nothing", got)
		}
	})

	t.Run("anon is refused outright", func(t *testing.T) {
		// The grant is revoked, so this is a permission error rather than an
		// empty result: anon cannot even learn the table has rows.
		_, err := visible("anon", "")
		wantSQLState(t, "select as anon", err, "42501")
	})

	t.Run("authenticated cannot write", func(t *testing.T) {
		err := asRole(t, conn, "authenticated", userA, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, insertRecord, uuid.NewString(), userA, "supabase", userA, conv)
			return err
		})
		wantSQLState(t, "insert as authenticated", err, "42501")
		err = asRole(t, conn, "authenticated", userA, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `UPDATE public.chat_records SET ai_response = 'forged' WHERE id = $1`, recA1)
			return err
		})
		wantSQLState(t, "update as authenticated", err, "42501")
		err = asRole(t, conn, "authenticated", userA, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `DELETE FROM public.chat_records WHERE id = $1`, recA1)
			return err
		})
		wantSQLState(t, "delete as authenticated", err, "42501")
	})

	t.Run("constraints", func(t *testing.T) {
		err := asRole(t, conn, "service_role", "", func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO public.chat_records
				(id, provider_uid, conversation_id, user_message, status, created_at)
				VALUES ($1, 'x', $2, 'hi', 'working', now())`, uuid.NewString(), conv)
			return err
		})
		wantSQLState(t, "non-terminal status", err, "23514")
		err = asRole(t, conn, "service_role", "", func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, insertRecord, uuid.NewString(), userA, "supabase", userB, conv)
			return err
		})
		wantSQLState(t, "user_id and provider_uid disagree", err, "23514")
		var aiResponse, provider string
		var synced bool
		err = conn.QueryRow(ctx, `SELECT ai_response, provider, synced_at IS NOT NULL FROM public.chat_records WHERE id = $1`, recA1).
			Scan(&aiResponse, &provider, &synced)
		if err != nil || aiResponse != "merged" || provider != "supabase" || !synced {
			t.Errorf("merged row = (%q, %q, synced %v, %v), want (merged, supabase, true, nil)", aiResponse, provider, synced, err)
		}
	})
}
