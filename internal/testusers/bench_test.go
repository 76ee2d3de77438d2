package testusers_test

import (
	"testing"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// BenchmarkCreateReuse is one console click on an existing name against
// the emulator over HTTP: list, set password, password grant, verify.
func BenchmarkCreateReuse(b *testing.B) {
	e := newEnv(b, nil)
	s := e.newService(b, nil)
	req := gymbro.TestUserRequest{UsernamePrefix: "gymbro-test-01"}
	if _, err := s.Create(b.Context(), caller, req); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Create(b.Context(), caller, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCreateNew allocates a new name per click; the list it reads
// grows by one user each time.
func BenchmarkCreateNew(b *testing.B) {
	e := newEnv(b, nil)
	s := e.newService(b, nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Create(b.Context(), caller, gymbro.TestUserRequest{UsernamePrefix: "gymbro-test"}); err != nil {
			b.Fatal(err)
		}
	}
}
