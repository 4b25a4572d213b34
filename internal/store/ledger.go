package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Tamper-protection errors of Index.Add, wrapped like the others.
var (
	// ErrSealed: the instance is new to a series whose last instance
	// arrived more than Guard.SealAfter before it, and its sender may not
	// reopen the series. Nothing was changed.
	ErrSealed = errors.New("store: series sealed")
	// ErrForeignStudy: the instance is new to a study that another sender
	// created, and Guard.AllowForeignStudy is off. Nothing was changed.
	ErrForeignStudy = errors.New("store: study created by another sender")
)

// Guard holds the tamper checks Index.Add makes against the stored
// hierarchy, inside the transaction that records the instance (so that
// two concurrent stores cannot both slip past them). The zero Guard checks
// nothing; the archive builds one from its configuration and the sending
// peer, whose defaults seal series and refuse foreign studies.
type Guard struct {
	// SealAfter seals a series: a new instance for a series whose last
	// instance arrived more than SealAfter before the new one's ReceivedAt
	// is refused with ErrSealed. 0 never seals.
	SealAfter time.Duration
	// MayReopen lets the sender add to a sealed series that it created.
	MayReopen bool
	// AllowForeignStudy lets the sender add to a study another sender
	// created. False refuses it with ErrForeignStudy.
	AllowForeignStudy bool
}

// LedgerGenesis is the Prev of the first ledger entry: 64 zeros, the hash
// of nothing.
var LedgerGenesis = strings.Repeat("0", 64)

// ledgerMagic starts the canonical bytes of every entry, naming the format
// so that a future version can hash differently without ambiguity.
const ledgerMagic = "dicomshield-ledger-v1"

// LedgerEntry is one entry of the ledger: the append-only hash chain the
// index keeps over every instance it records, one entry per Add, written
// in the same transaction as the instance's row.
//
// Each entry's Hash is the lower-case hex SHA-256 of its canonical bytes
// (Canonical): seven lines, each ended by one LF (0x0A):
//
//	dicomshield-ledger-v1
//	<Seq, decimal>
//	<Time, nanoseconds since 1970-01-01T00:00:00Z, decimal>
//	<Peer: the sender's AE title>
//	<SOP Instance UID>
//	<BlobKey: the stored file's SHA-256, lower-case hex>
//	<Prev: the previous entry's Hash; LedgerGenesis for Seq 1>
//
// No field can hold an LF (UIDs, hex and AE titles exclude control
// characters), so the encoding is unambiguous, and anyone can recompute a
// hash with printf and sha256sum. Editing, removing or reordering any
// entry changes its hash and breaks every later Prev; the last entry's
// (Seq, Hash), the head, therefore vouches for the whole chain, and
// recording it elsewhere lets a later rewrite of the whole chain be seen.
type LedgerEntry struct {
	Seq            int64
	Time           time.Time
	Peer           string
	SOPInstanceUID string
	BlobKey        string
	Prev           string
	Hash           string
}

// Canonical returns the bytes Hash is computed over.
func (e *LedgerEntry) Canonical() []byte {
	b := make([]byte, 0, 256)
	for _, f := range []string{ledgerMagic, strconv.FormatInt(e.Seq, 10), strconv.FormatInt(e.Time.UnixNano(), 10),
		e.Peer, e.SOPInstanceUID, e.BlobKey, e.Prev} {
		b = append(b, f...)
		b = append(b, '\n')
	}
	return b
}

// ComputeHash returns the hash the entry should have: the hex SHA-256 of
// Canonical.
func (e *LedgerEntry) ComputeHash() string {
	s := sha256.Sum256(e.Canonical())
	return hex.EncodeToString(s[:])
}

// ValidLedgerField reports whether s can be a field of an entry: no
// control character (which would make the canonical bytes ambiguous).
func ValidLedgerField(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// Ledger is the read side of the hash chain, which every Index keeps.
type Ledger interface {
	// LedgerHead returns the last entry; Seq 0 and Hash LedgerGenesis
	// when the ledger is empty.
	LedgerHead(ctx context.Context) (LedgerEntry, error)
	// LedgerEntries calls fn with every entry whose Seq is above after,
	// in Seq order, as stored (not checked). It stops at fn's first error
	// and returns it.
	LedgerEntries(ctx context.Context, after int64, fn func(*LedgerEntry) error) error
}
