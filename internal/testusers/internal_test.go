package testusers

import (
	"crypto/rand"
	"fmt"
	"strings"
	"testing"

	"github.com/gymbro/gymbro-api/internal/supabase"
)

func TestNames(t *testing.T) {
	s := &Service{prefixes: []string{"gymbro-test", "qa"}}
	for in, want := range map[string]string{
		"gymbro-test": "gymbro-test", " QA ": "qa", "": "gymbro-test",
		"gymbro-test-01": "gymbro-test-01", "qa-99": "qa-99", "qa-100": "qa-100", "qa-123456": "qa-123456",
	} {
		n, err := s.parseName(in)
		if err != nil || n.String() != want {
			t.Errorf("parseName(%q) = %v, %v; want %s", in, n, err, want)
		}
	}
	for _, in := range []string{"qa-1", "qa-0100", "qa-1234567", "qa-+1", "qa--1", "qa-01-02", "gymbro", "gymbro-test-"} {
		if n, err := s.parseName(in); err == nil {
			t.Errorf("parseName(%q) = %v, want refused", in, n)
		}
	}
	for _, p := range []string{"gymbro-test", "qa", "a.b_c-d"} {
		if !validPrefix(p) {
			t.Errorf("validPrefix(%q) = false", p)
		}
	}
	for _, p := range []string{"x-1", "-x", "x-", "x.", "a..b", "A", "a b", strings.Repeat("a", 41)} {
		if validPrefix(p) {
			t.Errorf("validPrefix(%q) = true", p)
		}
	}
}

func TestPasswordIsUnbiasedAlphabet(t *testing.T) {
	s := &Service{rand: rand.Reader}
	seen := map[rune]bool{}
	for range 200 {
		p, err := s.password()
		if err != nil {
			t.Fatal(err)
		}
		if len(p) != passwordLength {
			t.Fatalf("len = %d", len(p))
		}
		for _, r := range p {
			seen[r] = true
		}
	}
	// 4800 draws from 73 characters: every one shows up.
	if len(seen) != 73 {
		t.Errorf("saw %d distinct characters, want all 73", len(seen))
	}
}

func BenchmarkLowestFree(b *testing.B) {
	users := make([]supabase.User, 10_000)
	for i := range users {
		name := fmt.Sprintf("gymbro-test-%02d", i+1)
		users[i] = supabase.User{Email: name + "@test.gymbro.local", UserMetadata: map[string]any{"username": name, "test_user": true}}
	}
	b.ReportAllocs()
	for b.Loop() {
		if n := lowestFree(users, "gymbro-test", nil); n != 10_001 {
			b.Fatal(n)
		}
	}
}

func BenchmarkPassword(b *testing.B) {
	s := &Service{rand: rand.Reader}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.password(); err != nil {
			b.Fatal(err)
		}
	}
}
