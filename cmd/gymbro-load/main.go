// Command gymbro-load drives a running GymBro API with simulated app users
// and reports what they saw: request rate, time to `queued`, to the first
// content_delta and to the terminal event (p50/p90/p99/max), heartbeat
// punctuality, HTTP errors, and every lost or duplicated event (each
// message's ids must be 1..n gap-free across reconnects, and its deltas must
// add up to the final content).
//
// Users sign up through the Auth emulator's Admin API (the service key from
// -service-key, SUPABASE_SERVICE_ROLE_KEY or -data-dir) or use the tokens in
// -tokens. In chat mode each user posts a message, follows its SSE stream to
// the end (a -drop fraction of streams hang up mid-reply and resume with
// Last-Event-ID), thinks, and posts again. In idle mode -streams streams are
// held open on slow replies and the server's memory per open stream is read
// from <url>/metrics or /proc/<pid>/status. Connections are spread over
// several loopback source addresses when one has too few ephemeral ports.
// In fake-model mode it serves an OpenAI-compatible model instead: a slow
// one for idle runs whose messages stay running for minutes, or one that
// answers at once (-chunk-every 0). In ttft mode each user alternates a
// streaming request straight to that model (-model-url) with an exchange
// through the service, and the time to first token of both and the time
// the service adds are reported (with -trace, also where it goes).
//
// Only loopback URLs are accepted, and everything stops by itself at
// -duration (sign-up is bounded separately by -setup-timeout).
//
//	gymbro-load -url http://127.0.0.1:8080 -data-dir ./data -users 200 -duration 20s
//	gymbro-load -url http://127.0.0.1:8080 -data-dir ./data -mode idle -users 100 -streams 10000 -pid 1234
//	gymbro-load -mode fake-model -listen 127.0.0.1:9090 -chunk-every 5s -chunks 120 -duration 1h
//	gymbro-load -url http://127.0.0.1:8080 -data-dir ./data -mode ttft -model-url http://127.0.0.1:9090/v1 -users 1 -exchanges 1000
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// options is the command line.
type options struct {
	urls         []string
	users        int
	duration     time.Duration
	setupTimeout time.Duration
	think        time.Duration
	drop         float64
	mode         string
	streams      int
	jsonOut      bool
	serviceKey   string
	dataDir      string
	tokensFile   string
	heartbeat    time.Duration
	pid          int
	text         string
	signupConc   int
	dialConc     int
	progress     time.Duration
	sourceAddrs  int
	idleText     string
	listen       string
	chunkEvery   time.Duration
	chunks       int
	modelURL     string
	exchanges    int
	warmup       int
	trace        bool
}

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr, os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "gymbro-load:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	o, err := parseFlags(args, stderr, getenv)
	if err != nil {
		return err
	}
	if n, err := raiseOpenFileLimit(); err != nil {
		fmt.Fprintf(stderr, "warning: open-file limit: %v (now %d)\n", err, n)
	} else if need := uint64(o.streams + o.users + 64); n < need {
		fmt.Fprintf(stderr, "warning: open-file limit %d is below the %d this run needs\n", n, need)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.mode == "fake-model" {
		if err := checkLoopback("http://" + o.listen); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, o.duration)
		defer cancel()
		return serveFakeModel(ctx, o.listen, &fakeModel{every: o.chunkEvery, chunks: o.chunks, openai: true}, stderr)
	}
	if o.sourceAddrs > 1 {
		fmt.Fprintf(stderr, "connections spread over %d source addresses (127.0.0.1-%s)\n", o.sourceAddrs, sourceAddrs(o.sourceAddrs)[o.sourceAddrs-1])
	}
	sum, err := newLoad(o, stderr).run(ctx)
	if err != nil {
		return err
	}
	if o.jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(sum)
	}
	sum.print(stdout)
	return nil
}

func parseFlags(args []string, stderr io.Writer, getenv func(string) string) (*options, error) {
	fs := flag.NewFlagSet("gymbro-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	urls := fs.String("url", "http://127.0.0.1:8080", "base URL(s) of the service, comma-separated (loopback only); users are spread across them and stream from a different one than they post to")
	fs.IntVar(&o.users, "users", 10, "simulated users (with -tokens: default one per token)")
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "how long the load runs; everything stops by itself then")
	fs.DurationVar(&o.setupTimeout, "setup-timeout", 3*time.Minute, "bound on creating and signing in the users")
	fs.DurationVar(&o.think, "think", time.Second, "pause between one user's messages (chat mode), or pairs (ttft mode with more than one user)")
	fs.Float64Var(&o.drop, "drop", 0.1, "fraction of streams that hang up mid-reply and resume with Last-Event-ID")
	fs.StringVar(&o.mode, "mode", "chat", "chat (post and follow replies), post (post as fast as the service accepts, each post with its Idempotency-Key, honouring Retry-After), idle (hold -streams open streams and read server memory), ttft (time to first token through the service against straight to -model-url, alternately) or fake-model (serve an OpenAI-compatible model until -duration)")
	fs.IntVar(&o.streams, "streams", 1000, "open streams to hold in idle mode")
	fs.BoolVar(&o.jsonOut, "json", false, "print the summary as JSON")
	fs.StringVar(&o.serviceKey, "service-key", "", "Auth Admin API key to create users (default $SUPABASE_SERVICE_ROLE_KEY, else read from -data-dir)")
	fs.StringVar(&o.dataDir, "data-dir", "", "the server's GYMBRO_DATA_DIR, to read the emulator's service key from auth_api_keys.json")
	fs.StringVar(&o.tokensFile, "tokens", "", "file of access tokens, one per line, instead of signing users up")
	fs.DurationVar(&o.heartbeat, "heartbeat", 0, "the server's GYMBRO_SSE_HEARTBEAT, to measure heartbeat punctuality (0: off)")
	fs.IntVar(&o.pid, "pid", 0, "server process id, to read VmRSS from /proc when <url>/metrics is absent (idle mode)")
	fs.StringVar(&o.text, "text", "How should I squat with good form?", "message text users post in chat and post mode")
	fs.IntVar(&o.signupConc, "signup-concurrency", 8, "users created and signed in at once")
	fs.IntVar(&o.dialConc, "dial-concurrency", 256, "stream connections being opened at once (keeps the accept queue from overflowing)")
	fs.DurationVar(&o.progress, "progress", 5*time.Second, "interval of the progress line on stderr")
	fs.IntVar(&o.sourceAddrs, "source-addrs", 0, "loopback source addresses to spread connections over (127.0.0.1, 127.0.0.2, …); 0: one per 25,000 connections to an IPv4 loopback URL")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:0", "fake-model mode: the address to serve the fake model on")
	fs.DurationVar(&o.chunkEvery, "chunk-every", 5*time.Second, "fake-model mode: the pause between chunks (0: the whole reply at once)")
	fs.IntVar(&o.chunks, "chunks", 120, "fake-model mode: chunks per reply")
	fs.StringVar(&o.modelURL, "model-url", "", "ttft mode: the model's base URL (the service's OPENAI_BASE_URL), for the direct requests")
	fs.IntVar(&o.exchanges, "exchanges", 1000, "ttft mode: pairs (direct and through the service) to measure, over all users")
	fs.IntVar(&o.warmup, "warmup", 50, "ttft mode: pairs run first and not measured")
	fs.BoolVar(&o.trace, "trace", false, "ttft mode: read each exchange's timestamps from the service (GYMBRO_TRACE_TTFT=true) and print where the time goes")
	fs.StringVar(&o.idleText, "idle-text", idleText, "message text users post in idle mode (the default asks the demo coach for a slow reply)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	usersSet := false
	fs.Visit(func(f *flag.Flag) { usersSet = usersSet || f.Name == "users" })
	if o.tokensFile != "" && !usersSet {
		o.users = 0 // one per token, once the file is read
	}
	if o.serviceKey == "" {
		o.serviceKey = getenv("SUPABASE_SERVICE_ROLE_KEY")
	}
	for _, u := range strings.Split(*urls, ",") {
		u = strings.TrimRight(strings.TrimSpace(u), "/")
		if u == "" {
			continue
		}
		if err := checkLoopback(u); err != nil {
			return nil, err
		}
		o.urls = append(o.urls, u)
	}
	switch {
	case len(o.urls) == 0:
		return nil, errors.New("-url: at least one base URL is needed")
	case o.mode != "chat" && o.mode != "post" && o.mode != "idle" && o.mode != "ttft" && o.mode != "fake-model":
		return nil, fmt.Errorf("-mode %q: want chat, post, idle, ttft or fake-model", o.mode)
	case o.mode == "fake-model" && (o.chunkEvery < 0 || o.chunks < 1):
		return nil, errors.New("-chunk-every must not be negative and -chunks must be at least 1")
	case o.mode == "ttft" && o.modelURL == "":
		return nil, errNoModelURL
	case o.mode == "ttft" && (o.exchanges < 1 || o.warmup < 0):
		return nil, errors.New("-exchanges must be at least 1 and -warmup not negative")
	case o.users < 1 && o.tokensFile == "":
		return nil, errors.New("-users must be at least 1")
	case o.duration <= 0:
		return nil, errors.New("-duration must be positive")
	case o.drop < 0 || o.drop > 1:
		return nil, errors.New("-drop is a fraction between 0 and 1")
	case o.mode == "idle" && o.streams < 1:
		return nil, errors.New("-streams must be at least 1 in idle mode")
	case o.signupConc < 1 || o.dialConc < 1:
		return nil, errors.New("-signup-concurrency and -dial-concurrency must be at least 1")
	}
	if o.mode == "ttft" {
		o.modelURL = strings.TrimRight(o.modelURL, "/")
		if err := checkLoopback(o.modelURL); err != nil {
			return nil, err
		}
	}
	if o.mode == "chat" || o.mode == "post" || o.mode == "ttft" {
		o.streams = 0
	}
	if o.sourceAddrs == 0 {
		o.sourceAddrs = sourcesFor(o.urls[0], o.streams+o.users+64)
	}
	return o, nil
}

// checkLoopback refuses any target but this machine: a load generator
// pointed at someone else's server by a typo is a denial of service.
func checkLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("-url %q: want http(s)://host:port", raw)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("-url %q: only loopback addresses (127.0.0.0/8, [::1], localhost) are allowed", raw)
}

// raiseOpenFileLimit lifts the soft RLIMIT_NOFILE to the hard limit (and
// the hard limit too when the process may), since every open stream is a
// socket and 10k streams exceed the usual soft limit of 1024.
func raiseOpenFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	want := lim
	const target = 1 << 20
	if want.Max < target {
		want.Max = target
	}
	want.Cur = want.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		// Not privileged: the hard limit stays; take all of it.
		want = lim
		want.Cur = want.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
			return lim.Cur, err
		}
	}
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	return lim.Cur, nil
}
