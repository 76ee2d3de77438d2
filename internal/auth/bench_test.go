package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"fmt"
	"math/big"
	"strings"
	"testing"
)

// drop removes k from the cache whatever it maps to.
func (c *tokenCache) drop(k *[32]byte) {
	s := c.shard(k)
	s.mu.Lock()
	delete(s.m, *k)
	s.mu.Unlock()
}

// BenchmarkVerify measures, for each algorithm, a token Verify has not seen
// (the full check, plus hashing it and caching the result), a token it has
// (a cache hit), and the floor: checking the signature alone with the
// standard library on the same token.
//
//	go test -run '^$' -bench BenchmarkVerify -benchtime 3s ./internal/auth
func BenchmarkVerify(b *testing.B) {
	f := newFixture(b)
	claims := f.supabaseClaims("5f1c1f9e-8d1a-4a3e-9a7e-0c2d6b1f4e21")
	const pool = 256 // distinct tokens: signing RS256 is too slow to make one per iteration
	for _, alg := range []struct {
		name  string
		sign  func(i int) string
		floor func(b *testing.B, token string)
	}{
		{"ES256", func(i int) string { return f.sbES.sign(b, with(claims, "jti", fmt.Sprint(i)), nil) },
			func(b *testing.B, token string) { floorECDSA(b, f.sbES.priv.Public().(*ecdsa.PublicKey), token) }},
		{"RS256", func(i int) string { return f.sbRS.sign(b, with(claims, "jti", fmt.Sprint(i)), nil) },
			func(b *testing.B, token string) { floorRSA(b, f.sbRS.priv.Public().(*rsa.PublicKey), token) }},
		{"HS256", func(i int) string { return hs256(b, hmacSecret, with(claims, "jti", fmt.Sprint(i)), nil) },
			func(b *testing.B, token string) { floorHMAC(b, hmacSecret, token) }},
	} {
		tokens := make([]string, pool)
		sums := make([][32]byte, pool)
		for i := range tokens {
			tokens[i] = alg.sign(i)
			sums[i] = sha256.Sum256([]byte(tokens[i]))
		}
		ctx := context.Background()
		mustVerify(b, f.v, tokens[0]) // the key set is fetched before timing

		b.Run(alg.name+"/first-seen", func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := f.v.Verify(ctx, tokens[i]); err != nil {
					b.Fatal(err)
				}
				f.v.cache.drop(&sums[i]) // counted in: it only makes the figure worse
				i = (i + 1) % pool
			}
		})
		b.Run(alg.name+"/repeated", func(b *testing.B) {
			b.ReportAllocs()
			mustVerify(b, f.v, tokens[0])
			for b.Loop() {
				if _, err := f.v.Verify(ctx, tokens[0]); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(alg.name+"/bare", func(b *testing.B) {
			b.ReportAllocs()
			alg.floor(b, tokens[0])
		})
	}
}

func splitSigned(b *testing.B, token string) (string, []byte) {
	i := strings.LastIndexByte(token, '.')
	sig, err := base64.RawURLEncoding.DecodeString(token[i+1:])
	if err != nil {
		b.Fatal(err)
	}
	return token[:i], sig
}

// floorECDSA: SHA-256 of the signing input and ecdsa.VerifyASN1, with the
// signature converted to ASN.1 beforehand.
func floorECDSA(b *testing.B, pub *ecdsa.PublicKey, token string) {
	input, sig := splitSigned(b, token)
	asn1Sig, err := asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		h := sha256.Sum256([]byte(input))
		if !ecdsa.VerifyASN1(pub, h[:], asn1Sig) {
			b.Fatal("bad signature")
		}
	}
}

// floorRSA: SHA-256 of the signing input and rsa.VerifyPKCS1v15.
func floorRSA(b *testing.B, pub *rsa.PublicKey, token string) {
	input, sig := splitSigned(b, token)
	for b.Loop() {
		h := sha256.Sum256([]byte(input))
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, h[:], sig); err != nil {
			b.Fatal(err)
		}
	}
}

// floorHMAC: HMAC-SHA256 of the signing input and a constant-time compare.
func floorHMAC(b *testing.B, secret []byte, token string) {
	input, sig := splitSigned(b, token)
	for b.Loop() {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(input))
		if !hmac.Equal(m.Sum(nil), sig) {
			b.Fatal("bad signature")
		}
	}
}
