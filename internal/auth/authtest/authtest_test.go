package authtest_test

import (
	"testing"
	"time"

	"github.com/gymbro/gymbro-api/internal/auth"
	"github.com/gymbro/gymbro-api/internal/auth/authtest"
	"github.com/gymbro/gymbro-api/internal/gymbro"
)

func TestIssuerTokensPassTheSupabaseVerifier(t *testing.T) {
	iss := authtest.NewIssuer(t)
	v, err := auth.New(auth.Config{Issuers: []auth.Issuer{auth.SupabaseIssuer(iss.URL(), nil)}})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()

	p, err := v.Verify(t.Context(), iss.TokenFor("user-1", "a@example.com", time.Hour))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if p.UID != "user-1" || p.Email != "a@example.com" || p.Provider != gymbro.ProviderSupabase ||
		p.Issuer != iss.Issuer() || p.Role != "authenticated" || p.SessionID == "" {
		t.Errorf("principal %+v", *p)
	}
	if d := time.Until(p.ExpiresAt); d < 59*time.Minute || d > time.Hour {
		t.Errorf("expires in %v, want an hour", d)
	}

	p, err = v.Verify(t.Context(), iss.Token(map[string]any{"sub": "user-2", "role": "service_role", "session_id": nil}))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if p.UID != "user-2" || p.Role != "service_role" || p.SessionID != "" {
		t.Errorf("principal %+v", *p)
	}

	_, err = v.Verify(t.Context(), iss.TokenFor("user-1", "a@example.com", -time.Hour))
	if gymbro.ErrorCode(err) != auth.CodeTokenExpired {
		t.Errorf("expired token: %v", err)
	}
	if n := iss.JWKSRequests(); n != 1 {
		t.Errorf("JWKS fetched %d times, want 1", n)
	}
	if iss.KID() == "" {
		t.Error("no kid")
	}
}

func TestIssuersHaveTheirOwnKeys(t *testing.T) {
	a, b := authtest.NewIssuer(t), authtest.NewIssuer(t)
	v, err := auth.New(auth.Config{Issuers: []auth.Issuer{auth.SupabaseIssuer(a.URL(), nil)}})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	_, err = v.Verify(t.Context(), b.Token(map[string]any{"sub": "x", "iss": a.Issuer()}))
	if err == nil {
		t.Fatal("a token of another fake issuer passed")
	}
}
