// Command gymbro is the GymBro API server and its admin subcommands.
//
//	gymbro [serve]            run the service (the default)
//	gymbro migrate            apply the store's migrations and exit
//	gymbro auth rotate-key    publish a new signing key for the local Auth emulator
//	gymbro sync status|retry  inspect the Supabase sync outbox, or re-drive dead records
//	gymbro version            print the version
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/gymbro/gymbro-api/internal/config"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the process: tests call it with their own arguments,
// environment and output.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	if cmd == "version" || cmd == "--version" {
		fmt.Fprintln(stdout, "gymbro", version)
		return 0
	}
	if cmd == "help" || cmd == "-h" || cmd == "--help" {
		fmt.Fprint(stdout, usage)
		return 0
	}
	if err := config.LoadDotEnv(".env"); err != nil {
		fmt.Fprintln(stderr, "gymbro: .env:", err)
		return 2
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		fmt.Fprintln(stderr, "gymbro: invalid configuration:")
		var p config.Problems
		if errors.As(err, &p) {
			for _, line := range p {
				fmt.Fprintln(stderr, "  -", line)
			}
		} else {
			fmt.Fprintln(stderr, "  -", err)
		}
		return 2
	}
	switch cmd {
	case "serve":
		err = serve(ctx, cfg, stderr)
	case "migrate":
		err = migrate(ctx, cfg, stdout)
	case "auth":
		err = authCommand(ctx, cfg, args, stdout)
	case "sync":
		err = syncCommand(ctx, cfg, args, stdout)
	default:
		fmt.Fprintf(stderr, "gymbro: unknown command %q\n%s", cmd, usage)
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "gymbro:", err)
		return 1
	}
	return 0
}

const usage = `usage: gymbro [command]

commands:
  serve             run the service (default)
  migrate           apply the store's migrations and exit
  auth rotate-key   publish a new signing key for the local Auth emulator
  sync status       print the Supabase sync outbox: pending, dead, oldest age
  sync retry        make dead outbox records pending again
  version           print the version

Configuration comes from the environment and ./.env; see README.md.
`

func serve(ctx context.Context, cfg *config.Config, stderr io.Writer) error {
	m := NewMain(cfg, stderr)
	if err := m.Run(ctx); err != nil {
		m.Close()
		return err
	}
	<-ctx.Done()
	return m.Close()
}
