package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func runCLI(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, func(k string) string { return env[k] }, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCLI(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"GYMBRO_DATA_DIR": dir}
	if code, out, _ := runCLI(t, env, "version"); code != 0 || !strings.HasPrefix(out, "gymbro ") {
		t.Fatalf("version: %d %q", code, out)
	}
	if code, out, _ := runCLI(t, env, "migrate"); code != 0 || !strings.Contains(out, "migrations applied (sqlite)") {
		t.Fatalf("migrate: %d %q", code, out)
	}
	if code, out, _ := runCLI(t, env, "sync", "status"); code != 0 || !strings.Contains(out, "pending 0") || !strings.Contains(out, "dead    0") {
		t.Fatalf("sync status: %d %q", code, out)
	}
	if code, out, _ := runCLI(t, env, "sync", "retry"); code != 0 || !strings.Contains(out, "0 dead records") {
		t.Fatalf("sync retry: %d %q", code, out)
	}
	// The first key is no rotation: there is no previous key to speak of.
	if code, out, errs := runCLI(t, env, "auth", "rotate-key"); code != 0 || !strings.Contains(out, "created (there was none before)") || strings.Contains(out, "previous") {
		t.Fatalf("first rotate-key: %d %q %q", code, out, errs)
	}
	if code, out, errs := runCLI(t, env, "auth", "rotate-key"); code != 0 || !strings.Contains(out, "new signing key") || !strings.Contains(out, "the previous key still verifies") {
		t.Fatalf("rotate-key: %d %q %q", code, out, errs)
	}
	if code, _, errs := runCLI(t, env, "frobnicate"); code != 2 || !strings.Contains(errs, "unknown command") {
		t.Fatalf("unknown command: %d %q", code, errs)
	}
	// Every configuration problem is reported on its own line.
	bad := map[string]string{"GYMBRO_ENV": "staging", "GYMBRO_SSE_HEARTBEAT": "often"}
	code, _, errs := runCLI(t, bad, "serve")
	if code != 2 || !strings.Contains(errs, "  - GYMBRO_ENV ") || !strings.Contains(errs, "  - GYMBRO_SSE_HEARTBEAT ") {
		t.Fatalf("bad config: %d %q", code, errs)
	}
}

// TestProductionRefusesTheEmulator: an empty production configuration
// hears, in one message, that it lacks an issuer and a model.
func TestProductionRefusesTheEmulator(t *testing.T) {
	code, _, errs := runCLI(t, map[string]string{"GYMBRO_ENV": "production", "GYMBRO_DATA_DIR": t.TempDir()}, "serve")
	if code != 2 || strings.Count(errs, "\n  - ") != 2 || !strings.Contains(errs, "  - SUPABASE_URL or SUPABASE_PROJECT_ID") || !strings.Contains(errs, "  - OPENAI_API_KEY or GYMBRO_AI_CONFIG") {
		t.Fatalf("%d %q", code, errs)
	}
}

// TestVersionAndHelpReadNoConfiguration: the image sets GYMBRO_ENV=production,
// so "docker run <image> version" must not ask for Supabase settings.
func TestVersionAndHelpReadNoConfiguration(t *testing.T) {
	t.Chdir(t.TempDir())
	os.WriteFile(".env", []byte("this is = not a valid line\n\"\n"), 0o600)
	env := map[string]string{"GYMBRO_ENV": "production", "GYMBRO_SSE_HEARTBEAT": "often"}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		if code, out, errs := runCLI(t, env, args...); code != 0 || out != "gymbro "+version+"\n" || errs != "" {
			t.Errorf("%v: %d %q %q", args, code, out, errs)
		}
	}
	for _, args := range [][]string{{"help"}, {"--help"}, {"help", "sync"}} {
		if code, out, errs := runCLI(t, env, args...); code != 0 || !strings.HasPrefix(out, "usage: gymbro") || errs != "" {
			t.Errorf("%v: %d %q %q", args, code, out, errs)
		}
	}
}

// TestAdminCommandsReadOnlyTheStore: migrate and sync need the store's
// settings and nothing of serve's production rules.
func TestAdminCommandsReadOnlyTheStore(t *testing.T) {
	env := map[string]string{"GYMBRO_ENV": "production", "GYMBRO_DATA_DIR": t.TempDir(), "GYMBRO_SSE_HEARTBEAT": "often", "GYMBRO_CORS_ORIGINS": "*"}
	for _, args := range [][]string{{"migrate"}, {"sync", "status"}, {"sync", "retry"}} {
		if code, out, errs := runCLI(t, env, args...); code != 0 || errs != "" || out == "" {
			t.Errorf("%v: %d %q %q", args, code, out, errs)
		}
	}
	env["GYMBRO_DATABASE_URL"] = "mysql://x"
	if code, _, errs := runCLI(t, env, "sync", "status"); code != 2 || !strings.Contains(errs, "  - GYMBRO_DATABASE_URL ") || strings.Contains(errs, "HEARTBEAT") {
		t.Errorf("a bad store setting: %d %q", code, errs)
	}
}

// TestUsageErrorsExit2: a missing subcommand, an unknown one or a word too
// many is a usage error (exit 2, the usage on stderr), and nothing runs.
func TestUsageErrorsExit2(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"GYMBRO_DATA_DIR": filepath.Join(dir, "data"), "GYMBRO_HTTP_ADDR": "127.0.0.1:0"}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"sync"}, "missing subcommand: status or retry"},
		{[]string{"auth"}, "missing subcommand: rotate-key"},
		{[]string{"sync", "stats"}, `unknown subcommand "stats"`},
		{[]string{"sync", "status", "now"}, `unexpected argument "now" after status`},
		{[]string{"auth", "rotate-key", "x"}, `unexpected argument "x" after rotate-key`},
		{[]string{"migrate", "extra"}, `unexpected argument "extra"`},
		{[]string{"serve", "8080"}, `unexpected argument "8080"`},
		{[]string{"version", "now"}, `unexpected argument "now"`},
		{[]string{"help", "nope"}, `no command "nope"`},
		{[]string{"frobnicate"}, "unknown command"},
	} {
		code, out, errs := runCLI(t, env, c.args...)
		if code != 2 || out != "" || !strings.Contains(errs, c.want) || !strings.Contains(errs, "usage: gymbro") {
			t.Errorf("%v: %d %q %q", c.args, code, out, errs)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("a usage error created %v", entries)
	}
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := selfSignedCert(t, dir)
	a := startApp(t, map[string]string{"GYMBRO_TLS_CERT": certFile, "GYMBRO_TLS_KEY": keyFile})
	if !strings.HasPrefix(a.url, "https://") {
		t.Fatalf("url %s", a.url)
	}
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(certFile)
	pool.AppendCertsFromPEM(pem)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}}
	res, err := c.Get(a.url + "/api/v1/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Strict-Transport-Security"), "max-age=") {
		t.Fatalf("%d %v", res.StatusCode, res.Header)
	}
}

func selfSignedCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile
}

// TestServeStopsGracefullyOnSignal drives run() as main does: the signal
// context ending (SIGINT/SIGTERM) shuts the server down and run returns 0.
func TestServeStopsGracefullyOnSignal(t *testing.T) {
	addr := freeAddr(t)
	env := map[string]string{"GYMBRO_HTTP_ADDR": addr, "GYMBRO_DATA_DIR": t.TempDir(), "GYMBRO_LOG_LEVEL": "error"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	code := make(chan int, 1)
	go func() {
		var out, errb bytes.Buffer
		code <- run(ctx, nil, func(k string) string { return env[k] }, &out, &errb)
	}()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	waitFor(t, "the server to listen", func() bool {
		res, err := c.Get("http://" + addr + "/api/v1/healthz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	})
	cancel() // what signal.NotifyContext does on SIGTERM
	select {
	case got := <-code:
		if got != 0 {
			t.Fatalf("exit code %d", got)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
	if _, err := c.Get("http://" + addr + "/api/v1/healthz"); err == nil {
		t.Fatal("still serving after shutdown")
	}
}

// TestHelpHasNoSideEffects: every command's -h/--help prints its usage and
// exits 0 at once, in an empty directory that stays empty (no data dir, no
// migrations, no operator, no listener: serve would block instead of
// returning). An unknown flag prints the usage and exits 2.
func TestHelpHasNoSideEffects(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	env := map[string]string{"GYMBRO_HTTP_ADDR": "127.0.0.1:0"}
	for _, args := range [][]string{
		{"--help"}, {"-h"}, {"help"}, {"serve", "--help"}, {"serve", "-h"}, {"migrate", "--help"},
		{"auth", "--help"}, {"auth", "rotate-key", "--help"}, {"sync", "status", "-h"}, {"sync", "--help"}, {"version", "-h"},
	} {
		code, out, errs := runCLI(t, env, args...)
		if code != 0 || !strings.HasPrefix(out, "usage: gymbro") || errs != "" {
			t.Errorf("%v: %d %q %q", args, code, out, errs)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("help created %v", entries)
	}
	for _, args := range [][]string{{"serve", "--port", "1"}, {"migrate", "-x"}, {"-x"}} {
		code, out, errs := runCLI(t, env, args...)
		if code != 2 || out != "" || !strings.Contains(errs, "flag provided but not defined") || !strings.Contains(errs, "usage: gymbro") {
			t.Errorf("%v: %d %q %q", args, code, out, errs)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("a bad flag created %v", entries)
	}
}
