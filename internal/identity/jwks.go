package identity

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// JWKS defaults.
const (
	// DefaultJWKSRefresh is how long fetched keys are used before they are
	// fetched again: an hour follows an issuer's key rotation (which
	// publishes new keys well ahead) without asking it on every login.
	DefaultJWKSRefresh = time.Hour
	// MinJWKSRefetch is the least time between two fetches prompted by a
	// token whose key id is not known: a rotated key is found within a
	// minute, yet tokens with made-up key ids cannot make us hammer the
	// issuer.
	MinJWKSRefetch = time.Minute
	// jwksFetchTimeout bounds one fetch: an issuer that does not answer
	// must not hold an association's negotiation for long.
	jwksFetchTimeout = 10 * time.Second
	// maxJWKS bounds a key set (1 MiB): real ones hold a few keys in a
	// few KiB.
	maxJWKS = 1 << 20
	// minRSABits refuses RSA keys under 2048 bits, which no longer resist
	// factoring for long.
	minRSABits = 2048
)

// JWK is one public key of an issuer.
type JWK struct {
	ID  string // "kid"; may be empty
	Alg string // "alg" the key is restricted to; "" for any that fits
	Key crypto.PublicKey
}

// KeySource gives an issuer's current keys. kid is the key id a token
// names ("" if none), so that a source can refetch when it meets an
// unknown one. Errors wrap ErrUnavailable.
type KeySource interface {
	Keys(ctx context.Context, kid string) ([]JWK, error)
}

// ParseJWKS reads a JSON Web Key Set (RFC 7517) and keeps the public
// signing keys it can use: RSA (2048 bits or more), EC P-256/384/521 and
// Ed25519. Keys for encryption ("use": "enc") and private key material are
// skipped; a set with no usable key is an error.
func ParseJWKS(data []byte) ([]JWK, error) {
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("not a JSON Web Key Set: %v", err)
	}
	var out []JWK
	var skipped []string
	for i, k := range set.Keys {
		str := func(n string) string { s, _ := k[n].(string); return s }
		if use := str("use"); use != "" && use != "sig" {
			continue
		}
		if _, private := k["d"]; private {
			skipped = append(skipped, fmt.Sprintf("key %d holds private key material", i+1))
			continue
		}
		key, err := publicKey(str)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("key %d (kid %q): %v", i+1, str("kid"), err))
			continue
		}
		out = append(out, JWK{ID: str("kid"), Alg: str("alg"), Key: key})
	}
	if len(out) == 0 {
		if len(skipped) > 0 {
			return nil, fmt.Errorf("no usable signing key: %s", strings.Join(skipped, "; "))
		}
		return nil, errors.New("no signing key in the set")
	}
	return out, nil
}

func publicKey(str func(string) string) (crypto.PublicKey, error) {
	num := func(n string) (*big.Int, error) {
		b, err := b64url.DecodeString(str(n))
		if err != nil || len(b) == 0 {
			return nil, fmt.Errorf("%q is missing or not base64url", n)
		}
		return new(big.Int).SetBytes(b), nil
	}
	switch str("kty") {
	case "RSA":
		n, err := num("n")
		if err != nil {
			return nil, err
		}
		e, err := num("e")
		if err != nil {
			return nil, err
		}
		if n.BitLen() < minRSABits {
			return nil, fmt.Errorf("RSA key of %d bits; at least %d are required", n.BitLen(), minRSABits)
		}
		if !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 || e.Bit(0) == 0 {
			return nil, errors.New("RSA exponent out of range")
		}
		return &rsa.PublicKey{N: n, E: int(e.Int64())}, nil
	case "EC":
		var c elliptic.Curve
		switch str("crv") {
		case "P-256":
			c = elliptic.P256()
		case "P-384":
			c = elliptic.P384()
		case "P-521":
			c = elliptic.P521()
		default:
			return nil, fmt.Errorf("EC curve %q not supported", str("crv"))
		}
		x, err := num("x")
		if err != nil {
			return nil, err
		}
		y, err := num("y")
		if err != nil {
			return nil, err
		}
		size := (c.Params().BitSize + 7) / 8
		pt := make([]byte, 1+2*size)
		pt[0] = 4
		if len(x.Bytes()) > size || len(y.Bytes()) > size {
			return nil, errors.New("EC coordinates too long")
		}
		x.FillBytes(pt[1 : 1+size])
		y.FillBytes(pt[1+size:])
		// ParseUncompressedPublicKey checks the point is on the curve.
		k, err := ecdsa.ParseUncompressedPublicKey(c, pt)
		if err != nil {
			return nil, errors.New("EC point not on the curve")
		}
		return k, nil
	case "OKP":
		if str("crv") != "Ed25519" {
			return nil, fmt.Errorf("OKP curve %q not supported", str("crv"))
		}
		b, err := b64url.DecodeString(str("x"))
		if err != nil || len(b) != ed25519.PublicKeySize {
			return nil, errors.New("Ed25519 key is not 32 bytes of base64url")
		}
		return ed25519.PublicKey(b), nil
	}
	return nil, fmt.Errorf("key type %q not supported", str("kty"))
}

// NewKeySource returns the source for spec: an https:// URL (fetched,
// cached for refresh) or a file path (re-read when it changes). Plain
// http is refused: whoever could alter the answer could mint tokens.
func NewKeySource(spec string, refresh time.Duration) (KeySource, error) {
	switch {
	case strings.HasPrefix(spec, "https://"):
		return &URLKeys{URL: spec, Refresh: refresh}, nil
	case strings.Contains(spec, "://"):
		return nil, fmt.Errorf("jwks %q: only https:// URLs or file paths are accepted", spec)
	case spec == "":
		return nil, errors.New("jwks: empty")
	}
	return &FileKeys{Path: spec}, nil
}

// FileKeys reads a JWKS file, again whenever it changes.
type FileKeys struct {
	Path string

	mu   sync.Mutex
	info fs.FileInfo
	keys []JWK
	err  error
}

// Keys implements KeySource.
func (f *FileKeys) Keys(ctx context.Context, _ string) ([]JWK, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fi, err := os.Stat(f.Path)
	if err != nil {
		return nil, fmt.Errorf("%w: jwks file: %v", ErrUnavailable, err)
	}
	if f.info != nil && os.SameFile(fi, f.info) && fi.Size() == f.info.Size() && fi.ModTime().Equal(f.info.ModTime()) {
		return f.keys, f.err
	}
	data, err := readLimited(f.Path)
	if err != nil {
		return nil, fmt.Errorf("%w: jwks file: %v", ErrUnavailable, err)
	}
	f.info = fi
	f.keys, f.err = ParseJWKS(data)
	if f.err != nil {
		f.err = fmt.Errorf("%w: jwks file %s: %v", ErrUnavailable, f.Path, f.err)
	}
	return f.keys, f.err
}

func readLimited(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, maxJWKS+1))
	if err == nil && len(data) > maxJWKS {
		err = fmt.Errorf("larger than %d bytes", maxJWKS)
	}
	return data, err
}

// URLKeys fetches a JWKS over https and caches it. When a fetch fails the
// keys last fetched stay in use (an issuer briefly down does not lock
// everyone out); with none fetched yet, Keys fails.
type URLKeys struct {
	URL string
	// Refresh is how long fetched keys are used; 0 means
	// DefaultJWKSRefresh.
	Refresh time.Duration
	// Client fetches; nil means one with a 10 s timeout and TLS 1.2 at
	// least, trusting the system's roots.
	Client *http.Client

	mu        sync.Mutex
	keys      []JWK
	fetchedAt time.Time
	triedAt   time.Time
}

// Keys implements KeySource.
func (u *URLKeys) Keys(ctx context.Context, kid string) ([]JWK, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	refresh := u.Refresh
	if refresh <= 0 {
		refresh = DefaultJWKSRefresh
	}
	now := time.Now()
	stale := u.keys == nil || now.Sub(u.fetchedAt) >= refresh
	unknown := kid != "" && !hasKid(u.keys, kid) && now.Sub(u.triedAt) >= MinJWKSRefetch
	if stale || unknown {
		u.triedAt = now
		keys, err := u.fetch(ctx)
		switch {
		case err == nil:
			u.keys, u.fetchedAt = keys, now
		case u.keys == nil:
			return nil, fmt.Errorf("%w: jwks %s: %v", ErrUnavailable, u.URL, err)
		}
	}
	return u.keys, nil
}

func hasKid(keys []JWK, kid string) bool {
	for _, k := range keys {
		if k.ID == kid {
			return true
		}
	}
	return false
}

func (u *URLKeys) fetch(ctx context.Context) ([]JWK, error) {
	cl := u.Client
	if cl == nil {
		cl = &http.Client{Timeout: jwksFetchTimeout, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12}, Proxy: http.ProxyFromEnvironment}}
	}
	ctx, cancel := context.WithTimeout(ctx, jwksFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.URL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := cl.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP status %d", resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKS+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxJWKS {
		return nil, fmt.Errorf("larger than %d bytes", maxJWKS)
	}
	return ParseJWKS(data)
}
