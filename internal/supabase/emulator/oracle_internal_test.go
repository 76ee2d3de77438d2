package emulator

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// TestEveryFailedSignInComparesAPassword: an unknown email (or one that is
// not an address) costs the same bcrypt comparison as a wrong password,
// against a decoy hash of the users' cost, so the two cannot be told apart
// by their timing.
func TestEveryFailedSignInComparesAPassword(t *testing.T) {
	const cost = bcrypt.MinCost + 1
	e, err := Open(context.Background(), Options{Dir: t.TempDir(), Issuer: "http://127.0.0.1:1/auth/v1", BcryptCost: cost})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if _, _, err := e.EnsureUser(context.Background(), "ana@example.com", "correct horse", nil); err != nil {
		t.Fatal(err)
	}
	var compared atomic.Int32
	e.compare = func(hash, password []byte) error {
		compared.Add(1)
		if c, err := bcrypt.Cost(hash); err != nil || c != cost {
			t.Errorf("compared with a hash of cost %d (%v), want the users' %d", c, err, cost)
		}
		return bcrypt.CompareHashAndPassword(hash, password)
	}
	anon, _ := e.Keys()
	for _, email := range []string{"ana@example.com", "nobody@example.com", "not an address"} {
		compared.Store(0)
		body := `{"email":"` + email + `","password":"wrong horse"}`
		r := httptest.NewRequest("POST", "/token?grant_type=password", strings.NewReader(body))
		r.Header.Set("apikey", anon)
		w := httptest.NewRecorder()
		e.Handler().ServeHTTP(w, r)
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "invalid_credentials") {
			t.Fatalf("%s: %d %s", email, w.Code, w.Body)
		}
		if n := compared.Load(); n != 1 {
			t.Errorf("%s: %d password comparisons, want 1", email, n)
		}
	}
}
