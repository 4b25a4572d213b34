package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dicomshield/dicomshield/internal/store"
)

// tamperInstance is the n-th instance of a series of one study, sent by
// sender at t0+at.
func tamperInstance(study, series string, n int, sender string, t0 time.Time, at time.Duration) *store.Instance {
	return &store.Instance{
		PatientID: "PAT-SEAL", StudyInstanceUID: study, SeriesInstanceUID: series,
		SOPInstanceUID: fmt.Sprintf("%s.%d", series, n), SOPClassUID: ctImage, InstanceNumber: fmt.Sprint(n),
		BlobKey: blobKeyFor(fmt.Sprintf("%s.%d", series, n)), Sender: sender, ReceivedAt: t0.Add(at),
	}
}

// testGuard: sealing and foreign-study refusal, each case on a fresh index
// holding one series (study 1.2.826.0.70, series .1, instance 1 sent by
// CREATOR at t0).
func testGuard(t *testing.T, newIndex func(t *testing.T) store.Index) {
	const study, series = "1.2.826.0.70", "1.2.826.0.70.1"
	t0 := fixtureTime
	seal := time.Hour
	secure := store.Guard{SealAfter: seal}
	for _, tc := range []struct {
		name string
		in   *store.Instance
		g    store.Guard
		want error // nil: stored
	}{
		{"creator within the seal time", tamperInstance(study, series, 2, "CREATOR", t0, 59*time.Minute), secure, nil},
		{"creator at exactly the seal time", tamperInstance(study, series, 2, "CREATOR", t0, seal), secure, nil},
		{"creator after the seal time", tamperInstance(study, series, 2, "CREATOR", t0, seal+time.Nanosecond), secure, store.ErrSealed},
		{"creator after the seal time, may reopen", tamperInstance(study, series, 2, "CREATOR", t0, 48*time.Hour),
			store.Guard{SealAfter: seal, MayReopen: true}, nil},
		{"never sealed", tamperInstance(study, series, 2, "CREATOR", t0, 48*time.Hour), store.Guard{}, nil},
		{"another peer, same series", tamperInstance(study, series, 2, "INTRUDER", t0, time.Minute), secure, store.ErrForeignStudy},
		{"another peer, new series of the study", tamperInstance(study, study+".2", 1, "INTRUDER", t0, time.Minute), secure, store.ErrForeignStudy},
		{"another peer allowed into foreign studies", tamperInstance(study, series, 2, "INTRUDER", t0, time.Minute),
			store.Guard{SealAfter: seal, AllowForeignStudy: true}, nil},
		{"another peer allowed, series sealed", tamperInstance(study, series, 2, "INTRUDER", t0, 2*time.Hour),
			store.Guard{SealAfter: seal, AllowForeignStudy: true}, store.ErrSealed},
		{"another peer allowed, sealed, may reopen only its own", tamperInstance(study, series, 2, "INTRUDER", t0, 2*time.Hour),
			store.Guard{SealAfter: seal, AllowForeignStudy: true, MayReopen: true}, store.ErrSealed},
		{"creator, new series of its study after the seal time", tamperInstance(study, study+".2", 1, "CREATOR", t0, 48*time.Hour), secure, nil},
		{"the same instance again after the seal time", tamperInstance(study, series, 1, "CREATOR", t0, 48*time.Hour), secure, store.ErrDuplicate},
		{"other content under the stored UID", func() *store.Instance {
			in := tamperInstance(study, series, 1, "CREATOR", t0, time.Minute)
			in.BlobKey = blobKeyFor("forged")
			return in
		}(), secure, store.ErrConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ix := newIndex(t)
			ctx := context.Background()
			if err := ix.Add(ctx, tamperInstance(study, series, 1, "CREATOR", t0, 0), secure); err != nil {
				t.Fatal(err)
			}
			before, err := ix.LedgerHead(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// Precheck gives Add's answer, except for what needs the
			// content (a stored SOP Instance UID).
			wantPre := tc.want
			if errors.Is(tc.want, store.ErrDuplicate) || errors.Is(tc.want, store.ErrConflict) {
				wantPre = nil
			}
			if perr := ix.Precheck(ctx, tc.in, tc.g); !errors.Is(perr, wantPre) || (wantPre == nil) != (perr == nil) {
				t.Errorf("Precheck = %v, want %v", perr, wantPre)
			}
			err = ix.Add(ctx, tc.in, tc.g)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Add = %v, want %v", err, tc.want)
			}
			after, err := ix.LedgerHead(ctx)
			if err != nil {
				t.Fatal(err)
			}
			got, gerr := ix.Get(ctx, tc.in.SOPInstanceUID)
			switch {
			case tc.want == nil:
				if gerr != nil || got.BlobKey != tc.in.BlobKey {
					t.Errorf("stored instance: %+v, %v", got, gerr)
				}
				if after.Seq != before.Seq+1 || after.SOPInstanceUID != tc.in.SOPInstanceUID || after.Prev != before.Hash {
					t.Errorf("ledger head %+v after %+v: want the new instance chained", after, before)
				}
			default:
				if after != before {
					t.Errorf("a refused Add moved the ledger head from %+v to %+v", before, after)
				}
				if errors.Is(tc.want, store.ErrDuplicate) || errors.Is(tc.want, store.ErrConflict) {
					if gerr != nil || got.BlobKey != blobKeyFor(series+".1") {
						t.Errorf("the stored instance changed: %+v, %v", got, gerr)
					}
				} else if !errors.Is(gerr, store.ErrNotFound) {
					t.Errorf("refused instance recorded: %v", gerr)
				}
			}
		})
	}

	// A series' last arrival moves with every instance: regular arrivals
	// keep it open however long it grows.
	ix := newIndex(t)
	ctx := context.Background()
	for n := 1; n <= 5; n++ {
		if err := ix.Add(ctx, tamperInstance(study, series, n, "CREATOR", t0, time.Duration(n-1)*50*time.Minute), secure); err != nil {
			t.Fatalf("instance %d, 50 min after the one before: %v", n, err)
		}
	}
	if err := ix.Add(ctx, tamperInstance(study, series, 6, "CREATOR", t0, 4*50*time.Minute+61*time.Minute), secure); !errors.Is(err, store.ErrSealed) {
		t.Fatalf("61 min after the last one: %v, want ErrSealed", err)
	}
}

// checkChain walks the ledger and checks every link; it returns the
// entries.
func checkChain(t *testing.T, ix store.Index) []store.LedgerEntry {
	t.Helper()
	var out []store.LedgerEntry
	prev := store.LedgerGenesis
	if err := ix.LedgerEntries(context.Background(), 0, func(e *store.LedgerEntry) error {
		if e.Seq != int64(len(out)+1) || e.Prev != prev || e.Hash != e.ComputeHash() {
			t.Errorf("ledger entry %d (prev %s, hash %s) does not chain after %s", e.Seq, e.Prev, e.Hash, prev)
		}
		prev = e.Hash
		out = append(out, *e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	head, err := ix.LedgerHead(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		if head.Seq != 0 || head.Hash != store.LedgerGenesis {
			t.Errorf("head of an empty ledger: %+v", head)
		}
	} else if head != out[len(out)-1] {
		t.Errorf("LedgerHead = %+v, last entry %+v", head, out[len(out)-1])
	}
	return out
}

// testLedger: one entry per instance added (none for duplicates and
// refusals), in order, with its sender, time, UID and blob key.
func testLedger(t *testing.T, newIndex func(t *testing.T) store.Index) {
	empty := newIndex(t)
	if got := checkChain(t, empty); len(got) != 0 {
		t.Fatalf("a new index has %d ledger entries", len(got))
	}
	ix, insts := loaded(t, newIndex)
	ctx := context.Background()
	again := *insts[0]
	ix.Add(ctx, &again, store.Guard{})
	entries := checkChain(t, ix)
	if len(entries) != len(insts) {
		t.Fatalf("%d ledger entries for %d instances", len(entries), len(insts))
	}
	for i, e := range entries {
		in := insts[i]
		if e.SOPInstanceUID != in.SOPInstanceUID || e.BlobKey != in.BlobKey || e.Peer != in.Sender || !e.Time.Equal(in.ReceivedAt) {
			t.Errorf("entry %d = %+v; want instance %s from %s at %v", e.Seq, e, in.SOPInstanceUID, in.Sender, in.ReceivedAt)
		}
	}
	// Entries after a given seq.
	var n int
	if err := ix.LedgerEntries(ctx, int64(len(entries)-2), func(e *store.LedgerEntry) error { n++; return nil }); err != nil || n != 2 {
		t.Errorf("entries after %d: %d, %v; want 2", len(entries)-2, n, err)
	}
	// A sender that would make the canonical bytes ambiguous is refused.
	bad := *insts[0]
	bad.SOPInstanceUID, bad.BlobKey, bad.Sender = "1.2.826.0.71", blobKeyFor("bad"), "AE\nX"
	if err := ix.Add(ctx, &bad, store.Guard{}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("sender with a newline: %v, want ErrInvalid", err)
	}
}

// testLedgerConcurrent: concurrent adds chain without a gap or fork.
func testLedgerConcurrent(t *testing.T, newIndex func(t *testing.T) store.Index) {
	ix := newIndex(t)
	const workers, each = 4, 20
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				series := fmt.Sprintf("1.2.826.0.72.%d", w)
				if err := ix.Add(context.Background(), tamperInstance("1.2.826.0.72", series, i+1, "CREATOR", fixtureTime, time.Duration(i)),
					store.Guard{SealAfter: time.Hour}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if got := checkChain(t, ix); len(got) != workers*each {
		t.Errorf("%d entries after %d adds", len(got), workers*each)
	}
}
