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
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
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

// command is one subcommand: its usage and what it runs.
type command struct {
	name  string
	usage string // shown by -h/--help and after a bad flag
	run   func(ctx context.Context, cfg *config.Config, args []string, stdout, stderr io.Writer) error
}

var commands = []command{
	{"serve", serveUsage, func(ctx context.Context, cfg *config.Config, _ []string, _, stderr io.Writer) error {
		return serve(ctx, cfg, stderr)
	}},
	{"migrate", migrateUsage, func(ctx context.Context, cfg *config.Config, _ []string, stdout, _ io.Writer) error {
		return migrate(ctx, cfg, stdout)
	}},
	{"auth", authUsage, func(ctx context.Context, cfg *config.Config, args []string, stdout, _ io.Writer) error {
		return authCommand(ctx, cfg, args, stdout)
	}},
	{"sync", syncUsage, func(ctx context.Context, cfg *config.Config, args []string, stdout, _ io.Writer) error {
		return syncCommand(ctx, cfg, args, stdout)
	}},
	{"version", "usage: gymbro version\n\nPrints the version.\n", func(_ context.Context, _ *config.Config, _ []string, stdout, _ io.Writer) error {
		_, err := fmt.Fprintln(stdout, "gymbro", version)
		return err
	}},
}

// run is main without the process: tests call it with their own arguments,
// environment and output. Help and bad flags are answered before anything
// is read or opened, so "gymbro serve --help" never starts a server.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	name := "serve"
	switch {
	case len(args) > 0 && args[0] == "--version":
		name, args = "version", args[1:]
	case len(args) > 0 && !strings.HasPrefix(args[0], "-"):
		name, args = args[0], args[1:]
	case len(args) > 0 && isHelp(args[0]):
		name = "help"
	}
	if name == "help" {
		fmt.Fprint(stdout, usage)
		return 0
	}
	i := slices.IndexFunc(commands, func(c command) bool { return c.name == name })
	if i < 0 {
		fmt.Fprintf(stderr, "gymbro: unknown command %q\n%s", name, usage)
		return 2
	}
	cmd := commands[i]
	rest, code, done := parseFlags(cmd, args, stdout, stderr)
	if done {
		return code
	}
	cfg, code := loadConfig(getenv, stderr)
	if cfg == nil {
		return code
	}
	if err := cmd.run(ctx, cfg, rest, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "gymbro:", err)
		return 1
	}
	return 0
}

func isHelp(arg string) bool { return arg == "-h" || arg == "-help" || arg == "--help" }

// parseFlags parses cmd's flags (it has none today; configuration lives in
// the environment) with the standard flag package: -h/--help anywhere
// prints the usage and exits 0, an unknown flag prints it and exits 2.
func parseFlags(cmd command, args []string, stdout, stderr io.Writer) (rest []string, code int, done bool) {
	if slices.ContainsFunc(args, isHelp) {
		fmt.Fprint(stdout, cmd.usage)
		return nil, 0, true
	}
	fs := flag.NewFlagSet("gymbro "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, cmd.usage) }
	if err := fs.Parse(args); err != nil {
		return nil, 2, true
	}
	return fs.Args(), 0, false
}

// loadConfig reads .env and the environment, or prints every problem.
func loadConfig(getenv func(string) string, stderr io.Writer) (*config.Config, int) {
	if err := config.LoadDotEnv(".env"); err != nil {
		fmt.Fprintln(stderr, "gymbro: .env:", err)
		return nil, 2
	}
	cfg, err := config.Load(getenv)
	if err == nil {
		return cfg, 0
	}
	fmt.Fprintln(stderr, "gymbro: invalid configuration:")
	var p config.Problems
	if errors.As(err, &p) {
		for _, line := range p {
			fmt.Fprintln(stderr, "  -", line)
		}
	} else {
		fmt.Fprintln(stderr, "  -", err)
	}
	return nil, 2
}

const usage = `usage: gymbro [command] [-h]

commands:
  serve             run the service (default)
  migrate           apply the store's migrations and exit
  auth rotate-key   publish a new signing key for the local Auth emulator
  sync status       print the Supabase sync outbox: pending, dead, oldest age
  sync retry        make dead outbox records pending again
  version           print the version

"gymbro <command> -h" describes one command. Configuration comes from the
environment and ./.env; every variable is in README.md ("Configuration").
`

const serveUsage = `usage: gymbro serve

Runs the service on GYMBRO_HTTP_ADDR (default 127.0.0.1:8080) until SIGINT
or SIGTERM. With no configuration it uses SQLite in GYMBRO_DATA_DIR
(./data), the in-process event log, the demo model and the local Supabase
Auth emulator. Set SUPABASE_URL (and SUPABASE_ANON_KEY,
SUPABASE_SERVICE_ROLE_KEY), GYMBRO_DATABASE_URL, GYMBRO_REDIS_URL and
OPENAI_API_KEY for production; GYMBRO_ENV=production enforces the
production rules. Every variable: README.md, "Configuration".
`

const migrateUsage = `usage: gymbro migrate

Applies the store's migrations and exits: PostgreSQL when
GYMBRO_DATABASE_URL is set (GYMBRO_DATABASE_SCHEMA names its schema),
otherwise SQLite in GYMBRO_DATA_DIR (./data). serve applies them too.
`

const authUsage = `usage: gymbro auth rotate-key

Publishes a new signing key for the local Supabase Auth emulator (the keys
in GYMBRO_DATA_DIR); tokens signed with the previous key keep verifying
until they expire. With SUPABASE_URL set, rotate keys in Supabase instead.
`

const syncUsage = `usage: gymbro sync status|retry

status  prints the Supabase sync outbox: pending and dead records, and the
        age of the oldest pending one
retry   makes dead records pending again, once their cause is fixed

Reads the store named by GYMBRO_DATABASE_URL, or SQLite in GYMBRO_DATA_DIR.
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
