package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"golang.org/x/sync/singleflight"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// minRSABits is the smallest RSA modulus trusted for signatures.
const minRSABits = 2048

// verificationKey is one public key of an issuer's key set.
type verificationKey struct {
	kid    string
	alg    string // the JWK's alg; empty when it names none
	family algFamily
	curve  elliptic.Curve // for familyEC
	key    any            // *ecdsa.PublicKey, *rsa.PublicKey or ed25519.PublicKey
}

// fits reports whether a token signed with alg may be checked with k: the
// key is of alg's kind (and curve), and names no other alg.
func (k *verificationKey) fits(alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	if algorithms[alg] != k.family {
		return false
	}
	if k.family == familyEC {
		switch alg {
		case "ES256":
			return k.curve == elliptic.P256()
		case "ES384":
			return k.curve == elliptic.P384()
		case "ES512":
			return k.curve == elliptic.P521()
		}
		return false
	}
	return true
}

// keySet is an issuer's key set as fetched at one time. It is never changed
// after it is published, so readers need no lock.
type keySet struct {
	keys      map[string]*verificationKey
	fetchedAt time.Time
	expiresAt time.Time // when to fetch again: fetchedAt + min(TTL, max-age)
}

// jwksClient is what every issuer's key cache shares.
type jwksClient struct {
	http         *http.Client
	ttl          time.Duration
	cooldown     time.Duration
	fetchTimeout time.Duration
	maxBytes     int64
	now          func() time.Time
	log          *slog.Logger
	ctx          context.Context // canceled by Verifier.Close, ending fetches in flight
}

// issuerKeys is one issuer's key cache. Each issuer has its own, never one
// pool: a kid is looked up only among the keys of the issuer the token
// names, so a key of issuer A can never vouch for a token claiming issuer B.
type issuerKeys struct {
	url    string
	client *jwksClient

	set atomic.Pointer[keySet] // the last good set; nil until a fetch succeeds

	// lastAttempt is the start (UnixNano of client.now) of the last fetch,
	// whatever its outcome or reason: while there is no set at all (the
	// endpoint is down), and for scheduled refreshes, no fetch starts within
	// cooldown of it.
	lastAttempt atomic.Int64
	attempted   atomic.Bool
	// lastUnknownKid is the start of the last fetch caused by a token whose
	// kid the set lacks. Only such fetches count against the cool-down of the
	// next one: a key published right after the initial or a scheduled fetch
	// is fetched on its first token, while a flood of forged kids still costs
	// at most one request per cool-down.
	lastUnknownKid atomic.Int64
	unknownKidSeen atomic.Bool
	fetching       atomic.Bool // a fetch is in flight

	mu      sync.Mutex
	lastErr error // why the last fetch failed; nil after a success

	flight singleflight.Group
}

var errCoolingDown = errors.New("a key fetch was tried less than the cool-down ago")

// fetchReason says why a fetch starts, which decides the cool-down it obeys.
type fetchReason int

const (
	fetchScheduled  fetchReason = iota // no set yet, or the set's TTL ended
	fetchUnknownKid                    // a token names a kid the set lacks
)

// mayFetch reports whether the cool-down that applies to a fetch for reason
// has passed: since the last unknown-kid fetch for that reason, since the
// last fetch of any kind otherwise.
func (k *issuerKeys) mayFetch(now time.Time, reason fetchReason) bool {
	if reason == fetchUnknownKid && k.set.Load() != nil {
		return !k.unknownKidSeen.Load() || now.Sub(time.Unix(0, k.lastUnknownKid.Load())) >= k.client.cooldown
	}
	return !k.attempted.Load() || now.Sub(time.Unix(0, k.lastAttempt.Load())) >= k.client.cooldown
}

// key returns the key kid names, fetching the issuer's key set when there
// is none yet or kid is not in it (see mayFetch for the cool-downs). A caller that
// arrives while a fetch is in flight waits for it rather than judge by the
// old set. An expired set whose keys include kid is still used, and a fetch
// is started in the background: no request waits on the endpoint for a key
// it already has, and the last good set keeps working while it fails.
func (k *issuerKeys) key(ctx context.Context, now time.Time, kid string) (*verificationKey, *gymbro.Error) {
	if ks := k.set.Load(); ks != nil {
		if vk := ks.keys[kid]; vk != nil {
			if !now.Before(ks.expiresAt) && !k.fetching.Load() && k.mayFetch(now, fetchScheduled) {
				k.flight.DoChan("", k.fetcher(fetchScheduled)) // not waited for
			}
			return vk, nil
		}
	}
	var err error
	if k.set.Load() == nil || k.fetching.Load() || k.mayFetch(now, fetchUnknownKid) {
		_, err = k.refresh(ctx, fetchUnknownKid)
	}
	// Loaded again: a fetch may have ended since the first look. fetching is
	// set before lastAttempt, so when mayFetch said no and fetching is now
	// false, that fetch has ended and its set is visible here.
	ks := k.set.Load()
	if ks == nil {
		if err == nil {
			err = errCoolingDown
		}
		return nil, keysUnavailable(err, k.client.cooldown)
	}
	if vk := ks.keys[kid]; vk != nil {
		return vk, nil
	}
	return nil, fail(errKeyNotFound)
}

// refresh fetches the key set unless the cool-down forbids it, and returns
// the last good set (possibly nil) with the error of this attempt. Callers at
// the same time share one fetch (singleflight); each waits only as long as
// its own context allows, while the fetch runs to its own time-out.
func (k *issuerKeys) refresh(ctx context.Context, reason fetchReason) (*keySet, error) {
	ch := k.flight.DoChan("", k.fetcher(reason))
	select {
	case r := <-ch:
		return k.set.Load(), r.Err
	case <-ctx.Done():
		return k.set.Load(), ctx.Err()
	}
}

// fetcher returns the singleflight function that fetches for reason.
func (k *issuerKeys) fetcher(reason fetchReason) func() (any, error) {
	return func() (any, error) { return k.fetchOnce(reason) }
}

// fetchOnce fetches and publishes the key set, unless the cool-down for
// reason has not passed. Only singleflight calls it, so one runs at a time.
func (k *issuerKeys) fetchOnce(reason fetchReason) (any, error) {
	now := k.client.now()
	if !k.mayFetch(now, reason) {
		k.mu.Lock()
		err := k.lastErr
		k.mu.Unlock()
		if err == nil {
			err = errCoolingDown
		}
		return nil, err
	}
	k.fetching.Store(true)
	defer k.fetching.Store(false)
	if reason == fetchUnknownKid && k.set.Load() != nil {
		k.lastUnknownKid.Store(now.UnixNano())
		k.unknownKidSeen.Store(true)
	}
	k.lastAttempt.Store(now.UnixNano())
	k.attempted.Store(true)
	ks, err := k.fetch(now)
	k.mu.Lock()
	k.lastErr = err
	k.mu.Unlock()
	if err != nil {
		k.client.log.LogAttrs(k.client.ctx, slog.LevelWarn, "auth: JWKS fetch failed; keeping the last good key set",
			slog.String("jwks_url", k.url), slog.Bool("have_keys", k.set.Load() != nil), slog.String("err", err.Error()))
		return nil, err
	}
	k.set.Store(ks)
	return nil, nil
}

// fetch gets and parses the key set.
func (k *issuerKeys) fetch(now time.Time) (*keySet, error) {
	ctx, cancel := context.WithTimeout(k.client.ctx, k.client.fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("GET %s: status %d", k.url, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, k.client.maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", k.url, err)
	}
	if int64(len(body)) > k.client.maxBytes {
		return nil, fmt.Errorf("GET %s: key set larger than %d bytes", k.url, k.client.maxBytes)
	}
	keys, err := k.parse(body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", k.url, err)
	}
	ttl := k.client.ttl
	if maxAge, ok := maxAge(resp.Header); ok && maxAge < ttl {
		ttl = maxAge
	}
	return &keySet{keys: keys, fetchedAt: now, expiresAt: now.Add(ttl)}, nil
}

// parse turns a JWKS document into the keys usable to verify signatures.
// Keys that are not for signatures (use other than "sig", key_ops without
// "verify"), have no kid, are symmetric, too weak or unparsable are left out;
// a set left with no key at all is an error, so that a broken endpoint does
// not replace the last good set with an empty one.
func (k *issuerKeys) parse(body []byte) (map[string]*verificationKey, error) {
	var doc jwkset.JWKSMarshal
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("key set is not JSON: %w", err)
	}
	keys := make(map[string]*verificationKey, len(doc.Keys))
	var skipped []string
	for _, m := range doc.Keys {
		vk, why := toVerificationKey(m)
		if why != "" {
			skipped = append(skipped, fmt.Sprintf("%.64q: %s", m.KID, why))
			continue
		}
		if _, dup := keys[vk.kid]; dup {
			skipped = append(skipped, fmt.Sprintf("%.64q: duplicate kid", m.KID))
			continue
		}
		keys[vk.kid] = vk
	}
	if len(skipped) > 0 {
		k.client.log.LogAttrs(k.client.ctx, slog.LevelWarn, "auth: JWKS keys left out",
			slog.String("jwks_url", k.url), slog.Any("keys", skipped))
	}
	if len(keys) == 0 {
		return nil, errors.New("key set has no usable verification key")
	}
	return keys, nil
}

// toVerificationKey returns the key m describes, or why it is not used.
func toVerificationKey(m jwkset.JWKMarshal) (*verificationKey, string) {
	switch {
	case m.KID == "":
		return nil, "no kid"
	case m.USE != "" && m.USE != jwkset.UseSig:
		return nil, "use is not sig"
	case len(m.KEYOPS) > 0 && !slices.Contains(m.KEYOPS, jwkset.KeyOpsVerify):
		return nil, "key_ops lacks verify"
	case m.KTY == jwkset.KtyOct:
		return nil, "symmetric key"
	}
	if m.ALG != "" && algorithms[string(m.ALG)] == 0 {
		return nil, "unsupported alg"
	}
	// Private members are dropped: only the public key is ever used.
	jwk, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{Private: false}, jwkset.JWKValidateOptions{})
	if err != nil {
		return nil, "unparsable: " + err.Error()
	}
	vk := &verificationKey{kid: m.KID, alg: string(m.ALG), key: jwk.Key()}
	switch pub := jwk.Key().(type) {
	case *ecdsa.PublicKey:
		vk.family, vk.curve = familyEC, pub.Curve
	case *rsa.PublicKey:
		if pub.N.BitLen() < minRSABits {
			return nil, "RSA key shorter than 2048 bits"
		}
		vk.family = familyRSA
	case ed25519.PublicKey:
		vk.family = familyEd25519
	default:
		return nil, fmt.Sprintf("unsupported key type %T", pub)
	}
	if vk.alg != "" && !vk.fits(vk.alg) {
		return nil, "alg does not fit the key"
	}
	return vk, ""
}

// maxAge returns the max-age of a Cache-Control header, if any.
func maxAge(h http.Header) (time.Duration, bool) {
	for _, line := range h.Values("Cache-Control") {
		for d := range strings.SplitSeq(line, ",") {
			name, value, ok := strings.Cut(strings.TrimSpace(d), "=")
			if !ok || !strings.EqualFold(name, "max-age") {
				continue
			}
			secs, err := strconv.ParseInt(strings.Trim(value, `"`), 10, 64)
			if err != nil || secs < 0 {
				return 0, false
			}
			if secs > int64(365*24*time.Hour/time.Second) {
				secs = int64(365 * 24 * time.Hour / time.Second)
			}
			return time.Duration(secs) * time.Second, true
		}
	}
	return 0, false
}
