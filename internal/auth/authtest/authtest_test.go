package authtest_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

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

	user1, user2 := uuid.NewString(), uuid.NewString()
	p, err := v.Verify(t.Context(), iss.TokenFor(user1, "a@example.com", time.Hour))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if p.UID != user1 || p.Email != "a@example.com" || p.Provider != gymbro.ProviderSupabase ||
		p.Issuer != iss.Issuer() || p.Role != "authenticated" || p.SessionID == "" {
		t.Errorf("principal %+v", *p)
	}
	if d := time.Until(p.ExpiresAt); d < 59*time.Minute || d > time.Hour {
		t.Errorf("expires in %v, want an hour", d)
	}

	p, err = v.Verify(t.Context(), iss.Token(map[string]any{"sub": user2, "role": "service_role", "session_id": nil}))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if p.UID != user2 || p.Role != "service_role" || p.SessionID != "" {
		t.Errorf("principal %+v", *p)
	}

	_, err = v.Verify(t.Context(), iss.TokenFor(user1, "a@example.com", -time.Hour))
	if gymbro.ErrorCode(err) != auth.CodeTokenExpired {
		t.Errorf("expired token: %v", err)
	}
	if n := iss.JWKSRequests(); n != 1 {
		t.Errorf("JWKS fetched %d times, want 1", n)
	}
	if iss.KID() == "" {
		t.Error("no kid")
	}
	if n := iss.Requests(); n != 1 {
		t.Errorf("%d requests in all, want the one JWKS fetch", n)
	}
}

// TestRSAKeysMintFirebaseAndOIDCTokens: one sub from Firebase and from an
// OIDC issuer are two users, neither the Supabase user of that id.
func TestRSAKeysMintFirebaseAndOIDCTokens(t *testing.T) {
	fb, oidc := authtest.NewRSAKeys(t), authtest.NewRSAKeys(t)
	v, err := auth.New(auth.Config{Issuers: []auth.Issuer{
		auth.FirebaseIssuer("gym", fb.JWKSURL()),
		auth.OIDCIssuer(oidc.URL(), "gym-app", oidc.JWKSURL(), []string{"RS256"}),
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	sub := uuid.NewString()
	p, err := v.Verify(t.Context(), fb.FirebaseToken("gym", sub, "a@example.com", false))
	if err != nil || p.UID != "firebase:"+sub || p.ProviderUID != sub || p.EmailVerified || p.AuthTime.IsZero() {
		t.Fatalf("firebase: %+v, %v", p, err)
	}
	p, err = v.Verify(t.Context(), oidc.OIDCToken("gym-app", sub, "a@example.com"))
	if err != nil || p.UID != gymbro.UserID(gymbro.ProviderOIDC, oidc.URL(), sub) || p.ProviderUID != sub || !p.EmailVerified {
		t.Fatalf("oidc: %+v, %v", p, err)
	}
	if fb.Requests() != 1 || oidc.Requests() != 1 {
		t.Errorf("key sets fetched %d and %d times", fb.Requests(), oidc.Requests())
	}
}

func TestIssuersHaveTheirOwnKeys(t *testing.T) {
	a, b := authtest.NewIssuer(t), authtest.NewIssuer(t)
	v, err := auth.New(auth.Config{Issuers: []auth.Issuer{auth.SupabaseIssuer(a.URL(), nil)}})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	_, err = v.Verify(t.Context(), b.Token(map[string]any{"sub": uuid.NewString(), "iss": a.Issuer()}))
	if err == nil {
		t.Fatal("a token of another fake issuer passed")
	}
}
