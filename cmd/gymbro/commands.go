package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/gymbro/gymbro-api/internal/config"
	"github.com/gymbro/gymbro-api/internal/supabase/emulator"
)

// migrate applies the store's migrations (opening a store applies them).
func migrate(ctx context.Context, cfg *config.Config, stdout io.Writer) error {
	m := NewMain(cfg, io.Discard)
	defer m.closeStore()
	if err := m.openStore(ctx); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "migrations applied (%s)\n", m.storeName())
	return nil
}

func (m *Main) closeStore() {
	for i := len(m.closers) - 1; i >= 0; i-- {
		_ = m.closers[i]()
	}
	m.closers = nil
}

// signingKeysFile is where the local Auth emulator keeps its signing keys
// in the data directory (TestCLI notices if it moves).
const signingKeysFile = "auth_signing_keys.json"

// authCommand runs "auth rotate-key" (run checked the subcommand).
func authCommand(ctx context.Context, cfg *config.Config, args []string, stdout io.Writer) error {
	if !cfg.Emulated() {
		return fmt.Errorf("auth rotate-key manages the local Auth emulator's keys, which runs only in development without SUPABASE_URL; rotate a Supabase project's keys in its dashboard")
	}
	_, err := os.Stat(filepath.Join(cfg.DataDir, signingKeysFile))
	first := errors.Is(err, fs.ErrNotExist)
	kid, err := emulator.RotateKeyInDir(cfg.DataDir)
	if err != nil {
		return err
	}
	if first {
		fmt.Fprintf(stdout, "signing key %s created (there was none before); the local Auth emulator signs with it\n", kid)
		return nil
	}
	fmt.Fprintf(stdout, "new signing key %s published; the previous key still verifies until its tokens expire\n", kid)
	return nil
}

// syncCommand runs "sync status" or "sync retry" (run checked which).
func syncCommand(ctx context.Context, cfg *config.Config, args []string, stdout io.Writer) error {
	m := NewMain(cfg, io.Discard)
	defer m.closeStore()
	if err := m.openStore(ctx); err != nil {
		return err
	}
	if args[0] == "retry" {
		n, err := m.Store.RedriveOutbox(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%d dead records made pending again\n", n)
		return nil
	}
	st, err := m.Store.OutboxStats(ctx)
	if err != nil {
		return err
	}
	age := "-"
	if !st.OldestPending.IsZero() {
		age = time.Since(st.OldestPending).Round(time.Second).String()
	}
	fmt.Fprintf(stdout, "pending %d\ndead    %d\noldest  %s\n", st.Pending, st.Dead, age)
	return nil
}
