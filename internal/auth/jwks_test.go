package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// wantFetches fails unless the Supabase endpoint has been asked want times.
func (f *fixture) wantFetches(t *testing.T, want int) {
	t.Helper()
	if got := f.supa.fetches(); got != want {
		t.Fatalf("JWKS fetched %d times, want %d", got, want)
	}
}

// settle waits until the Supabase endpoint has been asked n times in all and
// the last fetch is dealt with: a fetch of an expired set runs in the
// background.
func (f *fixture) settle(t *testing.T, n int) {
	t.Helper()
	f.settleAtLeast(t, n)
	f.wantFetches(t, n)
}

// settleAtLeast waits until the Supabase endpoint has been asked at least n
// times and no fetch is in flight.
func (f *fixture) settleAtLeast(t *testing.T, n int) {
	t.Helper()
	keys := f.v.issuers[f.supaIss].keys
	deadline := time.Now().Add(5 * time.Second)
	for f.supa.fetches() < n || keys.fetching.Load() {
		if time.Now().After(deadline) {
			t.Fatalf("JWKS fetched %d times, want at least %d", f.supa.fetches(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestJWKSFetchedOnceAndCached(t *testing.T) {
	f := newFixture(t)
	f.wantFetches(t, 0) // New fetches nothing
	for i := range 20 {
		mustVerify(t, f.v, f.sbES.sign(t, f.supabaseClaims(fmt.Sprint("u", i)), nil))
		mustVerify(t, f.v, f.sbRS.sign(t, f.supabaseClaims(fmt.Sprint("u", i)), nil))
	}
	f.wantFetches(t, 1)
}

func TestJWKSTTL(t *testing.T) {
	tests := []struct {
		name         string
		cacheControl string
		ttl          time.Duration // when the set is fetched again
	}{
		{"no Cache-Control: the TTL", "", DefaultJWKSTTL},
		{"Supabase's max-age=600 is shorter than the TTL", "public, max-age=600", 600 * time.Second},
		{"max-age longer than the TTL: the TTL", "max-age=86400", DefaultJWKSTTL},
		{"max-age among other directives", "no-transform, MAX-AGE=120, must-revalidate", 120 * time.Second},
		{"malformed max-age: the TTL", "max-age=soon", DefaultJWKSTTL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.supa.set(func(s *jwksServer) { s.cacheControl = tt.cacheControl })
			mustVerify(t, f.v, f.sbES.sign(t, f.supabaseClaims("a"), nil))
			f.clock.Advance(tt.ttl - time.Second)
			mustVerify(t, f.v, f.sbES.sign(t, f.supabaseClaims("b"), nil))
			f.wantFetches(t, 1)
			f.clock.Advance(time.Second)
			mustVerify(t, f.v, f.sbES.sign(t, f.supabaseClaims("c"), nil))
			f.settle(t, 2)
		})
	}
}

func TestJWKSMaxAgeParsing(t *testing.T) {
	tests := []struct {
		header string
		want   time.Duration
		ok     bool
	}{
		{"public, max-age=600", 600 * time.Second, true},
		{"max-age=0", 0, true},
		{`max-age="60"`, time.Minute, true},
		{"s-maxage=5", 0, false},
		{"max-age=-1", 0, false},
		{"max-age=99999999999999", 365 * 24 * time.Hour, true},
		{"", 0, false},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.header != "" {
			h.Set("Cache-Control", tt.header)
		}
		got, ok := maxAge(h)
		if got != tt.want || ok != tt.ok {
			t.Errorf("maxAge(%q) = %v, %v; want %v, %v", tt.header, got, ok, tt.want, tt.ok)
		}
	}
}

func TestKeyRotation(t *testing.T) {
	f := newFixture(t)
	mustVerify(t, f.v, f.sbES.sign(t, f.supabaseClaims("a"), nil))
	// The issuer rotates within a second of the first fetch, with no standby
	// window: the new key's first token is accepted, since the initial fetch
	// does not count against the unknown-kid cool-down.
	f.clock.Advance(time.Second)
	next := newECKey(t, "sb-es-2")
	f.supa.setKeys(f.sbES, next)
	mustVerify(t, f.v, next.sign(t, f.supabaseClaims("b"), nil))
	f.wantFetches(t, 2)
	mustVerify(t, f.v, next.sign(t, f.supabaseClaims("c"), nil))
	mustVerify(t, f.v, f.sbES.sign(t, f.supabaseClaims("d"), nil))
	f.wantFetches(t, 2)

	// A second rotation within the cool-down of that unknown-kid fetch waits
	// for the cool-down: that is what bounds a flood of forged kids.
	third := newECKey(t, "sb-es-3")
	f.supa.setKeys(f.sbES, next, third)
	token := third.sign(t, f.supabaseClaims("e"), nil)
	_, err := f.v.Verify(t.Context(), token)
	wantCode(t, err, CodeKeyNotFound)
	f.wantFetches(t, 2)
	f.clock.Advance(testCooldown)
	mustVerify(t, f.v, token)
	f.wantFetches(t, 3)

	// The old key is withdrawn: once the set is fetched again, its tokens
	// fail. Until then the expired set still vouches for them.
	f.supa.setKeys(next, third)
	f.clock.Advance(DefaultJWKSTTL)
	mustVerify(t, f.v, f.sbES.sign(t, f.supabaseClaims("f"), nil))
	f.settle(t, 4)
	_, err = f.v.Verify(t.Context(), f.sbES.sign(t, f.supabaseClaims("g"), nil))
	wantCode(t, err, CodeKeyNotFound)
	// That refused token was an unknown kid after a scheduled fetch, so it
	// asked once more; the next one within the cool-down does not.
	f.wantFetches(t, 5)
	_, err = f.v.Verify(t.Context(), f.sbES.sign(t, f.supabaseClaims("h"), nil))
	wantCode(t, err, CodeKeyNotFound)
	f.wantFetches(t, 5)
}

func TestUnknownKidFloodFetchesOncePerCooldown(t *testing.T) {
	f := newFixture(t)
	mustVerify(t, f.v, f.sbES.sign(t, f.supabaseClaims("a"), nil))
	f.wantFetches(t, 1)

	// The forged tokens are made first: signing is not what is measured.
	forged := make([]string, 1000)
	for i := range forged {
		forged[i] = f.sbES.sign(t, f.supabaseClaims("a"), map[string]any{"kid": fmt.Sprint("forged-", i)})
	}
	flood := func() {
		var wg sync.WaitGroup
		for w := range 20 {
			wg.Go(func() {
				for i := w; i < len(forged); i += 20 {
					_, err := f.v.Verify(context.Background(), forged[i])
					if gymbro.ErrorCode(err) != CodeKeyNotFound {
						t.Errorf("forged kid: %v, want key_not_found", err)
					}
				}
			})
		}
		wg.Wait()
	}

	// Right after the first fetch: the initial fetch does not count, so the
	// flood causes one refresh, and only one.
	flood()
	f.wantFetches(t, 2)
	flood()
	f.wantFetches(t, 2)
	f.clock.Advance(testCooldown - time.Second)
	flood()
	f.wantFetches(t, 2)
	f.clock.Advance(time.Second)
	flood()
	f.wantFetches(t, 3)
	flood()
	f.wantFetches(t, 3)
	// Firebase's set was never asked for.
	if n := f.fb.fetches(); n != 0 {
		t.Errorf("Firebase JWKS fetched %d times", n)
	}
}

func TestEndpointDownKeepsLastGoodSet(t *testing.T) {
	f := newFixture(t)
	mustVerify(t, f.v, f.sbES.sign(t, f.supabaseClaims("a"), nil))
	for name, breakIt := range map[string]func(s *jwksServer){
		"status 500": func(s *jwksServer) { s.status = http.StatusInternalServerError },
		"not JSON":   func(s *jwksServer) { s.raw = []byte("<html>gateway error</html>") },
		"empty set":  func(s *jwksServer) { s.raw = []byte(`{"keys":[]}`) },
		"no usable key": func(s *jwksServer) {
			s.raw = []byte(`{"keys":[{"kty":"EC","crv":"P-256","kid":"x","x":"AAAA","y":"AAAA"}]}`)
		},
	} {
		t.Run(name, func(t *testing.T) {
			f.supa.set(breakIt)
			before := f.supa.fetches()
			// Known kid, fresh set: no fetch at all.
			mustVerify(t, f.v, f.sbES.sign(t, f.supabaseClaims("b"), nil))
			// TTL passed, the endpoint fails: the last good set still works.
			f.clock.Advance(DefaultJWKSTTL)
			mustVerify(t, f.v, f.sbES.sign(t, f.supabaseClaims("c"), nil))
			f.settle(t, before+1)
			mustVerify(t, f.v, f.sbRS.sign(t, f.supabaseClaims("c"), nil))
			f.wantFetches(t, before+1)
			// An unknown kid is still key_not_found, not keys_unavailable:
			// there are keys, just not that one.
			f.clock.Advance(testCooldown)
			_, err := f.v.Verify(t.Context(), f.sbES.sign(t, f.supabaseClaims("d"), map[string]any{"kid": "new"}))
			wantCode(t, err, CodeKeyNotFound)
			if got := f.supa.fetches(); got != before+2 {
				t.Fatalf("fetched %d times, want 2", got-before)
			}
			// Mended, the endpoint serves a fresh set to the next subtest.
			f.supa.set(func(s *jwksServer) { s.status, s.raw = http.StatusOK, nil })
			f.clock.Advance(testCooldown)
			mustVerify(t, f.v, f.sbES.sign(t, f.supabaseClaims("e"), nil))
			f.settle(t, before+3)
		})
	}
	if !strings.Contains(f.logs.String(), "JWKS fetch failed") {
		t.Error("failed fetches were not logged")
	}
}

func TestExpiredSetIsFetchedInTheBackground(t *testing.T) {
	f := newFixture(t)
	mustVerify(t, f.v, f.sbES.sign(t, f.supabaseClaims("a"), nil))
	next := newECKey(t, "next")
	f.supa.setKeys(f.sbES, next)
	f.supa.set(func(s *jwksServer) { s.delay = time.Second })
	f.clock.Advance(DefaultJWKSTTL)
	start := time.Now()
	for i := range 10 {
		mustVerify(t, f.v, f.sbES.sign(t, f.supabaseClaims(fmt.Sprint("b", i)), nil))
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("tokens of a known kid waited %v on a slow endpoint", d)
	}
	// An unknown kid waits for the fetch under way, rather than fail by the
	// old set.
	mustVerify(t, f.v, next.sign(t, f.supabaseClaims("c"), nil))
	f.wantFetches(t, 2)
}

func TestKeysUnavailableWhenNeverFetched(t *testing.T) {
	f := newFixture(t)
	f.supa.set(func(s *jwksServer) { s.status = http.StatusServiceUnavailable })
	token := f.sbES.sign(t, f.supabaseClaims("a"), nil)

	p, err := f.v.Verify(t.Context(), token)
	if p != nil {
		t.Fatal("got a principal")
	}
	wantError(t, err, gymbro.KindUnavailable, CodeKeysUnavailable, token)
	if ra := err.(*gymbro.Error).RetryAfter; ra <= 0 {
		t.Errorf("RetryAfter = %v, want > 0", ra)
	}
	if err := f.v.Check(t.Context()); gymbro.ErrorCode(err) != CodeKeysUnavailable {
		t.Errorf("Check = %v, want keys_unavailable", err)
	}
	// A token that fails on its own claims is told so, not asked to retry.
	_, err = f.v.Verify(t.Context(), f.sbES.sign(t, with(f.supabaseClaims("a"), "exp", t0.Add(-time.Hour).Unix()), nil))
	wantCode(t, err, CodeTokenExpired)
	// HS256 needs no keys.
	mustVerify(t, f.v, hs256(t, hmacSecret, f.supabaseClaims("a"), nil))
	// Within the cool-down nothing more is asked of the endpoint.
	f.wantFetches(t, 1)

	f.supa.set(func(s *jwksServer) { s.status = http.StatusOK })
	_, err = f.v.Verify(t.Context(), token)
	wantCode(t, err, CodeKeysUnavailable)
	f.wantFetches(t, 1)
	f.clock.Advance(testCooldown)
	mustVerify(t, f.v, token)
	f.wantFetches(t, 2)
}

func TestCheck(t *testing.T) {
	f := newFixture(t)
	if err := f.v.Check(t.Context()); err != nil {
		t.Fatalf("Check: %v", err)
	}
	f.wantFetches(t, 1)
	if n := f.fb.fetches(); n != 1 {
		t.Errorf("Firebase JWKS fetched %d times by Check, want 1", n)
	}
	// Once every issuer has a set, Check fetches nothing more, even when
	// the endpoints fail: the last good sets are usable.
	f.supa.set(func(s *jwksServer) { s.status = http.StatusBadGateway })
	f.clock.Advance(time.Hour)
	if err := f.v.Check(t.Context()); err != nil {
		t.Fatalf("Check: %v", err)
	}
	f.wantFetches(t, 1)

	// An HMAC-only issuer has nothing to fetch.
	v, err := New(Config{Issuers: []Issuer{{Provider: gymbro.ProviderOIDC, Issuer: "https://hs.example", Audiences: []string{"x"},
		Algorithms: []string{"HS256"}, HMACSecret: hmacSecret}}})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if err := v.Check(t.Context()); err != nil {
		t.Errorf("Check of an HMAC-only verifier: %v", err)
	}
}

func TestKeyFiltering(t *testing.T) {
	f := newFixture(t)
	enc := newECKey(t, "enc")
	enc.jwk["use"] = "enc"
	ops := newECKey(t, "ops")
	ops.jwk["key_ops"] = []string{"encrypt"}
	noOps := newECKey(t, "no-ops")
	delete(noOps.jwk, "key_ops")
	delete(noOps.jwk, "use")
	delete(noOps.jwk, "alg")
	weakPriv, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	weak := rsaKeyFrom(weakPriv, "weak")
	wrongAlg := newECKey(t, "wrong-alg")
	wrongAlg.jwk["alg"] = "RS256"
	withD := newECKey(t, "with-d")
	withD.jwk["d"] = b64([]byte("not really a private key, and never read"))
	f.supa.setJWKs(f.sbES.jwk, enc.jwk, ops.jwk, noOps.jwk, wrongAlg.jwk, withD.jwk,
		map[string]any{"kty": "oct", "kid": "oct", "k": b64(hmacSecret)},
		weak.jwk,
		map[string]any{"kty": "EC", "crv": "P-256", "x": enc.jwk["x"], "y": enc.jwk["y"]}, // no kid
		map[string]any{"kty": "EC", "crv": "P-256", "kid": "dup", "x": enc.jwk["x"], "y": enc.jwk["y"]},
		map[string]any{"kty": "EC", "crv": "P-256", "kid": "dup", "x": ops.jwk["x"], "y": ops.jwk["y"]},
	)
	claims := f.supabaseClaims("u")
	for _, k := range []*testKey{enc, ops, wrongAlg, weak} {
		_, err := f.v.Verify(t.Context(), k.sign(t, claims, nil))
		if gymbro.ErrorCode(err) != CodeKeyNotFound {
			t.Errorf("kid %s: %v, want key_not_found", k.kid, err)
		}
	}
	_, err = f.v.Verify(t.Context(), f.sbES.sign(t, claims, map[string]any{"kid": "oct"}))
	wantCode(t, err, CodeKeyNotFound)
	mustVerify(t, f.v, f.sbES.sign(t, claims, nil))
	mustVerify(t, f.v, noOps.sign(t, claims, nil))
	mustVerify(t, f.v, withD.sign(t, claims, nil))
	_, err = f.v.Verify(t.Context(), ops.sign(t, claims, map[string]any{"kid": "dup"}))
	wantCode(t, err, CodeSignatureInvalid) // the first key under a duplicated kid is the one kept
	if !strings.Contains(f.logs.String(), "JWKS keys left out") {
		t.Error("left-out keys were not logged")
	}
}

func TestJWKSResponseLimits(t *testing.T) {
	t.Run("size", func(t *testing.T) {
		f := newFixture(t, func(c *Config) { c.MaxJWKSBytes = 512 })
		f.supa.set(func(s *jwksServer) { s.raw = []byte(`{"keys":[],"pad":"` + strings.Repeat("x", 600) + `"}`) })
		_, err := f.v.Verify(t.Context(), f.sbES.sign(t, f.supabaseClaims("u"), nil))
		wantCode(t, err, CodeKeysUnavailable)
		if !strings.Contains(f.logs.String(), "larger than 512 bytes") {
			t.Errorf("the size limit is not what failed:\n%s", f.logs)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		f := newFixture(t, func(c *Config) { c.FetchTimeout = 50 * time.Millisecond })
		f.supa.set(func(s *jwksServer) { s.delay = 10 * time.Second })
		start := time.Now()
		_, err := f.v.Verify(t.Context(), f.sbES.sign(t, f.supabaseClaims("u"), nil))
		wantCode(t, err, CodeKeysUnavailable)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Verify took %v with a 50ms fetch timeout", d)
		}
	})
	t.Run("caller gives up first", func(t *testing.T) {
		f := newFixture(t)
		f.supa.set(func(s *jwksServer) { s.delay = 300 * time.Millisecond })
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		defer cancel()
		_, err := f.v.Verify(ctx, f.sbES.sign(t, f.supabaseClaims("u"), nil))
		wantCode(t, err, CodeKeysUnavailable)
		// The fetch went on without the caller and its keys serve the next one.
		f.settle(t, 1)
		mustVerify(t, f.v, f.sbES.sign(t, f.supabaseClaims("u"), nil))
		f.wantFetches(t, 1)
	})
}

func TestConcurrentFirstUseFetchesOnce(t *testing.T) {
	f := newFixture(t)
	f.supa.set(func(s *jwksServer) { s.delay = 100 * time.Millisecond })
	tokens := make([]string, 50)
	for i := range tokens {
		tokens[i] = f.sbES.sign(t, f.supabaseClaims(fmt.Sprint("u", i)), nil)
	}
	var wg sync.WaitGroup
	for _, tok := range tokens {
		wg.Go(func() {
			if _, err := f.v.Verify(context.Background(), tok); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
	wg.Wait()
	f.wantFetches(t, 1)
}

func TestClose(t *testing.T) {
	f := newFixture(t)
	f.v.Close()
	_, err := f.v.Verify(t.Context(), f.sbES.sign(t, f.supabaseClaims("u"), nil))
	wantCode(t, err, CodeKeysUnavailable)
	f.v.Close() // twice is fine
}

// TestRotationUnderLoad verifies from 200 goroutines while the issuer adds a
// key and then withdraws the old one. Run it with -race.
func TestRotationUnderLoad(t *testing.T) {
	f := newFixture(t)
	mustVerify(t, f.v, f.sbES.sign(t, f.supabaseClaims("warm"), nil))
	next := newECKey(t, "sb-es-next")
	const workers, perWorker = 200, 4
	oldTokens := make([]string, workers*perWorker)
	newTokens := make([]string, workers*perWorker)
	for i := range oldTokens {
		oldTokens[i] = f.sbES.sign(t, f.supabaseClaims(fmt.Sprint("old", i)), nil)
		newTokens[i] = next.sign(t, f.supabaseClaims(fmt.Sprint("new", i)), nil)
	}
	run := func(check func(old bool, err error)) {
		start := make(chan struct{})
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				<-start
				for i := w * perWorker; i < (w+1)*perWorker; i++ {
					_, err := f.v.Verify(context.Background(), newTokens[i])
					check(false, err)
					_, err = f.v.Verify(context.Background(), oldTokens[i])
					check(true, err)
					_, err = f.v.Verify(context.Background(), oldTokens[0]) // a repeated token: the cache
					check(true, err)
				}
			})
		}
		close(start)
		wg.Wait()
	}

	// The issuer publishes the next key and starts signing with it.
	f.supa.setKeys(f.sbES, next)
	f.clock.Advance(testCooldown)
	run(func(old bool, err error) {
		if err != nil {
			t.Errorf("during the rotation (old key %v): %v", old, err)
		}
	})
	f.wantFetches(t, 2)

	// The issuer withdraws the old key. While the expired set is fetched
	// again in the background, it still vouches for the old key.
	f.supa.setKeys(next)
	f.clock.Advance(DefaultJWKSTTL)
	run(func(old bool, err error) {
		if err != nil && (!old || gymbro.ErrorCode(err) != CodeKeyNotFound) {
			t.Errorf("during the withdrawal (old key %v): %v", old, err)
		}
	})
	// The scheduled fetch, and perhaps already the one unknown-kid refresh
	// the withdrawn kid may cause per cool-down (see below).
	f.settleAtLeast(t, 3)
	run(func(old bool, err error) {
		switch {
		case old && gymbro.ErrorCode(err) != CodeKeyNotFound:
			t.Errorf("old key after its withdrawal: %v, want key_not_found", err)
		case !old && err != nil:
			t.Errorf("new key: %v", err)
		}
	})
	// The withdrawn kid is unknown now: 800 tokens of it caused one refresh.
	f.wantFetches(t, 4)
}
