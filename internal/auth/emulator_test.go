package auth

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// emulatorFixture is newFixture with the Firebase issuer replaced by the
// Auth emulator's, at host.
func emulatorFixture(t *testing.T, host string) *fixture {
	return newFixture(t, func(c *Config) {
		c.Issuers[1] = FirebaseEmulatorIssuer(firebaseProject, host)
	})
}

// unsigned is a token as the Auth emulator makes it: header
// {"alg":"none","typ":"JWT"} (or the one given), the claims, no signature.
func unsigned(header string, claims map[string]any) string {
	return rawToken(header, mustJSON(claims), nil)
}

// TestEmulatorTokens: an emulator issuer accepts the emulator's unsigned
// tokens, as Firebase's Admin SDKs do with FIREBASE_AUTH_EMULATOR_HOST,
// and only those, still checking every claim (it has no key set to fetch:
// TestNew refuses one), and the Supabase issuer beside it still refuses
// alg none.
func TestEmulatorTokens(t *testing.T) {
	f := emulatorFixture(t, "127.0.0.1:9099")
	now := f.clock.Now()
	fb := map[string]any(f.firebaseClaims("emuUser1"))
	beyond := DefaultLeeway + time.Second
	none := `{"alg":"none","typ":"JWT"}`

	p := mustVerify(t, f.v, unsigned(none, fb))
	if p.Provider != gymbro.ProviderFirebase || p.Issuer != firebaseIss || p.ProviderUID != "emuUser1" {
		t.Errorf("principal %+v", p)
	}
	mustVerify(t, f.v, unsigned(`{"alg":"none"}`, fb))

	tests := []struct {
		name  string
		token string
		code  string
	}{
		{"a kid", unsigned(`{"alg":"none","kid":"fb-rs"}`, fb), CodeHeaderInvalid},
		{"a signature", rawToken(none, mustJSON(fb), []byte("sig")), CodeSignatureInvalid},
		{"RS256, signed with a real key", f.fbRS.sign(t, f.firebaseClaims("emuUser1"), nil), CodeAlgorithmNotAllowed},
		{"RS256 without kid", f.fbRS.sign(t, f.firebaseClaims("emuUser1"), map[string]any{"kid": nil}), CodeAlgorithmNotAllowed},
		{"alg None", unsigned(`{"alg":"None"}`, fb), CodeAlgorithmNotAllowed},
		{"alg missing", unsigned(`{"typ":"JWT"}`, fb), CodeAlgorithmNotAllowed},
		{"alg not a string", unsigned(`{"alg":["none"]}`, fb), CodeAlgorithmNotAllowed},
		{"crit", unsigned(`{"alg":"none","crit":["x"]}`, fb), CodeHeaderInvalid},
		{"another project's aud", unsigned(none, with(fb, "aud", "other-project")), CodeAudienceMismatch},
		{"expired", unsigned(none, with(fb, "exp", now.Add(-beyond).Unix())), CodeTokenExpired},
		{"no exp", unsigned(none, with(fb, "exp", nil)), CodeClaimMissing},
		{"iat in the future", unsigned(none, with(fb, "iat", now.Add(beyond).Unix())), CodeTokenNotYetValid},
		{"no sub", unsigned(none, with(fb, "sub", nil)), CodeClaimMissing},
		{"empty sub", unsigned(none, with(fb, "sub", "")), CodeClaimMissing},
		{"sub of 129 characters", unsigned(none, with(fb, "sub", strings.Repeat("a", 129))), CodeClaimInvalid},
		{"no auth_time", unsigned(none, with(fb, "auth_time", nil)), CodeClaimMissing},
		{"auth_time in the future", unsigned(none, with(fb, "auth_time", now.Add(beyond).Unix())), CodeClaimInvalid},
		{"Supabase iss, alg none", unsigned(none, f.supabaseClaims("u")), CodeAlgorithmNotAllowed},
		{"unknown iss, alg none", unsigned(none, with(fb, "iss", "https://securetoken.google.com/other")), CodeIssuerUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.v.Verify(t.Context(), tt.token)
			wantCode(t, err, tt.code)
		})
	}
}

// TestEmulatorReadiness: readiness asks the emulator, not a key set; an
// emulator that does not answer is keys_unavailable. (That a running one
// passes is tested against the real emulator in package firebase.)
func TestEmulatorReadiness(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := l.Addr().String()
	l.Close() // nothing listens there now
	f := emulatorFixture(t, host)
	err = f.v.Check(t.Context())
	wantCode(t, err, CodeKeysUnavailable)
	if !strings.Contains(fmt.Sprint(err), host) {
		t.Errorf("the readiness error does not name the emulator: %v", err)
	}
}
