package store_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/dicomshield/dicomshield/internal/store"
	"github.com/dicomshield/dicomshield/internal/store/fs"
	"github.com/dicomshield/dicomshield/internal/store/sqlite"
)

// verifyFixture is an index and blob store holding n instances, each in a
// blob of its own; it returns their blob keys in ledger order.
func verifyFixture(t *testing.T, dir string, n int) []string {
	t.Helper()
	ix, err := sqlite.Open(filepath.Join(dir, "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	bl, err := fs.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for i := range n {
		w, err := bl.Create()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(w, "instance %d of the verify test", i)
		key, size, err := w.Commit()
		if err != nil {
			t.Fatal(err)
		}
		in := &store.Instance{PatientID: "P", StudyInstanceUID: "1.2.5", SeriesInstanceUID: "1.2.5.1",
			SOPInstanceUID: fmt.Sprintf("1.2.5.1.%d", i+1), SOPClassUID: "1.2.840.10008.5.1.4.1.1.2",
			BlobKey: key, Size: size, Sender: "CT1", ReceivedAt: time.Date(2024, 1, 1, 0, 0, i, 0, time.UTC)}
		if err := ix.Add(context.Background(), in, store.Guard{SealAfter: time.Hour}); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, key)
	}
	return keys
}

func blobPath(dir, key string) string {
	return filepath.Join(dir, "blobs", key[0:2], key[2:4], key)
}

// sqlExec runs statements on the index database directly, as someone with
// access to the file would.
func sqlExec(t *testing.T, dir string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

type want struct {
	kind string
	seq  int64
}

// TestVerify: each way of tampering with an archive behind dicomshield's
// back is reported as what it is, and an untouched archive is clean.
func TestVerify(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, dir string, keys []string)
		want   []want
	}{
		{"untouched", func(*testing.T, string, []string) {}, nil},
		{"a file's bytes edited", func(t *testing.T, dir string, keys []string) {
			p := blobPath(dir, keys[1])
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b[3] ^= 0x20
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}, []want{{store.ProblemChanged, 2}}},
		{"a file deleted", func(t *testing.T, dir string, keys []string) {
			if err := os.Remove(blobPath(dir, keys[2])); err != nil {
				t.Fatal(err)
			}
		}, []want{{store.ProblemMissing, 3}}},
		{"a blob added under its own hash", func(t *testing.T, dir string, keys []string) {
			b := []byte("a forged instance")
			s := sha256.Sum256(b)
			k := hex.EncodeToString(s[:])
			os.MkdirAll(filepath.Dir(blobPath(dir, k)), 0o700)
			if err := os.WriteFile(blobPath(dir, k), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}, []want{{store.ProblemAdded, 0}}},
		{"a stray file added", func(t *testing.T, dir string, keys []string) {
			if err := os.WriteFile(filepath.Join(dir, "blobs", keys[0][0:2], "forged.dcm"), []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, []want{{store.ProblemAdded, 0}}},
		{"a ledger entry edited (triggers dropped)", func(t *testing.T, dir string, keys []string) {
			sqlExec(t, dir, `DROP TRIGGER ledger_no_update`, `UPDATE ledger SET peer = 'FORGER' WHERE seq = 2`)
		}, []want{{store.ProblemChainBreak, 2}}},
		{"a ledger entry edited and rehashed", func(t *testing.T, dir string, keys []string) {
			ix, err := sqlite.Open(filepath.Join(dir, "index.db"))
			if err != nil {
				t.Fatal(err)
			}
			var e store.LedgerEntry
			ix.LedgerEntries(context.Background(), 1, func(x *store.LedgerEntry) error {
				if x.Seq == 2 {
					e = *x
				}
				return nil
			})
			ix.Close()
			e.Peer = "FORGER"
			sqlExec(t, dir, `DROP TRIGGER ledger_no_update`,
				fmt.Sprintf(`UPDATE ledger SET peer = 'FORGER', hash = '%s' WHERE seq = 2`, e.ComputeHash()))
		}, []want{{store.ProblemChainBreak, 3}}},
		{"a ledger entry deleted", func(t *testing.T, dir string, keys []string) {
			sqlExec(t, dir, `DROP TRIGGER ledger_no_delete`, `DELETE FROM ledger WHERE seq = 2`)
		}, []want{{store.ProblemChainBreak, 3}, {store.ProblemAdded, 0}, {store.ProblemUnledgered, 0}}},
		{"an index row pointed at another file", func(t *testing.T, dir string, keys []string) {
			b := []byte("replacement content")
			s := sha256.Sum256(b)
			k := hex.EncodeToString(s[:])
			os.MkdirAll(filepath.Dir(blobPath(dir, k)), 0o700)
			if err := os.WriteFile(blobPath(dir, k), b, 0o600); err != nil {
				t.Fatal(err)
			}
			sqlExec(t, dir, fmt.Sprintf(`UPDATE instance SET blob_key = '%s' WHERE sop_uid = '1.2.5.1.1'`, k))
		}, []want{{store.ProblemAdded, 0}, {store.ProblemUnledgered, 0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			keys := verifyFixture(t, dir, 4)
			tc.tamper(t, dir, keys)
			ix, err := sqlite.Open(filepath.Join(dir, "index.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer ix.Close()
			bl, err := fs.Open(filepath.Join(dir, "blobs"))
			if err != nil {
				t.Fatal(err)
			}
			r, err := store.Verify(context.Background(), ix, bl, nil)
			if err != nil {
				t.Fatal(err)
			}
			var got []want
			for _, p := range r.Problems {
				got = append(got, want{p.Kind, p.Seq})
			}
			slices.SortFunc(got, func(a, b want) int {
				if a.kind != b.kind {
					return map[bool]int{true: -1, false: 1}[a.kind < b.kind]
				}
				return int(a.seq - b.seq)
			})
			exp := slices.Clone(tc.want)
			slices.SortFunc(exp, func(a, b want) int {
				if a.kind != b.kind {
					return map[bool]int{true: -1, false: 1}[a.kind < b.kind]
				}
				return int(a.seq - b.seq)
			})
			if !slices.Equal(got, exp) {
				t.Errorf("problems %+v, want %+v", r.Problems, exp)
			}
			if r.OK() != (len(tc.want) == 0) {
				t.Errorf("OK() = %v", r.OK())
			}
			if r.Files < 3 || r.Entries < 3 || r.HeadSeq == 0 || len(r.HeadHash) != 64 {
				t.Errorf("report %d files, %d entries, head %d %s", r.Files, r.Entries, r.HeadSeq, r.HeadHash)
			}
		})
	}
}

// rewriteChain rewrites the ledger from entry from on, as a forger with
// the database would: a changed peer, every later hash recomputed, so the
// chain is consistent again.
func rewriteChain(t *testing.T, dir string, from int64) {
	t.Helper()
	ix, err := sqlite.Open(filepath.Join(dir, "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	var entries []store.LedgerEntry
	ix.LedgerEntries(context.Background(), 0, func(e *store.LedgerEntry) error { entries = append(entries, *e); return nil })
	ix.Close()
	stmts := []string{`DROP TRIGGER ledger_no_update`}
	prev := entries[from-2].Hash
	for _, e := range entries[from-1:] {
		e.Peer, e.Prev = "FORGER", prev
		e.Hash = e.ComputeHash()
		stmts = append(stmts, fmt.Sprintf(`UPDATE ledger SET peer = 'FORGER', prev = '%s', hash = '%s' WHERE seq = %d`, e.Prev, e.Hash, e.Seq))
		prev = e.Hash
	}
	sqlExec(t, dir, stmts...)
}

// TestVerifyRecordedHead: a ledger rewritten consistently from some entry
// on passes the chain walk; a head recorded before the rewrite catches it,
// and catches a chain cut short.
func TestVerifyRecordedHead(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, dir string)
		expect bool // check against the head recorded before tampering
		want   []string
	}{
		{"untouched, recorded head", func(*testing.T, string) {}, true, nil},
		{"rewritten from entry 2, no recorded head", func(t *testing.T, dir string) { rewriteChain(t, dir, 2) }, false, nil},
		{"rewritten from entry 2, recorded head", func(t *testing.T, dir string) { rewriteChain(t, dir, 2) }, true, []string{store.ProblemRecordedHead}},
		{"last entry removed, recorded head", func(t *testing.T, dir string) {
			sqlExec(t, dir, `DROP TRIGGER ledger_no_delete`, `DELETE FROM ledger WHERE seq = 4`)
		}, true, []string{store.ProblemAdded, store.ProblemRecordedHead, store.ProblemUnledgered}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			verifyFixture(t, dir, 4)
			ix, err := sqlite.Open(filepath.Join(dir, "index.db"))
			if err != nil {
				t.Fatal(err)
			}
			recorded, err := ix.LedgerHead(context.Background())
			ix.Close()
			if err != nil || recorded.Seq != 4 {
				t.Fatalf("head %+v, %v", recorded, err)
			}
			tc.tamper(t, dir)
			ix, err = sqlite.Open(filepath.Join(dir, "index.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer ix.Close()
			bl, err := fs.Open(filepath.Join(dir, "blobs"))
			if err != nil {
				t.Fatal(err)
			}
			var expect *store.LedgerEntry
			if tc.expect {
				expect = &store.LedgerEntry{Seq: recorded.Seq, Hash: recorded.Hash}
			}
			r, err := store.Verify(context.Background(), ix, bl, expect)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range r.Problems {
				got = append(got, p.Kind)
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("problems %+v, want kinds %v", r.Problems, tc.want)
			}
		})
	}
}
