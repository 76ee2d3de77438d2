package testusers_test

import (
	"testing"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/supabase"
	"github.com/gymbro/gymbro-api/internal/testusers"
)

// TestOperatorsAreVouchedForByTheirOwnProvider: in production a uid entry
// names a Supabase user only, an email entry a Supabase user whose own
// confirmed address it is, and issuer|sub a user of that issuer only. A
// token of another issuer with the operator's sub or (even verified) email
// is no operator, nor is a Supabase user who has not confirmed the address
// or whose address has changed since.
func TestOperatorsAreVouchedForByTheirOwnProvider(t *testing.T) {
	e := newEnv(t, nil)
	byUID := e.supabaseUser(t, "uid-op@gymbro.cloud", true)
	byEmail := e.supabaseUser(t, "Ops@GymBro.Cloud", true)
	unconfirmed := e.supabaseUser(t, "pending@gymbro.cloud", false)
	moved := e.supabaseUser(t, "moved@gymbro.cloud", true)
	if _, err := e.admin.UpdateUser(t.Context(), moved.UID, supabase.AdminUserParams{Email: "elsewhere@example.com", EmailConfirm: true}); err != nil {
		t.Fatal(err)
	}
	const oidcIss = "https://login.example.com/realms/gym"
	s := e.newService(t, func(o *testusers.Options) {
		o.Production = true
		o.Admins = []string{byUID.UID, "ops@gymbro.cloud", "pending@gymbro.cloud", "moved@gymbro.cloud", oidcIss + "|ops-7"}
	})
	firebase := func(sub, email string) *gymbro.Principal {
		return &gymbro.Principal{UID: "firebase:" + sub, ProviderUID: sub, Email: email, EmailVerified: true,
			Provider: gymbro.ProviderFirebase, Issuer: "https://securetoken.google.com/gym"}
	}
	oidc := func(sub, email string) *gymbro.Principal {
		return &gymbro.Principal{UID: gymbro.UserID(gymbro.ProviderOIDC, oidcIss, sub), ProviderUID: sub, Email: email,
			EmailVerified: true, Provider: gymbro.ProviderOIDC, Issuer: oidcIss}
	}
	otherProject := *byUID
	otherProject.Issuer = "https://other.supabase.co/auth/v1"

	for _, c := range []struct {
		name string
		p    *gymbro.Principal
		ok   bool
	}{
		{"Supabase uid", byUID, true},
		{"Supabase confirmed email, any case", byEmail, true},
		{"issuer|sub", oidc("ops-7", ""), true},
		{"Firebase token with the operator's uid as sub", firebase(byUID.UID, ""), false},
		{"Firebase token with the operator's verified email", firebase("attacker", "ops@gymbro.cloud"), false},
		{"OIDC token with the operator's email", oidc("attacker", "Ops@GymBro.Cloud"), false},
		{"OIDC token with the operator's uid as sub", oidc(byUID.UID, ""), false},
		{"Firebase token with the issuer|sub entry's sub", firebase("ops-7", ""), false},
		{"Supabase user with the email unconfirmed", unconfirmed, false},
		{"Supabase user whose address changed since", moved, false},
		{"a Supabase uid of another project", &otherProject, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.Create(t.Context(), c.p, gymbro.TestUserRequest{UsernamePrefix: "gymbro-test"})
			if c.ok && err != nil {
				t.Fatalf("an operator was refused: %v", err)
			}
			if !c.ok && gymbro.ErrorCode(err) != testusers.CodeNotOperator {
				t.Fatalf("got %v, want not_an_operator", err)
			}
		})
	}
}

// TestAnotherIssuersEmailCannotReuse: in development, where anyone may make
// test users, only the creator or an operator may reuse one (which resets
// its password and ends its sessions); a Firebase token carrying the
// operator's email is neither.
func TestAnotherIssuersEmailCannotReuse(t *testing.T) {
	e := newEnv(t, nil)
	s := e.newService(t, func(o *testusers.Options) { o.Admins = []string{"ops@gymbro.cloud"} })
	mine := create(t, s, "gymbro-test")
	fake := &gymbro.Principal{UID: "firebase:attacker", ProviderUID: "attacker", Email: "ops@gymbro.cloud", EmailVerified: true,
		Provider: gymbro.ProviderFirebase, Issuer: "https://securetoken.google.com/gym"}
	_, err := s.Create(t.Context(), fake, gymbro.TestUserRequest{UsernamePrefix: mine.Username})
	wantErr(t, err, gymbro.KindForbidden, testusers.CodeNotYours)
	if _, err := e.admin.SignInWithPassword(t.Context(), mine.Email, mine.Password); err != nil {
		t.Fatalf("the owner's password no longer works: %v", err)
	}
}
