package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/gymbro/gymbro-api/internal/supabase"
)

// user is one simulated app user.
type user struct {
	n         int
	token     string
	postURL   string // base URL messages are posted to
	streamURL string // base URL streams are read from (another one when several are given)
}

// bearer is what goes in the Authorization header.
func (u *user) bearer() string { return "Bearer " + u.token }

// makeUsers returns o.users users with tokens, from -tokens or by creating
// and signing in fresh users through the Auth (emulator's) API.
func (l *load) makeUsers(ctx context.Context) ([]*user, error) {
	var tokens []string
	var err error
	if l.o.tokensFile != "" {
		tokens, err = readTokens(l.o.tokensFile)
		if err != nil {
			return nil, err
		}
		if l.o.users <= 0 {
			l.o.users = len(tokens)
		}
	} else {
		tokens, err = l.signUp(ctx, l.o.users)
		if err != nil {
			return nil, err
		}
	}
	n := len(l.o.urls)
	users := make([]*user, l.o.users)
	for i := range users {
		users[i] = &user{
			n: i, token: tokens[i%len(tokens)],
			postURL: l.o.urls[i%n], streamURL: l.o.urls[(i+1)%n],
		}
	}
	return users, nil
}

func readTokens(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("-tokens: %w", err)
	}
	defer f.Close()
	var out []string
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		if t := strings.TrimSpace(s.Text()); t != "" && !strings.HasPrefix(t, "#") {
			out = append(out, t)
		}
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("-tokens: %w", err)
	}
	if len(out) == 0 {
		return nil, errors.New("-tokens: the file holds no token")
	}
	return out, nil
}

// serviceKey finds the Admin API key: the flag or environment first, then
// the emulator's key file in the server's data directory.
func (l *load) serviceKey() (string, error) {
	if l.o.serviceKey != "" {
		return l.o.serviceKey, nil
	}
	if l.o.dataDir == "" {
		return "", errors.New("no service key: give -service-key, SUPABASE_SERVICE_ROLE_KEY, -data-dir or -tokens")
	}
	b, err := os.ReadFile(filepath.Join(l.o.dataDir, "auth_api_keys.json"))
	if err != nil {
		return "", fmt.Errorf("-data-dir: %w", err)
	}
	var k struct {
		Service string `json:"service_role_key"`
	}
	if err := json.Unmarshal(b, &k); err != nil || k.Service == "" {
		return "", errors.New("-data-dir: auth_api_keys.json holds no service_role_key")
	}
	return k.Service, nil
}

// anonKey reads the public (anon) key the console uses, which the password
// grant needs in its apikey header.
func (l *load) anonKey(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", l.o.urls[0]+"/api/v1/console/config", nil)
	if err != nil {
		return "", err
	}
	res, err := l.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("console config: %w", err)
	}
	defer res.Body.Close()
	var c struct {
		AnonKey string `json:"anon_key"`
	}
	if res.StatusCode != http.StatusOK {
		return "", fmt.Errorf("console config: HTTP %d", res.StatusCode)
	}
	if err := json.NewDecoder(res.Body).Decode(&c); err != nil {
		return "", fmt.Errorf("console config: %w", err)
	}
	return c.AnonKey, nil
}

// signUp creates n users with random passwords and signs each in, through
// the same Supabase client code the service uses.
func (l *load) signUp(ctx context.Context, n int) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, l.o.setupTimeout)
	defer cancel()
	service, err := l.serviceKey()
	if err != nil {
		return nil, err
	}
	anon, err := l.anonKey(ctx)
	if err != nil {
		return nil, err
	}
	c := supabase.NewAuthClient(supabase.AuthConfig{URL: l.o.urls[0], AnonKey: anon, ServiceRoleKey: service, HTTPClient: l.client})
	run := randomString(6)
	tokens := make([]string, n)
	var done sync.WaitGroup
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(l.o.signupConc)
	start := time.Now()
	for i := range n {
		done.Add(1)
		g.Go(func() error {
			defer done.Done()
			email := fmt.Sprintf("load-%s-%05d@gymbro.local", strings.ToLower(run), i)
			pw := randomString(18)
			if _, err := c.CreateUser(gctx, supabase.AdminUserParams{Email: email, Password: pw, EmailConfirm: true}); err != nil {
				return fmt.Errorf("create user %d: %w", i, err)
			}
			s, err := c.SignInWithPassword(gctx, email, pw)
			if err != nil {
				return fmt.Errorf("sign in user %d: %w", i, err)
			}
			tokens[i] = s.AccessToken
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	fmt.Fprintf(l.stderr, "signed up %d users in %s\n", n, time.Since(start).Round(time.Millisecond))
	return tokens, nil
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)[:n]
}
