package enroll

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/dicomshield/dicomshield/internal/privfile"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// TokensFileName is the token file's name in the data directory.
const TokensFileName = "enroll-tokens.json"

const (
	tokensVersion = 1
	// maxTokensFile bounds what is read of the token file: 4 MiB, tens of
	// thousands of tokens, far more than are ever outstanding.
	maxTokensFile = 4 << 20
)

// Tokens is the token file. It is safe for concurrent use by goroutines
// and processes (an exclusive lock on a ".lock" file beside it).
type Tokens struct {
	// Path is the token file (normally enroll-tokens.json in the data
	// directory).
	Path string
	// Now is the clock; nil means time.Now. Tests inject one.
	Now func() time.Time
}

// tokenEntry is one token as stored: never the secret, only its hash.
type tokenEntry struct {
	Hash    string     `json:"sha256"`
	AETitle string     `json:"ae_title"`
	Expires time.Time  `json:"expires"`
	UsedAt  *time.Time `json:"used_at,omitempty"`
}

type tokensFile struct {
	Version int          `json:"version"`
	Tokens  []tokenEntry `json:"tokens"`
}

func (s *Tokens) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Create makes a token for the peer ae, valid for lifetime, naming the CA
// by caFingerprint. Tokens made earlier for the same peer and not yet used
// stop working: there is one outstanding token per peer.
func (s *Tokens) Create(ae string, lifetime time.Duration, caFingerprint string) (Token, time.Time, error) {
	secret, err := newSecret()
	if err != nil {
		return Token{}, time.Time{}, err
	}
	expires := s.now().Add(lifetime).UTC().Truncate(time.Second)
	err = s.update(func(entries []tokenEntry) ([]tokenEntry, error) {
		entries = slices.DeleteFunc(entries, func(e tokenEntry) bool { return e.AETitle == ae && e.UsedAt == nil })
		return append(entries, tokenEntry{Hash: hashSecret(secret), AETitle: ae, Expires: expires}), nil
	})
	if err != nil {
		return Token{}, time.Time{}, err
	}
	return Token{Secret: secret, CAFingerprint: caFingerprint}, expires, nil
}

// Redeem uses the token whose secret is secret, once: it returns the AE
// title the token was made for and marks it used. check, if not nil, is
// called with the AE title before the token is marked; an error from it
// leaves the token unused and is returned. A token that is unknown, used
// or expired is refused with ErrTokenUnknown, ErrTokenUsed or
// ErrTokenExpired (each wrapping ErrTokenRefused); the AE title is
// returned with the latter two, for the audit trail.
func (s *Tokens) Redeem(secret []byte, check func(ae string) error) (string, error) {
	want := hashSecret(secret)
	var ae string
	err := s.update(func(entries []tokenEntry) ([]tokenEntry, error) {
		now := s.now()
		for i := range entries {
			e := &entries[i]
			if subtle.ConstantTimeCompare([]byte(e.Hash), []byte(want)) != 1 {
				continue
			}
			ae = e.AETitle
			switch {
			case e.UsedAt != nil:
				return nil, ErrTokenUsed
			case !now.Before(e.Expires):
				return nil, ErrTokenExpired
			}
			if check != nil {
				if err := check(ae); err != nil {
					return nil, err
				}
			}
			used := now.UTC().Truncate(time.Second)
			e.UsedAt = &used
			return entries, nil
		}
		return nil, ErrTokenUnknown
	})
	return ae, err
}

// update applies change to the entries under the file lock and writes the
// result. Entries expired for a day are dropped (kept that long so that a
// late reuse is reported as "used", not "unknown"). A nil result from
// change with no error would erase everything, so change must return the
// entries it keeps.
func (s *Tokens) update(change func([]tokenEntry) ([]tokenEntry, error)) error {
	tokensMu.Lock()
	defer tokensMu.Unlock()
	unlock, err := privfile.Lock(s.Path + ".lock")
	if err != nil {
		return fmt.Errorf("enroll: locking the token file: %w", err)
	}
	defer unlock()
	entries, err := s.read()
	if err != nil {
		return err
	}
	cutoff := s.now().Add(-keepExpired)
	entries = slices.DeleteFunc(entries, func(e tokenEntry) bool { return e.Expires.Before(cutoff) })
	entries, err = change(entries)
	if err != nil {
		return err
	}
	data, err := json.MarshalIndent(tokensFile{Version: tokensVersion, Tokens: entries}, "", "  ")
	if err != nil {
		return err
	}
	if err := privfile.WriteAtomic(s.Path, append(data, '\n')); err != nil {
		return fmt.Errorf("enroll: writing %s: %w", s.Path, err)
	}
	return nil
}

// tokensMu serialises updates within the process, where a flock on the
// same file from two descriptors would also serialise them on Linux, but
// not everywhere.
var tokensMu sync.Mutex

// keepExpired is how long an expired token stays in the file: 1 day, so
// that a reuse soon after expiry is recorded as what it is.
const keepExpired = 24 * time.Hour

func (s *Tokens) read() ([]tokenEntry, error) {
	f, err := os.Open(s.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	if !st.Mode().IsRegular() || st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("enroll: %s must be a regular file only its owner can access (chmod 600)", s.Path)
	}
	var tf tokensFile
	if err := privfile.DecodeJSON(f, maxTokensFile, &tf); err != nil {
		return nil, fmt.Errorf("enroll: %s %v", s.Path, err)
	}
	if tf.Version != tokensVersion {
		return nil, fmt.Errorf("enroll: %s has format version %d; this dicomshield reads %d", s.Path, tf.Version, tokensVersion)
	}
	return tf.Tokens, nil
}

// Pending returns the AE titles with an unused, unexpired token.
func (s *Tokens) Pending() (map[string]time.Time, error) {
	entries, err := s.read()
	if err != nil {
		return nil, err
	}
	now := s.now()
	out := map[string]time.Time{}
	for _, e := range entries {
		if e.UsedAt == nil && now.Before(e.Expires) {
			out[strings.TrimSpace(e.AETitle)] = e.Expires
		}
	}
	return out, nil
}
