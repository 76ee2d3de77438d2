package auth

import (
	"encoding/base64"
	"strings"
	"unsafe"
)

// b64url is the JWS encoding (RFC 7515 §2): base64url without padding. Strict
// refuses stray bits after the last character, so that one token has one
// spelling, and so one cache key.
var b64url = base64.RawURLEncoding.Strict()

// jws is a compact JWS split and decoded, its signature not yet checked.
type jws struct {
	header       map[string]any
	claims       map[string]any
	signingInput string // header.payload, as signed
	signature    []byte
}

// parseJWS decodes token's three parts. golang-jwt's parser would do it too,
// but through encoding/json twice; this takes one allocation for the three
// decoded parts and decodeObject for the JSON (see there for why).
func parseJWS(token string) (*jws, bool) {
	h, rest, ok1 := strings.Cut(token, ".")
	p, s, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.IndexByte(s, '.') >= 0 {
		return nil, false
	}
	// One buffer for the three parts. decodeObject's strings point into it,
	// so it is never written again once decoded.
	buf := make([]byte, b64url.DecodedLen(len(h))+b64url.DecodedLen(len(p))+b64url.DecodedLen(len(s)))
	hb, ok := decodePart(buf, h)
	if !ok {
		return nil, false
	}
	pb, ok := decodePart(buf[len(hb):], p)
	if !ok {
		return nil, false
	}
	sig, ok := decodePart(buf[len(hb)+len(pb):], s)
	if !ok {
		return nil, false
	}
	t := &jws{signingInput: token[:len(h)+1+len(p)], signature: sig}
	var err error
	if t.header, err = decodeObject(hb); err != nil {
		return nil, false
	}
	if t.claims, err = decodeObject(pb); err != nil {
		return nil, false
	}
	return t, true
}

// decodePart decodes one base64url part into the front of dst and returns
// the bytes written, with the capacity cut so that appends cannot spill
// into the next part.
func decodePart(dst []byte, part string) ([]byte, bool) {
	n, err := b64url.Decode(dst, unsafe.Slice(unsafe.StringData(part), len(part)))
	if err != nil {
		return nil, false
	}
	return dst[:n:n], true
}
