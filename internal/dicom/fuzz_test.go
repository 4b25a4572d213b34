package dicom

// Native fuzz targets of the reader.
//
//	go test -run XXX -fuzz '^FuzzParse$' -fuzztime 3m ./internal/dicom/
//	go test -run XXX -fuzz '^FuzzParseFile$' -fuzztime 3m ./internal/dicom/
//
// Both check, for every input: no panic, no hang, bounded work (tight
// Limits below); every error wraps a sentinel; the byte-slice reader and the
// stream readers agree on success and on what they read; and the writer's
// output of what was read reads back to the same encoding (idempotence).
//
// testdata/fuzz/FuzzParse and testdata/fuzz/FuzzParseFile hold the
// committed corpus: seeds written by TestFuzzWriteCorpus
// (DICOM_WRITE_FUZZ_CORPUS=1) and any crasher the fuzzer finds, which also
// becomes a named case of TestHostileFuzzCrashers (hostile_test.go).

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// fzLimits keep one fuzz input cheap, so that the fuzzer does not run out of
// memory on inputs that declare large values or deflate bombs.
var fzLimits = Limits{MaxValueLength: 1 << 20, MaxElements: 10000, MaxInflatedSize: 1 << 22}

func fzOptions() *ReadOptions { return &ReadOptions{Limits: fzLimits} }

// fzSyntaxes is indexed by the selector byte of FuzzParse (modulo 4).
var fzSyntaxes = [4]TransferSyntax{ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian}

func fzSelector(ts TransferSyntax) byte {
	for i, s := range fzSyntaxes {
		if s.UID == ts.UID {
			return byte(i)
		}
	}
	panic("no selector for " + ts.UID)
}

// fzChunkReader delivers at most n bytes per Read and hides its size.
type fzChunkReader struct {
	b []byte
	n int
}

func (r *fzChunkReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	if len(p) > r.n {
		p = p[:r.n]
	}
	m := copy(p, r.b)
	r.b = r.b[m:]
	return m, nil
}

func fzChunks(b []byte) io.Reader { return &fzChunkReader{b: b, n: 1 + len(b)%13} }

// fzSentinel fails the test unless err wraps one of the reader's sentinels.
func fzSentinel(t *testing.T, what string, err error) {
	t.Helper()
	for _, s := range []error{ErrTruncated, ErrMalformed, ErrLimit, ErrNotDICOM} {
		if errors.Is(err, s) {
			return
		}
	}
	t.Fatalf("%s: error %v (%T) wraps no sentinel error", what, err, err)
}

type fzResult struct {
	name string
	ds   *DataSet
	err  error
}

// fzCheckParse is the property of FuzzParse.
func fzCheckParse(t *testing.T, b []byte, sel byte) {
	ts := fzSyntaxes[sel%4]
	results := make([]fzResult, 0, 3)
	ds, err := Parse(b, ts, fzOptions())
	results = append(results, fzResult{"Parse", ds, err})
	ds, err = NewDecoder(bytes.NewReader(b), ts, fzOptions()).Decode()
	results = append(results, fzResult{"Decoder/bytes.Reader", ds, err})
	ds, err = NewDecoder(fzChunks(b), ts, fzOptions()).Decode()
	results = append(results, fzResult{"Decoder/chunks", ds, err})
	fzAgree(t, ts, results)
	if results[0].err != nil {
		return
	}
	fzIdempotent(t, ts, results[0].ds, len(b))
}

// fzAgree requires the readers to agree on success, and on the encoding of
// what they read.
func fzAgree(t *testing.T, ts TransferSyntax, results []fzResult) {
	t.Helper()
	for _, r := range results {
		if r.err != nil {
			fzSentinel(t, r.name, r.err)
		}
		if (r.err == nil) != (results[0].err == nil) {
			t.Fatalf("%s: %v, but %s: %v", results[0].name, results[0].err, r.name, r.err)
		}
	}
	if results[0].err != nil {
		return
	}
	plain := ts
	if ts.Deflated {
		plain = ExplicitVRLittleEndian // compare what was read, not compressor output
	}
	want, werr := MarshalDataSet(results[0].ds, plain)
	for _, r := range results[1:] {
		got, err := MarshalDataSet(r.ds, plain)
		if (err == nil) != (werr == nil) || !bytes.Equal(got, want) {
			t.Fatalf("%s and %s read different data sets (marshal errors %v, %v; %d and %d bytes)", results[0].name, r.name, werr, err, len(want), len(got))
		}
	}
}

// fzIdempotent: a data set read without error, written in the syntax it was
// read in, reads back to a data set that is written to identical bytes. For
// a non-deflated syntax the first writing is also as long as the input (the
// writer reproduces what it reads; only ignored bytes such as the reserved
// bytes of a long explicit VR header may differ).
func fzIdempotent(t *testing.T, ts TransferSyntax, ds *DataSet, inputLen int) {
	t.Helper()
	out1, err := MarshalDataSet(ds, ts)
	if err != nil {
		t.Fatalf("cannot write what was read: %v", err)
	}
	if !ts.Deflated && len(out1) != inputLen {
		t.Fatalf("read %d bytes, wrote %d", inputLen, len(out1))
	}
	again, err := Parse(out1, ts, fzOptions())
	if err != nil {
		t.Fatalf("the writer's output does not read back: %v", err)
	}
	out2, err := MarshalDataSet(again, ts)
	if err != nil {
		t.Fatalf("second writing: %v", err)
	}
	if !bytes.Equal(out1, out2) {
		t.Fatalf("not idempotent: first writing %d bytes, second %d, first difference at %d", len(out1), len(out2), fzFirstDiff(out1, out2))
	}
}

func fzFirstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// fzCheckParseFile is the property of FuzzParseFile.
func fzCheckParseFile(t *testing.T, b []byte) {
	type fileResult struct {
		name string
		f    *File
		err  error
	}
	var results []fileResult
	f, err := ParseFile(b, fzOptions())
	results = append(results, fileResult{"ParseFile", f, err})
	f, err = ReadFileFrom(bytes.NewReader(b), fzOptions())
	results = append(results, fileResult{"ReadFileFrom/bytes.Reader", f, err})
	f, err = ReadFileFrom(fzChunks(b), fzOptions())
	results = append(results, fileResult{"ReadFileFrom/chunks", f, err})
	for _, r := range results {
		if r.err != nil {
			fzSentinel(t, r.name, r.err)
		}
		if (r.err == nil) != (results[0].err == nil) {
			t.Fatalf("%s: %v, but %s: %v", results[0].name, results[0].err, r.name, r.err)
		}
	}
	if results[0].err != nil {
		return
	}
	f1 := results[0].f
	var ds []fzResult
	for _, r := range results {
		if r.f.TransferSyntax != f1.TransferSyntax || !bytes.Equal(r.f.Preamble, f1.Preamble) {
			t.Fatalf("%s and %s disagree on the syntax (%q, %q) or the preamble", results[0].name, r.name, f1.TransferSyntax.UID, r.f.TransferSyntax.UID)
		}
		m1, err1 := MarshalDataSet(&f1.Meta, ExplicitVRLittleEndian)
		m2, err2 := MarshalDataSet(&r.f.Meta, ExplicitVRLittleEndian)
		if err1 != nil || err2 != nil || !bytes.Equal(m1, m2) {
			t.Fatalf("%s and %s read different meta groups", results[0].name, r.name)
		}
		ds = append(ds, fzResult{r.name, &r.f.DataSet, nil})
	}
	fzAgree(t, f1.TransferSyntax, ds)

	// Idempotence of the file writer.
	out1, err := MarshalFile(f1)
	if err != nil {
		t.Fatalf("cannot write the file that was read: %v", err)
	}
	f2, err := ParseFile(out1, fzOptions())
	if err != nil {
		t.Fatalf("the writer's file does not read back: %v", err)
	}
	out2, err := MarshalFile(f2)
	if err != nil {
		t.Fatalf("second writing: %v", err)
	}
	if !bytes.Equal(out1, out2) {
		t.Fatalf("file writing not idempotent: %d and %d bytes, first difference at %d", len(out1), len(out2), fzFirstDiff(out1, out2))
	}
}

// ---------------------------------------------------------------------------
// Seeds.

type fzSeed struct {
	name  string
	b     []byte
	sel   byte // FuzzParse only
	valid bool // a whole, valid encoding
}

// fzSeedDataSets are small valid data sets covering the structural forms.
func fzSeedDataSets() map[string]*DataSet {
	simple := &DataSet{}
	simple.Set(NewText(TagSpecificCharacterSet, CS, "ISO_IR 192"))
	simple.Set(NewText(TagSOPClassUID, UI, "1.2.840.10008.5.1.4.1.1.7"))
	simple.Set(NewText(TagPatientName, PN, "Doe^J\u00e9r\u00f4me"))
	simple.Set(NewText(0x00200032, DS, "-1.5", "2", "3e2"))
	simple.Set(NewUint16s(0x00280010, US, 2))
	simple.Set(NewUint32s(0x00181063, UL, 40000))
	simple.Set(NewBytes(0x00189089, FD, []byte{0, 0, 0, 0, 0, 0, 0xF0, 0x3F}))
	simple.Set(Element{Tag: 0x00280009, VR: AT, Value: []byte{0x54, 0x00, 0x10, 0x00}})
	simple.Set(NewText(0x00290010, LO, "ACME"))
	simple.Set(NewBytes(0x00291001, UN, []byte{1, 2, 3}))
	simple.Set(NewUint16s(TagPixelData, OW, 1, 2, 0x0300, 0xFFFF))

	// Three levels of sequences, items of both lengths, empty ones too.
	leaf := &DataSet{UndefinedLength: true}
	leaf.Set(NewText(0x00080100, SH, "CODE"))
	mid := &DataSet{}
	midSeq := NewSequence(0x00400260, leaf, &DataSet{})
	midSeq.UndefinedLength = false
	mid.Set(midSeq)
	top := &DataSet{UndefinedLength: true}
	top.Set(NewSequence(0x00400275, mid, &DataSet{UndefinedLength: true}))
	nested := &DataSet{}
	nested.Set(NewText(TagPatientID, LO, "P1"))
	nested.Set(NewSequence(0x0040A730, top))
	emptySeq := NewSequence(0x00081115)
	emptySeq.UndefinedLength = false
	nested.Set(emptySeq)
	nested.Set(NewSequence(0x00081140))

	encaps := &DataSet{}
	encaps.Set(NewUint16s(0x00280010, US, 1))
	encaps.Set(Element{Tag: TagPixelData, VR: OB, UndefinedLength: true, Fragments: [][]byte{{4, 0, 0, 0}, {0xFF, 0xD8, 0xFF, 0xD9}, {}}})

	un := &DataSet{}
	un.Set(NewText(TagSOPClassUID, UI, "1.2.840.10008.5.1.4.1.1.7"))
	un.Set(NewText(0x00090010, LO, "ACME"))
	inner := &DataSet{UndefinedLength: true}
	inner.Set(NewText(TagPatientID, LO, "IN-UN"))
	inner.Set(Element{Tag: 0x00091002, VR: UN, UndefinedLength: true, Items: []*DataSet{{}}})
	un.Set(Element{Tag: 0x00091001, VR: UN, UndefinedLength: true, Items: []*DataSet{inner, {}}})

	return map[string]*DataSet{
		"simple":      simple,
		"nested":      nested,
		"encaps":      encaps,
		"un-sequence": un,
		"realistic":   hRealistic(false),
	}
}

// fzRawSeeds are hand-made inputs the writer would not produce.
func fzRawSeeds() []fzSeed {
	ui := []byte("1.2.3.4\x00")
	return []fzSeed{
		{"be-un-sequence", hBE().el(0x00090010, "LO", 4, []byte("ACME")...).el(0x00091010, "UN", UndefinedLength).
			bytes(hLE().iel(TagItem, UndefinedLength).iel(TagPatientID, 4, []byte("ID01")...).iel(TagItemDelimitation, 0).iel(TagSequenceDelimitation, 0).b...).
			el(0x00091020, "US", 2, 0, 7).b, fzSelector(ExplicitVRBigEndian), true},
		{"implicit-private-undefined", hLE().iel(0x00090010, 4, []byte("ACME")...).iel(0x00091001, UndefinedLength).
			iel(TagItem, UndefinedLength).iel(TagPatientName, 4, []byte("Doe^")...).iel(TagItemDelimitation, 0).
			iel(TagSequenceDelimitation, 0).b, fzSelector(ImplicitVRLittleEndian), true},
		{"huge-length", hLE().el(0x00080016, "UI", 8, ui...).el(0x00091010, "OB", 0xFFFFFFF0).bytes(make([]byte, 16)...).b, fzSelector(ExplicitVRLittleEndian), false},
		{"item-overruns-sequence", hLE().el(0x00081115, "SQ", 16).iel(TagItem, 100).el(0x00081150, "UI", 8, ui...).b, fzSelector(ExplicitVRLittleEndian), false},
		{"deep-nesting", hNestedDefined(ExplicitVRLittleEndian)[(hDeep-70)*20:], fzSelector(ExplicitVRLittleEndian), false},
		{"fragment-undefined", hLE().el(TagPixelData, "OB", UndefinedLength).iel(TagItem, 0).iel(TagItem, UndefinedLength).b, fzSelector(ExplicitVRLittleEndian), false},
		{"invalid-vr", hLE().el(0x00080016, "UI", 8, ui...).el(0x00080018, "ob", 8, ui...).b, fzSelector(ExplicitVRLittleEndian), false},
	}
}

// fzParseSeeds: every seed data set in every syntax, whole and truncated,
// and the raw seeds.
func fzParseSeeds(tb testing.TB) []fzSeed {
	var seeds []fzSeed
	for name, ds := range fzSeedDataSets() {
		for _, ts := range fzSyntaxes {
			b, err := MarshalDataSet(ds, ts)
			if err != nil {
				tb.Fatal(err)
			}
			sel := fzSelector(ts)
			seeds = append(seeds,
				fzSeed{name + "/" + hTS(ts), b, sel, true},
				fzSeed{name + "/" + hTS(ts) + "/half", b[:len(b)/2], sel, false},
				fzSeed{name + "/" + hTS(ts) + "/minus1", b[:len(b)-1], sel, false},
			)
		}
	}
	return append(seeds, fzRawSeeds()...)
}

// fzFileSeeds: Part 10 files in every syntax, bare data sets, and
// truncated and damaged files.
func fzFileSeeds(tb testing.TB) []fzSeed {
	var seeds []fzSeed
	sets := fzSeedDataSets()
	for _, name := range []string{"simple", "nested", "encaps", "un-sequence"} {
		for _, ts := range fzSyntaxes {
			f := NewFile(sets[name], ts)
			b, err := MarshalFile(f)
			if err != nil {
				tb.Fatal(err)
			}
			seeds = append(seeds,
				fzSeed{name: "file/" + name + "/" + hTS(ts), b: b, valid: true},
				fzSeed{name: "file/" + name + "/" + hTS(ts) + "/minus1", b: b[:len(b)-1]},
			)
			if !ts.Deflated {
				body, err := MarshalDataSet(sets[name], ts)
				if err != nil {
					tb.Fatal(err)
				}
				seeds = append(seeds, fzSeed{name: "bare/" + name + "/" + hTS(ts), b: body, valid: true})
				// Meta group without preamble (seen from some writers).
				seeds = append(seeds, fzSeed{name: "no-preamble/" + name + "/" + hTS(ts), b: b[132:], valid: true})
			}
		}
	}
	b, err := MarshalFile(NewFile(sets["simple"], ExplicitVRLittleEndian))
	if err != nil {
		tb.Fatal(err)
	}
	seeds = append(seeds,
		fzSeed{name: "file/in-meta", b: b[:160]},
		fzSeed{name: "file/dicm-only", b: b[:132]},
		fzSeed{name: "file/unknown-syntax", b: bytes.Replace(b, []byte(ExplicitVRLittleEndianUID+"\x00"), []byte("1.2.840.10008.1.2.99"), 1), valid: true},
	)
	return seeds
}

func FuzzParse(f *testing.F) {
	for _, s := range fzParseSeeds(f) {
		f.Add(s.b, s.sel)
	}
	f.Fuzz(fzCheckParse)
}

func FuzzParseFile(f *testing.F) {
	for _, s := range fzFileSeeds(f) {
		f.Add(s.b)
	}
	f.Fuzz(fzCheckParseFile)
}

// TestFuzzSeedsValid: the whole seeds are valid encodings, so that the
// fuzzer starts from inputs that reach deep into the reader, and every seed
// satisfies the properties.
func TestFuzzSeedsValid(t *testing.T) {
	for _, s := range fzParseSeeds(t) {
		t.Run("FuzzParse/"+s.name, func(t *testing.T) {
			if _, err := Parse(s.b, fzSyntaxes[s.sel], fzOptions()); s.valid && err != nil {
				t.Errorf("%v", err)
			}
			fzCheckParse(t, s.b, s.sel)
		})
	}
	for _, s := range fzFileSeeds(t) {
		t.Run("FuzzParseFile/"+s.name, func(t *testing.T) {
			if _, err := ParseFile(s.b, fzOptions()); s.valid && err != nil {
				t.Errorf("%v", err)
			}
			fzCheckParseFile(t, s.b)
		})
	}
}

// ---------------------------------------------------------------------------
// Committed corpus.

// fzCorpusSeeds are the seeds committed under testdata/fuzz.
var fzCorpusSeeds = map[string][]string{
	"FuzzParse": {
		"nested/explicit-le", "nested/implicit/half", "encaps/explicit-be", "un-sequence/explicit-le",
		"realistic/explicit-be/minus1", "simple/deflated", "be-un-sequence", "implicit-private-undefined",
		"deep-nesting", "item-overruns-sequence",
	},
	"FuzzParseFile": {
		"file/nested/explicit-le", "file/encaps/explicit-be", "file/un-sequence/implicit", "file/simple/deflated",
		"file/nested/deflated/minus1", "bare/nested/explicit-be", "no-preamble/simple/implicit", "file/in-meta",
		"file/unknown-syntax",
	},
}

// fzCorpusFile encodes values in the format of the files of testdata/fuzz.
func fzCorpusFile(values ...any) []byte {
	var b bytes.Buffer
	b.WriteString("go test fuzz v1\n")
	for _, v := range values {
		switch v := v.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%q)\n", v)
		case byte:
			fmt.Fprintf(&b, "byte(%q)\n", v)
		default:
			panic(fmt.Sprintf("fzCorpusFile: %T", v))
		}
	}
	return b.Bytes()
}

// TestFuzzWriteCorpus rewrites the committed seed corpus when
// DICOM_WRITE_FUZZ_CORPUS=1, and otherwise checks that it is present.
func TestFuzzWriteCorpus(t *testing.T) {
	write := os.Getenv("DICOM_WRITE_FUZZ_CORPUS") == "1"
	all := map[string]map[string]fzSeed{"FuzzParse": {}, "FuzzParseFile": {}}
	for _, s := range fzParseSeeds(t) {
		all["FuzzParse"][s.name] = s
	}
	for _, s := range fzFileSeeds(t) {
		all["FuzzParseFile"][s.name] = s
	}
	for target, names := range fzCorpusSeeds {
		dir := filepath.Join("testdata", "fuzz", target)
		for _, name := range names {
			s, ok := all[target][name]
			if !ok {
				t.Fatalf("%s: no seed %q", target, name)
			}
			var content []byte
			if target == "FuzzParse" {
				content = fzCorpusFile(s.b, s.sel)
			} else {
				content = fzCorpusFile(s.b)
			}
			path := filepath.Join(dir, "seed-"+fzFileName(name))
			if write {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, content, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			// The committed files need not be current (seeds only steer
			// the fuzzer), but they must be there.
			if _, err := os.Stat(path); err != nil {
				t.Errorf("committed corpus: %v (DICOM_WRITE_FUZZ_CORPUS=1 go test -run TestFuzzWriteCorpus writes it)", err)
			}
		}
	}
}

func fzFileName(name string) string {
	b := []byte(name)
	for i, c := range b {
		if c == '/' {
			b[i] = '-'
		}
	}
	return string(b)
}
