package emulator_test

import (
	"context"
	"testing"
)

// BenchmarkRefreshSession measures one refresh-token rotation over HTTP:
// the SQLite transaction, an ES256 signature and the JSON round trip.
func BenchmarkRefreshSession(b *testing.B) {
	s := newServer(b)
	c := s.client()
	sess := signUp(b, c, "bench@example.com", "squat-123")
	ctx := context.Background()
	b.ResetTimer()
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
	s := newServer(b)
	c := s.client()
	sess := signUp(b, c, "bench@example.com", "squat-123")
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.GetUserByToken(ctx, sess.AccessToken); err != nil {
			b.Fatal(err)
		}
	}
}
