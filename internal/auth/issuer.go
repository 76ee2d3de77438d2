package auth

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// FirebaseJWKSURL is where Google publishes the keys that sign Firebase Auth
// ID tokens.
const FirebaseJWKSURL = "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com"

// Issuer is one trusted token issuer. A token is checked against the issuer
// its iss names, and only with that issuer's keys and algorithms.
type Issuer struct {
	Provider  string   // gymbro.ProviderSupabase, ProviderFirebase or ProviderOIDC
	Issuer    string   // the exact iss
	Audiences []string // the token's aud (a string or an array) must contain one of these
	// JWKSURL is where the issuer publishes its public keys; empty for an
	// issuer that only signs with HMACSecret.
	JWKSURL string
	// Algorithms is the allow-list of alg values, e.g. ES256 and RS256. HS256,
	// HS384 and HS512 need HMACSecret; "none" is never allowed.
	Algorithms []string
	// HMACSecret is the shared secret of legacy Supabase projects (the JWT
	// secret). It never appears in logs or in fmt output.
	HMACSecret []byte
	// RequireAuthTime makes auth_time mandatory and not in the future
	// (Firebase ID tokens carry it).
	RequireAuthTime bool
	// MaxSubjectLen, when positive, bounds the length of sub (Firebase: 128).
	MaxSubjectLen int
	// EmulatorHost, for a Firebase issuer only, is the host:port of the
	// Firebase Auth emulator (FIREBASE_AUTH_EMULATOR_HOST, development
	// only), whose ID tokens are unsigned. As Firebase's Admin SDKs do in
	// that mode, the issuer then accepts those tokens, and only those (alg
	// "none", no kid, an empty signature), with every claim still checked;
	// it has no keys and no algorithms, and readiness asks the emulator.
	EmulatorHost string
}

// SupabaseIssuer returns the issuer of Supabase Auth access tokens for the
// project at baseURL (SUPABASE_URL): iss <baseURL>/auth/v1, aud
// "authenticated", the project's JWKS (ES256 or RS256 signing keys), and
// HS256 too when the project's legacy JWT secret is given.
func SupabaseIssuer(baseURL string, jwtSecret []byte) Issuer {
	base := strings.TrimRight(baseURL, "/") + "/auth/v1"
	iss := Issuer{
		Provider:   gymbro.ProviderSupabase,
		Issuer:     base,
		Audiences:  []string{"authenticated"},
		JWKSURL:    base + "/.well-known/jwks.json",
		Algorithms: []string{"ES256", "RS256"},
	}
	if len(jwtSecret) > 0 {
		iss.HMACSecret = jwtSecret
		iss.Algorithms = append(iss.Algorithms, "HS256")
	}
	return iss
}

// FirebaseIssuer returns the issuer of Firebase Auth ID tokens for the given
// project: iss https://securetoken.google.com/<projectID>, aud <projectID>,
// RS256 keys from jwksURL (FirebaseJWKSURL when empty), auth_time required,
// sub at most 128 characters.
func FirebaseIssuer(projectID, jwksURL string) Issuer {
	if jwksURL == "" {
		jwksURL = FirebaseJWKSURL
	}
	return Issuer{
		Provider:        gymbro.ProviderFirebase,
		Issuer:          "https://securetoken.google.com/" + projectID,
		Audiences:       []string{projectID},
		JWKSURL:         jwksURL,
		Algorithms:      []string{"RS256"},
		RequireAuthTime: true,
		MaxSubjectLen:   128,
	}
}

// maxOIDCSubject is the longest sub an OIDC issuer may send: OpenID Connect
// Core 1.0 §2 caps it at 255 ASCII characters.
const maxOIDCSubject = 255

// OIDCIssuer returns an OpenID Connect issuer (GYMBRO_OIDC_ISSUERS): tokens
// with iss issuer and aud audience, checked with the keys at jwksURL and
// only the given algorithms; sub at most 255 characters.
func OIDCIssuer(issuer, audience, jwksURL string, algorithms []string) Issuer {
	return Issuer{
		Provider:      gymbro.ProviderOIDC,
		Issuer:        issuer,
		Audiences:     []string{audience},
		JWKSURL:       jwksURL,
		Algorithms:    slices.Clone(algorithms),
		MaxSubjectLen: maxOIDCSubject,
	}
}

// FirebaseEmulatorIssuer returns the issuer of the Firebase Auth
// emulator's unsigned ID tokens for the given project, the emulator
// listening at host (host:port): FirebaseIssuer's claims, no keys.
func FirebaseEmulatorIssuer(projectID, host string) Issuer {
	iss := FirebaseIssuer(projectID, "")
	iss.JWKSURL, iss.Algorithms, iss.EmulatorHost = "", nil, host
	return iss
}

// LogValue describes the issuer without its secret.
func (i Issuer) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("provider", i.Provider),
		slog.String("iss", i.Issuer),
		slog.Any("aud", i.Audiences),
		slog.String("jwks_url", i.JWKSURL),
		slog.Any("algorithms", i.Algorithms),
		slog.Bool("hmac_secret", len(i.HMACSecret) > 0),
		slog.String("emulator_host", i.EmulatorHost),
	)
}

// String describes the issuer without its secret, so that printing a Config
// cannot leak it.
func (i Issuer) String() string {
	secret := ""
	if len(i.HMACSecret) > 0 {
		secret = " hmac_secret=[REDACTED]"
	}
	emulator := ""
	if i.EmulatorHost != "" {
		emulator = " emulator_host=" + i.EmulatorHost
	}
	return fmt.Sprintf("{provider=%s iss=%s aud=%v jwks_url=%s algorithms=%v%s%s}",
		i.Provider, i.Issuer, i.Audiences, i.JWKSURL, i.Algorithms, secret, emulator)
}

// GoString is String, for %#v.
func (i Issuer) GoString() string { return "auth.Issuer" + i.String() }

// algFamily is the kind of key an algorithm verifies with.
type algFamily uint8

const (
	familyHMAC algFamily = iota + 1
	familyRSA
	familyEC
	familyEd25519
)

// algorithms are the alg values an issuer may allow, each with its key kind.
// "none" is absent on purpose: unsigned tokens (the Firebase Auth emulator
// issues them) are accepted only from an issuer with EmulatorHost, and
// never through an allow-list.
var algorithms = map[string]algFamily{
	"HS256": familyHMAC, "HS384": familyHMAC, "HS512": familyHMAC,
	"RS256": familyRSA, "RS384": familyRSA, "RS512": familyRSA,
	"PS256": familyRSA, "PS384": familyRSA, "PS512": familyRSA,
	"ES256": familyEC, "ES384": familyEC, "ES512": familyEC,
	"EdDSA": familyEd25519,
}

// minHMACSecret is the shortest HMAC secret accepted: RFC 7518 §3.2 asks for
// a key at least as long as the hash output (32 bytes for HS256).
const minHMACSecret = 32

func (i *Issuer) validate() error {
	var errs []error
	switch i.Provider {
	case gymbro.ProviderSupabase, gymbro.ProviderFirebase, gymbro.ProviderOIDC:
	default:
		errs = append(errs, fmt.Errorf("unknown provider %q", i.Provider))
	}
	if i.Issuer == "" {
		errs = append(errs, errors.New("empty iss"))
	}
	if len(i.Audiences) == 0 || slices.Contains(i.Audiences, "") {
		errs = append(errs, errors.New("no audience, or an empty one"))
	}
	if i.EmulatorHost != "" {
		errs = append(errs, i.validateEmulator()...)
	} else {
		errs = append(errs, i.validateKeys()...)
	}
	if i.MaxSubjectLen < 0 {
		errs = append(errs, errors.New("negative MaxSubjectLen"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("auth: issuer %q: %w", i.Issuer, err)
	}
	return nil
}

// validateEmulator checks an emulator issuer: Firebase's, at a host:port,
// and with nothing that would verify a signature.
func (i *Issuer) validateEmulator() []error {
	var errs []error
	if i.Provider != gymbro.ProviderFirebase {
		errs = append(errs, errors.New("only a Firebase issuer can be the Auth emulator's"))
	}
	if _, _, err := net.SplitHostPort(i.EmulatorHost); err != nil {
		errs = append(errs, fmt.Errorf("emulator host %q is not host:port", i.EmulatorHost))
	}
	if len(i.Algorithms) > 0 || i.JWKSURL != "" || len(i.HMACSecret) > 0 {
		errs = append(errs, errors.New("the Auth emulator's issuer has no algorithms, JWKS URL or secret: its tokens are unsigned"))
	}
	return errs
}

// validateKeys checks the algorithms and the keys that verify them.
func (i *Issuer) validateKeys() []error {
	var errs []error
	if len(i.Algorithms) == 0 {
		errs = append(errs, errors.New("no algorithms allowed"))
	}
	var asymmetric, symmetric bool
	for _, alg := range i.Algorithms {
		switch algorithms[alg] {
		case 0:
			errs = append(errs, fmt.Errorf("algorithm %q is not supported", alg))
		case familyHMAC:
			symmetric = true
		default:
			asymmetric = true
		}
	}
	if symmetric && len(i.HMACSecret) < minHMACSecret {
		errs = append(errs, fmt.Errorf("HMAC algorithms need an HMAC secret of at least %d bytes", minHMACSecret))
	}
	if !symmetric && len(i.HMACSecret) > 0 {
		errs = append(errs, errors.New("an HMAC secret is set but no HS algorithm is allowed"))
	}
	if asymmetric {
		u, err := url.Parse(i.JWKSURL)
		if i.JWKSURL == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, errors.New("asymmetric algorithms need an http(s) JWKS URL"))
		}
	} else if i.JWKSURL != "" {
		errs = append(errs, errors.New("a JWKS URL is set but no asymmetric algorithm is allowed"))
	}
	return errs
}
