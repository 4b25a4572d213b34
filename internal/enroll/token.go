// Package enroll lets a DICOM device fetch and renew its own certificate
// instead of having key files copied to it.
//
// An administrator registers the device and gets a one-time token
// ("dicomshield peer add CT01 ... --token"). The token holds a random
// secret and the SHA-256 fingerprint of the archive's CA. On the device,
// "dicomshield enroll --token T --server HOST:2763 --out DIR" makes a key
// pair, connects to the archive's enrolment listener, accepts it only if
// its CA has the token's fingerprint, and sends the secret with a
// certificate signing request. The archive signs a short-lived certificate
// bound to the AE title the token was made for, pins its serial in the
// peer registry and answers with it and the CA certificate; the device
// writes ca.pem, AE.crt and AE.key as "peer add --bundle" would. The key
// never leaves the device.
//
// Renewal ("enroll --renew") authenticates with the current certificate,
// which must be the one pinned for the peer and not revoked; the new
// certificate's serial replaces it, so the old one is refused from then
// on.
//
// Tokens are kept hashed (SHA-256) in enroll-tokens.json beside
// peers.json, with their AE title and expiry. Redeeming marks a token used
// under an exclusive file lock, so a token works once even when two
// requests race.
package enroll

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors.
var (
	// ErrMalformedToken: the string is not an enrolment token.
	ErrMalformedToken = errors.New("enroll: not an enrolment token")
	// ErrTokenRefused: the token is unknown, used, expired, or for a peer
	// that cannot enrol from where it asked. Errors wrapping it say which
	// on the server; the device is told only that it was refused.
	ErrTokenRefused = errors.New("enroll: enrolment token refused")
	// ErrTokenUsed, ErrTokenExpired and ErrTokenUnknown say why a token
	// was refused; each wraps ErrTokenRefused.
	ErrTokenUsed    = fmt.Errorf("%w: already used", ErrTokenRefused)
	ErrTokenExpired = fmt.Errorf("%w: expired", ErrTokenRefused)
	ErrTokenUnknown = fmt.Errorf("%w: unknown", ErrTokenRefused)
)

const (
	// tokenPrefix starts every token, with the format's version, so that
	// a token pasted in the wrong place is recognised, and a later format
	// can be told apart.
	tokenPrefix = "dsenroll1"

	// secretBytes is the size of a token's secret: 32 bytes (256 bits).
	// Guessing one is hopeless even without the rate limit.
	secretBytes = 32

	// fingerprintBytes is the size of a SHA-256 fingerprint.
	fingerprintBytes = sha256.Size
)

var b64 = base64.RawURLEncoding

// Token is an enrolment token: a one-time secret and the fingerprint of
// the CA the device must find at the other end.
type Token struct {
	Secret        []byte
	CAFingerprint string // as pki.Fingerprint formats it
}

// String formats the token as the administrator passes it on:
// dsenroll1.<secret>.<fingerprint>, both base64url without padding. It is
// a secret until used: never log it.
func (t Token) String() string {
	fp, _ := hex.DecodeString(strings.ReplaceAll(t.CAFingerprint, ":", ""))
	return tokenPrefix + "." + b64.EncodeToString(t.Secret) + "." + b64.EncodeToString(fp)
}

// ParseToken reads a token written by Token.String. Surrounding spaces are
// ignored.
func ParseToken(s string) (Token, error) {
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) != 3 || parts[0] != tokenPrefix {
		return Token{}, fmt.Errorf("%w: it should look like %s.<secret>.<fingerprint>", ErrMalformedToken, tokenPrefix)
	}
	secret, err1 := b64.DecodeString(parts[1])
	fp, err2 := b64.DecodeString(parts[2])
	if err1 != nil || err2 != nil || len(secret) != secretBytes || len(fp) != fingerprintBytes {
		return Token{}, fmt.Errorf("%w: damaged (copy it again, whole)", ErrMalformedToken)
	}
	return Token{Secret: secret, CAFingerprint: colonHex(fp)}, nil
}

// newSecret returns a random token secret.
func newSecret() ([]byte, error) {
	b := make([]byte, secretBytes)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	return b, nil
}

// hashSecret is what the token file keeps of a secret.
func hashSecret(secret []byte) string {
	sum := sha256.Sum256(secret)
	return hex.EncodeToString(sum[:])
}

func colonHex(b []byte) string {
	var sb strings.Builder
	for i, c := range b {
		if i > 0 {
			sb.WriteByte(':')
		}
		fmt.Fprintf(&sb, "%02X", c)
	}
	return sb.String()
}
