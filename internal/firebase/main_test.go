package firebase_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/gymbro/gymbro-api/internal/firebase/firebasetest"
)

// emulator is the Auth emulator this package's tests share: it takes
// seconds to start.
var emulator firebasetest.Shared

// TestMain stops the emulator after the tests, then fails the package if
// a test left a goroutine running.
func TestMain(m *testing.M) { goleak.VerifyTestMain(emulator.Main(m)) }
