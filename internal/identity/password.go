package identity

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Params are Argon2id's cost parameters (RFC 9106).
type Params struct {
	Time    uint32 // passes over memory
	Memory  uint32 // KiB
	Threads uint8
}

// Argon2id defaults for new password hashes. Each hash records its own
// parameters, so raising these later applies to passwords set from then
// on while older hashes still verify.
const (
	// DefaultArgonTime: 3 passes, RFC 9106's second recommended option
	// for memory-constrained uses (t=3 with 64 MiB).
	DefaultArgonTime = 3
	// DefaultArgonMemory: 64 MiB (in KiB), the same RFC 9106 option.
	// Large enough that guessing on GPUs is costly, small enough that a
	// few verifications at once fit a small server.
	DefaultArgonMemory = 64 * 1024
	// DefaultArgonThreads: 2 lanes. The archive runs on small machines
	// (two cores is common); more lanes than cores buy nothing.
	DefaultArgonThreads = 2
	// saltLen: 16 bytes, RFC 9106's recommendation.
	saltLen = 16
	// keyLen: a 32-byte tag, RFC 9106's recommendation.
	keyLen = 32
	// maxArgonMemory bounds the memory a stored hash may ask for when it
	// is verified (1 GiB), so that an edited users file cannot make each
	// association allocate without limit.
	maxArgonMemory = 1 << 20
	// maxArgonTime bounds the passes a stored hash may ask for.
	maxArgonTime = 64
)

// DefaultParams are the parameters new hashes get.
var DefaultParams = Params{Time: DefaultArgonTime, Memory: DefaultArgonMemory, Threads: DefaultArgonThreads}

// Password length limits.
const (
	// MinPasswordLength is 12 characters: a password guessed offline
	// against a stolen users file must resist for long even with Argon2id,
	// and NIST SP 800-63B asks for at least 8 (15 without a second factor);
	// 12 is the compromise devices' configuration screens accept.
	MinPasswordLength = 12
	// MaxPasswordLength is 1024 bytes: far above any real password, and
	// it bounds the work per verification.
	MaxPasswordLength = 1024
)

// CheckPassword refuses passwords that are too short or too long.
func CheckPassword(p string) error {
	if n := utf8.RuneCountInString(p); n < MinPasswordLength {
		return fmt.Errorf("%w: it has %d characters; use at least %d", ErrWeakPassword, n, MinPasswordLength)
	}
	if len(p) > MaxPasswordLength {
		return fmt.Errorf("%w: longer than %d bytes", ErrWeakPassword, MaxPasswordLength)
	}
	return nil
}

var (
	paramsMu  sync.Mutex
	hashWith  = DefaultParams
	dummyHash = map[Params]string{}
)

// SetParamsForTesting makes HashPassword use p until restore is called.
// It exists so that test suites that add many users stay fast; it is
// never called outside tests, and it cannot weaken hashes already stored,
// which are verified with the parameters recorded in them.
func SetParamsForTesting(p Params) (restore func()) {
	paramsMu.Lock()
	old := hashWith
	hashWith = p
	paramsMu.Unlock()
	return func() {
		paramsMu.Lock()
		hashWith = old
		paramsMu.Unlock()
	}
}

func currentParams() Params {
	paramsMu.Lock()
	defer paramsMu.Unlock()
	return hashWith
}

var b64 = base64.RawStdEncoding

// HashPassword hashes password with Argon2id and a random salt, in the
// PHC string format: $argon2id$v=19$m=65536,t=3,p=2$<salt>$<hash>.
func HashPassword(password string) (string, error) {
	p := currentParams()
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, keyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

var errBadHash = errors.New("not an Argon2id hash this version reads")

// parseHash reads a PHC Argon2id string.
func parseHash(s string) (Params, []byte, []byte, error) {
	var p Params
	f := strings.Split(s, "$")
	if len(f) != 6 || f[0] != "" || f[1] != "argon2id" || f[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return p, nil, nil, errBadHash
	}
	var threads uint32
	if n, err := fmt.Sscanf(f[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &threads); err != nil || n != 3 {
		return p, nil, nil, errBadHash
	}
	if p.Memory < 8 || p.Memory > maxArgonMemory || p.Time < 1 || p.Time > maxArgonTime || threads < 1 || threads > 255 {
		return p, nil, nil, fmt.Errorf("%w (parameters out of range)", errBadHash)
	}
	p.Threads = uint8(threads)
	salt, err := b64.DecodeString(f[4])
	if err != nil || len(salt) < 8 {
		return p, nil, nil, errBadHash
	}
	key, err := b64.DecodeString(f[5])
	if err != nil || len(key) < 16 || len(key) > 64 {
		return p, nil, nil, errBadHash
	}
	return p, salt, key, nil
}

// checkHash reports whether password matches the PHC string hash. The
// comparison of the derived keys is constant-time.
func checkHash(hash, password string) bool {
	p, salt, key, err := parseHash(hash)
	if err != nil {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1
}

// burnHash spends the time a verification takes, for an unknown user, so
// that the answer's timing does not tell which user names exist.
func burnHash(password string) {
	p := currentParams()
	paramsMu.Lock()
	h, ok := dummyHash[p]
	paramsMu.Unlock()
	if !ok {
		var err error
		if h, err = HashPassword("dicomshield-no-such-user"); err != nil {
			return
		}
		paramsMu.Lock()
		dummyHash[p] = h
		paramsMu.Unlock()
	}
	checkHash(h, password)
}
