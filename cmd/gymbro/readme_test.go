package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestReadmeTour runs the README's curl tour, as written, against a real
// listening server with the built-in emulator, so the tour cannot drift.
func TestReadmeTour(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("the README tour needs %s (.ci/run installs it)", tool)
			}
			t.Skipf("the README tour needs %s, which this machine lacks", tool)
		}
	}
	script := readmeTour(t)
	a := startApp(t, nil)
	script = strings.Replace(script, "B=http://127.0.0.1:8080", "B="+a.url, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("the tour failed: %v\n%s", err, out)
	}
	for _, want := range []string{`"provider": "supabase"`, "event: queued", "event: completed", "id: 6\n", `"username": "gymbro-test-01"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the tour's output lacks %q:\n%s", want, out)
		}
	}
}

// readmeTour returns the first sh block under "A 60-second tour with curl".
func readmeTour(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(b), "## A 60-second tour with curl")
	if !ok {
		t.Fatal("README.md has no curl tour")
	}
	_, block, ok := strings.Cut(after, "```sh\n")
	if ok {
		block, _, ok = strings.Cut(block, "```")
	}
	if !ok || !strings.Contains(block, "B=http://127.0.0.1:8080") {
		t.Fatal("the tour's sh block is missing or does not set B")
	}
	return block
}
