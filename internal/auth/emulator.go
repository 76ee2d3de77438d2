package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// Refusals of a token that names the Firebase Auth emulator's issuer but
// is not one of its unsigned tokens.
var (
	errUnsignedKid       = unauthenticated(CodeHeaderInvalid, "The bearer token names a signing key (kid), but its issuer, the Firebase Auth emulator, signs nothing.")
	errUnsignedSignature = unauthenticated(CodeSignatureInvalid, "The bearer token carries a signature, but its issuer, the Firebase Auth emulator, signs nothing.")
)

// checkUnsigned accepts the header and signature of a Firebase Auth
// emulator token and nothing else: alg "none" exactly, no kid, an empty
// signature. A token that looks signed is refused rather than accepted
// with its signature unchecked, so that no signed token is ever taken on
// trust. (The Admin SDKs in emulator mode only skip these checks; this is
// stricter on purpose.)
func checkUnsigned(t *jws) *gymbro.Error {
	if alg, _ := t.header["alg"].(string); alg != "none" {
		return fail(errAlgorithm)
	}
	if _, ok := t.header["kid"]; ok {
		return fail(errUnsignedKid)
	}
	if len(t.signature) > 0 {
		return fail(errUnsignedSignature)
	}
	return nil
}

// pingEmulator asks the Firebase Auth emulator at host whether it is up:
// its root answers {"authEmulator": {"ready": true, …}}.
func (c *jwksClient) pingEmulator(ctx context.Context, host string) error {
	ctx, cancel := context.WithTimeout(ctx, c.fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+host+"/", nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body struct {
		AuthEmulator *struct {
			Ready bool `json:"ready"`
		} `json:"authEmulator"`
	}
	err = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body)
	if resp.StatusCode != http.StatusOK || err != nil || body.AuthEmulator == nil || !body.AuthEmulator.Ready {
		return fmt.Errorf("the Firebase Auth emulator at %s is not ready (HTTP %d)", host, resp.StatusCode)
	}
	return nil
}
