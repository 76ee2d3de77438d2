package auth

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a goroutine outlives the tests: every key
// fetch must end with Verifier.Close and the test servers.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
