package auth

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/testenv"
)

// TestVerifyPrincipal: each provider's token yields its principal, with the
// token's claims kept for the handlers.
func TestVerifyPrincipal(t *testing.T) {
	f := newFixture(t)
	sb := f.supabaseClaims("5f1c1f9e-user")
	fb := f.firebaseClaims("fbUser123")
	for _, c := range []struct {
		name   string
		token  string
		want   *gymbro.Principal
		claims func(p *gymbro.Principal) bool // the token's own claims are there
	}{
		{"supabase", f.sbES.sign(t, sb, nil), &gymbro.Principal{
			UID: subject("5f1c1f9e-user"), ProviderUID: subject("5f1c1f9e-user"), Email: "5f1c1f9e-user@example.com", Provider: gymbro.ProviderSupabase,
			Issuer: f.supaIss, SessionID: "7b0d5ad4-0c52-4a8e-9d55-5c8f2b4a0e11", Role: "authenticated",
			ExpiresAt: time.Unix(sb["exp"].(int64), 0),
		}, func(p *gymbro.Principal) bool {
			return p.Claims["aal"] == "aal1" && p.Claims["app_metadata"].(map[string]any)["provider"] == "email"
		}},
		{"firebase", f.fbRS.sign(t, fb, nil), &gymbro.Principal{
			UID: "firebase:fbUser123", ProviderUID: "fbUser123", Email: "fbUser123@example.com", EmailVerified: true,
			Provider: gymbro.ProviderFirebase, Issuer: firebaseIss, ExpiresAt: time.Unix(fb["exp"].(int64), 0),
			AuthTime: time.Unix(fb["auth_time"].(int64), 0),
		}, func(p *gymbro.Principal) bool {
			return p.Claims["firebase"].(map[string]any)["sign_in_provider"] == "password"
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := mustVerify(t, f.v, c.token)
			if diff := cmp.Diff(c.want, p, cmp.FilterPath(func(p cmp.Path) bool { return p.String() == "Claims" }, cmp.Ignore())); diff != "" {
				t.Errorf("principal (-want +got):\n%s", diff)
			}
			if !c.claims(p) {
				t.Errorf("Claims lack the token's claims: %v", p.Claims)
			}
		})
	}
}

func TestVerifyAccepts(t *testing.T) {
	f := newFixture(t)
	now := f.clock.Now()
	sb := f.supabaseClaims("user-1")
	fb := f.firebaseClaims("user-2")
	leeway := DefaultLeeway - time.Second
	tests := []struct {
		name  string
		token string
	}{
		{"supabase ES256", f.sbES.sign(t, sb, nil)},
		{"supabase RS256", f.sbRS.sign(t, sb, nil)},
		{"supabase legacy HS256 without kid", hs256(t, hmacSecret, sb, nil)},
		{"supabase legacy HS256 with a kid", hs256(t, hmacSecret, sb, map[string]any{"kid": "legacy"})},
		{"firebase RS256", f.fbRS.sign(t, fb, nil)},
		{"aud array with one match", f.sbES.sign(t, with(sb, "aud", []any{"other", "authenticated"}), nil)},
		{"expired within leeway", f.sbES.sign(t, with(sb, "exp", now.Add(-leeway).Unix()), nil)},
		{"nbf within leeway", f.sbES.sign(t, with(sb, "nbf", now.Add(leeway).Unix()), nil)},
		{"iat within leeway", f.sbES.sign(t, with(sb, "iat", now.Add(leeway).Unix()), nil)},
		{"no iat", f.sbES.sign(t, with(sb, "iat", nil), nil)},
		{"fractional exp", f.sbES.sign(t, with(sb, "exp", float64(now.Add(time.Hour).Unix())+0.5), nil)},
		{"no email (phone sign-in)", f.sbES.sign(t, with(sb, "email", nil), nil)},
		{"typ header absent", f.sbES.sign(t, sb, map[string]any{"typ": nil})},
		{"firebase sub of 128 characters", f.fbRS.sign(t, with(fb, "sub", strings.Repeat("a", 128)), nil)},
		{"firebase auth_time within leeway", f.fbRS.sign(t, with(fb, "auth_time", now.Add(leeway).Unix()), nil)},
		{"kid of the same name in both issuers, own key", f.fbShared.sign(t, fb, nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustVerify(t, f.v, tt.token)
		})
	}
	if n := len(logLines(f.logs)); n != 0 {
		t.Errorf("accepted tokens logged %d lines:\n%s", n, f.logs)
	}
}

func TestVerifyRejects(t *testing.T) {
	f := newFixture(t)
	now := f.clock.Now()
	sb := f.supabaseClaims("user-1")
	fb := f.firebaseClaims("user-2")
	beyond := DefaultLeeway + time.Second

	rsaPub, err := x509.MarshalPKIXPublicKey(f.sbRS.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rsaPub})
	fbPub, _ := x509.MarshalPKIXPublicKey(f.fbRS.priv.Public())
	good := f.sbES.sign(t, sb, nil)
	goodParts := strings.Split(good, ".")
	other := newECKey(t, "sb-es") // another key under a published kid
	sbJSON := `{"iss":"` + f.supaIss + `","aud":"authenticated","sub":"u","exp":` + fmt.Sprint(now.Add(time.Hour).Unix()) + `}`
	fbJSON := `{"iss":"` + firebaseIss + `","aud":"` + firebaseProject + `","sub":"u","user_id":"u","auth_time":` +
		fmt.Sprint(now.Unix()) + `,"exp":` + fmt.Sprint(now.Add(time.Hour).Unix()) + `}`

	tests := []struct {
		name  string
		token string
		code  string
	}{
		// Shape.
		{"over 8 KiB", f.sbES.sign(t, with(sb, "pad", strings.Repeat("x", MaxTokenBytes)), nil), CodeTokenTooLarge},
		{"empty", "", CodeTokenMalformed},
		{"two parts", goodParts[0] + "." + goodParts[1], CodeTokenMalformed},
		{"four parts", good + ".x", CodeTokenMalformed},
		{"header not base64url", "!!!." + goodParts[1] + "." + goodParts[2], CodeTokenMalformed},
		{"header with padding", goodParts[0] + "=." + goodParts[1] + "." + goodParts[2], CodeTokenMalformed},
		{"header not JSON", b64([]byte("not json")) + "." + goodParts[1] + "." + goodParts[2], CodeTokenMalformed},
		{"claims not an object", rawToken(`{"alg":"ES256","kid":"sb-es"}`, `[1,2]`, []byte("sig")), CodeTokenMalformed},
		{"signature not base64url", goodParts[0] + "." + goodParts[1] + ".***", CodeTokenMalformed},
		// Algorithms.
		{"alg none (Firebase emulator token)", rawToken(`{"alg":"none","typ":"JWT"}`, fbJSON, nil), CodeAlgorithmNotAllowed},
		{"alg none with a kid", rawToken(`{"alg":"none","kid":"sb-es"}`, sbJSON, nil), CodeAlgorithmNotAllowed},
		{"alg None", rawToken(`{"alg":"None","kid":"sb-es"}`, sbJSON, nil), CodeAlgorithmNotAllowed},
		{"alg missing", rawToken(`{"kid":"sb-es"}`, sbJSON, []byte("sig")), CodeAlgorithmNotAllowed},
		{"alg unknown", rawToken(`{"alg":"XS256","kid":"sb-es"}`, sbJSON, []byte("sig")), CodeAlgorithmNotAllowed},
		{"ES256 to an RS256-only issuer", f.sbES.sign(t, fb, map[string]any{"kid": "fb-rs"}), CodeAlgorithmNotAllowed},
		{"HS256 signed with the issuer's public key, issuer without secret",
			hs256(t, fbPub, fb, map[string]any{"kid": "fb-rs"}), CodeAlgorithmNotAllowed},
		{"HS256 signed with the issuer's public key PEM, issuer with secret",
			hs256(t, rsaPEM, sb, map[string]any{"kid": "sb-rs"}), CodeSignatureInvalid},
		{"RS256 header on an ES256 key", rawToken(`{"alg":"RS256","kid":"sb-es"}`, sbJSON, make([]byte, 256)), CodeAlgorithmNotAllowed},
		{"ES256 header on an RS256 key", rawToken(`{"alg":"ES256","kid":"sb-rs"}`, sbJSON, make([]byte, 64)), CodeAlgorithmNotAllowed},
		// Header.
		{"crit with an extension", f.sbES.sign(t, sb, map[string]any{"crit": []string{"b64"}, "b64": false}), CodeHeaderInvalid},
		{"crit naming exp", f.sbES.sign(t, sb, map[string]any{"crit": []string{"exp"}, "exp": 1}), CodeHeaderInvalid},
		{"crit empty", f.sbES.sign(t, sb, map[string]any{"crit": []string{}}), CodeHeaderInvalid},
		{"no kid", f.sbES.sign(t, sb, map[string]any{"kid": nil}), CodeKidMissing},
		{"empty kid", f.sbES.sign(t, sb, map[string]any{"kid": ""}), CodeKidMissing},
		{"kid not a string", f.sbES.sign(t, sb, map[string]any{"kid": 7}), CodeHeaderInvalid},
		{"unknown kid", f.sbES.sign(t, sb, map[string]any{"kid": "nope"}), CodeKeyNotFound},
		// Cross-issuer key confusion: keys of one issuer never vouch for another.
		{"Firebase kid claiming Supabase", f.fbRS.sign(t, sb, nil), CodeKeyNotFound},
		{"Supabase kid claiming Firebase", f.sbRS.sign(t, fb, nil), CodeKeyNotFound},
		{"Firebase key under a kid both publish, claiming Supabase", f.fbShared.sign(t, sb, nil), CodeSignatureInvalid},
		// Signature.
		{"payload changed", goodParts[0] + "." + b64([]byte(`{"iss":"`+f.supaIss+`","sub":"admin"}`)) + "." + goodParts[2], CodeSignatureInvalid},
		{"signature cut", good[:len(good)-2], CodeSignatureInvalid},
		{"another key under the kid", other.sign(t, sb, nil), CodeSignatureInvalid},
		{"HS256 with another secret", hs256(t, []byte(strings.Repeat("s", 40)), sb, nil), CodeSignatureInvalid},
		{"expired and forged: the signature speaks first", other.sign(t, with(sb, "exp", now.Add(-time.Hour).Unix()), nil), CodeSignatureInvalid},
		// Issuer.
		{"no iss", f.sbES.sign(t, with(sb, "iss", nil), nil), CodeIssuerUnknown},
		{"unknown iss", f.sbES.sign(t, with(sb, "iss", "https://evil.example/auth/v1"), nil), CodeIssuerUnknown},
		{"iss with a trailing slash", f.sbES.sign(t, with(sb, "iss", f.supaIss+"/"), nil), CodeIssuerUnknown},
		{"iss not a string", f.sbES.sign(t, with(sb, "iss", 5), nil), CodeClaimInvalid},
		// Audience.
		{"wrong aud", f.sbES.sign(t, with(sb, "aud", "anon"), nil), CodeAudienceMismatch},
		{"aud array without a match", f.sbES.sign(t, with(sb, "aud", []any{"a", "b"}), nil), CodeAudienceMismatch},
		{"empty aud array", f.sbES.sign(t, with(sb, "aud", []any{}), nil), CodeAudienceMismatch},
		{"no aud", f.sbES.sign(t, with(sb, "aud", nil), nil), CodeClaimMissing},
		{"aud a number", f.sbES.sign(t, with(sb, "aud", 1), nil), CodeClaimInvalid},
		{"aud array of numbers", f.sbES.sign(t, with(sb, "aud", []any{1}), nil), CodeClaimInvalid},
		{"another project's Firebase aud", f.fbRS.sign(t, with(fb, "aud", "other-project"), nil), CodeAudienceMismatch},
		// Times.
		{"expired beyond leeway", f.sbES.sign(t, with(sb, "exp", now.Add(-beyond).Unix()), nil), CodeTokenExpired},
		{"no exp", f.sbES.sign(t, with(sb, "exp", nil), nil), CodeClaimMissing},
		{"exp a string", f.sbES.sign(t, with(sb, "exp", "tomorrow"), nil), CodeClaimInvalid},
		{"exp negative", f.sbES.sign(t, with(sb, "exp", -1), nil), CodeClaimInvalid},
		{"exp past year 9999", f.sbES.sign(t, with(sb, "exp", 1e300), nil), CodeClaimInvalid},
		{"nbf beyond leeway", f.sbES.sign(t, with(sb, "nbf", now.Add(beyond).Unix()), nil), CodeTokenNotYetValid},
		{"nbf a string", f.sbES.sign(t, with(sb, "nbf", "now"), nil), CodeClaimInvalid},
		{"iat beyond leeway", f.sbES.sign(t, with(sb, "iat", now.Add(beyond).Unix()), nil), CodeTokenNotYetValid},
		{"iat a bool", f.sbES.sign(t, with(sb, "iat", true), nil), CodeClaimInvalid},
		// Subject and other claims.
		{"no sub", f.sbES.sign(t, with(sb, "sub", nil), nil), CodeClaimMissing},
		{"empty sub", f.sbES.sign(t, with(sb, "sub", ""), nil), CodeClaimMissing},
		{"sub a number", f.sbES.sign(t, with(sb, "sub", 42), nil), CodeClaimInvalid},
		{"email a number", f.sbES.sign(t, with(sb, "email", 42), nil), CodeClaimInvalid},
		{"role an object", f.sbES.sign(t, with(sb, "role", map[string]any{}), nil), CodeClaimInvalid},
		{"firebase sub of 129 characters", f.fbRS.sign(t, with(fb, "sub", strings.Repeat("a", 129)), nil), CodeClaimInvalid},
		{"firebase without auth_time", f.fbRS.sign(t, with(fb, "auth_time", nil), nil), CodeClaimMissing},
		{"firebase auth_time in the future", f.fbRS.sign(t, with(fb, "auth_time", now.Add(beyond).Unix()), nil), CodeClaimInvalid},
		{"firebase auth_time a string", f.fbRS.sign(t, with(fb, "auth_time", "x"), nil), CodeClaimInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(logLines(f.logs))
			p, err := f.v.Verify(t.Context(), tt.token)
			if p != nil {
				t.Errorf("got a principal %v", p)
			}
			wantError(t, err, gymbro.KindUnauthenticated, tt.code, tt.token)
			lines := logLines(f.logs)[before:]
			if len(lines) != 1 || !strings.Contains(lines[0], "level=WARN") || !strings.Contains(lines[0], "code="+tt.code) {
				t.Errorf("want one Warn line with code=%s, got %q", tt.code, lines)
			}
		})
	}
	assertNoTokenInLogs(t, f.logs.String(), func(yield func(string) bool) {
		for _, tt := range tests {
			if !yield(tt.token) {
				return
			}
		}
	})
}

// assertNoTokenInLogs fails if the logs hold any token, or the signature or
// the claims part of one.
func assertNoTokenInLogs(t *testing.T, logs string, tokens func(func(string) bool)) {
	t.Helper()
	if logs == "" {
		t.Fatal("nothing was logged")
	}
	for tok := range tokens {
		for i, part := range strings.Split(tok, ".") {
			if len(part) >= 16 && strings.Contains(logs, part) {
				t.Fatalf("the logs hold part %d of a token", i)
			}
		}
	}
}

func TestHMACOnlyWhenTheIssuerHasASecret(t *testing.T) {
	// A Supabase project without the legacy secret takes no HS256 at all,
	// not even one signed with the bytes of its own public key.
	f := newFixture(t, func(c *Config) {
		c.Issuers[0] = SupabaseIssuer(strings.TrimSuffix(c.Issuers[0].JWKSURL, "/auth/v1/.well-known/jwks.json"), nil)
	})
	sb := f.supabaseClaims("u")
	der, _ := x509.MarshalPKIXPublicKey(f.sbRS.priv.Public())
	for name, key := range map[string][]byte{"secret": hmacSecret, "public key DER": der, "jwk n": []byte(f.sbRS.jwk["n"].(string))} {
		t.Run(name, func(t *testing.T) {
			_, err := f.v.Verify(t.Context(), hs256(t, key, sb, map[string]any{"kid": "sb-rs"}))
			wantCode(t, err, CodeAlgorithmNotAllowed)
		})
	}
}

func TestKeyURLHeadersAreNeverFetched(t *testing.T) {
	f := newFixture(t)
	var hits atomic.Int64
	evilKey := newECKey(t, "evil")
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		fmt.Fprintf(w, `{"keys":[%s]}`, mustJSON(evilKey.jwk))
	}))
	defer evil.Close()
	sb := f.supabaseClaims("u")
	for name, header := range map[string]map[string]any{
		"jku":            {"jku": evil.URL},
		"x5u":            {"x5u": evil.URL},
		"jwk":            {"jwk": evilKey.jwk},
		"jku and no kid": {"jku": evil.URL, "kid": nil},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := f.v.Verify(t.Context(), evilKey.sign(t, sb, header))
			if err == nil {
				t.Fatal("a token signed by a key it carries itself was accepted")
			}
		})
	}
	if hits.Load() != 0 {
		t.Errorf("the URL in a token header was fetched %d times", hits.Load())
	}
	// The same headers on a token signed by the real key change nothing.
	mustVerify(t, f.v, f.sbES.sign(t, sb, map[string]any{"jku": evil.URL, "x5u": evil.URL}))
}

func TestErrorsAreFreshValues(t *testing.T) {
	f := newFixture(t)
	_, err1 := f.v.Verify(t.Context(), "x")
	_, err2 := f.v.Verify(t.Context(), "x")
	err1.(*gymbro.Error).Message = "changed by a caller"
	if err2.(*gymbro.Error).Message == "changed by a caller" {
		t.Error("two calls share one error value")
	}
}

func TestNew(t *testing.T) {
	sb := SupabaseIssuer("https://abc.supabase.co", nil)
	tests := []struct {
		name   string
		change func(*Issuer)
		ok     bool
	}{
		{"supabase", func(*Issuer) {}, true},
		{"supabase with secret", func(i *Issuer) { *i = SupabaseIssuer("https://abc.supabase.co/", hmacSecret) }, true},
		{"firebase", func(i *Issuer) { *i = FirebaseIssuer("p", "") }, true},
		{"alg none", func(i *Issuer) { i.Algorithms = []string{"none"} }, false},
		{"unknown alg", func(i *Issuer) { i.Algorithms = []string{"ES256", "XS1"} }, false},
		{"HS256 without secret", func(i *Issuer) { i.Algorithms = append(i.Algorithms, "HS256") }, false},
		{"short secret", func(i *Issuer) { i.Algorithms = []string{"HS256"}; i.HMACSecret = []byte("short"); i.JWKSURL = "" }, false},
		{"secret without HS alg", func(i *Issuer) { i.HMACSecret = hmacSecret }, false},
		{"no JWKS URL", func(i *Issuer) { i.JWKSURL = "" }, false},
		{"JWKS URL not http", func(i *Issuer) { i.JWKSURL = "file:///etc/keys" }, false},
		{"no audience", func(i *Issuer) { i.Audiences = nil }, false},
		{"no iss", func(i *Issuer) { i.Issuer = "" }, false},
		{"unknown provider", func(i *Issuer) { i.Provider = "okta" }, false},
		{"HMAC only", func(i *Issuer) { i.Algorithms = []string{"HS256"}; i.HMACSecret = hmacSecret; i.JWKSURL = "" }, true},
		{"firebase emulator", func(i *Issuer) { *i = FirebaseEmulatorIssuer("p", "127.0.0.1:9099") }, true},
		{"emulator of a Supabase issuer", func(i *Issuer) { i.EmulatorHost = "127.0.0.1:9099"; i.Algorithms, i.JWKSURL = nil, "" }, false},
		{"emulator with algorithms", func(i *Issuer) { *i = FirebaseEmulatorIssuer("p", "127.0.0.1:9099"); i.Algorithms = []string{"RS256"} }, false},
		{"emulator with a JWKS URL", func(i *Issuer) { *i = FirebaseEmulatorIssuer("p", "127.0.0.1:9099"); i.JWKSURL = FirebaseJWKSURL }, false},
		{"emulator host without port", func(i *Issuer) { *i = FirebaseEmulatorIssuer("p", "localhost") }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iss := sb
			iss.Algorithms = append([]string(nil), sb.Algorithms...)
			tt.change(&iss)
			v, err := New(Config{Issuers: []Issuer{iss}})
			if (err == nil) != tt.ok {
				t.Fatalf("New: %v, want ok %v", err, tt.ok)
			}
			if v != nil {
				v.Close()
			}
		})
	}
	if _, err := New(Config{}); err == nil {
		t.Error("New accepted no issuers")
	}
	if _, err := New(Config{Issuers: []Issuer{sb, sb}}); err == nil {
		t.Error("New accepted one issuer twice")
	}
}

func TestIssuerDefaults(t *testing.T) {
	sb := SupabaseIssuer("https://abc.supabase.co/", nil)
	want := Issuer{Provider: gymbro.ProviderSupabase, Issuer: "https://abc.supabase.co/auth/v1", Audiences: []string{"authenticated"},
		JWKSURL: "https://abc.supabase.co/auth/v1/.well-known/jwks.json", Algorithms: []string{"ES256", "RS256"}}
	if diff := cmp.Diff(want, sb); diff != "" {
		t.Errorf("SupabaseIssuer (-want +got):\n%s", diff)
	}
	if got := SupabaseIssuer("https://abc.supabase.co", hmacSecret).Algorithms; !cmp.Equal(got, []string{"ES256", "RS256", "HS256"}) {
		t.Errorf("SupabaseIssuer with secret allows %v", got)
	}
	fb := FirebaseIssuer("proj", "")
	want = Issuer{Provider: gymbro.ProviderFirebase, Issuer: "https://securetoken.google.com/proj", Audiences: []string{"proj"},
		JWKSURL: FirebaseJWKSURL, Algorithms: []string{"RS256"}, RequireAuthTime: true, MaxSubjectLen: 128}
	if diff := cmp.Diff(want, fb); diff != "" {
		t.Errorf("FirebaseIssuer (-want +got):\n%s", diff)
	}
	if got := FirebaseIssuer("proj", "http://127.0.0.1:9/k").JWKSURL; got != "http://127.0.0.1:9/k" {
		t.Errorf("FirebaseIssuer ignored its JWKS URL: %s", got)
	}
	want = Issuer{Provider: gymbro.ProviderFirebase, Issuer: "https://securetoken.google.com/proj", Audiences: []string{"proj"},
		RequireAuthTime: true, MaxSubjectLen: 128, EmulatorHost: "127.0.0.1:9099"}
	if diff := cmp.Diff(want, FirebaseEmulatorIssuer("proj", "127.0.0.1:9099")); diff != "" {
		t.Errorf("FirebaseEmulatorIssuer (-want +got):\n%s", diff)
	}
}

func TestIssuerSecretNeverPrinted(t *testing.T) {
	iss := SupabaseIssuer("https://abc.supabase.co", hmacSecret)
	var logs testenv.LogBuffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("config", "issuer", iss, "cfg", Config{Issuers: []Issuer{iss}})
	for _, s := range []string{fmt.Sprint(iss), fmt.Sprintf("%v %+v %#v %s", iss, iss, iss, iss), fmt.Sprintf("%+v", Config{Issuers: []Issuer{iss}}), logs.String()} {
		if strings.Contains(s, string(hmacSecret)) || strings.Contains(s, fmt.Sprint(hmacSecret[:8])) {
			t.Errorf("the secret shows in %q", s)
		}
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestLogLinesBoundWhatTheSenderChose(t *testing.T) {
	f := newFixture(t)
	longIss := strings.Repeat("é", 500)
	_, err := f.v.Verify(t.Context(), f.sbES.sign(t, with(f.supabaseClaims("u"), "iss", longIss), map[string]any{"kid": strings.Repeat("k", 500)}))
	wantCode(t, err, CodeIssuerUnknown)
	line := f.logs.String()
	if len(line) > 400 || !strings.Contains(line, "…") || !utf8.ValidString(line) {
		t.Errorf("log line of %d bytes: %s", len(line), line)
	}
}
