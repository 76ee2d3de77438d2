package emulator

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/gymbro/gymbro-api/internal/datadir"
)

// Names of the files the emulator keeps in Options.Dir beside auth.db.
const (
	signingKeysFile = "auth_signing_keys.json"
	apiKeysFile     = "auth_api_keys.json"
)

// retiredKeyRetention is how long RotateKeyInDir keeps a retired key in the
// file. It only bounds the file's growth: publication is decided by the
// running emulator from its own AccessTokenTTL, which must stay below this.
const retiredKeyRetention = 7 * 24 * time.Hour

// keyFile is the on-disk form of the signing keys. The private keys are
// PKCS #8 DER, base64; the file is written 0600 because whoever reads it can
// mint tokens the local server trusts.
type keyFile struct {
	Keys []storedKey `json:"keys"`
}

type storedKey struct {
	Kid        string     `json:"kid"`
	Alg        string     `json:"alg"`
	PrivateKey string     `json:"private_key_pkcs8"`
	CreatedAt  time.Time  `json:"created_at"`
	RetiredAt  *time.Time `json:"retired_at,omitempty"` // nil: the current signing key
}

// signingKey is a parsed ES256 key. retiredAt is zero for the current key.
type signingKey struct {
	kid       string
	priv      *ecdsa.PrivateKey
	createdAt time.Time
	retiredAt time.Time
}

// LogValue keeps the private key out of logs.
func (k signingKey) LogValue() slog.Value { return slog.StringValue("kid:" + k.kid) }

// keyring holds the signing keys of one data directory. It re-reads the file
// whenever it changed on disk, so `gymbro auth rotate-key` run by another
// process takes effect in the running server without a restart.
type keyring struct {
	path string

	mu   sync.RWMutex
	keys []signingKey // oldest first; the last one without retiredAt signs
	info fs.FileInfo  // of the file as last loaded
}

// openKeyring loads the key file in dir, creating it with one fresh key when
// it does not exist.
func openKeyring(dir string, now time.Time) (*keyring, error) {
	path := filepath.Join(dir, signingKeysFile)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		k, err := newStoredKey(now)
		if err != nil {
			return nil, err
		}
		if err := writeKeyFile(path, keyFile{Keys: []storedKey{k}}); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("emulator: stat signing keys: %w", err)
	} else if err := datadir.Restrict(path); err != nil { // written 0644 by an earlier version
		return nil, fmt.Errorf("emulator: %w", err)
	}
	kr := &keyring{path: path}
	if err := kr.reload(true); err != nil {
		return nil, err
	}
	return kr, nil
}

// reload re-reads the file when it changed since the last load (or always
// with force). A rename-replaced file is a new inode, which os.SameFile sees
// even when two writes share one coarse mtime tick.
func (kr *keyring) reload(force bool) error {
	info, err := os.Stat(kr.path)
	if err != nil {
		return fmt.Errorf("emulator: stat signing keys: %w", err)
	}
	kr.mu.RLock()
	prev := kr.info
	kr.mu.RUnlock()
	if !force && prev != nil && os.SameFile(prev, info) && prev.ModTime().Equal(info.ModTime()) && prev.Size() == info.Size() {
		return nil
	}
	f, err := readKeyFile(kr.path)
	if err != nil {
		return err
	}
	keys := make([]signingKey, 0, len(f.Keys))
	for _, sk := range f.Keys {
		k, err := sk.parse()
		if err != nil {
			return err
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 || !keys[len(keys)-1].retiredAt.IsZero() {
		return errors.New("emulator: signing key file has no current key")
	}
	kr.mu.Lock()
	kr.keys, kr.info = keys, info
	kr.mu.Unlock()
	return nil
}

// refresh reloads a changed file; a failure keeps the keys already loaded,
// so a half-edited file cannot take the local server down.
func (kr *keyring) refresh() { _ = kr.reload(false) }

// current returns the key that signs new tokens.
func (kr *keyring) current() signingKey {
	kr.refresh()
	kr.mu.RLock()
	defer kr.mu.RUnlock()
	return kr.keys[len(kr.keys)-1]
}

// verifyKey returns the public key with the given kid if it may still verify
// tokens at now: the current key, or a retired one whose tokens could still
// be unexpired.
func (kr *keyring) verifyKey(kid string, now time.Time, ttl time.Duration) (*ecdsa.PublicKey, bool) {
	for _, k := range kr.published(now, ttl) {
		if k.kid == kid {
			return &k.priv.PublicKey, true
		}
	}
	return nil, false
}

// published returns the keys the JWKS lists at now. A retired key stays until
// every token it signed has expired (ttl plus a minute of clock leeway), so
// rotating never invalidates a live session's access token.
func (kr *keyring) published(now time.Time, ttl time.Duration) []signingKey {
	kr.refresh()
	kr.mu.RLock()
	defer kr.mu.RUnlock()
	out := make([]signingKey, 0, len(kr.keys))
	for _, k := range kr.keys {
		if k.retiredAt.IsZero() || now.Before(k.retiredAt.Add(ttl+time.Minute)) {
			out = append(out, k)
		}
	}
	return out
}

// RotateKeyInDir retires the current signing key in dir's key file and adds
// a fresh ES256 key that signs from now on. It is what `gymbro auth
// rotate-key` runs, possibly while a server uses the same directory: the file
// is replaced atomically (write then rename) and the server notices the new
// file on its next request. The retired key stays published in the JWKS for
// as long as tokens it signed can be valid. Two rotations racing each other
// may lose one; run it from one place.
// The directory is created (0700) when missing, as a server would.
func RotateKeyInDir(dir string) (kid string, err error) {
	if err := datadir.Create(dir); err != nil {
		return "", fmt.Errorf("emulator: %w", err)
	}
	return rotateKeyFile(filepath.Join(dir, signingKeysFile), time.Now())
}

func rotateKeyFile(path string, now time.Time) (string, error) {
	f, err := readKeyFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	keep := f.Keys[:0]
	for _, k := range f.Keys {
		if k.RetiredAt == nil {
			t := now.UTC()
			k.RetiredAt = &t
		}
		if now.Sub(*k.RetiredAt) < retiredKeyRetention {
			keep = append(keep, k)
		}
	}
	nk, err := newStoredKey(now)
	if err != nil {
		return "", err
	}
	f.Keys = append(keep, nk)
	if err := writeKeyFile(path, f); err != nil {
		return "", err
	}
	return nk.Kid, nil
}

func newStoredKey(now time.Time) (storedKey, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return storedKey{}, fmt.Errorf("emulator: generate signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return storedKey{}, fmt.Errorf("emulator: encode signing key: %w", err)
	}
	return storedKey{
		Kid:        uuid.NewString(),
		Alg:        "ES256",
		PrivateKey: base64.StdEncoding.EncodeToString(der),
		CreatedAt:  now.UTC(),
	}, nil
}

func (sk storedKey) parse() (signingKey, error) {
	der, err := base64.StdEncoding.DecodeString(sk.PrivateKey)
	if err != nil {
		return signingKey{}, fmt.Errorf("emulator: signing key %s: bad base64", sk.Kid)
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return signingKey{}, fmt.Errorf("emulator: signing key %s: %w", sk.Kid, err)
	}
	priv, ok := key.(*ecdsa.PrivateKey)
	if !ok || priv.Curve != elliptic.P256() || sk.Kid == "" {
		return signingKey{}, fmt.Errorf("emulator: signing key %q is not a P-256 key with a kid", sk.Kid)
	}
	k := signingKey{kid: sk.Kid, priv: priv, createdAt: sk.CreatedAt}
	if sk.RetiredAt != nil {
		k.retiredAt = *sk.RetiredAt
	}
	return k, nil
}

func readKeyFile(path string) (keyFile, error) {
	var f keyFile
	b, err := os.ReadFile(path)
	if err != nil {
		return f, fmt.Errorf("emulator: read signing keys: %w", err)
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return f, fmt.Errorf("emulator: decode signing keys: %w", err)
	}
	return f, nil
}

func writeKeyFile(path string, f keyFile) error {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("emulator: encode signing keys: %w", err)
	}
	return writeFile(path, b)
}

// writeFile writes one of the emulator's files, 0600: whoever reads the
// signing keys can mint tokens the local server trusts.
func writeFile(path string, data []byte) error {
	if err := datadir.WriteFile(path, data); err != nil {
		return fmt.Errorf("emulator: %w", err)
	}
	return nil
}

// jwk is one public key as RFC 7517 lists it, with the key_ops Supabase
// publishes.
type jwk struct {
	Kty    string   `json:"kty"`
	Crv    string   `json:"crv"`
	X      string   `json:"x"`
	Y      string   `json:"y"`
	Kid    string   `json:"kid"`
	Alg    string   `json:"alg"`
	Use    string   `json:"use"`
	KeyOps []string `json:"key_ops"`
}

// publicJWK returns the public half of k; the private scalar never leaves
// this package.
func (k signingKey) publicJWK() (jwk, error) {
	pub, err := k.priv.PublicKey.ECDH()
	if err != nil {
		return jwk{}, fmt.Errorf("emulator: public key %s: %w", k.kid, err)
	}
	b := pub.Bytes() // 0x04 || X || Y, 32 bytes each for P-256 (SEC 1 §2.3.3)
	enc := base64.RawURLEncoding
	return jwk{
		Kty: "EC", Crv: "P-256",
		X: enc.EncodeToString(b[1:33]), Y: enc.EncodeToString(b[33:65]),
		Kid: k.kid, Alg: "ES256", Use: "sig", KeyOps: []string{"verify"},
	}, nil
}

// apiKeys is the on-disk form of generated API keys.
type apiKeys struct {
	Anon    string `json:"anon_key"`
	Service string `json:"service_role_key"`
}

// loadOrCreateAPIKeys returns the keys persisted in dir, generating them the
// first time, in the new Supabase format (sb_publishable_…, sb_secret_…).
func loadOrCreateAPIKeys(dir string) (apiKeys, error) {
	path := filepath.Join(dir, apiKeysFile)
	var k apiKeys
	b, err := os.ReadFile(path)
	if err == nil {
		if err := json.Unmarshal(b, &k); err != nil {
			return k, fmt.Errorf("emulator: decode API keys: %w", err)
		}
		if err := datadir.Restrict(path); err != nil {
			return k, fmt.Errorf("emulator: %w", err)
		}
		if k.Anon == "" || k.Service == "" {
			return k, errors.New("emulator: API key file is incomplete")
		}
		return k, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return k, fmt.Errorf("emulator: read API keys: %w", err)
	}
	k = apiKeys{Anon: "sb_publishable_" + randomString(32), Service: "sb_secret_" + randomString(32)}
	b, err = json.MarshalIndent(k, "", "  ")
	if err != nil {
		return k, fmt.Errorf("emulator: encode API keys: %w", err)
	}
	if err := writeFile(path, b); err != nil {
		return k, err
	}
	return k, nil
}

const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// randomString returns n characters of [a-z0-9] from crypto/rand, without
// modulo bias (rand.Text-like rejection of bytes ≥ 252).
func randomString(n int) string {
	out := make([]byte, 0, n)
	buf := make([]byte, n*2)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			panic(err) // crypto/rand.Read never fails on supported platforms (Go 1.24+)
		}
		for _, b := range buf {
			if b < 252 && len(out) < n {
				out = append(out, alphabet[b%36])
			}
		}
	}
	return string(out)
}
