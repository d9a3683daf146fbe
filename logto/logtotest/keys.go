package logtotest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"sync"

	"github.com/golang-jwt/jwt/v5"
)

// signingKey is one OIDC signing key: EC P-384, used with ES384 like the key
// `logto db seed` generates.
type signingKey struct {
	kid  string
	priv *ecdsa.PrivateKey
}

func newSigningKey() (*signingKey, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate P-384 key: %w", err)
	}
	return &signingKey{kid: rand.Text(), priv: priv}, nil
}

// jwk is a public key as the JWKS endpoint publishes it.
type jwk struct {
	Kty string `json:"kty"`
	Use string `json:"use"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

func (k *signingKey) jwk() (jwk, error) {
	raw, err := k.priv.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		return jwk{}, fmt.Errorf("encode public key %s: %w", k.kid, err)
	}
	const size = 48
	if len(raw) != 1+2*size {
		return jwk{}, fmt.Errorf("encode public key %s: unexpected length %d", k.kid, len(raw))
	}
	enc := base64.RawURLEncoding
	return jwk{
		Kty: "EC", Use: "sig", Kid: k.kid, Alg: "ES384", Crv: "P-384",
		X: enc.EncodeToString(raw[1 : 1+size]), Y: enc.EncodeToString(raw[1+size:]),
	}, nil
}

// sign signs claims as an access token: header {alg: ES384, typ: at+jwt, kid}.
func (k *signingKey) sign(claims jwt.MapClaims) (string, error) {
	tok := jwt.NewWithClaims(jwt.SigningMethodES384, claims)
	tok.Header["typ"] = "at+jwt"
	tok.Header["kid"] = k.kid
	s, err := tok.SignedString(k.priv)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}

// keyring holds the current signing key and, after a rotation that keeps
// them, the previous ones, which stay in the JWKS so tokens they signed still
// verify.
type keyring struct {
	mu       sync.RWMutex
	current  *signingKey
	previous []*signingKey
}

func newKeyring() (*keyring, error) {
	k, err := newSigningKey()
	if err != nil {
		return nil, err
	}
	return &keyring{current: k}, nil
}

func (r *keyring) signer() *signingKey {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.current
}

// rotate installs a new current key; keepPrevious keeps the old one
// published (Logto's grace period), otherwise every older key is dropped.
func (r *keyring) rotate(keepPrevious bool) error {
	k, err := newSigningKey()
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if keepPrevious {
		r.previous = append([]*signingKey{r.current}, r.previous...)
	} else {
		r.previous = nil
	}
	r.current = k
	return nil
}

// all returns the published keys, newest first.
func (r *keyring) all() []*signingKey {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return append([]*signingKey{r.current}, r.previous...)
}
