package identity

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// JWT limits and defaults.
const (
	// MaxTokenLength bounds a token (16 KiB): real access tokens are 1 to
	// 4 KiB, and the bound keeps decoding cheap.
	MaxTokenLength = 16 << 10
	// DefaultClockSkew is the leeway on exp and nbf: one minute absorbs
	// clocks that are a little off without keeping expired tokens useful.
	DefaultClockSkew = time.Minute
	// DefaultUserClaim names the user: "sub" is the one claim every
	// OpenID Connect token carries.
	DefaultUserClaim = "sub"
	// DefaultRolesClaim holds the user's roles, a string or a list of
	// strings; Keycloak and most issuers can be set to emit "roles".
	DefaultRolesClaim = "roles"
)

// JWTConfig says which tokens are accepted.
type JWTConfig struct {
	Issuer   string // the "iss" a token must carry (exactly)
	Audience string // a value the token's "aud" must contain
	// UserClaim names the claim that holds the user name; "" means
	// DefaultUserClaim.
	UserClaim string
	// RolesClaim names the claim that holds the roles; "" means
	// DefaultRolesClaim. Unknown role names in it grant nothing.
	RolesClaim string
	// Skew is the leeway on exp and nbf, as given: 0 is none (the
	// configuration's jwt_clock_skew = "0s"; its default is
	// DefaultClockSkew). Negative is taken as 0.
	Skew time.Duration
	// Keys gives the issuer's public keys.
	Keys KeySource
	// Now returns the time; nil means time.Now (tests set it).
	Now func() time.Time
}

// Verified is a verified token's user.
type Verified struct {
	Name  string
	Roles []Role
	// Until is when the token stops being accepted: its exp plus the
	// clock-skew leeway, the same rule VerifyJWT applied (see Expired).
	// An association accepted with the token is ended then.
	Until time.Time
}

// Expired reports whether a token accepted until until (exp plus the
// leeway) is no longer valid at now: the one rule for refusing an expired
// token and for ending an association accepted with it.
func Expired(until, now time.Time) bool { return !now.Before(until) }

// algorithms accepted, by JWS "alg". Only asymmetric ones: a shared
// secret (HS256...) would let whoever can verify tokens also mint them,
// and "none" proves nothing.
var algorithms = map[string]struct {
	hash crypto.Hash
	kind string // "RSA", "RSA-PSS", "EC", "OKP"
	crv  string
}{
	"RS256": {crypto.SHA256, "RSA", ""},
	"RS384": {crypto.SHA384, "RSA", ""},
	"RS512": {crypto.SHA512, "RSA", ""},
	"PS256": {crypto.SHA256, "RSA-PSS", ""},
	"PS384": {crypto.SHA384, "RSA-PSS", ""},
	"PS512": {crypto.SHA512, "RSA-PSS", ""},
	"ES256": {crypto.SHA256, "EC", "P-256"},
	"ES384": {crypto.SHA384, "EC", "P-384"},
	"ES512": {crypto.SHA512, "EC", "P-521"},
	"EdDSA": {0, "OKP", "Ed25519"},
}

var b64url = base64.RawURLEncoding

// VerifyJWT checks token against c: its signature by one of the issuer's
// keys with an accepted algorithm, then iss, aud, exp (required) and nbf
// within the skew, then the user claim. Any failure wraps
// ErrBadCredentials, or ErrUnavailable when the keys cannot be had.
func (c *JWTConfig) VerifyJWT(ctx context.Context, token string) (*Verified, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: token %s", ErrBadCredentials, fmt.Sprintf(format, a...))
	}
	if len(token) > MaxTokenLength {
		return nil, bad("longer than %d bytes", MaxTokenLength)
	}
	token = strings.TrimRight(token, "\x00 \r\n")
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, bad("is not a signed JWT (compact form has 3 parts, it has %d)", len(parts))
	}
	var hdr struct {
		Alg  string `json:"alg"`
		Kid  string `json:"kid"`
		Crit []any  `json:"crit"`
	}
	if err := decodePart(parts[0], &hdr); err != nil {
		return nil, bad("header: %v", err)
	}
	alg, ok := algorithms[hdr.Alg]
	if !ok {
		return nil, bad("algorithm %q is not accepted (only RS*, PS*, ES* and EdDSA)", hdr.Alg)
	}
	if len(hdr.Crit) > 0 {
		return nil, bad("has critical header extensions this server does not understand")
	}
	sig, err := b64url.DecodeString(parts[2])
	if err != nil {
		return nil, bad("signature is not base64url")
	}
	if c.Keys == nil {
		return nil, fmt.Errorf("%w: no issuer keys configured", ErrUnsupported)
	}
	keys, err := c.Keys.Keys(ctx, hdr.Kid)
	if err != nil {
		return nil, err
	}
	signed := []byte(parts[0] + "." + parts[1])
	verified := false
	for _, k := range keys {
		if (hdr.Kid != "" && k.ID != hdr.Kid) || (k.Alg != "" && k.Alg != hdr.Alg) {
			continue
		}
		if verifySig(alg.hash, alg.kind, alg.crv, k.Key, signed, sig) {
			verified = true
			break
		}
	}
	if !verified {
		return nil, bad("signature does not verify with any of the issuer's keys (kid %q, alg %s)", hdr.Kid, hdr.Alg)
	}
	var claims map[string]json.RawMessage
	if err := decodePart(parts[1], &claims); err != nil {
		return nil, bad("claims: %v", err)
	}
	now := time.Now()
	if c.Now != nil {
		now = c.Now()
	}
	skew := max(c.Skew, 0)
	var iss string
	if err := claimString(claims, "iss", &iss); err != nil || iss != c.Issuer {
		return nil, bad("issuer is not the configured one")
	}
	auds, err := claimStrings(claims, "aud")
	if err != nil || !contains(auds, c.Audience) {
		return nil, bad("audience does not include %q", c.Audience)
	}
	exp, ok, err := claimTime(claims, "exp")
	switch {
	case err != nil:
		return nil, bad("exp: %v", err)
	case !ok:
		return nil, bad("has no expiry (exp); tokens that never expire are refused")
	case Expired(exp.Add(skew), now):
		return nil, bad("expired at %s", exp.UTC().Format(time.RFC3339))
	}
	if nbf, ok, err := claimTime(claims, "nbf"); err != nil {
		return nil, bad("nbf: %v", err)
	} else if ok && now.Add(skew).Before(nbf) {
		return nil, bad("not valid before %s", nbf.UTC().Format(time.RFC3339))
	}
	userClaim := c.UserClaim
	if userClaim == "" {
		userClaim = DefaultUserClaim
	}
	var name string
	if err := claimString(claims, userClaim, &name); err != nil || name == "" {
		return nil, bad("has no user claim %q", userClaim)
	}
	if err := CheckName(name); err != nil {
		return nil, bad("user claim %q: %v", userClaim, err)
	}
	rolesClaim := c.RolesClaim
	if rolesClaim == "" {
		rolesClaim = DefaultRolesClaim
	}
	names, err := claimStrings(claims, rolesClaim)
	if err != nil {
		return nil, bad("roles claim %q: %v", rolesClaim, err)
	}
	v := &Verified{Name: name, Until: exp.Add(skew)}
	for _, n := range names {
		if r := Role(strings.ToLower(n)); r.Valid() && !contains(v.Roles, r) {
			v.Roles = append(v.Roles, r)
		}
	}
	return v, nil
}

func decodePart(s string, v any) error {
	b, err := b64url.DecodeString(s)
	if err != nil {
		return errors.New("not base64url")
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return errors.New("not a JSON object")
	}
	if dec.More() {
		return errors.New("data after the JSON object")
	}
	return nil
}

func verifySig(h crypto.Hash, kind, crv string, key crypto.PublicKey, signed, sig []byte) bool {
	var digest []byte
	switch h {
	case crypto.SHA256:
		d := sha256.Sum256(signed)
		digest = d[:]
	case crypto.SHA384:
		d := sha512.Sum384(signed)
		digest = d[:]
	case crypto.SHA512:
		d := sha512.Sum512(signed)
		digest = d[:]
	}
	switch k := key.(type) {
	case *rsa.PublicKey:
		switch kind {
		case "RSA":
			return rsa.VerifyPKCS1v15(k, h, digest, sig) == nil
		case "RSA-PSS":
			return rsa.VerifyPSS(k, h, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
		}
	case *ecdsa.PublicKey:
		if kind != "EC" || k.Curve.Params().Name != curveName(crv) {
			return false
		}
		// JWS ECDSA signatures are r||s, each the curve's size (RFC 7518 3.4).
		size := (k.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			return false
		}
		r, s := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
		return ecdsa.Verify(k, digest, r, s)
	case ed25519.PublicKey:
		return kind == "OKP" && ed25519.Verify(k, signed, sig)
	}
	return false
}

// curveName maps a JOSE curve name to Go's.
func curveName(crv string) string {
	switch crv {
	case "P-256", "P-384", "P-521":
		return crv
	}
	return "?" + crv
}

func contains[T comparable](s []T, v T) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func claimString(c map[string]json.RawMessage, name string, out *string) error {
	raw, ok := c[name]
	if !ok {
		return errors.New("missing")
	}
	return json.Unmarshal(raw, out)
}

// claimStrings reads a claim that is a string or a list of strings;
// missing is an empty list.
func claimStrings(c map[string]json.RawMessage, name string) ([]string, error) {
	raw, ok := c[name]
	if !ok {
		return nil, nil
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, errors.New("is neither a string nor a list of strings")
	}
	return many, nil
}

// claimTime reads a NumericDate claim (seconds since the epoch).
func claimTime(c map[string]json.RawMessage, name string) (time.Time, bool, error) {
	raw, ok := c[name]
	if !ok {
		return time.Time{}, false, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return time.Time{}, true, errors.New("not a number")
	}
	f, err := n.Float64()
	if err != nil || f < 0 || f > 1e11 {
		return time.Time{}, true, errors.New("not a date")
	}
	sec := int64(f)
	return time.Unix(sec, int64((f-float64(sec))*1e9)), true, nil
}
