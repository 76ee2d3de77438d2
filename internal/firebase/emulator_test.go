package firebase_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gymbro/gymbro-api/internal/auth"
	"github.com/gymbro/gymbro-api/internal/firebase"
	"github.com/gymbro/gymbro-api/internal/firebase/firebasetest"
	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/sessioncheck"
	"github.com/gymbro/gymbro-api/internal/testenv"
	"github.com/gymbro/gymbro-api/internal/ttlcache"
)

// These tests drive the real Firebase Auth emulator: users sign up with
// the official JS client, and the service looks them up as it does in
// development with FIREBASE_AUTH_EMULATOR_HOST.

const password = "squat-123-secret"

// noKeepAlive is an HTTP client whose connections end with each call, so
// none outlives the emulator.
func noKeepAlive() *http.Client {
	return &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
}

func emulatorClient(t *testing.T, emu *firebasetest.Emulator) *firebase.Client {
	t.Helper()
	c, err := firebase.NewClient(firebase.Config{ProjectID: firebasetest.ProjectID, EmulatorHost: emu.Host, HTTPClient: noKeepAlive()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// principal is what the verifier makes of s's token: the uid, sub, email
// and auth_time of its claims.
func principal(t *testing.T, s firebasetest.Session) *gymbro.Principal {
	t.Helper()
	parts := strings.Split(s.IDToken, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Sub      string `json:"sub"`
		Email    string `json:"email"`
		AuthTime int64  `json:"auth_time"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil || claims.Sub != s.UID || claims.AuthTime == 0 {
		t.Fatalf("emulator token claims %s: %v", payload, err)
	}
	return &gymbro.Principal{UID: "firebase:" + claims.Sub, ProviderUID: claims.Sub, Email: claims.Email,
		Provider: gymbro.ProviderFirebase, Issuer: firebasetest.Issuer, AuthTime: time.Unix(claims.AuthTime, 0)}
}

func newUser(name, displayName string) firebasetest.User {
	return firebasetest.User{Email: testenv.UniqueName(name) + "@example.com", Password: password, DisplayName: displayName}
}

// TestEmulatorUserDetails: /me?details=true's answer for a Firebase user:
// email, display name, sign-in methods and times, and nothing of the
// password (the emulator's passwordHash holds it in clear).
func TestEmulatorUserDetails(t *testing.T) {
	emu := emulator.Get(t)
	u := newUser("ada", "Ada Lovelace")
	s := emu.SignUp(t, u)[0]
	c := emulatorClient(t, emu)
	ip := firebase.NewIdentityProvider(c, ttlcache.Options{})
	p := principal(t, s)

	d, err := ip.UserDetails(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	if d.UID != p.UID || d.Email != u.Email || d.DisplayName != "Ada Lovelace" || d.Provider != gymbro.ProviderFirebase ||
		!slices.Equal(d.ProviderIDs, []string{"password"}) || d.EmailVerified || d.Disabled {
		t.Errorf("details = %+v", d)
	}
	if since := time.Since(d.CreatedAt); since < 0 || since > 10*time.Minute || d.LastSignInAt.Before(d.CreatedAt) {
		t.Errorf("created %v, last sign-in %v", d.CreatedAt, d.LastSignInAt)
	}
	raw, err := c.Lookup(t.Context(), s.UID)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []any{d, raw} {
		b, _ := json.Marshal(v)
		if strings.Contains(string(b), password) || strings.Contains(string(b), "fakeHash") || strings.Contains(string(b), "fakeSalt") {
			t.Errorf("%T carries the password: %s", v, b)
		}
	}
	_, err = ip.UserDetails(t.Context(), &gymbro.Principal{UID: "firebase:nobody", ProviderUID: "nobody"})
	if gymbro.ErrorKind(err) != gymbro.KindNotFound || gymbro.ErrorCode(err) != firebase.CodeUserNotFound {
		t.Errorf("unknown user: %v", err)
	}
}

// TestEmulatorSessionChecks: a disabled, a revoked and a deleted user are
// refused once the TTL of the last confirmation has passed; a user left
// alone is not.
func TestEmulatorSessionChecks(t *testing.T) {
	emu := emulator.Get(t)
	sessions := emu.SignUp(t, newUser("kept", ""), newUser("disabled", ""), newUser("revoked", ""), newUser("deleted", ""))
	clock := testenv.NewClock(time.Now())
	var logs testenv.LogBuffer
	sc := firebase.NewSessionChecker(firebase.SessionCheckConfig{Client: emulatorClient(t, emu), Issuer: firebasetest.Issuer,
		Cache: sessioncheck.Config{TTL: 30 * time.Second, Now: clock.Now, Logger: slog.New(slog.NewTextHandler(&logs, nil))}})
	var ps []*gymbro.Principal
	for _, s := range sessions {
		p := principal(t, s)
		if err := sc.CheckSession(t.Context(), p, s.IDToken); err != nil {
			t.Fatalf("%s, just signed up: %v", p.Email, err)
		}
		ps = append(ps, p)
	}
	kept, disabled, revoked, deleted := ps[0], ps[1], ps[2], ps[3]
	emu.Disable(t, disabled.ProviderUID)
	emu.RevokeTokens(t, revoked.ProviderUID, revoked.AuthTime.Add(time.Second))
	emu.Delete(t, deleted.ProviderUID)
	for _, p := range ps {
		if err := sc.CheckSession(t.Context(), p, ""); err != nil {
			t.Errorf("%s within the TTL (the cached confirmation stands): %v", p.Email, err)
		}
	}
	clock.Advance(30 * time.Second)
	if err := sc.CheckSession(t.Context(), kept, ""); err != nil {
		t.Errorf("a user left alone: %v", err)
	}
	for _, p := range []*gymbro.Principal{disabled, revoked, deleted} {
		err := sc.CheckSession(t.Context(), p, "")
		if gymbro.ErrorCode(err) != gymbro.CodeSessionRevoked || gymbro.ErrorKind(err) != gymbro.KindUnauthenticated {
			t.Errorf("%s: %v, want 401 session_revoked", p.Email, err)
		}
	}
	if strings.Contains(logs.String(), password) {
		t.Errorf("the logs show a password: %s", logs.String())
	}
}

// TestEmulatorTokens: the verifier accepts the emulator's real tokens
// with an emulator issuer, and readiness asks the emulator; the same token
// is refused by the production Firebase issuer, which fetches nothing for
// it.
func TestEmulatorTokens(t *testing.T) {
	emu := emulator.Get(t)
	u := newUser("tok", "Tok En")
	s := emu.SignUp(t, u)[0]

	v, err := auth.New(auth.Config{Issuers: []auth.Issuer{auth.FirebaseEmulatorIssuer(firebasetest.ProjectID, emu.Host)}, HTTPClient: noKeepAlive()})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	p, err := v.Verify(t.Context(), s.IDToken)
	if err != nil {
		t.Fatalf("emulator mode: %v", err)
	}
	if p.Provider != gymbro.ProviderFirebase || p.Issuer != firebasetest.Issuer || p.ProviderUID != s.UID || p.Email != u.Email {
		t.Errorf("principal %+v", p)
	}
	if err := v.Check(t.Context()); err != nil {
		t.Errorf("readiness with the emulator up: %v", err)
	}

	var fetches atomic.Int64
	google := &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
		fetches.Add(1)
		return nil, errors.New("no network in this test")
	})}
	prod, err := auth.New(auth.Config{Issuers: []auth.Issuer{auth.FirebaseIssuer(firebasetest.ProjectID, "")}, HTTPClient: google,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	_, err = prod.Verify(t.Context(), s.IDToken)
	if gymbro.ErrorCode(err) != auth.CodeAlgorithmNotAllowed || gymbro.ErrorKind(err) != gymbro.KindUnauthenticated {
		t.Errorf("without the emulator: %v, want 401 algorithm_not_allowed", err)
	}
	if fetches.Load() != 0 {
		t.Errorf("refusing an unsigned token fetched Google's keys %d times", fetches.Load())
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
