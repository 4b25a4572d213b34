package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/dicom/dict"
	"github.com/dicomshield/dicomshield/internal/store"
)

func runIndex(t *testing.T, newIndex func(t *testing.T) store.Index) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, newIndex func(t *testing.T) store.Index)
	}{
		{"AddGet", testAddGet},
		{"Duplicate", testDuplicate},
		{"Conflict", testConflict},
		{"Hierarchy", testHierarchy},
		{"Invalid", testAddInvalid},
		{"ConcurrentAdd", testConcurrentAdd},
		{"ConcurrentMixed", testConcurrentMixed},
		{"BlobKeys", testBlobKeys},
		{"Match", testMatch},
		{"ReturnKeys", testReturnKeys},
		{"CharacterSet", testQueryCharset},
		{"Counts", testCounts},
		{"Limit", testLimit},
		{"FindErrors", testFindErrors},
		{"Retrieve", testRetrieve},
		{"Closed", testClosed},
		{"Guard", testGuard},
		{"Ledger", testLedger},
		{"LedgerConcurrent", testLedgerConcurrent},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newIndex) })
	}
}

// ident builds an identifier from "Keyword" (a return key) and
// "Keyword=value" strings, the VR from the data dictionary. Values are
// UTF-8: an identifier with a non-ASCII value says so in its Specific
// Character Set, unless it sets one itself.
func ident(t *testing.T, keys ...string) *dicom.DataSet {
	t.Helper()
	ds := &dicom.DataSet{}
	for _, k := range keys {
		kw, val, _ := strings.Cut(k, "=")
		if !isASCII(val) && ds.Get(dicom.TagSpecificCharacterSet) == nil {
			ds.Set(dicom.NewText(dicom.TagSpecificCharacterSet, dicom.CS, "ISO_IR 192"))
		}
		tag, err := dicom.ParseTag(kw)
		if err != nil {
			t.Fatalf("key %q: %v", k, err)
		}
		e, ok := dict.Lookup(uint32(tag))
		if !ok {
			t.Fatalf("key %q: not in the dictionary", k)
		}
		vr, _ := dicom.ParseVR(e.VR)
		if vr == dicom.SQ {
			ds.Set(dicom.NewSequence(tag))
			continue
		}
		ds.Set(dicom.NewText(tag, vr, val))
	}
	return ds
}

// uniqueKey is the keyword of each level's unique key.
var uniqueKey = map[string]string{
	"PATIENT": "PatientID", "STUDY": "StudyInstanceUID", "SERIES": "SeriesInstanceUID", "IMAGE": "SOPInstanceUID",
}

func find(t *testing.T, ix store.Index, q *store.Query) ([]*dicom.DataSet, bool) {
	t.Helper()
	var out []*dicom.DataSet
	trunc, err := ix.Find(context.Background(), q, func(ds *dicom.DataSet) error {
		out = append(out, ds)
		return nil
	})
	if err != nil {
		t.Fatalf("Find: %v", err)
	}
	return out, trunc
}

// values returns the values of tag in each result, '\' joined.
func values(results []*dicom.DataSet, tag dicom.Tag) []string {
	out := []string{}
	for _, ds := range results {
		if e := ds.Get(tag); e != nil {
			out = append(out, strings.Join(e.Strings(), `\`))
		} else {
			out = append(out, "<absent>")
		}
	}
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

func testAddGet(t *testing.T, newIndex func(t *testing.T) store.Index) {
	ix, insts := loaded(t, newIndex)
	ctx := context.Background()
	for _, want := range insts {
		got, err := ix.Get(ctx, want.SOPInstanceUID)
		if err != nil {
			t.Fatalf("Get(%s): %v", want.SOPInstanceUID, err)
		}
		w := *want
		// The index answers ModalitiesInStudy from the series it holds.
		w.ModalitiesInStudy = studyModalities(want.StudyInstanceUID)
		if !got.ReceivedAt.Equal(w.ReceivedAt) {
			t.Errorf("Get(%s).ReceivedAt = %v, want %v", w.SOPInstanceUID, got.ReceivedAt, w.ReceivedAt)
		}
		got.ReceivedAt = w.ReceivedAt
		if !reflect.DeepEqual(got, &w) {
			t.Errorf("Get(%s)\n got %+v\nwant %+v", w.SOPInstanceUID, *got, w)
		}
	}
	for _, uid := range []string{"1.2.3.4", "", "1.2.826.0.1.1", "' OR 1=1--"} {
		if _, err := ix.Get(ctx, uid); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get(%q): %v, want ErrNotFound", uid, err)
		}
	}
}

// studyModalities is the ModalitiesInStudy the index should give a study
// of the fixture: its distinct modalities in order.
func studyModalities(studyUID string) string {
	var mods []string
	for _, st := range fixtureStudies {
		if st.uid != studyUID {
			continue
		}
		for _, se := range st.series {
			if !slices.Contains(mods, se.modality) {
				mods = append(mods, se.modality)
			}
		}
	}
	sort.Strings(mods)
	return strings.Join(mods, `\`)
}

func testDuplicate(t *testing.T, newIndex func(t *testing.T) store.Index) {
	ix, insts := loaded(t, newIndex)
	ctx := context.Background()
	for _, in := range insts[:3] {
		again := *in
		again.Sender = "ANOTHER_AE"
		if err := ix.Add(ctx, &again, store.Guard{}); !errors.Is(err, store.ErrDuplicate) {
			t.Fatalf("re-Add(%s): %v, want ErrDuplicate", in.SOPInstanceUID, err)
		}
		got, err := ix.Get(ctx, in.SOPInstanceUID)
		if err != nil || got.Sender != in.Sender {
			t.Fatalf("after a duplicate Add, Get = %+v, %v; want the first record kept", got, err)
		}
	}
}

func testConflict(t *testing.T, newIndex func(t *testing.T) store.Index) {
	ix, insts := loaded(t, newIndex)
	ctx := context.Background()
	in := *insts[0]
	in.BlobKey = blobKeyFor("other content")
	in.PatientName = "Forged^Name"
	if err := ix.Add(ctx, &in, store.Guard{}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Add of a known SOP instance with other content: %v, want ErrConflict", err)
	}
	got, err := ix.Get(ctx, in.SOPInstanceUID)
	if err != nil {
		t.Fatal(err)
	}
	if got.BlobKey != insts[0].BlobKey || got.PatientName != insts[0].PatientName {
		t.Fatalf("a conflicting Add changed the record: %+v", *got)
	}
}

// testHierarchy: a new instance must agree with the stored hierarchy, and
// the first instance of a patient, study or series sets its attributes.
func testHierarchy(t *testing.T, newIndex func(t *testing.T) store.Index) {
	ix, insts := loaded(t, newIndex)
	ctx := context.Background()
	base := *insts[0] // stSmithCT, PAT001

	// A series of stSmithCT, claimed for stMueller.
	in := base
	in.SOPInstanceUID, in.BlobKey = "1.2.826.0.99.1", blobKeyFor("h1")
	in.StudyInstanceUID = stMueller
	if err := ix.Add(ctx, &in, store.Guard{}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("series moved to another study: %v, want ErrConflict", err)
	}
	// A new series in stSmithCT under another patient ID.
	in = base
	in.SOPInstanceUID, in.BlobKey = "1.2.826.0.99.2", blobKeyFor("h2")
	in.SeriesInstanceUID = "1.2.826.0.99.2.0"
	in.PatientID = "PAT002"
	if err := ix.Add(ctx, &in, store.Guard{}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("study moved to another patient: %v, want ErrConflict", err)
	}
	// An existing series, another patient ID.
	in = base
	in.SOPInstanceUID, in.BlobKey = "1.2.826.0.99.3", blobKeyFor("h3")
	in.PatientID = "PAT999"
	if err := ix.Add(ctx, &in, store.Guard{}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("series of another patient ID: %v, want ErrConflict", err)
	}
	for _, uid := range []string{"1.2.826.0.99.1", "1.2.826.0.99.2", "1.2.826.0.99.3"} {
		if _, err := ix.Get(ctx, uid); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("rejected instance %s was recorded (%v)", uid, err)
		}
	}
	// A new instance of an existing series with other patient and study
	// attributes: accepted, the stored attributes are kept.
	in = base
	in.SOPInstanceUID, in.BlobKey = "1.2.826.0.99.4", blobKeyFor("h4")
	in.PatientName, in.StudyDescription, in.Modality = "Other^Name", "OTHER", "MR"
	if err := ix.Add(ctx, &in, store.Guard{}); err != nil {
		t.Fatalf("new instance of an existing series: %v", err)
	}
	got, err := ix.Get(ctx, in.SOPInstanceUID)
	if err != nil {
		t.Fatal(err)
	}
	if got.PatientName != base.PatientName || got.StudyDescription != base.StudyDescription || got.Modality != base.Modality {
		t.Errorf("the stored patient/study/series attributes changed: %+v", *got)
	}
	// A new study of an existing patient.
	in = base
	in.SOPInstanceUID, in.BlobKey = "1.2.826.0.99.5.1.1", blobKeyFor("h5")
	in.StudyInstanceUID, in.SeriesInstanceUID = "1.2.826.0.99.5", "1.2.826.0.99.5.1"
	if err := ix.Add(ctx, &in, store.Guard{}); err != nil {
		t.Fatalf("new study of an existing patient: %v", err)
	}
	res, _ := find(t, ix, &store.Query{Level: "STUDY", Identifier: ident(t, "PatientID=PAT001", "StudyInstanceUID")})
	if got := sorted(values(res, dicom.TagStudyInstanceUID)); !slices.Equal(got, sorted([]string{stSmithCT, stSmithMR, "1.2.826.0.99.5"})) {
		t.Errorf("studies of PAT001 = %v", got)
	}
}

func testAddInvalid(t *testing.T, newIndex func(t *testing.T) store.Index) {
	ix := newIndex(t)
	ctx := context.Background()
	good := fixtureInstances()[0]
	for name, mod := range map[string]func(in *store.Instance){
		"no SOP instance UID": func(in *store.Instance) { in.SOPInstanceUID = "" },
		"no SOP class UID":    func(in *store.Instance) { in.SOPClassUID = "" },
		"no study UID":        func(in *store.Instance) { in.StudyInstanceUID = "" },
		"no series UID":       func(in *store.Instance) { in.SeriesInstanceUID = "" },
		"no blob key":         func(in *store.Instance) { in.BlobKey = "" },
		"malformed UID":       func(in *store.Instance) { in.SOPInstanceUID = "1.2.3' OR 1=1--" },
	} {
		in := *good
		mod(&in)
		if err := ix.Add(ctx, &in, store.Guard{}); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: Add = %v, want ErrInvalid", name, err)
		}
	}
	if err := ix.Add(ctx, nil, store.Guard{}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("Add(nil) = %v, want ErrInvalid", err)
	}
	if err := ix.Add(ctx, good, store.Guard{}); err != nil {
		t.Fatalf("Add after rejected ones: %v", err)
	}
}

func testConcurrentAdd(t *testing.T, newIndex func(t *testing.T) store.Index) {
	ix := newIndex(t)
	ctx := context.Background()
	const workers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				// Workers share patients and studies, so they race to
				// create them.
				st := fmt.Sprintf("1.2.826.0.50.%d", i%3)
				in := &store.Instance{
					PatientID: fmt.Sprintf("P%d", i%3), StudyInstanceUID: st,
					SeriesInstanceUID: fmt.Sprintf("%s.%d", st, w%2),
					SOPInstanceUID:    fmt.Sprintf("1.2.826.0.51.%d.%d", w, i),
					SOPClassUID:       ctImage, BlobKey: blobKeyFor(fmt.Sprint(w, i)),
				}
				if err := ix.Add(ctx, in, store.Guard{}); err != nil {
					errs <- err
				}
				if _, err := ix.Get(ctx, in.SOPInstanceUID); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	res, _ := find(t, ix, &store.Query{Level: "IMAGE", Identifier: ident(t, "SOPInstanceUID")})
	if len(res) != workers*each {
		t.Fatalf("%d instances after concurrent adds, want %d", len(res), workers*each)
	}
	res, _ = find(t, ix, &store.Query{Level: "STUDY", Identifier: ident(t, "StudyInstanceUID")})
	if len(res) != 3 {
		t.Fatalf("%d studies, want 3", len(res))
	}
}

// testConcurrentMixed: adds that commit together (a backend may group
// them) still each get their own outcome: a conflict or a cancelled
// context fails alone, every other instance is stored and ledgered once.
func testConcurrentMixed(t *testing.T, newIndex func(t *testing.T) store.Index) {
	ix := newIndex(t)
	const workers, rounds = 8, 10
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	stored, conflicts := 0, 0
	fail := func(format string, args ...any) { mu.Lock(); t.Errorf(format, args...); mu.Unlock() }
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				st := fmt.Sprintf("1.2.826.0.53.%d", r)
				mk := func(sop, key string) *store.Instance {
					return &store.Instance{PatientID: "PMIX", StudyInstanceUID: st, SeriesInstanceUID: st + ".1",
						SOPInstanceUID: sop, SOPClassUID: ctImage, BlobKey: blobKeyFor(key), Sender: "MIX"}
				}
				// Its own instance: always stored.
				if err := ix.Add(context.Background(), mk(fmt.Sprintf("%s.1.%d", st, w), fmt.Sprint("own", w, r)), store.Guard{AllowForeignStudy: true}); err != nil {
					fail("own instance: %v", err)
				} else {
					mu.Lock()
					stored++
					mu.Unlock()
				}
				// A shared SOP instance two workers send with different
				// content: one stores it, the other conflicts.
				err := ix.Add(context.Background(), mk(fmt.Sprintf("%s.2.%d", st, w/2), fmt.Sprint("shared", w, r)), store.Guard{AllowForeignStudy: true})
				mu.Lock()
				switch {
				case err == nil:
					stored++
				case errors.Is(err, store.ErrConflict):
					conflicts++
				default:
					t.Errorf("shared instance: %v", err)
				}
				mu.Unlock()
				// A caller that gave up: nothing stored.
				if err := ix.Add(cancelled, mk(fmt.Sprintf("%s.3.%d", st, w), fmt.Sprint("gone", w, r)), store.Guard{AllowForeignStudy: true}); !errors.Is(err, context.Canceled) {
					fail("cancelled add: %v, want context.Canceled", err)
				}
			}
		}()
	}
	wg.Wait()
	if want := workers * rounds * 3 / 2; stored != want || conflicts != workers*rounds/2 {
		t.Fatalf("%d stored, %d conflicts; want %d and %d", stored, conflicts, want, workers*rounds/2)
	}
	res, _ := find(t, ix, &store.Query{Level: "IMAGE", Identifier: ident(t, "SOPInstanceUID")})
	if len(res) != stored {
		t.Fatalf("%d instances in the index, %d adds succeeded", len(res), stored)
	}
	if got := checkChain(t, ix); len(got) != stored {
		t.Fatalf("%d ledger entries for %d stored instances", len(got), stored)
	}
}

func testBlobKeys(t *testing.T, newIndex func(t *testing.T) store.Index) {
	ix, insts := loaded(t, newIndex)
	want := map[string]bool{}
	for _, in := range insts {
		want[in.BlobKey] = true
	}
	got := map[string]int{}
	var order []string
	if err := ix.BlobKeys(context.Background(), func(k string) error { got[k]++; order = append(order, k); return nil }); err != nil {
		t.Fatal(err)
	}
	if !sort.StringsAreSorted(order) {
		t.Errorf("BlobKeys did not give the keys in ascending order: %v", order)
	}
	for k := range want {
		if has, err := ix.HasBlob(context.Background(), k); err != nil || !has {
			t.Errorf("HasBlob(%s) = %v, %v; an instance refers to it", k, has, err)
		}
	}
	absent := strings.Repeat("0", 64)
	if has, err := ix.HasBlob(context.Background(), absent); err != nil || has {
		t.Errorf("HasBlob(%s) = %v, %v; no instance refers to it", absent, has, err)
	}
	if len(got) != len(want) || len(want) != len(insts)-1 {
		t.Fatalf("BlobKeys gave %d keys, want %d (one shared by two instances)", len(got), len(want))
	}
	for k, n := range got {
		if !want[k] || n != 1 {
			t.Errorf("BlobKeys: %s given %d times (known: %v)", k, n, want[k])
		}
	}
	stop := errors.New("stop")
	if err := ix.BlobKeys(context.Background(), func(string) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("BlobKeys with a failing callback: %v", err)
	}
}

func testClosed(t *testing.T, newIndex func(t *testing.T) store.Index) {
	ix := newIndex(t)
	if err := ix.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := ix.Get(context.Background(), "1.2.3"); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get after Close: %v, want a failure", err)
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
