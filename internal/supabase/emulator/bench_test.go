package emulator_test

import (
	"context"
	"testing"

	"github.com/gymbro/gymbro-api/internal/supabase"
)

// signedUp starts an emulator with one signed-up user and returns a client
// of it and the user's session.
func signedUp(b *testing.B) (*supabase.AuthClient, *supabase.Session) {
	b.Helper()
	c := newServer(b).client()
	return c, signUp(b, c, "bench@example.com", "squat-123")
}

// BenchmarkRefreshSession measures one refresh-token rotation over HTTP:
// the SQLite transaction, an ES256 signature and the JSON round trip.
func BenchmarkRefreshSession(b *testing.B) {
	c, sess := signedUp(b)
	ctx := context.Background()
	for b.Loop() {
		next, err := c.RefreshSession(ctx, sess.RefreshToken)
		if err != nil {
			b.Fatal(err)
		}
		sess = next
	}
}

// BenchmarkGetUserByToken measures verifying an access token and loading
// its user and session (GET /user).
func BenchmarkGetUserByToken(b *testing.B) {
	c, sess := signedUp(b)
	ctx := context.Background()
	for b.Loop() {
		if _, err := c.GetUserByToken(ctx, sess.AccessToken); err != nil {
			b.Fatal(err)
		}
	}
}
