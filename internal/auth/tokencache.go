package auth

import (
	"sync"
	"time"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// cacheShards splits the verified-token cache so that concurrent requests
// rarely wait on one lock.
const cacheShards = 16

// cacheEntry is a token that passed every check.
type cacheEntry struct {
	principal *gymbro.Principal
	exp       time.Time        // the token's exp: the entry is never served at or past it
	issuer    *issuerState     // the issuer whose key set is checked on a hit
	key       *verificationKey // the key that verified it; nil for HMAC
}

// tokenCache maps the SHA-256 of a token to its verification. Keys are
// hashes, so the cache holds no token. It is bounded: a full shard evicts an
// expired entry if it meets one among a few, otherwise an arbitrary one (Go
// randomises map iteration). Random eviction needs no bookkeeping on a hit,
// which keeps hits to a read lock; access tokens are reused in bursts within
// their hour, so what it loses against LRU is little.
type tokenCache struct {
	perShard int
	shards   [cacheShards]cacheShard
}

type cacheShard struct {
	mu sync.RWMutex
	m  map[[32]byte]*cacheEntry
}

func newTokenCache(size int) *tokenCache {
	c := &tokenCache{perShard: max(1, (size+cacheShards-1)/cacheShards)}
	for i := range c.shards {
		c.shards[i].m = make(map[[32]byte]*cacheEntry)
	}
	return c
}

func (c *tokenCache) shard(k *[32]byte) *cacheShard { return &c.shards[k[0]%cacheShards] }

func (c *tokenCache) get(k *[32]byte) *cacheEntry {
	s := c.shard(k)
	s.mu.RLock()
	e := s.m[*k]
	s.mu.RUnlock()
	return e
}

func (c *tokenCache) put(k *[32]byte, e *cacheEntry, now time.Time) {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[*k]; !ok && len(s.m) >= c.perShard {
		var victim [32]byte
		seen := 0
		for key, old := range s.m {
			if seen == 0 || !now.Before(old.exp) {
				victim = key
			}
			if seen++; !now.Before(old.exp) || seen == 8 {
				break
			}
		}
		delete(s.m, victim)
	}
	s.m[*k] = e
}

// remove drops k, if it still maps to e.
func (c *tokenCache) remove(k *[32]byte, e *cacheEntry) {
	s := c.shard(k)
	s.mu.Lock()
	if s.m[*k] == e {
		delete(s.m, *k)
	}
	s.mu.Unlock()
}

func (c *tokenCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
