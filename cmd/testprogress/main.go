// Command testprogress runs `go test -json` and prints what a person
// wants from it while it runs: a line per package as it finishes, and every
// minute the packages still running. `go test ./...` without -json prints
// packages in order, so one long package (cmd/gymbro, the end-to-end tests)
// silences every later one for minutes; with -json the events stream as
// they happen, but they are a flood. A failed package's output is printed
// in full: its failed tests', and the package's own (panics, leaks, build
// errors).
//
//	go run ./cmd/testprogress -- go test -race -json ./...
//
// It exits with the test command's status, or 1 when a package failed
// whatever that status says.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"
)

func main() {
	every := flag.Duration("every", time.Minute, "how often to name the packages still running")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: testprogress [-every 1m] -- go test -json [flags] [packages]")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	os.Exit(run(flag.Args(), *every, os.Stdout, os.Stderr))
}

// run runs args with its stdout summarised to out, and returns the exit
// status to report.
func run(args []string, every time.Duration, out, errOut io.Writer) int {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stderr = errOut
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintln(errOut, "testprogress:", err)
		return 1
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(errOut, "testprogress:", err)
		return 1
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	s := newSummary(out, time.Now)
	s.read(stdout, tick.C)
	err = cmd.Wait()
	s.total()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return exit.ExitCode()
	case err != nil:
		fmt.Fprintln(errOut, "testprogress:", err)
		return 1
	case s.failed > 0:
		return 1
	}
	return 0
}

// event is one line of `go test -json` (cmd/test2json's TestEvent), or of
// the build output it interleaves (Action build-output and build-fail).
type event struct {
	Action     string
	Package    string
	Test       string
	Elapsed    float64
	Output     string
	ImportPath string
}

// pkg is what is known of a package while its tests run.
type pkg struct {
	started time.Time
	passed  int             // tests passed so far
	failed  map[string]bool // tests that failed
	output  []event         // every output event, for printing on failure
}

// summary turns events into lines.
type summary struct {
	out                  io.Writer
	now                  func() time.Time
	start                time.Time
	running              map[string]*pkg
	order                []string            // running packages in the order they started
	build                map[string][]string // build output per package
	passed, failed, none int
}

func newSummary(out io.Writer, now func() time.Time) *summary {
	return &summary{out: out, now: now, start: now(), running: map[string]*pkg{}, build: map[string][]string{}}
}

// read handles each line of r until it ends, and names the packages still
// running on each tick. Lines that are not JSON pass through unchanged.
func (s *summary) read(r io.Reader, tick <-chan time.Time) {
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				return
			}
			var ev event
			if err := json.Unmarshal([]byte(line), &ev); err != nil || ev.Action == "" {
				fmt.Fprintln(s.out, line)
				continue
			}
			s.handle(ev)
		case <-tick:
			s.progress()
		}
	}
}

func (s *summary) handle(ev event) {
	switch ev.Action {
	case "build-output":
		s.build[ev.ImportPath] = append(s.build[ev.ImportPath], ev.Output)
		return
	case "build-fail":
		fmt.Fprint(s.out, strings.Join(s.build[ev.ImportPath], ""))
		return
	case "start":
		s.running[ev.Package] = &pkg{started: s.now(), failed: map[string]bool{}}
		s.order = append(s.order, ev.Package)
		return
	}
	p := s.running[ev.Package]
	if p == nil {
		if ev.Test == "" && ev.Action == "fail" { // a package that did not build has no start
			s.failed++
			fmt.Fprintf(s.out, "FAIL  %-40s [build failed]\n", short(ev.Package))
		}
		return
	}
	switch {
	case ev.Action == "output":
		p.output = append(p.output, ev)
	case ev.Test != "" && ev.Action == "pass":
		p.passed++
	case ev.Test != "" && ev.Action == "fail":
		p.failed[ev.Test] = true
	case ev.Test == "" && (ev.Action == "pass" || ev.Action == "fail" || ev.Action == "skip"):
		s.finish(ev, p)
	}
}

// finish prints the line of a package that ended.
func (s *summary) finish(ev event, p *pkg) {
	delete(s.running, ev.Package)
	s.order = slices.DeleteFunc(s.order, func(name string) bool { return name == ev.Package })
	name := short(ev.Package)
	switch ev.Action {
	case "skip":
		s.none++ // no test files: nothing worth a line
	case "pass":
		s.passed++
		fmt.Fprintf(s.out, "ok    %-40s %6.1fs  %d tests\n", name, ev.Elapsed, p.passed)
	case "fail":
		s.failed++
		fmt.Fprintf(s.out, "FAIL  %-40s %6.1fs  %d failed, %d passed\n", name, ev.Elapsed, len(p.failed), p.passed)
		for _, o := range p.output {
			if o.Test == "" || p.failed[o.Test] {
				fmt.Fprint(s.out, "      "+o.Output)
			}
		}
	}
}

// progress names the packages still running, longest first.
func (s *summary) progress() {
	if len(s.order) == 0 {
		return
	}
	now := s.now()
	parts := make([]string, 0, len(s.order))
	for _, name := range s.order {
		p := s.running[name]
		parts = append(parts, fmt.Sprintf("%s (%s, %d tests passed)", short(name), now.Sub(p.started).Round(time.Second), p.passed))
	}
	fmt.Fprintf(s.out, "...   %s in: still running %s\n", now.Sub(s.start).Round(time.Second), strings.Join(parts, ", "))
}

// total prints the last line.
func (s *summary) total() {
	fmt.Fprintf(s.out, "%d packages passed, %d failed, %d without tests, in %s\n",
		s.passed, s.failed, s.none, s.now().Sub(s.start).Round(time.Second))
}

// short drops this module's path from a package's.
func short(pkg string) string {
	return strings.TrimPrefix(strings.TrimPrefix(pkg, "github.com/gymbro/gymbro-api"), "/")
}
