// Package firebasetest runs Google's Firebase Auth emulator (npm
// firebase-tools, pinned in test/firebase and installed there by `npm ci`)
// for tests, and drives it as the people around the service would: users
// sign up and in with the official JS client (test/firebase/signin.mjs,
// as an older app build does), and an operator disables, revokes and
// deletes them with the REST calls Firebase's Admin SDKs make.
//
// The emulator takes a while to start (firebase-tools compiles its API
// schema first: about 2 s on a quiet machine, many more on a busy one), so
// a package starts one for all its tests with a Shared.
package firebasetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ProjectID is the emulator's project. A "demo-" project needs no
// credentials, and the emulator reaches nothing online for it.
const ProjectID = "demo-gymbro"

// Issuer is the iss (and "https://securetoken.google.com/" + aud) of the
// emulator's ID tokens.
const Issuer = "https://securetoken.google.com/" + ProjectID

// startTimeout bounds the emulator's start: its schema compilation is
// CPU-bound, and a loaded 2-core machine stretches it.
const startTimeout = 3 * time.Minute

// Shared is one emulator for the tests of a package, started by the first
// test that asks for it and stopped after the last (see Main). The zero
// value is ready to use.
type Shared struct {
	once sync.Once
	emu  *Emulator
	err  error
	skip bool // err says what to install, not that the emulator failed
}

// Get returns the package's emulator, starting it on first use. Without
// node or test/firebase's npm packages it skips t, saying what to install,
// and fails it when CI is set; an emulator that does not start fails t.
func (s *Shared) Get(t testing.TB) *Emulator {
	t.Helper()
	s.once.Do(func() { s.emu, s.skip, s.err = start() })
	if s.err != nil {
		if s.skip && os.Getenv("CI") == "" {
			t.Skip(s.err)
		}
		t.Fatal(s.err)
	}
	return s.emu
}

// Main wraps a package's testing.M so that running it stops the emulator
// after the tests: TestMain(m) { goleak.VerifyTestMain(emulator.Main(m)) }.
func (s *Shared) Main(m interface{ Run() int }) interface{ Run() int } {
	return runner(func() int {
		code := m.Run()
		if s.emu != nil {
			s.emu.stop()
		}
		return code
	})
}

type runner func() int

func (r runner) Run() int { return r() }

// Emulator is a running Auth emulator.
type Emulator struct {
	Host   string       // host:port, the value of FIREBASE_AUTH_EMULATOR_HOST
	npmDir string       // test/firebase
	http   *http.Client // no keep-alive: no connection outlives a call
	work   string       // the emulator's working directory, removed by stop
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has ended
}

// start starts an emulator in a new temporary directory on free ports and
// waits until it answers. skip reports an error that means "not
// installed here".
func start() (e *Emulator, skip bool, err error) {
	npmDir, err := npmFolder()
	if err != nil {
		return nil, true, err
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, true, errors.New("firebasetest: node is not installed; the Firebase Auth emulator needs Node 20 or later")
	}
	cli := filepath.Join(npmDir, "node_modules", "firebase-tools", "lib", "bin", "firebase.js")
	if _, err := os.Stat(cli); err != nil {
		return nil, true, fmt.Errorf("firebasetest: firebase-tools is not installed; run `npm ci` in %s", npmDir)
	}
	work, err := os.MkdirTemp("", "firebase-emulator-")
	if err != nil {
		return nil, false, err
	}
	e = &Emulator{npmDir: npmDir, work: work, exited: make(chan struct{}),
		http: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}}
	if err := e.launch(node, cli); err != nil {
		e.stop()
		return nil, false, err
	}
	if err := e.waitReady(); err != nil {
		e.stop()
		return nil, false, err
	}
	return e, false, nil
}

// npmFolder finds test/firebase above the working directory (a package's
// directory under go test).
func npmFolder() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "test", "firebase"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("firebasetest: no go.mod above the working directory")
		}
		dir = parent
	}
}

// launch writes a firebase.json with free ports for the emulator and the
// hub and logging servers firebase-tools starts beside it, and starts
// `firebase emulators:start --only auth`. TMPDIR and XDG_CONFIG_HOME point
// into the working directory, so that emulators of packages tested at the
// same time share no hub locator or settings file.
func (e *Emulator) launch(node, cli string) error {
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	e.Host = "127.0.0.1:" + strconv.Itoa(ports[0])
	config := map[string]any{"emulators": map[string]any{
		"auth":              map[string]any{"host": "127.0.0.1", "port": ports[0]},
		"hub":               map[string]any{"host": "127.0.0.1", "port": ports[1]},
		"logging":           map[string]any{"host": "127.0.0.1", "port": ports[2]},
		"ui":                map[string]any{"enabled": false},
		"singleProjectMode": true,
	}}
	b, _ := json.Marshal(config)
	if err := os.WriteFile(filepath.Join(e.work, "firebase.json"), b, 0o600); err != nil {
		return err
	}
	logFile, err := os.Create(filepath.Join(e.work, "emulator.log"))
	if err != nil {
		return err
	}
	defer logFile.Close() // the child has its own descriptor
	e.cmd = exec.Command(node, cli, "emulators:start", "--only", "auth", "--project", ProjectID)
	e.cmd.Dir = e.work
	e.cmd.Env = append(os.Environ(), "TMPDIR="+e.work, "XDG_CONFIG_HOME="+filepath.Join(e.work, "config"),
		"NO_UPDATE_NOTIFIER=1")
	e.cmd.Stdout, e.cmd.Stderr = logFile, logFile
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // stop ends whatever it starts
	if err := e.cmd.Start(); err != nil {
		return fmt.Errorf("firebasetest: starting the emulator: %w", err)
	}
	go func() {
		_ = e.cmd.Wait()
		close(e.exited)
	}()
	return nil
}

// freePorts returns n loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitReady waits until the emulator's root answers that it is ready, the
// process ends, or startTimeout passes.
func (e *Emulator) waitReady() error {
	deadline := time.Now().Add(startTimeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if e.ready() {
			return nil
		}
		select {
		case <-e.exited:
			return fmt.Errorf("firebasetest: the emulator exited while starting:\n%s", e.logTail())
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("firebasetest: the emulator did not answer within %s:\n%s", startTimeout, e.logTail())
		}
	}
}

// ready reports whether GET / answers {"authEmulator": {"ready": true}}.
func (e *Emulator) ready() bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+e.Host+"/", nil)
	resp, err := e.http.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var body struct {
		AuthEmulator struct {
			Ready bool `json:"ready"`
		} `json:"authEmulator"`
	}
	return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&body) == nil && body.AuthEmulator.Ready
}

// logTail is the end of the emulator's output, for a failure message.
func (e *Emulator) logTail() string {
	b, _ := os.ReadFile(filepath.Join(e.work, "emulator.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// stop ends the emulator's process group (SIGINT, as a developer's ^C,
// then SIGKILL if it lingers) and removes its directory.
func (e *Emulator) stop() {
	if e.cmd != nil && e.cmd.Process != nil {
		pgid := e.cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGINT)
		select {
		case <-e.exited:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-e.exited
		}
	}
	_ = os.RemoveAll(e.work)
}

// User is an account to sign up or in with.
type User struct {
	Email       string `json:"email"`
	Password    string `json:"password"`
	DisplayName string `json:"displayName,omitempty"`
	create      bool
}

// Session is a signed-in user: their uid (the tokens' sub) and an ID token.
type Session struct {
	UID     string `json:"uid"`
	Email   string `json:"email"`
	IDToken string `json:"idToken"`
}

// SignUp creates each user with the JS client's
// createUserWithEmailAndPassword (and updateProfile for a display name)
// and returns their sessions, in order.
func (e *Emulator) SignUp(t testing.TB, users ...User) []Session {
	t.Helper()
	for i := range users {
		users[i].create = true
	}
	return e.signIn(t, users)
}

// SignIn signs existing users in again (signInWithEmailAndPassword): new
// sessions, with a new auth_time.
func (e *Emulator) SignIn(t testing.TB, users ...User) []Session {
	t.Helper()
	return e.signIn(t, users)
}

func (e *Emulator) signIn(t testing.TB, users []User) []Session {
	t.Helper()
	type item struct {
		User
		Create bool `json:"create"`
	}
	items := make([]item, len(users))
	for i, u := range users {
		items[i] = item{u, u.create}
	}
	in, _ := json.Marshal(items)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join(e.npmDir, "signin.mjs"), ProjectID)
	cmd.Dir = e.npmDir
	cmd.Env = append(os.Environ(), "FIREBASE_AUTH_EMULATOR_HOST="+e.Host)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("signin.mjs: %v\n%s", err, stderr.String())
	}
	var sessions []Session
	if err := json.Unmarshal(out, &sessions); err != nil || len(sessions) != len(users) {
		t.Fatalf("signin.mjs answered %q: %v", out, err)
	}
	return sessions
}

// Disable disables the user uid, as the Admin SDK's updateUser({disabled:
// true}) does.
func (e *Emulator) Disable(t testing.TB, uid string) {
	t.Helper()
	e.admin(t, "accounts:update", map[string]any{"localId": uid, "disableUser": true})
}

// RevokeTokens makes the user's tokens from sign-ins before validSince
// invalid, as the Admin SDK's revokeRefreshTokens does with the current
// second. (Firebase compares seconds: a token from a sign-in in the same
// second as the revocation still stands, so tests pass a later second.)
func (e *Emulator) RevokeTokens(t testing.TB, uid string, validSince time.Time) {
	t.Helper()
	e.admin(t, "accounts:update", map[string]any{"localId": uid, "validSince": strconv.FormatInt(validSince.Unix(), 10)})
}

// Delete deletes the user, as the Admin SDK's deleteUser does.
func (e *Emulator) Delete(t testing.TB, uid string) {
	t.Helper()
	e.admin(t, "accounts:delete", map[string]any{"localId": uid})
}

// admin posts body to an Identity Toolkit method of the project with the
// emulator's admin token, as the Admin SDKs do against the emulator.
func (e *Emulator) admin(t testing.TB, method string, body any) {
	t.Helper()
	b, _ := json.Marshal(body)
	url := "http://" + e.Host + "/identitytoolkit.googleapis.com/v1/projects/" + ProjectID + "/" + method
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer owner")
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	defer resp.Body.Close()
	var answer bytes.Buffer
	_, _ = answer.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: HTTP %d: %s", method, resp.StatusCode, strings.TrimSpace(answer.String()))
	}
}
