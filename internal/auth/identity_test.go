package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// oidcFixture is the fixture's verifier with an OIDC issuer added, whose
// keys are key.
func oidcFixture(t *testing.T, key *testKey, alg string) (*fixture, *jwksServer, string) {
	t.Helper()
	srv := newJWKSServer(t, key)
	iss := srv.URL + "/realms/gym"
	f := newFixture(t, func(c *Config) {
		c.Issuers = append(c.Issuers, OIDCIssuer(iss, "gym-app", srv.URL, []string{alg}))
	})
	return f, srv, iss
}

func (f *fixture) oidcClaims(iss, sub string) jwt.MapClaims {
	now := f.clock.Now()
	return jwt.MapClaims{"iss": iss, "aud": "gym-app", "sub": sub, "email": "ops@gymbro.cloud", "email_verified": true,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "auth_time": now.Add(-time.Minute).Unix()}
}

// TestOneSubjectThreeIssuersThreeUsers: the same sub signed by Supabase,
// Firebase and an OIDC issuer becomes three principals with three uids,
// each keeping the sub as ProviderUID; only the issuers that send
// email_verified vouch for an email.
func TestOneSubjectThreeIssuersThreeUsers(t *testing.T) {
	f, _, iss := oidcFixture(t, newRSAKey(t, "oidc-rs", 1), "RS256")
	sub := subject("victim")
	sb := with(f.supabaseClaims("victim"), "user_metadata", map[string]any{"email_verified": true})
	supa := mustVerify(t, f.v, f.sbES.sign(t, sb, nil))
	fire := mustVerify(t, f.v, f.fbRS.sign(t, with(f.firebaseClaims("x"), "sub", sub, "user_id", sub), nil))
	oidc := mustVerify(t, f.v, newRSAKey(t, "oidc-rs", 1).sign(t, f.oidcClaims(iss, sub), nil))
	want := map[*gymbro.Principal]string{
		supa: sub,
		fire: "firebase:" + sub,
		oidc: "oidc:" + gymbro.OIDCNamespace(iss) + ":" + sub,
	}
	for p, uid := range want {
		if p.UID != uid || p.ProviderUID != sub {
			t.Errorf("%s principal: uid %q provider uid %q, want %q and %q", p.Provider, p.UID, p.ProviderUID, uid, sub)
		}
	}
	if supa.EmailVerified {
		t.Error("a Supabase token vouched for its email through user_metadata, which the user may edit")
	}
	if !fire.EmailVerified || !oidc.EmailVerified || fire.AuthTime.IsZero() || oidc.AuthTime.IsZero() || !supa.AuthTime.IsZero() {
		t.Errorf("email_verified %v/%v, auth_time %v/%v/%v", fire.EmailVerified, oidc.EmailVerified, supa.AuthTime, fire.AuthTime, oidc.AuthTime)
	}
	notVouched := mustVerify(t, f.v, f.fbRS.sign(t, with(f.firebaseClaims("y"), "email_verified", "true"), nil))
	if notVouched.EmailVerified {
		t.Error(`email_verified "true" (a string) vouched for an email`)
	}
}

// TestSubjectForms: a Supabase sub is a UUID in Supabase's own form, since
// a namespaced uid of another issuer must never pass for one; an OIDC sub
// is at most 255 characters (OpenID Connect Core §2).
func TestSubjectForms(t *testing.T) {
	key := newRSAKey(t, "oidc-rs", 1)
	f, _, iss := oidcFixture(t, key, "RS256")
	sb := f.supabaseClaims("u")
	id := subject("u")
	for _, bad := range []string{"firebase:" + id, "u-1", "urn:uuid:" + id, "{" + id + "}", strings.ToUpper(id), strings.ReplaceAll(id, "-", "")} {
		_, err := f.v.Verify(t.Context(), f.sbES.sign(t, with(sb, "sub", bad), nil))
		wantCode(t, err, CodeClaimInvalid)
	}
	mustVerify(t, f.v, key.sign(t, f.oidcClaims(iss, strings.Repeat("s", 255)), nil))
	_, err := f.v.Verify(t.Context(), key.sign(t, f.oidcClaims(iss, strings.Repeat("s", 256)), nil))
	wantCode(t, err, CodeClaimInvalid)
}

// TestEdDSAUnderItsRegisteredName: an issuer allowing "EdDSA" (RFC 8037's
// name, as JOSE registers it) verifies Ed25519 tokens.
func TestEdDSAUnderItsRegisteredName(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key := &testKey{kid: "ed", method: jwt.SigningMethodEdDSA, priv: priv, jwk: map[string]any{
		"kty": "OKP", "crv": "Ed25519", "x": b64(pub), "kid": "ed", "alg": "EdDSA", "use": "sig",
	}}
	f, _, iss := oidcFixture(t, key, "EdDSA")
	p := mustVerify(t, f.v, key.sign(t, f.oidcClaims(iss, "ed-user"), nil))
	if p.Provider != gymbro.ProviderOIDC || p.ProviderUID != "ed-user" {
		t.Errorf("principal %+v", p)
	}
	if _, err := New(Config{Issuers: []Issuer{OIDCIssuer(iss, "a", "https://x/jwks", []string{"EDDSA"})}}); err == nil {
		t.Error(`"EDDSA" (not the registered name) was accepted`)
	}
}
