package main

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine running.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const m = "github.com/gymbro/gymbro-api/"

// TestSummary feeds a stream as `go test -json` writes it: two packages
// interleaved, one failing, one without tests, one that does not build.
func TestSummary(t *testing.T) {
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	r, w := io.Pipe()
	tick := make(chan time.Time)
	var out bytes.Buffer
	s := newSummary(&out, now)
	done := make(chan struct{})
	go func() { defer close(done); s.read(r, tick) }()
	write := func(lines ...string) {
		for _, l := range lines {
			if _, err := io.WriteString(w, l+"\n"); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(
		`{"Action":"start","Package":"`+m+`cmd/gymbro"}`,
		`{"Action":"start","Package":"`+m+`internal/sse"}`,
		`{"Action":"run","Package":"`+m+`cmd/gymbro","Test":"TestA"}`,
		`{"Action":"output","Package":"`+m+`cmd/gymbro","Test":"TestA","Output":"=== RUN   TestA\n"}`,
		`{"Action":"pass","Package":"`+m+`cmd/gymbro","Test":"TestA","Elapsed":1}`,
		`{"Action":"output","Package":"`+m+`internal/sse","Test":"TestOK","Output":"noise of a test that passed\n"}`,
		`{"Action":"pass","Package":"`+m+`internal/sse","Test":"TestOK","Elapsed":0}`,
		`{"Action":"output","Package":"`+m+`internal/sse","Test":"TestBad","Output":"    sse_test.go:9: want 1, got 2\n"}`,
		`{"Action":"fail","Package":"`+m+`internal/sse","Test":"TestBad","Elapsed":0}`,
		`{"Action":"output","Package":"`+m+`internal/sse","Output":"FAIL\n"}`,
		`{"Action":"fail","Package":"`+m+`internal/sse","Elapsed":0.5}`,
		`{"Action":"start","Package":"`+m+`internal/gymbro"}`,
		`{"Action":"output","Package":"`+m+`internal/gymbro","Output":"?   \tinternal/gymbro\t[no test files]\n"}`,
		`{"Action":"skip","Package":"`+m+`internal/gymbro"}`,
		`{"ImportPath":"`+m+`internal/x [`+m+`internal/x.test]","Action":"build-output","Output":"internal/x/x.go:3:1: syntax error\n"}`,
		`{"ImportPath":"`+m+`internal/x [`+m+`internal/x.test]","Action":"build-fail"}`,
		`{"Action":"fail","Package":"`+m+`internal/x","Elapsed":0,"FailedBuild":"`+m+`internal/x [`+m+`internal/x.test]"}`,
		`not json: passed through`,
	)
	clock = clock.Add(90 * time.Second)
	tick <- clock
	write(`{"Action":"pass","Package":"` + m + `cmd/gymbro","Elapsed":95}`)
	w.Close()
	<-done
	s.total()

	got := out.String()
	for _, want := range []string{
		"FAIL  internal/sse                                0.5s  1 failed, 1 passed\n      " +
			"    sse_test.go:9: want 1, got 2\n      FAIL\n",
		"internal/x/x.go:3:1: syntax error\nFAIL  internal/x                               [build failed]\n",
		"not json: passed through\n",
		"...   1m30s in: still running cmd/gymbro (1m30s, 1 tests passed)\n",
		"ok    cmd/gymbro                                 95.0s  1 tests\n",
		"1 packages passed, 2 failed, 1 without tests, in 1m30s\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "noise") || strings.Contains(got, "=== RUN") || strings.Contains(got, "no test files") {
		t.Errorf("the output of passed tests is shown:\n%s", got)
	}
}

// TestRunExitStatus: the status is the test command's, and a failure seen
// in the stream is one even when the command says otherwise.
func TestRunExitStatus(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{os.Args[0], "-test.run=^$"}, time.Hour, &out, &errOut); code != 0 {
		t.Errorf("a passing command: %d %s %s", code, &out, &errOut)
	}
	if code := run([]string{"sh", "-c", "exit 3"}, time.Hour, &out, &errOut); code != 3 {
		t.Errorf("exit 3: %d", code)
	}
	fail := `echo '{"Action":"start","Package":"p"}'; echo '{"Action":"fail","Package":"p","Elapsed":1}'`
	if code := run([]string{"sh", "-c", fail}, time.Hour, &out, &errOut); code != 1 {
		t.Errorf("a failed package with status 0: %d", code)
	}
}
