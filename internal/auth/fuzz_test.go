package auth

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/testenv"
)

// FuzzVerify feeds Verify arbitrary strings: it must never panic, must
// return a principal or a *gymbro.Error with a known code (never both), and
// must keep the token out of the error and the log line.
//
//	go test -run '^$' -fuzz FuzzVerify -fuzztime 10s ./internal/auth
func FuzzVerify(f *testing.F) {
	logs := &testenv.LogBuffer{}
	fx := newFixture(f, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(logs, nil)) })
	sb := fx.supabaseClaims("user-1")
	good := []string{
		fx.sbES.sign(f, sb, nil),
		fx.sbRS.sign(f, sb, nil),
		hs256(f, hmacSecret, sb, nil),
		fx.fbRS.sign(f, fx.firebaseClaims("user-2"), nil),
	}
	for _, tok := range good {
		f.Add(tok)
		f.Add(tok[:len(tok)/2])                    // truncated
		f.Add(tok[:strings.LastIndex(tok, ".")+1]) // no signature
		f.Add(strings.Replace(tok, ".", ".!", 1))  // bad base64
	}
	hugeHeader := `{"alg":"ES256","kid":"sb-es","x":"` + strings.Repeat("A", MaxTokenBytes) + `"}`
	for _, tok := range []string{
		"", ".", "..", "...", "a.b.c", "Bearer " + good[0],
		rawToken(hugeHeader, `{}`, nil),
		rawToken(`{"alg":"ES256","kid":"sb-es","pad":"`+strings.Repeat("A", 6000)+`"}`, `{"iss":"`+fx.supaIss+`"}`, []byte("sig")),
		rawToken(`{"alg":"none"}`, `{"iss":"`+firebaseIss+`","sub":"x"}`, nil),
		rawToken(`{"alg":"ES256","kid":"sb-es","crit":["b64"]}`, `{"iss":"`+fx.supaIss+`"}`, []byte("sig")),
		rawToken(`{"alg":"ES256","kid":{"a":1}}`, `{"iss":"`+fx.supaIss+`"}`, []byte("sig")),
		rawToken(`{"alg":"ES256","kid":"sb-es"}`, `{"iss":"`+fx.supaIss+`","aud":[[]],"exp":1e999}`, []byte("sig")),
		rawToken(`[]`, `null`, nil),
		rawToken(`{"alg":"HS256"}`, `{"iss":"`+fx.supaIss+`","aud":"authenticated","sub":"x","exp":"NaN"}`, []byte("sig")),
	} {
		f.Add(tok)
	}
	codes := map[string]bool{
		CodeTokenMalformed: true, CodeTokenTooLarge: true, CodeTokenExpired: true, CodeTokenNotYetValid: true,
		CodeSignatureInvalid: true, CodeIssuerUnknown: true, CodeAudienceMismatch: true, CodeAlgorithmNotAllowed: true,
		CodeKeyNotFound: true, CodeKidMissing: true, CodeClaimMissing: true, CodeClaimInvalid: true,
		CodeHeaderInvalid: true, CodeKeysUnavailable: true,
	}

	f.Fuzz(func(t *testing.T, token string) {
		logs.Reset()
		p, err := fx.v.Verify(context.Background(), token)
		if err == nil {
			if p == nil || p.UID == "" {
				t.Fatalf("no error and principal %v", p)
			}
			return
		}
		if p != nil {
			t.Fatalf("a principal and an error %v", err)
		}
		e, ok := err.(*gymbro.Error)
		if !ok {
			t.Fatalf("error of type %T: %v", err, err)
		}
		if !codes[e.Code] || e.Message == "" {
			t.Fatalf("unknown code or no message: %v", err)
		}
		line := logs.String()
		if strings.Count(line, "\n") != 1 || !strings.Contains(line, "code="+e.Code) {
			t.Fatalf("want one log line with the code, got %q", line)
		}
		if len(token) >= 24 && (strings.Contains(e.Error(), token) || strings.Contains(line, token)) {
			t.Fatalf("the token shows in the error or the log")
		}
	})
}
