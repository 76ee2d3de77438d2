package testusers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/supabase"
	"github.com/gymbro/gymbro-api/internal/supabase/emulator"
	"github.com/gymbro/gymbro-api/internal/testusers"
)

func TestCreateAllocatesSequentialNames(t *testing.T) {
	e, s := newDefault(t)

	first := create(t, s, "gymbro-test")
	if first.Username != "gymbro-test-01" || first.Email != "gymbro-test-01@test.gymbro.local" || first.Reused {
		t.Errorf("first = %s <%s> reused=%v, want gymbro-test-01 <gymbro-test-01@test.gymbro.local> new", first.Username, first.Email, first.Reused)
	}
	if first.TokenType != "bearer" || first.RefreshToken == "" || first.ExpiresAt <= e.clock.Now().Unix() {
		t.Errorf("session fields: type %q refresh %t expires %d", first.TokenType, first.RefreshToken != "", first.ExpiresAt)
	}
	if len(first.Password) < 20 {
		t.Errorf("password has %d characters, want 20+", len(first.Password))
	}

	// The token is real: our verifier accepts it and it names the user.
	p, err := e.verifier.Verify(t.Context(), first.AccessToken)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if p.UID != first.UserID || !strings.EqualFold(p.Email, first.Email) {
		t.Errorf("token sub/email = %s/%s, want %s/%s", p.UID, p.Email, first.UserID, first.Email)
	}
	if exp := p.ExpiresAt.Unix(); exp != first.ExpiresAt {
		t.Errorf("expires_at = %d, token exp = %d", first.ExpiresAt, exp)
	}

	// The user is stored as the console expects: confirmed, tagged.
	u, err := e.admin.GetUser(t.Context(), first.UserID)
	if err != nil {
		t.Fatal(err)
	}
	if u.UserMetadata["username"] != "gymbro-test-01" || u.UserMetadata["test_user"] != true || u.EmailConfirmedAt == nil {
		t.Errorf("stored user: metadata %v confirmed %v", u.UserMetadata, u.EmailConfirmedAt)
	}
	// The password works on its own.
	if _, err := e.admin.SignInWithPassword(t.Context(), first.Email, first.Password); err != nil {
		t.Errorf("sign in with the returned password: %v", err)
	}

	second := create(t, s, "gymbro-test")
	if second.Username != "gymbro-test-02" || second.UserID == first.UserID || second.Password == first.Password {
		t.Errorf("second = %s %s, want a new gymbro-test-02", second.Username, second.UserID)
	}
	// An empty prefix means the first allowed one.
	if third := create(t, s, ""); third.Username != "gymbro-test-03" {
		t.Errorf("empty prefix gave %s, want gymbro-test-03", third.Username)
	}
}

func TestCreateFillsGaps(t *testing.T) {
	e, s := newDefault(t)
	var ids []string
	for range 3 {
		ids = append(ids, create(t, s, "gymbro-test").UserID)
	}
	if err := e.admin.DeleteUser(t.Context(), ids[0]); err != nil {
		t.Fatal(err)
	}
	if got := create(t, s, "gymbro-test"); got.Username != "gymbro-test-01" || got.Reused || got.UserID == ids[0] {
		t.Errorf("after deleting 01 got %s reused=%v, want a new gymbro-test-01", got.Username, got.Reused)
	}
	wantNext(t, s, "gymbro-test", "gymbro-test-04")
}

func TestCreateNumbersPastNinetyNine(t *testing.T) {
	_, s := newDefault(t)
	if got := create(t, s, "gymbro-test-99"); got.Username != "gymbro-test-99" {
		t.Fatalf("got %s", got.Username)
	}
	if got := create(t, s, "gymbro-test-100"); got.Username != "gymbro-test-100" || got.Email != "gymbro-test-100@test.gymbro.local" {
		t.Errorf("got %s <%s>", got.Username, got.Email)
	}
}

func TestCreateReusesFullName(t *testing.T) {
	e, s := newDefault(t)
	old := create(t, s, "gymbro-test")

	again := create(t, s, "GYMBRO-TEST-01") // names are case-insensitive, like the emails
	if again.UserID != old.UserID || !again.Reused || again.Username != "gymbro-test-01" || again.Email != old.Email {
		t.Fatalf("reuse = %s %s reused=%v, want %s reused", again.Username, again.UserID, again.Reused, old.UserID)
	}
	if again.Password == old.Password {
		t.Error("reuse kept the old password")
	}
	if _, err := e.admin.SignInWithPassword(t.Context(), old.Email, again.Password); err != nil {
		t.Errorf("new password: %v", err)
	}
	_, err := e.admin.SignInWithPassword(t.Context(), old.Email, old.Password)
	var ae *supabase.APIError
	if !errors.As(err, &ae) || ae.Code != supabase.AuthCodeInvalidCredentials {
		t.Errorf("old password: err = %v, want invalid_credentials", err)
	}
	// Setting the password ended the old session.
	if _, err := e.admin.RefreshSession(t.Context(), old.RefreshToken); err == nil {
		t.Error("the old refresh token still works after reuse")
	}
	if p, err := e.verifier.Verify(t.Context(), again.AccessToken); err != nil || p.UID != old.UserID {
		t.Errorf("reused token: %v, %v", p, err)
	}
	// Reuse does not allocate: the next prefix call is 02.
	wantNext(t, s, "gymbro-test", "gymbro-test-02")
}

func TestCreateFullNameThatDoesNotExist(t *testing.T) {
	_, s := newDefault(t)
	got := create(t, s, "gymbro-test-07")
	if got.Username != "gymbro-test-07" || got.Reused {
		t.Fatalf("got %s reused=%v, want a new gymbro-test-07", got.Username, got.Reused)
	}
	wantNext(t, s, "gymbro-test", "gymbro-test-01")
}

func TestCreateNeverResetsAForeignUser(t *testing.T) {
	e, s := newDefault(t)
	// A real person whose address happens to look like a test name.
	foreign, err := e.admin.CreateUser(t.Context(), supabase.AdminUserParams{Email: "gymbro-test-01@example.com", Password: "their-own-password", EmailConfirm: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Create(t.Context(), caller, gymbro.TestUserRequest{UsernamePrefix: "gymbro-test-01"})
	ge := wantErr(t, err, gymbro.KindConflict, testusers.CodeUsernameTaken)
	if !strings.Contains(ge.Message, "gymbro-test-01") {
		t.Errorf("message = %q", ge.Message)
	}
	if _, err := e.admin.SignInWithPassword(t.Context(), foreign.Email, "their-own-password"); err != nil {
		t.Errorf("the foreign user's password changed: %v", err)
	}
	// Allocation steps around the number it holds.
	wantNext(t, s, "gymbro-test", "gymbro-test-02")
}

func TestCreateConcurrentCallsGetDistinctNames(t *testing.T) {
	_, s := newDefault(t)
	const n = 5
	results := make([]*gymbro.TestUser, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			results[i], errs[i] = s.Create(t.Context(), caller, gymbro.TestUserRequest{UsernamePrefix: "gymbro-test"})
		})
	}
	wg.Wait()
	var names []string
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("call %d: %v", i, errs[i])
		}
		names = append(names, results[i].Username)
	}
	slices.Sort(names)
	want := []string{"gymbro-test-01", "gymbro-test-02", "gymbro-test-03", "gymbro-test-04", "gymbro-test-05"}
	if !slices.Equal(names, want) {
		t.Errorf("names = %v, want %v", names, want)
	}
}

// TestCreateAcrossInstances runs two services (two server processes) on one
// Auth server: only Supabase's unique email keeps them apart.
func TestCreateAcrossInstances(t *testing.T) {
	e := newEnv(t, nil)
	a, b := e.newService(t, nil), e.newService(t, nil)
	const perInstance = 3
	var (
		mu    sync.Mutex
		names []string
		wg    sync.WaitGroup
	)
	for _, s := range []*testusers.Service{a, b, a, b, a, b}[:2*perInstance] {
		wg.Go(func() {
			u, err := s.Create(t.Context(), caller, gymbro.TestUserRequest{UsernamePrefix: "gymbro-test"})
			if err != nil {
				t.Errorf("Create: %v", err)
				return
			}
			mu.Lock()
			names = append(names, u.Username)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(names)
	if len(slices.Compact(slices.Clone(names))) != 2*perInstance {
		t.Errorf("names = %v, want %d distinct", names, 2*perInstance)
	}
}

// raceOnce plays another instance that creates the very user we are about
// to create, between our list and our create, once.
func raceOnce(t *testing.T) func(em *emulator.Emulator, next http.Handler) http.Handler {
	var done atomic.Bool
	return func(em *emulator.Emulator, next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && r.URL.Path == "/auth/v1/admin/users" && done.CompareAndSwap(false, true) {
				body, _ := io.ReadAll(r.Body)
				var p struct {
					Email        string         `json:"email"`
					UserMetadata map[string]any `json:"user_metadata"`
				}
				if err := json.Unmarshal(body, &p); err != nil {
					t.Errorf("create body: %v", err)
				}
				if _, _, err := em.EnsureUser(r.Context(), p.Email, "other-instance-password", p.UserMetadata); err != nil {
					t.Errorf("other instance: %v", err)
				}
				r.Body = io.NopCloser(bytes.NewReader(body))
			}
			next.ServeHTTP(w, r)
		})
	}
}

func TestCreateLosingARaceTakesTheNextNumber(t *testing.T) {
	e := newEnv(t, raceOnce(t))
	s := e.newService(t, nil)
	got := create(t, s, "gymbro-test")
	if got.Username != "gymbro-test-02" || got.Reused {
		t.Errorf("got %s reused=%v, want a new gymbro-test-02 (01 went to the other instance)", got.Username, got.Reused)
	}
}

func TestCreateLosingARaceForAFullNameReusesIt(t *testing.T) {
	e := newEnv(t, raceOnce(t))
	s := e.newService(t, nil)
	got := create(t, s, "gymbro-test-05")
	if got.Username != "gymbro-test-05" || !got.Reused {
		t.Errorf("got %s reused=%v, want gymbro-test-05 reused", got.Username, got.Reused)
	}
	if _, err := e.verifier.Verify(t.Context(), got.AccessToken); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

func TestCreateCustomPrefixes(t *testing.T) {
	e := newEnv(t, nil)
	s := e.newService(t, func(o *testusers.Options) {
		o.Prefixes = []string{" QA-Bot ", "gymbro-test"}
		o.EmailDomain = "QA.Example.org"
	})
	if got := create(t, s, "qa-bot"); got.Username != "qa-bot-01" || got.Email != "qa-bot-01@qa.example.org" {
		t.Errorf("got %s <%s>", got.Username, got.Email)
	}
	wantNext(t, s, "gymbro-test", "gymbro-test-01")
	_, err := s.Create(t.Context(), caller, gymbro.TestUserRequest{UsernamePrefix: "other"})
	ge := wantErr(t, err, gymbro.KindUnprocessable, testusers.CodePrefixNotAllowed)
	if !containsAll(ge.Message, "qa-bot", "gymbro-test") {
		t.Errorf("message %q does not list the allowed prefixes", ge.Message)
	}
}

func TestCreatePasswordsAreRandom(t *testing.T) {
	_, s := newDefault(t)
	seen := map[string]bool{}
	for i := range 3 {
		u := create(t, s, fmt.Sprintf("gymbro-test-%02d", i+1))
		if seen[u.Password] {
			t.Fatalf("password repeated")
		}
		seen[u.Password] = true
		for _, class := range []string{"abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789"} {
			if !strings.ContainsAny(u.Password, class) {
				t.Errorf("password lacks one of %q", class)
			}
		}
	}
}

func TestCreateBrokenRandomness(t *testing.T) {
	e := newEnv(t, nil)
	s := e.newService(t, func(o *testusers.Options) { o.Rand = errReader{} })
	_, err := s.Create(t.Context(), caller, gymbro.TestUserRequest{UsernamePrefix: "gymbro-test"})
	wantErr(t, err, gymbro.KindInternal, gymbro.CodeInternal)
	users, _, err := e.admin.ListUsers(t.Context(), 1, 10)
	if err != nil || len(users) != 0 {
		t.Errorf("users = %d (%v), want none created", len(users), err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("entropy gone") }

// TestTestUsersBelongToTheirCreator: another developer cannot take over a
// test user by name; its creator and operators can; a test user cannot make
// test users.
func TestTestUsersBelongToTheirCreator(t *testing.T) {
	e := newEnv(t, nil)
	s := e.newService(t, func(o *testusers.Options) { o.Admins = []string{"ops@gymbro.cloud"} })
	mine := create(t, s, "gymbro-test")

	other := &gymbro.Principal{UID: "3f0c1c2e-0000-4000-8000-000000000002", Email: "other@example.com", Provider: gymbro.ProviderSupabase}
	_, err := s.Create(t.Context(), other, gymbro.TestUserRequest{UsernamePrefix: mine.Username})
	wantErr(t, err, gymbro.KindForbidden, testusers.CodeNotYours)
	// The other developer still gets a fresh one of their own.
	if got, err := s.Create(t.Context(), other, gymbro.TestUserRequest{UsernamePrefix: "gymbro-test"}); err != nil || got.Username == mine.Username {
		t.Fatalf("other's own test user: %+v, %v", got, err)
	}
	if again := create(t, s, mine.Username); !again.Reused || again.UserID != mine.UserID {
		t.Fatalf("the creator's reuse: %+v", again)
	}
	op := e.supabaseUser(t, "Ops@GymBro.Cloud", true)
	if again, err := s.Create(t.Context(), op, gymbro.TestUserRequest{UsernamePrefix: mine.Username}); err != nil || !again.Reused {
		t.Fatalf("an operator's reuse: %+v, %v", again, err)
	}

	// The test user's own token cannot make more test users.
	p, err := e.verifier.Verify(t.Context(), mine.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Create(t.Context(), p, gymbro.TestUserRequest{UsernamePrefix: "gymbro-test"})
	wantErr(t, err, gymbro.KindForbidden, testusers.CodeTestUserCaller)
}

// failOnce is a verifier whose first call fails, as during a signing-key
// rotation.
type failOnce struct {
	gymbro.Verifier
	failed atomic.Bool
}

func (f *failOnce) Verify(ctx context.Context, token string) (*gymbro.Principal, error) {
	if f.failed.CompareAndSwap(false, true) {
		return nil, gymbro.Errorf(gymbro.KindUnauthenticated, "key_not_found", "The signing key is not known.")
	}
	return f.Verifier.Verify(ctx, token)
}

// TestNoOrphanWhenTheTokenCheckFails: a user created by a call that then
// fails is removed again, so the next call makes the same name and no user
// is left that nobody can sign in as.
func TestNoOrphanWhenTheTokenCheckFails(t *testing.T) {
	e := newEnv(t, nil)
	s := e.newService(t, func(o *testusers.Options) { o.Verifier = &failOnce{Verifier: e.verifier} })
	_, err := s.Create(t.Context(), caller, gymbro.TestUserRequest{UsernamePrefix: "gymbro-test"})
	wantErr(t, err, gymbro.KindUpstream, testusers.CodeTokenUnverifiable)
	users, _, err := e.admin.ListUsers(t.Context(), 1, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 0 {
		t.Fatalf("the failed call left %d users behind", len(users))
	}
	if got := create(t, s, "gymbro-test"); got.Username != "gymbro-test-01" || got.Reused {
		t.Fatalf("next call: %s reused=%v, want a new gymbro-test-01", got.Username, got.Reused)
	}
}
