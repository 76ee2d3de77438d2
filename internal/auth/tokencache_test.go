package auth

import (
	"reflect"
	"testing"
	"time"
)

// fromCache reports whether two principals came from one verification: a
// cache hit hands out a copy of the cached principal, sharing its Claims.
func fromCache(a, b map[string]any) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

func TestCacheHit(t *testing.T) {
	f := newFixture(t)
	for name, token := range map[string]string{
		"ES256": f.sbES.sign(t, f.supabaseClaims("u"), nil),
		"RS256": f.fbRS.sign(t, f.firebaseClaims("u"), nil),
		"HS256": hs256(t, hmacSecret, f.supabaseClaims("u"), nil),
	} {
		t.Run(name, func(t *testing.T) {
			p1 := mustVerify(t, f.v, token)
			p2 := mustVerify(t, f.v, token)
			if !fromCache(p1.Claims, p2.Claims) {
				t.Fatal("the second Verify did not come from the cache")
			}
			if p1 == p2 {
				t.Fatal("two callers got the same *Principal")
			}
			want := p1.UID
			p1.UID = "changed by a caller"
			if p3 := mustVerify(t, f.v, token); p3.UID != want {
				t.Fatalf("a caller's change reached the cache: %q", p3.UID)
			}
		})
	}
	if n := f.v.cache.len(); n != 3 {
		t.Errorf("cache holds %d entries, want 3", n)
	}
}

func TestCacheNeverServesPastExp(t *testing.T) {
	f := newFixture(t)
	exp := f.clock.Now().Add(time.Minute)
	token := f.sbES.sign(t, with(f.supabaseClaims("u"), "exp", exp.Unix()), nil)
	p1 := mustVerify(t, f.v, token)
	f.clock.Advance(time.Minute - time.Second)
	if p := mustVerify(t, f.v, token); !fromCache(p1.Claims, p.Claims) {
		t.Fatal("not served from the cache before exp")
	}
	// At exp the token is still good by the leeway, but only a full check
	// may say so.
	f.clock.Advance(time.Second)
	if p := mustVerify(t, f.v, token); fromCache(p1.Claims, p.Claims) {
		t.Fatal("served from the cache at exp")
	}
	f.clock.Advance(DefaultLeeway)
	_, err := f.v.Verify(t.Context(), token)
	wantCode(t, err, CodeTokenExpired)
	if n := f.v.cache.len(); n != 0 {
		t.Errorf("cache holds %d entries after the token expired, want 0", n)
	}
}

func TestCacheDropsTokensOfWithdrawnKeys(t *testing.T) {
	t.Run("an unknown kid refreshes the set", func(t *testing.T) {
		f := newFixture(t)
		cached := f.sbES.sign(t, f.supabaseClaims("u"), nil)
		mustVerify(t, f.v, cached)
		next := newECKey(t, "next")
		f.supa.setKeys(next, f.sbRS)
		f.clock.Advance(testCooldown)
		mustVerify(t, f.v, next.sign(t, f.supabaseClaims("v"), nil)) // fetches the set without sb-es
		_, err := f.v.Verify(t.Context(), cached)
		wantCode(t, err, CodeKeyNotFound)
		if n := f.v.cache.len(); n != 1 {
			t.Errorf("cache holds %d entries, want only the new token's", n)
		}
	})
	t.Run("the set expires", func(t *testing.T) {
		f := newFixture(t)
		cached := f.sbES.sign(t, f.supabaseClaims("u"), nil)
		mustVerify(t, f.v, cached)
		f.supa.setKeys(f.sbRS)
		f.clock.Advance(DefaultJWKSTTL)
		mustVerify(t, f.v, cached) // the expired set vouches while it is fetched again
		f.settle(t, 2)
		_, err := f.v.Verify(t.Context(), cached)
		wantCode(t, err, CodeKeyNotFound)
	})
	t.Run("another key under the same kid", func(t *testing.T) {
		f := newFixture(t)
		cached := f.sbES.sign(t, f.supabaseClaims("u"), nil)
		mustVerify(t, f.v, cached)
		f.supa.setKeys(newECKey(t, "sb-es"))
		f.clock.Advance(DefaultJWKSTTL)
		mustVerify(t, f.v, cached)
		f.settle(t, 2)
		_, err := f.v.Verify(t.Context(), cached)
		wantCode(t, err, CodeSignatureInvalid)
	})
}

func TestCacheIsBounded(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.CacheSize = 32 })
	claims := f.supabaseClaims("u")
	for i := range 300 {
		mustVerify(t, f.v, hs256(t, hmacSecret, with(claims, "n", i), nil))
		if n := f.v.cache.len(); n > 32 {
			t.Fatalf("cache holds %d entries, bound 32", n)
		}
	}
}

func TestCacheEvictsExpiredFirst(t *testing.T) {
	for range 20 { // map iteration order varies
		c := newTokenCache(2 * cacheShards) // two entries a shard
		var k1, k2, k3 [32]byte             // all in shard 0
		k2[1], k3[1] = 1, 2
		c.put(&k1, &cacheEntry{exp: t0.Add(time.Hour)}, t0)
		c.put(&k2, &cacheEntry{exp: t0.Add(time.Second)}, t0)
		c.put(&k3, &cacheEntry{exp: t0.Add(time.Hour)}, t0.Add(2*time.Second))
		if c.get(&k1) == nil || c.get(&k2) != nil || c.get(&k3) == nil {
			t.Fatalf("shard holds k1 %v, k2 %v, k3 %v; want the expired k2 evicted",
				c.get(&k1) != nil, c.get(&k2) != nil, c.get(&k3) != nil)
		}
	}
}

func TestCacheDisabled(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.CacheSize = -1 })
	if f.v.cache != nil {
		t.Fatal("cache exists")
	}
	token := f.sbES.sign(t, f.supabaseClaims("u"), nil)
	p1, p2 := mustVerify(t, f.v, token), mustVerify(t, f.v, token)
	if fromCache(p1.Claims, p2.Claims) {
		t.Fatal("served from a cache")
	}
}
