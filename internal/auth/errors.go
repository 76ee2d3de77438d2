package auth

import (
	"time"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// Error codes of the *gymbro.Error values that Verify returns. Every one but
// CodeKeysUnavailable has KindUnauthenticated (a 401); CodeKeysUnavailable has
// KindUnavailable (a 503), because the token may well be good and trying again
// later can succeed.
const (
	CodeTokenMalformed      = "token_malformed"       // not three base64url parts of JSON, or a claim set that is no object
	CodeTokenTooLarge       = "token_too_large"       // longer than MaxTokenBytes
	CodeTokenExpired        = "token_expired"         // exp (plus leeway) has passed
	CodeTokenNotYetValid    = "token_not_yet_valid"   // nbf, or iat, in the future beyond the leeway
	CodeSignatureInvalid    = "signature_invalid"     // the signature does not verify with the issuer's key
	CodeIssuerUnknown       = "issuer_unknown"        // iss is missing or not a configured issuer
	CodeAudienceMismatch    = "audience_mismatch"     // aud names none of the issuer's audiences
	CodeAlgorithmNotAllowed = "algorithm_not_allowed" // alg is not on the issuer's list, or does not fit the key
	CodeKeyNotFound         = "key_not_found"         // kid is not in the issuer's key set, even after a refresh
	CodeKidMissing          = "kid_missing"           // no kid in the header of a token from a JWKS issuer
	CodeClaimMissing        = "claim_missing"         // sub, exp, aud or (Firebase) auth_time is absent
	CodeClaimInvalid        = "claim_invalid"         // a claim of the wrong type, a long sub, auth_time in the future
	CodeHeaderInvalid       = "header_invalid"        // crit, or a header member of the wrong type
	CodeKeysUnavailable     = "keys_unavailable"      // the issuer's keys could not be had; KindUnavailable
)

func unauthenticated(code, message string) gymbro.Error {
	return gymbro.Error{Kind: gymbro.KindUnauthenticated, Code: code, Message: message}
}

// fail returns a copy of a template, so that no caller can change the error
// another caller receives.
func fail(template gymbro.Error) *gymbro.Error {
	return &template
}

// Templates of the errors without variable parts.
var (
	errTooLarge       = unauthenticated(CodeTokenTooLarge, "The bearer token is too large.")
	errMalformed      = unauthenticated(CodeTokenMalformed, "The bearer token is not a well-formed JWT.")
	errExpired        = unauthenticated(CodeTokenExpired, "The bearer token has expired.")
	errNotYetValid    = unauthenticated(CodeTokenNotYetValid, "The bearer token is not valid yet.")
	errIssuedFuture   = unauthenticated(CodeTokenNotYetValid, "The bearer token was issued in the future.")
	errSignature      = unauthenticated(CodeSignatureInvalid, "The bearer token's signature is invalid.")
	errIssuerUnknown  = unauthenticated(CodeIssuerUnknown, "The bearer token's issuer is not trusted.")
	errIssuerMissing  = unauthenticated(CodeIssuerUnknown, "The bearer token names no issuer.")
	errAudience       = unauthenticated(CodeAudienceMismatch, "The bearer token is not meant for this service.")
	errAlgorithm      = unauthenticated(CodeAlgorithmNotAllowed, "The bearer token's signing algorithm is not allowed for its issuer.")
	errAlgorithmKey   = unauthenticated(CodeAlgorithmNotAllowed, "The bearer token's signing algorithm does not fit its key.")
	errKeyNotFound    = unauthenticated(CodeKeyNotFound, "The bearer token's signing key is not one of its issuer's keys.")
	errKidMissing     = unauthenticated(CodeKidMissing, "The bearer token's header names no key (kid).")
	errCrit           = unauthenticated(CodeHeaderInvalid, "The bearer token's header lists critical extensions (crit) this service does not support.")
	errHeaderType     = unauthenticated(CodeHeaderInvalid, "The bearer token's header has a member of the wrong type.")
	errAuthTimeFuture = unauthenticated(CodeClaimInvalid, "The bearer token's auth_time is in the future.")
	errSubjectLong    = unauthenticated(CodeClaimInvalid, "The bearer token's subject (sub) is too long.")
)

func claimMissing(name string) *gymbro.Error {
	return &gymbro.Error{Kind: gymbro.KindUnauthenticated, Code: CodeClaimMissing,
		Message: "The bearer token lacks the " + name + " claim."}
}

func claimInvalid(name string) *gymbro.Error {
	return &gymbro.Error{Kind: gymbro.KindUnauthenticated, Code: CodeClaimInvalid,
		Message: "The bearer token's " + name + " claim is invalid."}
}

func keysUnavailable(cause error, retryAfter time.Duration) *gymbro.Error {
	return &gymbro.Error{Kind: gymbro.KindUnavailable, Code: CodeKeysUnavailable,
		Message:    "The keys to check the bearer token cannot be fetched right now; try again later.",
		RetryAfter: retryAfter, Err: cause}
}
