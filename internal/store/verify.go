package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
)

// Kinds of Problem that Verify reports.
const (
	// ProblemChanged: a stored file's content no longer hashes to its key
	// (it was edited on disk).
	ProblemChanged = "changed"
	// ProblemMissing: a file the ledger recorded is gone.
	ProblemMissing = "missing"
	// ProblemAdded: a file in the blob store that the ledger never
	// recorded (put there outside dicomshield), or a file that is not a
	// blob at all.
	ProblemAdded = "added"
	// ProblemChainBreak: a ledger entry whose hash is not the hash of its
	// content, whose Prev is not the previous entry's hash, or a gap in
	// the sequence: the ledger was edited.
	ProblemChainBreak = "chain-break"
	// ProblemRecordedHead: a head recorded earlier (Verify's expect) is
	// not in the chain: the ledger was rewritten from that entry on, or
	// cut short.
	ProblemRecordedHead = "recorded-head"
	// ProblemUnledgered: the index refers to a file the ledger never
	// recorded: an index row was written or changed outside dicomshield.
	ProblemUnledgered = "unledgered"
)

// Problem is one thing Verify found wrong. It names files by their key
// (the content hash) and instances by SOP Instance UID, never by patient
// data.
type Problem struct {
	Kind           string `json:"kind"`
	Seq            int64  `json:"seq,omitempty"`
	BlobKey        string `json:"blob_key,omitempty"`
	Name           string `json:"name,omitempty"` // a stray file's path inside the blob store
	SOPInstanceUID string `json:"sop_instance_uid,omitempty"`
	Detail         string `json:"detail"`
}

// VerifyReport is what Verify found.
type VerifyReport struct {
	// HeadSeq and HeadHash are the ledger's last entry, as stored.
	HeadSeq  int64  `json:"head_seq"`
	HeadHash string `json:"head_hash"`
	// Entries is the number of ledger entries walked, Files the number of
	// blobs re-hashed.
	Entries  int64     `json:"entries"`
	Files    int       `json:"files"`
	Problems []Problem `json:"problems"`
}

// OK reports whether nothing was found wrong.
func (r *VerifyReport) OK() bool { return len(r.Problems) == 0 }

// StrayLister is implemented by blob stores that can list the entries
// that are not blobs of theirs (a file dropped into the directory under
// another name), for Verify. Scratch files of unfinished writes are not
// strays.
type StrayLister interface {
	Strays(fn func(name string) error) error
}

// Verify checks the archive against its ledger: it walks the hash chain
// (recomputing each entry's hash and its link to the one before), re-hashes
// every blob, and compares the three views: the ledger, the index's blob
// keys and the blobs present. Stores that finish while it runs are
// re-read from the ledger at the end, so a live archive reports no false
// "added"; only a store between its blob's commit and its index row (a few
// milliseconds) can still show as one.
//
// expect, if not nil, is a head recorded earlier (only its Seq and Hash
// count): the chain must still hold that entry with that hash. A chain
// rewritten consistently from some entry on passes every other check;
// only a head kept outside the archive shows it.
//
// An error is returned only when the check itself could not run; what it
// found is in the report.
func Verify(ctx context.Context, ix Index, bl Blobs, expect *LedgerEntry) (*VerifyReport, error) {
	r := &VerifyReport{Problems: []Problem{}}
	var seen *LedgerEntry
	ledgered := map[string]int64{} // blob key -> first seq
	sop := map[string]string{}     // blob key -> SOP Instance UID
	prev := LedgerGenesis
	var last int64
	walk := func(e *LedgerEntry) error {
		r.Entries++
		switch {
		case e.Seq != last+1:
			r.Problems = append(r.Problems, Problem{Kind: ProblemChainBreak, Seq: e.Seq,
				Detail: fmt.Sprintf("entry %d follows entry %d: entries were removed or renumbered", e.Seq, last)})
		case e.Prev != prev:
			r.Problems = append(r.Problems, Problem{Kind: ProblemChainBreak, Seq: e.Seq, SOPInstanceUID: e.SOPInstanceUID,
				Detail: "its previous-hash is not the hash of the entry before it"})
		}
		if h := e.ComputeHash(); h != e.Hash {
			r.Problems = append(r.Problems, Problem{Kind: ProblemChainBreak, Seq: e.Seq, SOPInstanceUID: e.SOPInstanceUID,
				Detail: "its content does not hash to its recorded hash: the entry was edited"})
		}
		if _, ok := ledgered[e.BlobKey]; !ok {
			ledgered[e.BlobKey] = e.Seq
			sop[e.BlobKey] = e.SOPInstanceUID
		}
		if expect != nil && e.Seq == expect.Seq {
			seen = &LedgerEntry{Seq: e.Seq, Hash: e.Hash}
		}
		last, prev = e.Seq, e.Hash
		r.HeadSeq, r.HeadHash = e.Seq, e.Hash
		return ctx.Err()
	}
	r.HeadHash = LedgerGenesis
	if err := ix.LedgerEntries(ctx, 0, walk); err != nil {
		return nil, fmt.Errorf("store: verify: %w", err)
	}

	present := map[string]bool{}
	if err := bl.List(func(k string) error {
		present[k] = true
		return ctx.Err()
	}); err != nil {
		return nil, fmt.Errorf("store: verify: %w", err)
	}
	var added []string
	for k := range present {
		if _, ok := ledgered[k]; !ok {
			added = append(added, k)
		}
	}
	// Stores that completed meanwhile: chain their entries too (their
	// files may have been listed or not).
	listed := last
	if err := ix.LedgerEntries(ctx, last, walk); err != nil {
		return nil, fmt.Errorf("store: verify: %w", err)
	}

	for _, k := range sortedKeys(present) {
		r.Files++
		sum, err := hashBlob(bl, k)
		if err != nil {
			return nil, fmt.Errorf("store: verify: blob %s: %w", k, err)
		}
		if sum != k {
			r.Problems = append(r.Problems, Problem{Kind: ProblemChanged, Seq: ledgered[k], BlobKey: k, SOPInstanceUID: sop[k],
				Detail: "the file's content no longer matches its SHA-256: it was changed on disk"})
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	for _, k := range added {
		if _, ok := ledgered[k]; !ok {
			r.Problems = append(r.Problems, Problem{Kind: ProblemAdded, BlobKey: k,
				Detail: "a file the ledger never recorded: it was put there outside dicomshield"})
		}
	}
	for _, k := range sortedKeys(ledgered) {
		if !present[k] && ledgered[k] <= listed {
			r.Problems = append(r.Problems, Problem{Kind: ProblemMissing, Seq: ledgered[k], BlobKey: k, SOPInstanceUID: sop[k],
				Detail: "a file the ledger recorded is gone"})
		}
	}
	if expect != nil {
		switch {
		case seen == nil:
			r.Problems = append(r.Problems, Problem{Kind: ProblemRecordedHead, Seq: expect.Seq,
				Detail: fmt.Sprintf("the recorded head is entry %d, but the chain ends at %d: entries were removed", expect.Seq, r.HeadSeq)})
		case seen.Hash != expect.Hash:
			r.Problems = append(r.Problems, Problem{Kind: ProblemRecordedHead, Seq: expect.Seq,
				Detail: "entry " + fmt.Sprint(expect.Seq) + " no longer has the recorded hash: the chain was rewritten from there on"})
		}
	}
	if s, ok := bl.(StrayLister); ok {
		if err := s.Strays(func(name string) error {
			r.Problems = append(r.Problems, Problem{Kind: ProblemAdded, Name: name,
				Detail: "a file that is not a blob of dicomshield's: it was put there outside dicomshield"})
			return nil
		}); err != nil {
			return nil, fmt.Errorf("store: verify: %w", err)
		}
	}
	if err := ix.BlobKeys(ctx, func(k string) error {
		if _, ok := ledgered[k]; !ok {
			r.Problems = append(r.Problems, Problem{Kind: ProblemUnledgered, BlobKey: k,
				Detail: "the index refers to a file the ledger never recorded: the index was changed outside dicomshield"})
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("store: verify: %w", err)
	}
	return r, nil
}

// hashBlob returns the hex SHA-256 of the blob stored under key.
func hashBlob(bl Blobs, key string) (string, error) {
	rc, err := bl.Open(key)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
