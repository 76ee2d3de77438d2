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

// command is one subcommand: its usage, the part of the configuration it
// reads, and what it runs.
type command struct {
	name  string
	usage string // shown by -h/--help and after a usage error
	// scope is what the command reads of the configuration: it is refused
	// only for a problem there. bare commands read none at all.
	scope config.Scope
	bare  bool
	// subs are the subcommands, one of which must follow; a command without
	// them takes no arguments.
	subs []string
	run  func(ctx context.Context, cfg *config.Config, args []string, stdout, stderr io.Writer) error
}

var commands = []command{
	{name: "serve", usage: serveUsage, scope: config.ScopeServe, run: func(ctx context.Context, cfg *config.Config, _ []string, _, stderr io.Writer) error {
		return serve(ctx, cfg, stderr)
	}},
	{name: "migrate", usage: migrateUsage, scope: config.ScopeStore, run: func(ctx context.Context, cfg *config.Config, _ []string, stdout, _ io.Writer) error {
		return migrate(ctx, cfg, stdout)
	}},
	{name: "auth", usage: authUsage, scope: config.ScopeLocalKeys, subs: []string{"rotate-key"}, run: func(ctx context.Context, cfg *config.Config, args []string, stdout, _ io.Writer) error {
		return authCommand(ctx, cfg, args, stdout)
	}},
	{name: "sync", usage: syncUsage, scope: config.ScopeStore, subs: []string{"status", "retry"}, run: func(ctx context.Context, cfg *config.Config, args []string, stdout, _ io.Writer) error {
		return syncCommand(ctx, cfg, args, stdout)
	}},
	{name: "version", usage: "usage: gymbro version\n\nPrints the version. It reads no configuration.\n", bare: true, run: func(_ context.Context, _ *config.Config, _ []string, stdout, _ io.Writer) error {
		_, err := fmt.Fprintln(stdout, "gymbro", version)
		return err
	}},
}

// run is main without the process: tests call it with their own arguments,
// environment and output. Help, bad flags and bad arguments are answered
// before anything is read or opened, so "gymbro serve --help" never starts
// a server. Usage errors exit 2, failures 1.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	name := "serve"
	switch {
	case len(args) > 0 && args[0] == "--version":
		name, args = "version", args[1:]
	case len(args) > 0 && !strings.HasPrefix(args[0], "-"):
		name, args = args[0], args[1:]
	case len(args) > 0 && isHelp(args[0]):
		name, args = "help", args[1:]
	}
	if name == "help" {
		return help(args, stdout, stderr)
	}
	cmd, ok := lookup(name)
	if !ok {
		fmt.Fprintf(stderr, "gymbro: unknown command %q\n%s", name, usage)
		return 2
	}
	rest, code, done := parseFlags(cmd, args, stdout, stderr)
	if done {
		return code
	}
	if err := cmd.checkArgs(rest); err != nil {
		fmt.Fprintf(stderr, "gymbro %s: %v\n%s", cmd.name, err, cmd.usage)
		return 2
	}
	var cfg *config.Config
	if !cmd.bare {
		if cfg, code = loadConfig(getenv, cmd.scope, stderr); cfg == nil {
			return code
		}
	}
	if err := cmd.run(ctx, cfg, rest, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "gymbro:", err)
		return 1
	}
	return 0
}

func lookup(name string) (command, bool) {
	i := slices.IndexFunc(commands, func(c command) bool { return c.name == name })
	if i < 0 {
		return command{}, false
	}
	return commands[i], true
}

// help prints the usage, or one command's with "gymbro help <command>".
func help(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stdout, usage)
		return 0
	}
	cmd, ok := lookup(args[0])
	if !ok || len(args) > 1 {
		fmt.Fprintf(stderr, "gymbro help: no command %q\n%s", strings.Join(args, " "), usage)
		return 2
	}
	fmt.Fprint(stdout, cmd.usage)
	return 0
}

// checkArgs accepts exactly one of the command's subcommands, or no
// argument at all from a command without them: "gymbro migrate extra"
// must not migrate as if the word were not there.
func (c command) checkArgs(args []string) error {
	switch {
	case len(c.subs) > 0 && len(args) == 0:
		return fmt.Errorf("missing subcommand: %s", strings.Join(c.subs, " or "))
	case len(c.subs) > 0 && !slices.Contains(c.subs, args[0]):
		return fmt.Errorf("unknown subcommand %q (want %s)", args[0], strings.Join(c.subs, " or "))
	case len(c.subs) > 0 && len(args) > 1:
		return fmt.Errorf("unexpected argument %q after %s", args[1], args[0])
	case len(c.subs) == 0 && len(args) > 0:
		return fmt.Errorf("unexpected argument %q", args[0])
	}
	return nil
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

// loadConfig reads .env and the environment, or prints every problem with
// the settings scope uses.
func loadConfig(getenv func(string) string, scope config.Scope, stderr io.Writer) (*config.Config, int) {
	if err := config.LoadDotEnv(".env"); err != nil {
		fmt.Fprintln(stderr, "gymbro: .env:", err)
		return nil, 2
	}
	cfg, err := config.LoadScope(getenv, scope)
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
  version           print the version (also --version)

"gymbro <command> -h" (or "gymbro help <command>") describes one command.
Configuration comes from the environment and ./.env; every variable is in
README.md ("Configuration"). Each command checks only the settings it reads;
help and version read none.
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
It reads only those settings.
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

Reads the store named by GYMBRO_DATABASE_URL, or SQLite in GYMBRO_DATA_DIR,
and no other setting.
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
