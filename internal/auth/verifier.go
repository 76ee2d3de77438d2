// Package auth verifies the JWTs that Supabase Auth and Firebase Auth issue
// to app users, the service's only credential. Tokens are routed by iss to
// exactly one configured issuer and checked with that issuer's keys and
// algorithms only; public keys come from each issuer's JWKS, cached per
// issuer. A verified token becomes a gymbro.Principal.
//
// golang-jwt checks signatures and jwkset turns JWK JSON into keys; this
// package adds what they lack: routing by issuer before any key is chosen,
// per-issuer key sets with a cool-down and Cache-Control aware expiry,
// precise error codes, and a cache of verified tokens. It splits and decodes
// tokens itself (token.go), because golang-jwt's parser decodes through
// encoding/json twice and that alone cost more than a third of an RS256
// check.
package auth

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// MaxTokenBytes is the longest token Verify looks at. Real access tokens are
// about 1 KiB; anything past this is refused before any decoding, so that a
// huge header costs nothing.
const MaxTokenBytes = 8 << 10

// Defaults of Config.
const (
	DefaultLeeway          = 30 * time.Second
	DefaultJWKSTTL         = 15 * time.Minute
	DefaultRefreshCooldown = 30 * time.Second
	DefaultFetchTimeout    = 5 * time.Second
	DefaultMaxJWKSBytes    = 1 << 20
	DefaultCacheSize       = 10000
)

// Config configures a Verifier. Zero values take the defaults above.
type Config struct {
	Issuers []Issuer
	// Leeway is the clock skew allowed on exp, nbf, iat and auth_time.
	Leeway time.Duration
	// JWKSTTL is how long a fetched key set is used before it is fetched
	// again; a shorter Cache-Control max-age from the endpoint wins.
	JWKSTTL time.Duration
	// RefreshCooldown is the least time between two fetches of one issuer's
	// key set, whatever asked for them (an unknown kid, an expired set, a
	// failed fetch).
	RefreshCooldown time.Duration
	// FetchTimeout bounds one JWKS request.
	FetchTimeout time.Duration
	// MaxJWKSBytes bounds a JWKS response body.
	MaxJWKSBytes int64
	// CacheSize bounds the cache of verified tokens (about this many
	// entries; DefaultCacheSize is a good size); zero disables the cache.
	CacheSize int
	// HTTPClient fetches key sets; http.DefaultClient when nil.
	HTTPClient *http.Client
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger receives one Warn line per refused token (code, issuer, kid;
	// never the token); slog.Default() when nil.
	Logger *slog.Logger
}

// Verifier checks tokens from the configured issuers. It implements
// gymbro.Verifier and is safe for concurrent use.
type Verifier struct {
	issuers map[string]*issuerState
	order   []*issuerState
	leeway  time.Duration
	now     func() time.Time
	log     *slog.Logger
	cache   *tokenCache // nil when disabled
	client  *jwksClient
	cancel  context.CancelFunc
}

var _ gymbro.Verifier = (*Verifier)(nil)

// issuerState is a configured issuer and its key cache.
type issuerState struct {
	cfg     Issuer
	methods map[string]jwt.SigningMethod // the allowed algorithms
	keys    *issuerKeys                  // nil for an HMAC-only issuer
	// uidPrefix is what the issuer's users' uids start with, the sub
	// following: gymbro.UserID(provider, iss, "") ("" for Supabase).
	uidPrefix string
}

// New returns a Verifier for cfg, or an error naming what is wrong with it.
// It fetches nothing: key sets are fetched on first use or by Check.
func New(cfg Config) (*Verifier, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}

	ctx, cancel := context.WithCancel(context.Background())
	client := &jwksClient{
		http:         cfg.HTTPClient,
		ttl:          cmp.Or(cfg.JWKSTTL, DefaultJWKSTTL),
		cooldown:     cmp.Or(cfg.RefreshCooldown, DefaultRefreshCooldown),
		fetchTimeout: cmp.Or(cfg.FetchTimeout, DefaultFetchTimeout),
		maxBytes:     cmp.Or(cfg.MaxJWKSBytes, DefaultMaxJWKSBytes),
		now:          cfg.Now,
		log:          cfg.Logger,
		ctx:          ctx,
	}
	v := &Verifier{
		issuers: make(map[string]*issuerState, len(cfg.Issuers)),
		leeway:  cmp.Or(cfg.Leeway, DefaultLeeway),
		now:     cfg.Now,
		log:     cfg.Logger,
		client:  client,
		cancel:  cancel,
	}
	if cfg.CacheSize > 0 {
		v.cache = newTokenCache(cfg.CacheSize)
	}
	for _, iss := range cfg.Issuers {
		st := newIssuerState(iss, client)
		v.issuers[iss.Issuer] = st
		v.order = append(v.order, st)
	}
	return v, nil
}

// check reports what is wrong with cfg: no issuer, a negative setting, an
// invalid issuer or one configured twice.
func (cfg *Config) check() error {
	if len(cfg.Issuers) == 0 {
		return errors.New("auth: no issuer configured")
	}
	if cfg.Leeway < 0 || cfg.JWKSTTL < 0 || cfg.RefreshCooldown < 0 || cfg.FetchTimeout < 0 || cfg.MaxJWKSBytes < 0 {
		return errors.New("auth: negative duration or size in Config")
	}
	seen := make(map[string]bool, len(cfg.Issuers))
	namespaces := map[string]string{}
	for _, iss := range cfg.Issuers {
		if err := iss.validate(); err != nil {
			return err
		}
		if seen[iss.Issuer] {
			return fmt.Errorf("auth: issuer %q configured twice", iss.Issuer)
		}
		seen[iss.Issuer] = true
		if iss.Provider != gymbro.ProviderOIDC {
			continue
		}
		// Two OIDC issuers in one namespace would share uids: refused,
		// however unlikely (48 bits of SHA-256).
		ns := gymbro.OIDCNamespace(iss.Issuer)
		if other, ok := namespaces[ns]; ok {
			return fmt.Errorf("auth: OIDC issuers %q and %q share the uid namespace %s; their users could not be told apart", other, iss.Issuer, ns)
		}
		namespaces[ns] = iss.Issuer
	}
	return nil
}

// newIssuerState returns the state of issuer iss, on a copy of its slices
// so the caller's later changes do not reach the verifier; its keys, if
// any, come from client.
func newIssuerState(iss Issuer, client *jwksClient) *issuerState {
	iss.Audiences = slices.Clone(iss.Audiences)
	iss.Algorithms = slices.Clone(iss.Algorithms)
	iss.HMACSecret = slices.Clone(iss.HMACSecret)
	st := &issuerState{cfg: iss, methods: make(map[string]jwt.SigningMethod, len(iss.Algorithms)),
		uidPrefix: gymbro.UserID(iss.Provider, iss.Issuer, "")}
	for _, alg := range iss.Algorithms {
		st.methods[alg] = jwt.GetSigningMethod(alg)
	}
	if iss.JWKSURL != "" {
		st.keys = &issuerKeys{url: iss.JWKSURL, client: client}
	}
	return st
}

// Close ends any key fetch in flight. The Verifier keeps working on the keys
// it has; later fetches fail at once.
func (v *Verifier) Close() { v.cancel() }

// Check reports whether every JWKS issuer has a usable key set, fetching the
// ones that have none yet (within the cool-down), and whether every
// emulator issuer's Firebase Auth emulator answers. It is meant for
// readiness probes; its error is a *gymbro.Error with code
// keys_unavailable.
func (v *Verifier) Check(ctx context.Context) error {
	var errs []error
	for _, st := range v.order {
		if st.cfg.EmulatorHost != "" {
			if err := v.client.pingEmulator(ctx, st.cfg.EmulatorHost); err != nil {
				errs = append(errs, fmt.Errorf("issuer %s: %w", st.cfg.Issuer, err))
			}
			continue
		}
		if st.keys == nil || st.keys.set.Load() != nil {
			continue
		}
		if ks, err := st.keys.refresh(ctx, fetchScheduled); ks == nil {
			if err == nil {
				err = errors.New("no key set")
			}
			errs = append(errs, fmt.Errorf("issuer %s: %w", st.cfg.Issuer, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return keysUnavailable(err, 0)
	}
	return nil
}

// Verify checks token (the bare JWT, without "Bearer ") and returns its
// principal. It fails with a *gymbro.Error: KindUnauthenticated with one of
// the Code constants of this package, or KindUnavailable with
// CodeKeysUnavailable when the issuer's keys cannot be had. The returned
// Principal is the caller's; its Claims map is shared and must not be
// changed.
func (v *Verifier) Verify(ctx context.Context, token string) (*gymbro.Principal, error) {
	if len(token) > MaxTokenBytes {
		return nil, v.refuse(ctx, fail(errTooLarge), "", "")
	}
	now := v.now()
	var sum [32]byte
	if v.cache != nil {
		// The bytes are only read: the conversion need not copy the token.
		sum = sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
		if e := v.cache.get(&sum); e != nil {
			if v.stillGood(ctx, e, now) {
				p := *e.principal
				return &p, nil
			}
			v.cache.remove(&sum, e)
		}
	}
	p, e, err := v.verify(ctx, token, now)
	if err != nil {
		return nil, err
	}
	if v.cache != nil {
		v.cache.put(&sum, e, now)
	}
	cp := *p
	return &cp, nil
}

// stillGood reports whether a cached verification may be served: the token
// has not reached exp, and the key that verified it is still the one its
// issuer publishes under that kid (the lookup refreshes an expired set, so a
// key that leaves the set stops vouching for cached tokens too).
func (v *Verifier) stillGood(ctx context.Context, e *cacheEntry, now time.Time) bool {
	if !now.Before(e.exp) {
		return false
	}
	if e.key == nil {
		return true
	}
	vk, err := e.issuer.keys.key(ctx, now, e.key.kid)
	return err == nil && vk == e.key
}

// verify does the full check of a token the cache does not know.
func (v *Verifier) verify(ctx context.Context, token string, now time.Time) (*gymbro.Principal, *cacheEntry, error) {
	t, ok := parseJWS(token)
	if !ok {
		return nil, nil, v.refuse(ctx, fail(errMalformed), "", "")
	}
	st, vk, kid, err := v.selectKey(ctx, t, now)
	if err != nil {
		return nil, nil, v.refuse(ctx, err, issuerName(st, t.claims), kid)
	}
	if !signatureGood(st, vk, t) {
		return nil, nil, v.refuse(ctx, fail(errSignature), st.cfg.Issuer, kid)
	}
	p, err := v.checkClaims(st, t.claims, now)
	if err != nil {
		return nil, nil, v.refuse(ctx, err, st.cfg.Issuer, kid)
	}
	return p, &cacheEntry{principal: p, exp: p.ExpiresAt, issuer: st, key: vk}, nil
}

// signatureGood checks t's signature with the key selectKey chose. An
// emulator issuer's tokens are unsigned, which selectKey checked.
func signatureGood(st *issuerState, vk *verificationKey, t *jws) bool {
	if st.cfg.EmulatorHost != "" {
		return true
	}
	alg := t.header["alg"].(string) // selectKey checked it
	key := any(st.cfg.HMACSecret)
	if vk != nil {
		key = vk.key
	}
	return st.methods[alg].Verify(t.signingInput, t.signature, key) == nil
}

// selectKey picks the issuer that the (as yet unverified) iss names, checks
// the header against that issuer's rules, and finds the key among that
// issuer's keys only. vk is nil for an HMAC token: the issuer's secret is
// the key.
func (v *Verifier) selectKey(ctx context.Context, t *jws, now time.Time) (st *issuerState, vk *verificationKey, kid string, err *gymbro.Error) {
	// RFC 7515 §4.1.11: a recipient must refuse a token whose crit lists an
	// extension it does not understand; this one understands none.
	if _, ok := t.header["crit"]; ok {
		return nil, nil, "", fail(errCrit)
	}
	if st, err = v.route(t.claims); err != nil {
		return nil, nil, "", err
	}
	if st.cfg.EmulatorHost != "" {
		return st, nil, "", checkUnsigned(t)
	}
	// jku, x5u and jwk headers are never read: keys come only from the
	// issuer's configured JWKS URL.
	alg, _ := t.header["alg"].(string)
	if st.methods[alg] == nil { // "none" is never among them
		return st, nil, "", fail(errAlgorithm)
	}
	if algorithms[alg] == familyHMAC {
		// Only the configured secret, never the bytes of a public key: that
		// is the HS256-signed-with-the-RSA-key confusion.
		return st, nil, "", nil
	}
	raw, present := t.header["kid"]
	kid, isString := raw.(string)
	switch {
	case present && !isString:
		return st, nil, "", fail(errHeaderType)
	case kid == "":
		// No kid is refused rather than tried against every key of the set:
		// one forged token would cost a signature check per key.
		return st, nil, "", fail(errKidMissing)
	}
	vk, kerr := st.keys.key(ctx, now, kid)
	if kerr != nil {
		if kerr.Kind == gymbro.KindUnavailable {
			// A 503 says "try again": only right for a token that could
			// pass. One that fails its claims gets that 401 (the claims
			// are the sender's own, so this tells nothing new).
			if _, cerr := v.checkClaims(st, t.claims, now); cerr != nil {
				return st, nil, kid, cerr
			}
		}
		return st, nil, kid, kerr
	}
	if !vk.fits(alg) {
		return st, nil, kid, fail(errAlgorithmKey)
	}
	return st, vk, kid, nil
}

// route returns the configured issuer that the claims' iss names.
func (v *Verifier) route(claims map[string]any) (*issuerState, *gymbro.Error) {
	raw, ok := claims["iss"]
	if !ok {
		return nil, fail(errIssuerMissing)
	}
	iss, ok := raw.(string)
	if !ok {
		return nil, claimInvalid("iss")
	}
	st := v.issuers[iss]
	if st == nil {
		return nil, fail(errIssuerUnknown)
	}
	return st, nil
}

// issuerName is what a log line names as the issuer: the configured one, or
// the start of the claimed one.
func issuerName(st *issuerState, claims map[string]any) string {
	if st != nil {
		return st.cfg.Issuer
	}
	iss, _ := claims["iss"].(string)
	return truncate(iss, 128)
}

// truncate shortens s, which the sender chose, to at most n bytes (and a
// rune boundary) for a log line.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// refuse logs a refused token, one line with the code, issuer and kid but
// never the token, and returns err.
func (v *Verifier) refuse(ctx context.Context, err *gymbro.Error, iss, kid string) *gymbro.Error {
	attrs := []slog.Attr{
		slog.String("code", err.Code),
		slog.String("issuer", iss),
		slog.String("kid", truncate(kid, 64)),
	}
	if err.Err != nil {
		attrs = append(attrs, slog.String("err", err.Err.Error()))
	}
	v.log.LogAttrs(ctx, slog.LevelWarn, "auth: token refused", attrs...)
	return err
}

// checkClaims checks the claims of a token whose signature is good, and
// builds its principal.
func (v *Verifier) checkClaims(st *issuerState, claims map[string]any, now time.Time) (*gymbro.Principal, *gymbro.Error) {
	if err := checkAudience(claims["aud"], st.cfg.Audiences); err != nil {
		return nil, err
	}
	exp, err := v.checkTimes(st, claims, now)
	if err != nil {
		return nil, err
	}
	sub, err := stringClaim(claims, "sub")
	if err != nil {
		return nil, err
	}
	if sub == "" {
		return nil, claimMissing("sub")
	}
	if st.cfg.MaxSubjectLen > 0 && len(sub) > st.cfg.MaxSubjectLen {
		return nil, fail(errSubjectLong)
	}
	if st.cfg.Provider == gymbro.ProviderSupabase && !canonicalUUID(sub) {
		// Supabase user ids are UUIDs, and the uid of every other issuer
		// holds a colon: a Supabase sub of another form (only a holder of
		// the legacy JWT secret could sign one) could pass for them.
		return nil, claimInvalid("sub")
	}
	p := &gymbro.Principal{
		UID:         st.uidPrefix + sub,
		ProviderUID: sub,
		Provider:    st.cfg.Provider,
		Issuer:      st.cfg.Issuer,
		ExpiresAt:   exp,
		Claims:      claims,
	}
	for _, c := range []struct {
		name string
		dst  *string
	}{{"email", &p.Email}, {"session_id", &p.SessionID}, {"role", &p.Role}} {
		if *c.dst, err = stringClaim(claims, c.name); err != nil {
			return nil, err
		}
	}
	// Only a JSON true: some providers send other shapes, which vouch for
	// nothing here.
	p.EmailVerified = claims["email_verified"] == true
	// checkTimes refused a bad auth_time where the issuer requires one;
	// elsewhere a malformed one is left out.
	p.AuthTime, _ = numericDate(claims, "auth_time", false)
	return p, nil
}

// canonicalUUID reports whether s is a UUID in the lower-case hyphenated
// form Supabase Auth writes (uuid.Parse also takes "urn:uuid:…" and braces).
func canonicalUUID(s string) bool {
	u, err := uuid.Parse(s)
	return err == nil && u.String() == s
}

// checkTimes checks the time claims against now, allowing the leeway: exp
// (required) not passed; nbf, iat and, when the issuer requires it,
// auth_time not in the future. It returns exp.
func (v *Verifier) checkTimes(st *issuerState, claims map[string]any, now time.Time) (time.Time, *gymbro.Error) {
	exp, err := numericDate(claims, "exp", true)
	if err != nil {
		return time.Time{}, err
	}
	if !now.Before(exp.Add(v.leeway)) {
		return time.Time{}, fail(errExpired)
	}
	if err := v.notFuture(claims, "nbf", false, now, errNotYetValid); err != nil {
		return time.Time{}, err
	}
	if err := v.notFuture(claims, "iat", false, now, errIssuedFuture); err != nil {
		return time.Time{}, err
	}
	if st.cfg.RequireAuthTime {
		if err := v.notFuture(claims, "auth_time", true, now, errAuthTimeFuture); err != nil {
			return time.Time{}, err
		}
	}
	return exp, nil
}

// notFuture fails with future when the time claim name is later than now
// plus the leeway; an absent claim passes unless required.
func (v *Verifier) notFuture(claims map[string]any, name string, required bool, now time.Time, future gymbro.Error) *gymbro.Error {
	t, err := numericDate(claims, name, required)
	if err != nil {
		return err
	}
	if !t.IsZero() && now.Add(v.leeway).Before(t) {
		return fail(future)
	}
	return nil
}

// checkAudience checks that aud, a string or an array of strings, names one
// of want.
func checkAudience(aud any, want []string) *gymbro.Error {
	switch a := aud.(type) {
	case nil:
		return claimMissing("aud")
	case string:
		if slices.Contains(want, a) {
			return nil
		}
	case []any:
		for _, x := range a {
			s, ok := x.(string)
			if !ok {
				return claimInvalid("aud")
			}
			if slices.Contains(want, s) {
				return nil
			}
		}
	default:
		return claimInvalid("aud")
	}
	return fail(errAudience)
}

// maxNumericDate is the end of year 9999: later dates are refused rather than
// overflowing time.Time arithmetic.
const maxNumericDate = 253402300799

// numericDate reads an RFC 7519 NumericDate (seconds, possibly fractional).
// A missing optional claim is the zero time.
func numericDate(claims map[string]any, name string, required bool) (time.Time, *gymbro.Error) {
	raw, ok := claims[name]
	if !ok || raw == nil {
		if required {
			return time.Time{}, claimMissing(name)
		}
		return time.Time{}, nil
	}
	f, ok := raw.(float64)
	if !ok || f < 0 || f > maxNumericDate {
		return time.Time{}, claimInvalid(name)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), nil
}

// stringClaim reads an optional string claim; missing is "".
func stringClaim(claims map[string]any, name string) (string, *gymbro.Error) {
	raw, ok := claims[name]
	if !ok || raw == nil {
		return "", nil
	}
	s, ok := raw.(string)
	if !ok {
		return "", claimInvalid(name)
	}
	return s, nil
}
