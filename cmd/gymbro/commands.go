package main

import (
	"context"
	"fmt"
	"io"
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

func authCommand(ctx context.Context, cfg *config.Config, args []string, stdout io.Writer) error {
	if len(args) != 1 || args[0] != "rotate-key" {
		return fmt.Errorf("usage: gymbro auth rotate-key")
	}
	if !cfg.Emulated() {
		return fmt.Errorf("auth rotate-key manages the local Auth emulator's keys; with SUPABASE_URL set, rotate keys in the Supabase dashboard")
	}
	kid, err := emulator.RotateKeyInDir(cfg.DataDir)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "new signing key %s published; the previous key still verifies until its tokens expire\n", kid)
	return nil
}

func syncCommand(ctx context.Context, cfg *config.Config, args []string, stdout io.Writer) error {
	if len(args) != 1 || (args[0] != "status" && args[0] != "retry") {
		return fmt.Errorf("usage: gymbro sync status|retry")
	}
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
