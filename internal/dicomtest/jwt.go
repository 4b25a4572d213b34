package dicomtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"os"
	"path/filepath"
	"testing"
)

// Issuer is a token issuer made for a test: an RSA key ("rsa-1", RS256)
// and an EC P-256 key ("ec-1", ES256), published as a JWKS.
type Issuer struct {
	RSA *rsa.PrivateKey
	EC  *ecdsa.PrivateKey
}

// NewIssuer makes an issuer with fresh keys.
func NewIssuer(t testing.TB) *Issuer {
	t.Helper()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &Issuer{RSA: rk, EC: ek}
}

var b64u = base64.RawURLEncoding

// JWKS returns the issuer's public keys as a JSON Web Key Set.
func (i *Issuer) JWKS(t testing.TB) []byte {
	t.Helper()
	ec, err := i.EC.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		t.Fatal(err)
	}
	set := map[string]any{"keys": []map[string]any{
		{"kty": "RSA", "kid": "rsa-1", "use": "sig", "alg": "RS256",
			"n": b64u.EncodeToString(i.RSA.N.Bytes()), "e": b64u.EncodeToString(big.NewInt(int64(i.RSA.E)).Bytes())},
		{"kty": "EC", "kid": "ec-1", "use": "sig", "crv": "P-256",
			"x": b64u.EncodeToString(ec[1:33]), "y": b64u.EncodeToString(ec[33:])},
	}}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// WriteJWKS writes the key set into a new file (0600) and returns its path.
func (i *Issuer) WriteJWKS(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(p, i.JWKS(t), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Sign returns a compact JWS of claims with the header hdr (its "alg"
// chooses the key: RS256, ES256; EdDSA signs with a key of its own, not
// in the set; "none" gives an empty signature). A nil hdr is
// {"alg":"RS256","kid":"rsa-1"}.
func (i *Issuer) Sign(t testing.TB, hdr, claims map[string]any) string {
	t.Helper()
	if hdr == nil {
		hdr = map[string]any{"alg": "RS256", "kid": "rsa-1"}
	}
	h, err := json.Marshal(hdr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	signed := b64u.EncodeToString(h) + "." + b64u.EncodeToString(c)
	digest := sha256.Sum256([]byte(signed))
	var sig []byte
	switch hdr["alg"] {
	case "RS256":
		sig, err = rsa.SignPKCS1v15(rand.Reader, i.RSA, crypto.SHA256, digest[:])
	case "ES256":
		var r, s *big.Int
		r, s, err = ecdsa.Sign(rand.Reader, i.EC, digest[:])
		if err == nil {
			sig = make([]byte, 64)
			r.FillBytes(sig[:32])
			s.FillBytes(sig[32:])
		}
	case "EdDSA":
		_, priv, gerr := ed25519.GenerateKey(rand.Reader)
		err = gerr
		sig = ed25519.Sign(priv, []byte(signed))
	case "none":
	default:
		t.Fatalf("Sign: algorithm %v not made by the test issuer", hdr["alg"])
	}
	if err != nil {
		t.Fatal(err)
	}
	return signed + "." + b64u.EncodeToString(sig)
}
