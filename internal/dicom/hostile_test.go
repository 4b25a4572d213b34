package dicom

// Hostile-input tests: every case feeds the reader an input built to make it
// allocate, recurse, spin or accept a lie, and asserts both the specific
// sentinel error (errors.Is) and that the failure is cheap: the bytes the
// call allocates (runtime.MemStats.TotalAlloc delta) stay under a per-case
// bound, and the peak heap growth sampled during the call is logged.
//
// Memory bound measured for each case (linux/amd64, go1.26, -race, 2 CPUs;
// "alloc" is the TotalAlloc delta of one call, the worst of its entry
// points; "peak" the worst sampled growth of live heap objects). Each case
// asserts the TotalAlloc bound given in brackets.
//
//	huge declared length, 100 bytes of input
//	  0xFFFFFFF0, 0xFFFFFFFE (over the 1 GiB cap)   66 KiB   ErrLimit      [1 MiB]
//	  same with MaxValueLength 4 GiB                1.1 MiB  ErrTruncated  [8 MiB]
//	  1 GiB-2 (under the cap); fragment; item; file 1.1 MiB  ErrTruncated  [8 MiB]
//	  (Parse and ReadFile see the size and refuse at once: under 2 KiB)
//	item longer than its sequence, delimiters out of place, invalid VRs,
//	item tags at top level, fragment of undefined length, odd groups
//	                                                <71 KiB  ErrMalformed  [256 KiB]
//	100,000-deep nesting: undefined, defined, UN    <71 KiB, <1 ms  ErrLimit at depth 65  [1 MiB]
//	2,000,000 tiny elements, default MaxElements    680 MiB, peak 346 MiB, 3 s  ErrLimit  [1 GiB]
//	  (1<<20 96-byte Elements and the growth of their slice: bounded by
//	  MaxElements, not by the input, but the default is generous; later
//	  runs reuse the reader's pooled scratch slice: 96 MiB)
//	  same with MaxElements 65536                   36 MiB   ErrLimit      [48 MiB]
//	2,000,000 empty items / empty fragments         75 / 122 MiB   ErrLimit [512 MiB]
//	deflate bomb, one OB value of 1 GiB in 1 MiB    1.1 MiB, <8 ms  ErrLimit [8 MiB]
//	  (refused from its length before inflating; before that check the
//	  reader inflated up to MaxInflatedSize: 1.33 GiB allocated, 800 MiB peak)
//	deflate bomb, 1 GiB in 1 MiB fragments          255 MiB, peak 255 MiB, 2.5 s  ErrLimit [320 MiB]
//	  (held fragments up to MaxInflatedSize, a quarter of the bomb)
//	  same with MaxInflatedSize 16 MiB              16 MiB   ErrLimit      [24 MiB]
//	reader returning (0, nil) forever, anywhere     <1.1 MiB, <1 ms  io.ErrNoProgress [4 MiB]
//	  (before the fix: hung forever inside a value of 64 KiB or more)
//	reader failing mid-header / mid-value           <1.1 MiB  its error, wrapped [4 MiB]
//	every prefix of 10 encodings (Part 10 in 4 syntaxes, bare data sets):
//	  100-325 MiB for all ~1000 prefixes x 4 readers of one encoding (no bound)
//
// The numbers for a run are printed with t.Logf (go test -v -run Hostile).

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"testing/iotest"
	"time"
)

const (
	hKiB = 1 << 10
	hMiB = 1 << 20
	hGiB = 1 << 30
)

// ---------------------------------------------------------------------------
// Hand-made encodings, including ones the writer refuses to produce.

// hRaw appends element and item headers in either byte order.
type hRaw struct {
	b   []byte
	big bool
}

func (r *hRaw) u16(v uint16) *hRaw {
	if r.big {
		r.b = binary.BigEndian.AppendUint16(r.b, v)
	} else {
		r.b = binary.LittleEndian.AppendUint16(r.b, v)
	}
	return r
}

func (r *hRaw) u32(v uint32) *hRaw {
	if r.big {
		r.b = binary.BigEndian.AppendUint32(r.b, v)
	} else {
		r.b = binary.LittleEndian.AppendUint32(r.b, v)
	}
	return r
}

func (r *hRaw) tag(t Tag) *hRaw { return r.u16(t.Group()).u16(t.Element()) }

func (r *hRaw) bytes(p ...byte) *hRaw { r.b = append(r.b, p...); return r }

// el appends an explicit VR element: the long header form for the VRs that
// have it, the short form otherwise (also for unknown VR letters).
func (r *hRaw) el(t Tag, vr string, length uint32, value ...byte) *hRaw {
	r.tag(t)
	r.b = append(r.b, vr...)
	if v, _ := ParseVR(vr); v.LongLength() {
		r.u16(0).u32(length)
	} else {
		r.u16(uint16(length))
	}
	return r.bytes(value...)
}

// iel appends an implicit VR element (also the form of item headers).
func (r *hRaw) iel(t Tag, length uint32, value ...byte) *hRaw {
	return r.tag(t).u32(length).bytes(value...)
}

func hLE() *hRaw { return &hRaw{} }
func hBE() *hRaw { return &hRaw{big: true} }

// hHiddenReader hides the concrete type (and so the size) of its reader.
type hHiddenReader struct{ r io.Reader }

func (h hHiddenReader) Read(p []byte) (int, error) { return h.r.Read(p) }

func hHide(b []byte) io.Reader { return hHiddenReader{bytes.NewReader(b)} }

// hStallReader returns its bytes, then (0, nil) forever.
type hStallReader struct {
	b     []byte
	calls int
}

func (s *hStallReader) Read(p []byte) (int, error) {
	s.calls++
	if len(s.b) == 0 {
		return 0, nil
	}
	n := copy(p, s.b)
	s.b = s.b[n:]
	return n, nil
}

var errHPeerReset = errors.New("test: connection reset by peer")

// hFailReader returns its bytes, then err.
type hFailReader struct {
	b   []byte
	err error
}

func (f *hFailReader) Read(p []byte) (int, error) {
	if len(f.b) == 0 {
		return 0, f.err
	}
	n := copy(p, f.b)
	f.b = f.b[n:]
	return n, nil
}

// ---------------------------------------------------------------------------
// Measurement.

type hUsage struct {
	alloc uint64        // TotalAlloc delta
	peak  uint64        // sampled growth of heap objects over the baseline
	dur   time.Duration // wall time of the call
}

func (u hUsage) String() string {
	return fmt.Sprintf("alloc %s, peak heap +%s, %v", hSize(u.alloc), hSize(u.peak), u.dur.Round(time.Microsecond))
}

func hSize(n uint64) string {
	switch {
	case n >= hMiB:
		return fmt.Sprintf("%.1f MiB", float64(n)/hMiB)
	case n >= hKiB:
		return fmt.Sprintf("%.1f KiB", float64(n)/hKiB)
	}
	return fmt.Sprintf("%d B", n)
}

const hHeapObjects = "/memory/classes/heap/objects:bytes"

// hMeasure runs fn and reports what it allocated, the peak growth of the heap
// (sampled every millisecond) and how long it took. Tests that use it do
// not run in parallel, so the numbers are fn's.
func hMeasure(fn func()) hUsage {
	runtime.GC()
	sample := []metrics.Sample{{Name: hHeapObjects}}
	metrics.Read(sample)
	base := sample[0].Value.Uint64()
	stop := make(chan struct{})
	peakc := make(chan uint64)
	go func() {
		s := []metrics.Sample{{Name: hHeapObjects}}
		var peak uint64
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(s)
			peak = max(peak, s[0].Value.Uint64())
			select {
			case <-stop:
				peakc <- peak
				return
			case <-tick.C:
			}
		}
	}()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	fn()
	dur := time.Since(start)
	runtime.ReadMemStats(&after)
	close(stop)
	peak := <-peakc
	var grow uint64
	if peak > base {
		grow = peak - base
	}
	return hUsage{alloc: after.TotalAlloc - before.TotalAlloc, peak: grow, dur: dur}
}

// hWantErr fails unless err wraps one of want.
func hWantErr(t *testing.T, err error, want ...error) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want %v", want)
	}
	for _, w := range want {
		if errors.Is(err, w) {
			return
		}
	}
	t.Fatalf("error %v; want one wrapping %v", err, want)
}

// ---------------------------------------------------------------------------
// Entry points. Each runs one reader over an input and returns its error.

type hEntry struct {
	name string
	run  func(in hInput, ts TransferSyntax, opts *ReadOptions) error
}

// hInput is an input as bytes and, for the Part 10 entry points, as a file.
type hInput struct {
	b    []byte
	path string
}

var hDataSetEntries = []hEntry{
	{"Parse", func(in hInput, ts TransferSyntax, opts *ReadOptions) error {
		_, err := Parse(in.b, ts, opts)
		return err
	}},
	{"Decoder/bytes.Reader", func(in hInput, ts TransferSyntax, opts *ReadOptions) error {
		_, err := NewDecoder(bytes.NewReader(in.b), ts, opts).Decode()
		return err
	}},
	{"Decoder/hidden-size", func(in hInput, ts TransferSyntax, opts *ReadOptions) error {
		_, err := NewDecoder(hHide(in.b), ts, opts).Decode()
		return err
	}},
}

var hFileEntries = []hEntry{
	{"ParseFile", func(in hInput, _ TransferSyntax, opts *ReadOptions) error {
		_, err := ParseFile(in.b, opts)
		return err
	}},
	{"ReadFileFrom/hidden-size", func(in hInput, _ TransferSyntax, opts *ReadOptions) error {
		_, err := ReadFileFrom(hHide(in.b), opts)
		return err
	}},
	{"ReadFile", func(in hInput, _ TransferSyntax, opts *ReadOptions) error {
		_, err := ReadFile(in.path, opts)
		return err
	}},
}

type hostileCase struct {
	name    string
	ts      TransferSyntax
	opts    *ReadOptions
	input   func() []byte // built before measuring
	file    bool          // read with the Part 10 entry points
	want    []error
	maxHeap uint64 // bound on TotalAlloc of one call
}

func runHostile(t *testing.T, cases []hostileCase) {
	for _, c := range cases {
		in := hInput{b: c.input()}
		entries := hDataSetEntries
		if c.file {
			entries = hFileEntries
			in.path = filepath.Join(t.TempDir(), "input.dcm")
			if err := os.WriteFile(in.path, in.b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		for _, e := range entries {
			t.Run(c.name+"/"+e.name, func(t *testing.T) {
				var err error
				u := hMeasure(func() { err = e.run(in, c.ts, c.opts) })
				t.Logf("%d-byte input: %v; %s", len(in.b), err, u)
				hWantErr(t, err, c.want...)
				if u.alloc > c.maxHeap {
					t.Errorf("allocated %s, bound %s", hSize(u.alloc), hSize(c.maxHeap))
				}
			})
		}
	}
}

// ---------------------------------------------------------------------------
// Declared lengths far beyond the input.

// hHugeValue is an element declaring length n followed by value bytes up to a
// total of 100 bytes of input.
func hHugeValue(ts TransferSyntax, vr string, n uint32) func() []byte {
	return func() []byte {
		r := &hRaw{big: ts.BigEndian}
		if ts.Explicit {
			r.el(0x00091010, vr, n)
		} else {
			r.iel(0x00091010, n)
		}
		return append(r.b, bytes.Repeat([]byte{0xA5}, 100-len(r.b))...)
	}
}

func TestHostileHugeLength(t *testing.T) {
	noCap := &ReadOptions{Limits: Limits{MaxValueLength: 1 << 32}}
	var cases []hostileCase
	for _, ts := range []TransferSyntax{ExplicitVRLittleEndian, ExplicitVRBigEndian, ImplicitVRLittleEndian} {
		for _, n := range []uint32{0xFFFFFFF0, 0xFFFFFFFE} {
			// Over the default 1 GiB cap: refused before reading it.
			cases = append(cases, hostileCase{
				name: fmt.Sprintf("%s/len=%#x", hTS(ts), n), ts: ts,
				input: hHugeValue(ts, "OB", n), want: []error{ErrLimit}, maxHeap: 1 * hMiB,
			})
			// With the cap lifted to 4 GiB, the stream reader must grow the
			// value as bytes arrive (growStep at a time), never at once.
			cases = append(cases, hostileCase{
				name: fmt.Sprintf("%s/len=%#x/cap=4GiB", hTS(ts), n), ts: ts, opts: noCap,
				input: hHugeValue(ts, "UN", n), want: []error{ErrTruncated}, maxHeap: 8 * hMiB,
			})
		}
		// Just under the default cap.
		cases = append(cases, hostileCase{
			name: fmt.Sprintf("%s/len=1GiB-2", hTS(ts)), ts: ts,
			input: hHugeValue(ts, "OW", hGiB-2), want: []error{ErrTruncated}, maxHeap: 8 * hMiB,
		})
	}
	// The same on a fragment, an item and a sequence.
	cases = append(cases,
		hostileCase{
			name: "fragment/len=0xFFFFFFF0", ts: ExplicitVRLittleEndian,
			input: func() []byte {
				r := hLE().el(TagPixelData, "OB", UndefinedLength).iel(TagItem, 0).iel(TagItem, 0xFFFFFFF0)
				return append(r.b, make([]byte, 100-len(r.b))...)
			},
			want: []error{ErrLimit}, maxHeap: 1 * hMiB,
		},
		hostileCase{
			name: "fragment/len=1GiB-2", ts: ExplicitVRLittleEndian,
			input: func() []byte {
				r := hLE().el(TagPixelData, "OB", UndefinedLength).iel(TagItem, 0).iel(TagItem, hGiB-2)
				return append(r.b, make([]byte, 100-len(r.b))...)
			},
			want: []error{ErrTruncated}, maxHeap: 8 * hMiB,
		},
		hostileCase{
			name: "item/len=1GiB-2", ts: ExplicitVRLittleEndian,
			input: func() []byte {
				r := hLE().el(0x00081115, "SQ", UndefinedLength).iel(TagItem, hGiB-2).el(0x00081150, "UI", 4, '1', '.', '2', 0).el(0x00091010, "OB", 200)
				return append(r.b, make([]byte, 100-len(r.b))...)
			},
			want: []error{ErrTruncated}, maxHeap: 8 * hMiB,
		},
		hostileCase{
			name: "sequence/len=0xFFFFFFF0", ts: ExplicitVRLittleEndian,
			input: func() []byte {
				r := hLE().el(0x00081115, "SQ", 0xFFFFFFF0).iel(TagItem, 8).el(0x00081150, "UI", 0)
				return append(r.b, make([]byte, 100-len(r.b))...)
			},
			want: []error{ErrLimit}, maxHeap: 1 * hMiB,
		},
		hostileCase{
			name: "file/len=1GiB-2", file: true,
			input: func() []byte {
				b := hFile(t, &DataSet{}, ExplicitVRLittleEndian)
				r := hLE().el(0x00091010, "OB", hGiB-2)
				return append(append(b, r.b...), make([]byte, 100)...)
			},
			want: []error{ErrTruncated}, maxHeap: 8 * hMiB,
		},
	)
	runHostile(t, cases)
}

func hTS(ts TransferSyntax) string {
	switch ts.UID {
	case ImplicitVRLittleEndianUID:
		return "implicit"
	case ExplicitVRLittleEndianUID:
		return "explicit-le"
	case ExplicitVRBigEndianUID:
		return "explicit-be"
	case DeflatedExplicitVRLittleEndianUID:
		return "deflated"
	}
	return ts.UID
}

// hFile returns the Part 10 encoding of ds in ts.
func hFile(t testing.TB, ds *DataSet, ts TransferSyntax) []byte {
	t.Helper()
	ds.Set(NewText(TagSOPClassUID, UI, "1.2.840.10008.5.1.4.1.1.7"))
	ds.Set(NewText(TagSOPInstanceUID, UI, "2.25.1234567890"))
	b, err := MarshalFile(NewFile(ds, ts))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ---------------------------------------------------------------------------
// Structure that contradicts itself.

func TestHostileStructure(t *testing.T) {
	uiValue := []byte("1.2.3.4\x00")
	cases := []hostileCase{
		{
			name: "item-longer-than-sequence", ts: ExplicitVRLittleEndian,
			input: func() []byte {
				// Sequence of 16 bytes whose item claims 100.
				return hLE().el(0x00081115, "SQ", 16).iel(TagItem, 100).el(0x00081150, "UI", 8, uiValue...).bytes(make([]byte, 100)...).b
			},
			want: []error{ErrMalformed},
		},
		{
			name: "item-longer-than-sequence-and-input", ts: ExplicitVRLittleEndian,
			input: func() []byte {
				return hLE().el(0x00081115, "SQ", 16).iel(TagItem, 1000).el(0x00081150, "UI", 8, uiValue...).b
			},
			want: []error{ErrMalformed},
		},
		{
			name: "value-longer-than-item", ts: ExplicitVRLittleEndian,
			input: func() []byte {
				return hLE().el(0x00081115, "SQ", UndefinedLength).iel(TagItem, 16).el(0x00081150, "UI", 64, uiValue...).bytes(make([]byte, 80)...).b
			},
			want: []error{ErrMalformed},
		},
		{
			name: "sequence-delimiter-in-defined-length-sequence", ts: ExplicitVRLittleEndian,
			input: func() []byte {
				return hLE().el(0x00081115, "SQ", 32).iel(TagItem, 16).el(0x00081150, "UI", 8, uiValue...).iel(TagSequenceDelimitation, 0).bytes(make([]byte, 8)...).b
			},
			want: []error{ErrMalformed},
		},
		{
			name: "item-delimiter-in-defined-length-item", ts: ExplicitVRLittleEndian,
			input: func() []byte {
				return hLE().el(0x00081115, "SQ", UndefinedLength).iel(TagItem, 24).el(0x00081150, "UI", 8, uiValue...).iel(TagItemDelimitation, 0).bytes(make([]byte, 8)...).iel(TagSequenceDelimitation, 0).b
			},
			want: []error{ErrMalformed},
		},
		{
			name: "fragment-of-undefined-length", ts: ExplicitVRLittleEndian,
			input: func() []byte {
				return hLE().el(TagPixelData, "OB", UndefinedLength).iel(TagItem, 0).iel(TagItem, UndefinedLength).bytes(make([]byte, 64)...).b
			},
			want: []error{ErrMalformed},
		},
		{
			name: "fragment-of-undefined-length/big-endian", ts: ExplicitVRBigEndian,
			input: func() []byte {
				return hBE().el(TagPixelData, "OB", UndefinedLength).iel(TagItem, 0).iel(TagItem, UndefinedLength).bytes(make([]byte, 64)...).b
			},
			want: []error{ErrMalformed},
		},
		{
			name: "element-where-fragment-expected", ts: ExplicitVRLittleEndian,
			input: func() []byte {
				return hLE().el(TagPixelData, "OB", UndefinedLength).iel(TagItem, 0).el(0x00081150, "UI", 8, uiValue...).b
			},
			want: []error{ErrMalformed},
		},
		{
			name: "item-tag-at-top-level", ts: ExplicitVRLittleEndian,
			input: func() []byte {
				return hLE().el(0x00080016, "UI", 8, uiValue...).iel(TagItem, 8).el(0x00081150, "UI", 0).b
			},
			want: []error{ErrMalformed},
		},
		{
			name: "item-delimiter-at-top-level", ts: ImplicitVRLittleEndian,
			input: func() []byte { return hLE().iel(0x00080016, 8, uiValue...).iel(TagItemDelimitation, 0).b },
			want:  []error{ErrMalformed},
		},
		{
			name: "sequence-delimiter-at-top-level", ts: ExplicitVRBigEndian,
			input: func() []byte { return hBE().iel(TagSequenceDelimitation, 0).el(0x00080016, "UI", 8, uiValue...).b },
			want:  []error{ErrMalformed},
		},
		{
			name: "undefined-length-on-text-VR", ts: ExplicitVRLittleEndian,
			input: func() []byte { return hLE().el(0x00081150, "UT", UndefinedLength, uiValue...).b },
			want:  []error{ErrMalformed},
		},
		{
			name: "undefined-length-on-implicit-text-tag", ts: ImplicitVRLittleEndian,
			input: func() []byte { return hLE().iel(TagPatientName, UndefinedLength, uiValue...).b },
			want:  []error{ErrMalformed},
		},
		{
			name: "element-where-item-expected", ts: ExplicitVRLittleEndian,
			input: func() []byte {
				return hLE().el(0x00081115, "SQ", UndefinedLength).el(0x00081150, "UI", 8, uiValue...).iel(TagSequenceDelimitation, 0).b
			},
			want: []error{ErrMalformed},
		},
	}
	for _, vr := range []string{"\x00\x00", "ob", "ZZ", "O\xff", "\xff\xff", "S ", "AA"} {
		for _, ts := range []TransferSyntax{ExplicitVRLittleEndian, ExplicitVRBigEndian} {
			cases = append(cases, hostileCase{
				name: fmt.Sprintf("invalid-VR-%q/%s", vr, hTS(ts)), ts: ts,
				input: func() []byte {
					r := &hRaw{big: ts.BigEndian}
					return r.el(0x00080016, "UI", 8, uiValue...).el(0x00080018, vr, 8, uiValue...).b
				},
				want: []error{ErrMalformed},
			})
		}
	}
	// Invalid VR inside an item, and in the meta information of a file.
	cases = append(cases,
		hostileCase{
			name: "invalid-VR-in-item", ts: ExplicitVRLittleEndian,
			input: func() []byte {
				return hLE().el(0x00081115, "SQ", UndefinedLength).iel(TagItem, UndefinedLength).el(0x00081150, "U\x00", 8, uiValue...).b
			},
			want: []error{ErrMalformed},
		},
		hostileCase{
			name: "invalid-VR-in-meta", file: true,
			input: func() []byte {
				b := append(make([]byte, 128), []byte("DICM")...)
				return append(b, hLE().el(TagFileMetaVersion, "XX", 2, 0, 1).el(TagTransferSyntaxUID, "UI", 20, []byte(ExplicitVRLittleEndianUID+"\x00")...).b...)
			},
			want: []error{ErrMalformed},
		},
	)
	cases = append(cases, hOddGroupCases()...)
	for i := range cases {
		if cases[i].maxHeap == 0 {
			cases[i].maxHeap = 256 * hKiB
		}
	}
	runHostile(t, cases)
}

// hOddGroupCases: tags in groups where they do not belong.
func hOddGroupCases() []hostileCase {
	ui := []byte("1.2.3.4\x00")
	metaTS := func(r *hRaw) []byte {
		b := append(make([]byte, 128), []byte("DICM")...)
		return append(b, r.b...)
	}
	return []hostileCase{
		{
			// (FFFE,xxxx) other than the item tags is never a data element.
			name: "group-FFFE-non-item-tag", ts: ExplicitVRLittleEndian,
			input: func() []byte { return hLE().el(0x00080016, "UI", 8, ui...).iel(0xFFFE0001, 0).b },
			want:  []error{ErrMalformed},
		},
		{
			// Item tags in the group FFFE written as an explicit VR element.
			name: "item-tag-with-VR", ts: ExplicitVRLittleEndian,
			input: func() []byte { return hLE().el(0xFFFEE000, "OB", 4, 1, 2, 3, 4).b },
			want:  []error{ErrMalformed},
		},
		{
			// A private (odd group) element of undefined length in implicit
			// VR is a UN sequence (PS3.5 6.2.2); content that is no item is
			// malformed.
			name: "odd-group-undefined-length-not-a-sequence", ts: ImplicitVRLittleEndian,
			input: func() []byte {
				return hLE().iel(0x00090010, 8, []byte("ACME 1.0")...).iel(0x00091001, UndefinedLength).iel(0x00100010, 4, []byte("Doe^")...).b
			},
			want: []error{ErrMalformed},
		},
		{
			name: "odd-group-undefined-length-unterminated", ts: ImplicitVRLittleEndian,
			input: func() []byte {
				return hLE().iel(0x00091001, UndefinedLength).iel(TagItem, UndefinedLength).iel(0x00100010, 4, []byte("Doe^")...).b
			},
			want: []error{ErrTruncated},
		},
		{
			// A UN sequence in explicit big endian is still implicit little
			// endian inside; big endian item headers are no items.
			name: "UN-sequence-with-big-endian-items", ts: ExplicitVRBigEndian,
			input: func() []byte {
				return hBE().el(0x00091001, "UN", UndefinedLength).iel(TagItem, UndefinedLength).iel(0x00100010, 4, []byte("Doe^")...).iel(TagItemDelimitation, 0).iel(TagSequenceDelimitation, 0).b
			},
			want: []error{ErrMalformed},
		},
		{
			// Group 0002 that is not a meta group: sequences are not allowed
			// in it, nor undefined lengths.
			name: "meta-group-with-sequence", file: true,
			input: func() []byte {
				return metaTS(hLE().el(0x00020001, "SQ", UndefinedLength).iel(TagSequenceDelimitation, 0).el(TagTransferSyntaxUID, "UI", 20, []byte(ExplicitVRLittleEndianUID+"\x00")...))
			},
			want: []error{ErrMalformed},
		},
		{
			name: "meta-group-undefined-length", file: true,
			input: func() []byte {
				return metaTS(hLE().el(0x00020001, "OB", UndefinedLength).iel(TagSequenceDelimitation, 0))
			},
			want: []error{ErrMalformed},
		},
		{
			name: "meta-group-without-transfer-syntax", file: true,
			input: func() []byte {
				return metaTS(hLE().el(0x00020001, "OB", 2, 0, 1).el(0x00080016, "UI", 8, ui...))
			},
			want: []error{ErrMalformed},
		},
		{
			name: "meta-group-value-over-1MiB", file: true,
			input: func() []byte {
				return metaTS(hLE().el(0x00020001, "OB", 2*hMiB).bytes(make([]byte, 64)...))
			},
			want: []error{ErrLimit},
		},
		{
			name: "preamble-then-no-meta", file: true,
			input: func() []byte { return metaTS(hLE().el(0x00080016, "UI", 8, ui...)) },
			want:  []error{ErrMalformed},
		},
		{
			// Bare data set whose first tag is in no plausible group.
			name: "bare-data-set-group-FFFF", file: true,
			input: func() []byte { return hLE().el(0xFFFF0010, "UI", 8, ui...).b },
			want:  []error{ErrNotDICOM},
		},
		{
			name: "bare-data-set-odd-group-0001", file: true,
			input: func() []byte { return hLE().iel(0x00010010, 8, ui...).b },
			want:  []error{ErrNotDICOM},
		},
	}
}

// TestHostileOddGroupsAccepted pins what the reader does accept in odd
// places, so that the malformed cases above are not passing by accident.
func TestHostileOddGroupsAccepted(t *testing.T) {
	// Implicit VR: group length is UL, private creator LO, other private
	// elements UN; a private element of undefined length is a UN sequence.
	b := hLE().
		iel(0x00090000, 4, 36, 0, 0, 0).
		iel(0x00090010, 8, []byte("ACME 1.0")...).
		iel(0x00091001, UndefinedLength).
		iel(TagItem, UndefinedLength).iel(TagPatientName, 4, []byte("Doe^")...).iel(TagItemDelimitation, 0).
		iel(TagSequenceDelimitation, 0).
		iel(0x00091002, 2, 7, 0).b
	for _, e := range hDataSetEntries {
		ds, err := hDecodeWith(e.name, b, ImplicitVRLittleEndian)
		if err != nil {
			t.Fatalf("%s: %v", e.name, err)
		}
		want := []VR{UL, LO, UN, UN}
		if len(ds.Elements) != len(want) {
			t.Fatalf("%s: %d elements, want %d", e.name, len(ds.Elements), len(want))
		}
		for i, v := range want {
			if ds.Elements[i].VR != v {
				t.Errorf("%s: element %d (%s) has VR %s, want %s", e.name, i, ds.Elements[i].Tag, ds.Elements[i].VR, v)
			}
		}
		if seq := ds.Get(0x00091001); !seq.IsSequence() || len(seq.Items) != 1 || seq.Items[0].String(TagPatientName) != "Doe^" {
			t.Errorf("%s: (0009,1001) not read as a UN sequence: %+v", e.name, seq)
		}
		out, err := MarshalDataSet(ds, ImplicitVRLittleEndian)
		if err != nil || !bytes.Equal(out, b) {
			t.Errorf("%s: re-encoding differs (%v)", e.name, err)
		}
	}
}

func hDecodeWith(entry string, b []byte, ts TransferSyntax) (*DataSet, error) {
	switch entry {
	case "Parse":
		return Parse(b, ts, nil)
	case "Decoder/bytes.Reader":
		return NewDecoder(bytes.NewReader(b), ts, nil).Decode()
	}
	return NewDecoder(hHide(b), ts, nil).Decode()
}

// ---------------------------------------------------------------------------
// Nesting.

const hDeep = 100_000

// hNestedUndefined: hDeep sequences of undefined length, each holding
// one item of undefined length holding the next, never closed.
func hNestedUndefined(ts TransferSyntax) []byte {
	r := &hRaw{big: ts.BigEndian, b: make([]byte, 0, hDeep*20)}
	for i := 0; i < hDeep; i++ {
		if ts.Explicit {
			r.el(0x00400275, "SQ", UndefinedLength)
		} else {
			r.iel(0x00400275, UndefinedLength) // Request Attributes Sequence
		}
		r.iel(TagItem, UndefinedLength)
	}
	return r.b
}

// hNestedDefined: hDeep sequences of defined length, consistent all the
// way down (each length is exactly what it holds).
func hNestedDefined(ts TransferSyntax) []byte {
	hdr := uint32(8)
	if ts.Explicit {
		hdr = 12
	}
	per := hdr + 8 // sequence header + item header
	r := &hRaw{big: ts.BigEndian, b: make([]byte, 0, hDeep*int(per))}
	for i := 0; i < hDeep; i++ {
		rest := uint32(hDeep-i) * per // this sequence, header included
		if ts.Explicit {
			r.el(0x00400275, "SQ", rest-hdr)
		} else {
			r.iel(0x00400275, rest-hdr)
		}
		r.iel(TagItem, rest-per)
	}
	return r.b
}

// hNestedUN: private elements of undefined length nest UN sequences (implicit
// VR little endian inside, whatever the outer syntax).
func hNestedUN() []byte {
	r := hLE()
	r.el(0x00091001, "UN", UndefinedLength).iel(TagItem, UndefinedLength)
	for i := 1; i < hDeep; i++ {
		r.iel(0x00091001, UndefinedLength).iel(TagItem, UndefinedLength)
	}
	return r.b
}

func TestHostileDeepNesting(t *testing.T) {
	var cases []hostileCase
	for _, ts := range []TransferSyntax{ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian} {
		cases = append(cases,
			hostileCase{name: "undefined/" + hTS(ts), ts: ts, input: func() []byte { return hNestedUndefined(ts) }, want: []error{ErrLimit}, maxHeap: 1 * hMiB},
			hostileCase{name: "defined/" + hTS(ts), ts: ts, input: func() []byte { return hNestedDefined(ts) }, want: []error{ErrLimit}, maxHeap: 1 * hMiB},
		)
	}
	cases = append(cases, hostileCase{name: "UN/explicit-le", ts: ExplicitVRLittleEndian, input: hNestedUN, want: []error{ErrLimit}, maxHeap: 1 * hMiB})
	runHostile(t, cases)

	// Sanity: the depth limit is what stops it, at MaxDepth+1.
	for _, depth := range []int{DefaultMaxDepth, DefaultMaxDepth + 1} {
		b := hNestedDefined(ExplicitVRLittleEndian)
		per := 20
		b = b[(hDeep-depth)*per:] // the innermost depth levels, self-consistent
		start := time.Now()
		_, err := Parse(b, ExplicitVRLittleEndian, nil)
		t.Logf("depth %d: %v (%v)", depth, err, time.Since(start))
		if depth <= DefaultMaxDepth && err != nil {
			t.Errorf("depth %d: %v; want success", depth, err)
		}
		if depth > DefaultMaxDepth && !errors.Is(err, ErrLimit) {
			t.Errorf("depth %d: %v; want ErrLimit", depth, err)
		}
	}
}

// ---------------------------------------------------------------------------
// Element count.

func hTinyElements(n int) []byte {
	r := &hRaw{b: make([]byte, 0, 8*n)}
	for i := 0; i < n; i++ {
		// Private US elements of length 0, ascending tags.
		r.el(NewTag(0x0009+2*uint16(i>>15), 0x1000|uint16(i&0x7FFF)), "US", 0)
	}
	return r.b
}

func TestHostileManyElements(t *testing.T) {
	var in []byte
	cases := []hostileCase{
		{
			name: "2M-tiny-elements", ts: ExplicitVRLittleEndian,
			input: func() []byte {
				if in == nil {
					in = hTinyElements(2_000_000)
				}
				return in
			},
			want: []error{ErrLimit},
			// DefaultMaxElements (1<<20) Elements of 96 bytes, plus the
			// growth of the slice: ~680 MiB allocated, ~350 MiB peak, for
			// 8 MiB of input. Bounded by the limit, not by the input, but
			// the default is generous.
			maxHeap: 1 * hGiB,
		},
		{
			// The same with a limit a service would set: the cost scales
			// with MaxElements.
			name: "2M-tiny-elements/MaxElements=65536", ts: ExplicitVRLittleEndian,
			opts: &ReadOptions{Limits: Limits{MaxElements: 1 << 16}},
			input: func() []byte {
				if in == nil {
					in = hTinyElements(2_000_000)
				}
				return in
			},
			want:    []error{ErrLimit},
			maxHeap: 48 * hMiB,
		},
		{
			name: "2M-empty-items", ts: ExplicitVRLittleEndian,
			input: func() []byte {
				r := hLE().el(0x00400275, "SQ", UndefinedLength)
				for i := 0; i < 2_000_000; i++ {
					r.iel(TagItem, 0)
				}
				return r.b
			},
			want:    []error{ErrLimit},
			maxHeap: 512 * hMiB,
		},
		{
			name: "2M-empty-fragments", ts: ExplicitVRLittleEndian,
			input: func() []byte {
				r := hLE().el(TagPixelData, "OB", UndefinedLength)
				for i := 0; i < 2_000_000; i++ {
					r.iel(TagItem, 0)
				}
				return r.b
			},
			want:    []error{ErrLimit},
			maxHeap: 512 * hMiB,
		},
	}
	runHostile(t, cases)
}

// ---------------------------------------------------------------------------
// Deflate bombs.

// hDeflateRepeat returns the raw deflate compression of prefix followed by n
// copies of unit, without ever holding the inflated bytes: it streams the
// units through compress/flate with a sync flush after each, and once two
// consecutive units compress to the same bytes (the window then holds only
// copies of the unit, so the encoder is in a steady state) it repeats those
// bytes instead of compressing the rest. The result inflates to exactly
// prefix + n*unit, which the tests check on a shorter bomb.
func hDeflateRepeat(t testing.TB, prefix, unit []byte, n int) []byte {
	t.Helper()
	var buf bytes.Buffer
	fw, err := flate.NewWriter(&buf, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(prefix)
	fw.Flush()
	var prev []byte
	for i := 0; i < n; i++ {
		start := buf.Len()
		fw.Write(unit)
		fw.Flush()
		cur := buf.Bytes()[start:]
		if i >= 2 && bytes.Equal(cur, prev) && len(unit) >= 64*hKiB {
			// Steady state: the remaining n-i-1 units compress to cur.
			steady := append([]byte(nil), cur...)
			for j := i + 1; j < n; j++ {
				buf.Write(steady)
			}
			break
		}
		prev = append(prev[:0], cur...)
	}
	// Final empty stored block: BFINAL=1, BTYPE=00, LEN=0, NLEN=0xFFFF.
	buf.Write([]byte{0x01, 0x00, 0x00, 0xFF, 0xFF})
	return buf.Bytes()
}

var (
	hBombOnce                      sync.Once
	hBombValue, hBombFrags         []byte // raw deflate of the data sets
	hBombValueFile, hBombFragsFile []byte // Part 10 files holding them
)

// hBombs builds, once, two data sets that inflate to 1 GiB of zeros: one OB
// value of 1 GiB, and 1024 pixel data fragments of 1 MiB.
func hBombs(t testing.TB) {
	hBombOnce.Do(func() {
		zeros := make([]byte, hMiB)
		head := hLE().el(0x00080016, "UI", 8, []byte("1.2.3.4\x00")...).el(0x00091010, "OB", hGiB).b
		hBombValue = hDeflateRepeat(t, head, zeros, 1024)

		head = hLE().el(TagPixelData, "OB", UndefinedLength).iel(TagItem, 0).b
		unit := append(hLE().iel(TagItem, hMiB).b, zeros...)
		hBombFrags = hDeflateRepeat(t, head, unit, 1024)

		meta := hFile(t, &DataSet{}, DeflatedExplicitVRLittleEndian)
		// testFile wrote the deflate of a two-element data set after the
		// meta group; replace it with the bomb.
		f, err := ParseFile(meta, nil)
		if err != nil {
			t.Fatal(err)
		}
		metaLen := len(meta) - len(hDeflate(t, &f.DataSet))
		hBombValueFile = append(meta[:metaLen:metaLen], hBombValue...)
		hBombFragsFile = append(meta[:metaLen:metaLen], hBombFrags...)
	})
}

func hDeflate(t testing.TB, ds *DataSet) []byte {
	b, err := MarshalDataSet(ds, DeflatedExplicitVRLittleEndian)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHostileDeflateBomb(t *testing.T) {
	hBombs(t)
	t.Logf("bombs: one 1 GiB value in %d bytes (%.0f:1), 1024 x 1 MiB fragments in %d bytes",
		len(hBombValue), float64(hGiB)/float64(len(hBombValue)), len(hBombFrags))

	// The construction inflates to what it claims: check a 4 MiB version
	// byte for byte, and that the big one is a valid stream up to the limit.
	small := hDeflateRepeat(t, []byte("head"), bytes.Repeat([]byte{0}, 256*hKiB), 16)
	got, err := io.ReadAll(flate.NewReader(bytes.NewReader(small)))
	if err != nil || len(got) != 4+4*hMiB || string(got[:4]) != "head" || bytes.Count(got[4:], []byte{0}) != 4*hMiB {
		t.Fatalf("deflateRepeat: %d bytes, %v", len(got), err)
	}

	cases := []hostileCase{
		{name: "1GiB-value/file", file: true, input: func() []byte { return hBombValueFile }, want: []error{ErrLimit}, maxHeap: 8 * hMiB},
		{name: "1GiB-value", ts: DeflatedExplicitVRLittleEndian, input: func() []byte { return hBombValue }, want: []error{ErrLimit}, maxHeap: 8 * hMiB},
		// Fragments must really be inflated, up to MaxInflatedSize (256
		// MiB): what is held is bounded by that limit, a quarter of the bomb.
		{name: "1GiB-fragments", ts: DeflatedExplicitVRLittleEndian, input: func() []byte { return hBombFrags }, want: []error{ErrLimit}, maxHeap: 320 * hMiB},
		// The same with a tight limit, as a service would configure it.
		{
			name: "1GiB-fragments/limit=16MiB", ts: DeflatedExplicitVRLittleEndian, opts: &ReadOptions{Limits: Limits{MaxInflatedSize: 16 * hMiB}},
			input: func() []byte { return hBombFrags }, want: []error{ErrLimit}, maxHeap: 24 * hMiB,
		},
		{
			name: "1GiB-fragments/file/limit=16MiB", file: true, opts: &ReadOptions{Limits: Limits{MaxInflatedSize: 16 * hMiB}},
			input: func() []byte { return hBombFragsFile }, want: []error{ErrLimit}, maxHeap: 24 * hMiB,
		},
	}
	if testing.Short() {
		cases = append(cases[:2], cases[3:]...)
	}
	runHostile(t, cases)
}

// ---------------------------------------------------------------------------
// Readers that misbehave.

func TestHostileReaders(t *testing.T) {
	ui := []byte("1.2.3.4\x00")
	small := hLE().el(0x00080016, "UI", 8, ui...).el(0x00081150, "LO", 1024).bytes(make([]byte, 100)...).b
	large := hLE().el(0x00080016, "UI", 8, ui...).el(0x00091010, "OB", 512*hKiB).bytes(make([]byte, 100)...).b
	huge := hLE().el(0x00080016, "UI", 8, ui...).el(0x00091010, "OB", hGiB-2).bytes(make([]byte, 100)...).b
	file := hFile(t, &DataSet{}, ExplicitVRLittleEndian)
	fileLarge := append(file[:len(file):len(file)], large...)

	type readerCase struct {
		name string
		r    func() io.Reader
		file bool
		want error
	}
	cases := []readerCase{
		{"stall/at-start", func() io.Reader { return &hStallReader{} }, false, io.ErrNoProgress},
		{"stall/in-header", func() io.Reader { return &hStallReader{b: small[:10]} }, false, io.ErrNoProgress},
		{"stall/in-small-value", func() io.Reader { return &hStallReader{b: small[:40]} }, false, io.ErrNoProgress},
		{"stall/in-large-value", func() io.Reader { return &hStallReader{b: large[:60]} }, false, io.ErrNoProgress},
		{"stall/in-huge-value", func() io.Reader { return &hStallReader{b: huge[:60]} }, false, io.ErrNoProgress},
		{"stall/in-large-value/one-byte-reads", func() io.Reader { return iotest.OneByteReader(&hStallReader{b: large[:60]}) }, false, io.ErrNoProgress},
		{"stall/file-at-start", func() io.Reader { return &hStallReader{} }, true, io.ErrNoProgress},
		{"stall/file-in-meta", func() io.Reader { return &hStallReader{b: file[:150]} }, true, io.ErrNoProgress},
		{"stall/file-in-large-value", func() io.Reader { return &hStallReader{b: fileLarge[:len(file)+60]} }, true, io.ErrNoProgress},
		{"fail/in-header", func() io.Reader { return &hFailReader{b: small[:10], err: errHPeerReset} }, false, errHPeerReset},
		{"fail/in-small-value", func() io.Reader { return &hFailReader{b: small[:40], err: errHPeerReset} }, false, errHPeerReset},
		{"fail/in-large-value", func() io.Reader { return &hFailReader{b: large[:60], err: errHPeerReset} }, false, errHPeerReset},
		{"fail/in-huge-value", func() io.Reader { return &hFailReader{b: huge[:60], err: errHPeerReset} }, false, errHPeerReset},
		{"fail/in-large-value/timeout", func() io.Reader { return iotest.TimeoutReader(bytes.NewReader(large[:60])) }, false, iotest.ErrTimeout},
		{"fail/file-in-meta", func() io.Reader { return &hFailReader{b: file[:150], err: errHPeerReset} }, true, errHPeerReset},
		{"fail/file-in-large-value", func() io.Reader { return &hFailReader{b: fileLarge[:len(file)+60], err: errHPeerReset} }, true, errHPeerReset},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var err error
			done := make(chan struct{})
			var u hUsage
			go func() {
				defer close(done)
				u = hMeasure(func() {
					if c.file {
						_, err = ReadFileFrom(c.r(), nil)
					} else {
						_, err = NewDecoder(c.r(), ExplicitVRLittleEndian, nil).Decode()
					}
				})
			}()
			// A watchdog, not a timing assertion: a reader that never makes
			// progress must not hang the decoder.
			select {
			case <-done:
			case <-time.After(60 * time.Second):
				t.Fatal("decoder still reading after 60s: it hangs on a reader that makes no progress")
			}
			t.Logf("%v; %s", err, u)
			hWantErr(t, err, c.want)
			if errors.Is(err, ErrTruncated) {
				t.Errorf("a read fault reported as truncation: %v", err)
			}
			if u.alloc > 4*hMiB {
				t.Errorf("allocated %s, bound 4 MiB", hSize(u.alloc))
			}
		})
	}

	// Deflated input whose reader fails or stalls mid-stream.
	z := hDeflate(t, &DataSet{Elements: []Element{NewBytes(0x00091010, OB, make([]byte, 256*hKiB))}})
	for _, c := range []readerCase{
		{"deflated/fail", func() io.Reader { return &hFailReader{b: z[:len(z)/2], err: errHPeerReset} }, false, errHPeerReset},
		{"deflated/stall", func() io.Reader { return &hStallReader{b: z[:len(z)/2]} }, false, io.ErrNoProgress},
	} {
		t.Run(c.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				_, err := NewDecoder(c.r(), DeflatedExplicitVRLittleEndian, nil).Decode()
				done <- err
			}()
			select {
			case err := <-done:
				t.Logf("%v", err)
				hWantErr(t, err, c.want)
			case <-time.After(60 * time.Second):
				t.Fatal("decoder still reading after 60s")
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Truncation.

// hRealistic holds what real instances hold: text, binary numbers, a
// sequence of undefined length whose items are of undefined and defined
// length and nest a sequence of defined length, a private block with a UN
// sequence (unless big endian: see TestHostileBigEndianUNSequence), and
// encapsulated pixel data with an empty offset table and odd-sized frames
// padded to even length.
func hRealistic(big bool) *DataSet {
	ds := &DataSet{}
	ds.Set(NewText(TagSpecificCharacterSet, CS, "ISO_IR 100"))
	ds.Set(NewText(0x00080008, CS, "ORIGINAL", "PRIMARY", "AXIAL"))
	ds.Set(NewText(TagSOPClassUID, UI, "1.2.840.10008.5.1.4.1.1.7"))
	ds.Set(NewText(TagSOPInstanceUID, UI, "2.25.329800735698586629295641978511506172918"))
	ds.Set(NewText(0x00080020, DA, "20240131"))
	ds.Set(NewText(0x00080060, CS, "OT"))
	ds.Set(NewText(TagPatientName, PN, "Doe^Jane^^Dr"))
	ds.Set(NewText(TagPatientID, LO, "ID-0001"))

	inner := &DataSet{}
	inner.Set(NewText(0x00080100, SH, "T-D1100"))
	inner.Set(NewText(0x00080102, SH, "SRT"))
	inner.Set(NewText(0x00080104, LO, "Chest"))
	defSeq := NewSequence(0x00082228, inner) // Primary Anatomic Structure Sequence
	defSeq.UndefinedLength = false

	item1 := &DataSet{UndefinedLength: true}
	item1.Set(NewText(0x00081150, UI, "1.2.840.10008.5.1.4.1.1.2"))
	item1.Set(NewText(0x00081155, UI, "1.2.3.4.5.6.7"))
	item1.Set(defSeq)
	item2 := &DataSet{}
	item2.Set(NewText(0x00081150, UI, "1.2.840.10008.5.1.4.1.1.4"))
	item2.Set(NewText(0x00081155, UI, "1.2.3.4.5.6.8"))
	ds.Set(NewSequence(0x00081140, item1, item2)) // Referenced Image Sequence, undefined length

	empty := NewSequence(0x00081115) // Referenced Series Sequence, no items, defined length
	empty.UndefinedLength = false
	ds.Set(empty)

	ds.Set(NewText(0x00090010, LO, "DICOMSHIELD TEST"))
	if !big {
		un := &DataSet{}
		un.Set(NewText(0x00100020, LO, "NESTED"))
		un.Set(NewUint16s(0x00280010, US, 7))
		ds.Set(Element{Tag: 0x00091010, VR: UN, UndefinedLength: true, Items: []*DataSet{un, {UndefinedLength: true}}})
	}
	ds.Set(NewBytes(0x00091020, OB, []byte{1, 2, 3, 4, 5, 6, 7}))

	ds.Set(NewUint16s(0x00280002, US, 1))
	ds.Set(NewText(0x00280004, CS, "MONOCHROME2"))
	ds.Set(NewUint16s(0x00280010, US, 4))
	ds.Set(NewUint16s(0x00280011, US, 4))
	ds.Set(NewUint16s(0x00280100, US, 8))
	ds.Set(NewUint16s(0x00280101, US, 8))
	ds.Set(NewUint16s(0x00280102, US, 7))
	ds.Set(NewUint16s(0x00280103, US, 0))
	ds.Set(NewBytes(0x00281052, DS, []byte("0")))
	ds.Set(NewUint32s(0x00181063, UL, 40000))
	ds.Set(Element{Tag: TagPixelData, VR: OB, UndefinedLength: true, Fragments: [][]byte{
		{},
		{0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 0x4A, 0x46, 0x49, 0x46, 0x00, 0x01, 0xFF, 0xD9, 0x00, 0x00},
		{0xFF, 0xD8, 0xFF, 0xD9, 0x17, 0x00},
	}})
	return ds
}

// hTruncSubject is one encoding whose every prefix is read.
type hTruncSubject struct {
	name string
	b    []byte
	ts   TransferSyntax // syntax of the data set
	file bool           // Part 10 (read with ParseFile/ReadFileFrom) or bare data set
	meta bool           // has a preamble and meta group
	// dsStart: offset of the data set; boundaries: offsets at which a
	// prefix is the data set's first k elements (k = index), len(b)
	// excluded.
	dsStart    int
	boundaries map[int]int
}

// hSubject computes where the top-level elements of the encoding b start, by
// parsing it whole and re-encoding each top-level element on its own (the
// writer reproduces what it reads byte for byte).
func hSubject(t *testing.T, name string, b []byte, ts TransferSyntax, file, meta bool) hTruncSubject {
	t.Helper()
	s := hTruncSubject{name: name, b: b, ts: ts, file: file, meta: meta, boundaries: map[int]int{}}
	var ds *DataSet
	if file {
		f, err := ParseFile(b, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if meta {
			out, err := MarshalFile(f)
			if err != nil || !bytes.Equal(out, b) {
				t.Fatalf("%s: the file does not survive a round trip (%v)", name, err)
			}
		}
		ds = &f.DataSet
	} else {
		var err error
		if ds, err = Parse(b, ts, nil); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if ts.Deflated {
		// Compressed: no prefix of the data set is a shorter data set.
		s.dsStart = len(b) - len(hDeflate(t, ds))
		return s
	}
	body, err := MarshalDataSet(ds, ts)
	if err != nil {
		t.Fatal(err)
	}
	s.dsStart = len(b) - len(body)
	if !bytes.Equal(b[s.dsStart:], body) {
		t.Fatalf("%s: data set does not re-encode byte for byte", name)
	}
	off := s.dsStart
	for k := range ds.Elements {
		s.boundaries[off] = k
		one, err := MarshalDataSet(&DataSet{Elements: ds.Elements[k : k+1]}, ts)
		if err != nil {
			t.Fatal(err)
		}
		off += len(one)
	}
	if off != len(b) {
		t.Fatalf("%s: elements add up to %d bytes, the encoding has %d", name, off, len(b))
	}
	return s
}

// TestHostileTruncation reads every proper prefix of realistic encodings and
// requires, precisely:
//
//   - a prefix shorter than the preamble and "DICM" of a Part 10 file, or
//     than one element header of a bare data set: ErrNotDICOM (files) /
//     ErrTruncated (data sets; the empty prefix is the empty data set);
//   - a prefix that ends inside the meta group (which has a group length):
//     ErrTruncated;
//   - a prefix that ends exactly where a top-level element of the data set
//     begins: success, with exactly the elements before that point, equal
//     byte for byte to the originals. Any other prefix ends inside an
//     element, a sequence, an item, a fragment or a value, and must be
//     ErrTruncated: never a success with a silently short data set, and not
//     another error either. Every prefix of a deflated data set is
//     ErrTruncated (the compressed stream is unterminated).
//
// The stream readers must give the same answer as the byte-slice readers,
// also when the stream delivers one byte per Read, and so must ReadFile.
func TestHostileTruncation(t *testing.T) {
	var subjects []hTruncSubject
	for _, ts := range []TransferSyntax{ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian} {
		ds := hRealistic(ts.BigEndian)
		b, err := MarshalFile(NewFile(ds, ts))
		if err != nil {
			t.Fatal(err)
		}
		subjects = append(subjects, hSubject(t, "file/"+hTS(ts), b, ts, true, true))
		if ts.Deflated {
			continue
		}
		body, err := MarshalDataSet(ds, ts)
		if err != nil {
			t.Fatal(err)
		}
		subjects = append(subjects, hSubject(t, "bare-file/"+hTS(ts), body, ts, true, false))
		subjects = append(subjects, hSubject(t, "data-set/"+hTS(ts), body, ts, false, false))
	}
	for _, s := range subjects {
		t.Run(s.name, func(t *testing.T) {
			var errs, oks int
			kinds := map[string]int{}
			start := time.Now()
			path := filepath.Join(t.TempDir(), "prefix.dcm")
			u := hMeasure(func() {
				for p := 0; p < len(s.b); p++ {
					if s.ts.Deflated && p == len(s.b)-1 && s.b[p] == 0 && (p-s.dsStart)%2 == 1 {
						// Only the NUL that pads an odd-length deflated
						// stream (PS3.5 A.5) is missing: the stream itself
						// is complete, so this prefix is the whole data set.
						continue
					}
					e, ok := hCheckPrefix(t, s, p, path)
					if ok {
						oks++
					} else {
						errs++
						kinds[e]++
					}
					if t.Failed() {
						return
					}
				}
			})
			t.Logf("%d bytes: %d prefixes valid shorter data sets, %d errors %v; %s allocated for all prefixes and readers (%v)",
				len(s.b), oks, errs, kinds, hSize(u.alloc), time.Since(start).Round(time.Millisecond))
		})
	}
}

// hCheckPrefix reads s.b[:p] with every reader and checks the outcome; it
// returns the sentinel name of the error, or ok.
func hCheckPrefix(t *testing.T, s hTruncSubject, p int, path string) (string, bool) {
	t.Helper()
	in := s.b[:p]
	k, boundary := s.boundaries[p]
	var want error
	switch {
	case s.file && s.meta && p < 132:
		want = ErrNotDICOM
	case s.file && !s.meta && p < 8:
		want = ErrNotDICOM
	case s.meta && p < s.dsStart:
		want = ErrTruncated
	case boundary && !s.ts.Deflated:
		want = nil
	default:
		want = ErrTruncated
	}
	type result struct {
		name string
		ds   *DataSet
		err  error
	}
	var results []result
	if s.file {
		f, err := ParseFile(in, nil)
		results = append(results, result{"ParseFile", hFileDS(f), err})
		f, err = ReadFileFrom(bytes.NewReader(in), nil)
		results = append(results, result{"ReadFileFrom", hFileDS(f), err})
		f, err = ReadFileFrom(iotest.OneByteReader(hHide(in)), nil)
		results = append(results, result{"ReadFileFrom/one-byte", hFileDS(f), err})
		if err := os.WriteFile(path, in, 0o600); err != nil {
			t.Fatal(err)
		}
		f, err = ReadFile(path, nil)
		results = append(results, result{"ReadFile", hFileDS(f), err})
	} else {
		ds, err := Parse(in, s.ts, nil)
		results = append(results, result{"Parse", ds, err})
		ds, err = NewDecoder(bytes.NewReader(in), s.ts, nil).Decode()
		results = append(results, result{"Decoder", ds, err})
		ds, err = NewDecoder(iotest.OneByteReader(hHide(in)), s.ts, nil).Decode()
		results = append(results, result{"Decoder/one-byte", ds, err})
	}
	for _, r := range results {
		if want == nil {
			if r.err != nil {
				t.Errorf("prefix %d/%d (%d whole elements): %s: %v; want success", p, len(s.b), k, r.name, r.err)
				continue
			}
			if len(r.ds.Elements) != k {
				t.Errorf("prefix %d/%d: %s read %d elements, want %d", p, len(s.b), r.name, len(r.ds.Elements), k)
				continue
			}
			out, err := MarshalDataSet(r.ds, s.ts)
			if err != nil || !bytes.Equal(out, s.b[s.dsStart:p]) {
				t.Errorf("prefix %d/%d: %s: the %d elements read do not re-encode to the prefix (%v)", p, len(s.b), r.name, k, err)
			}
			continue
		}
		if r.err == nil {
			n := -1
			if r.ds != nil {
				n = len(r.ds.Elements)
			}
			t.Errorf("prefix %d/%d: %s succeeded with %d top-level elements; want %v", p, len(s.b), r.name, n, want)
			continue
		}
		if !errors.Is(r.err, want) {
			t.Errorf("prefix %d/%d: %s: %v; want %v", p, len(s.b), r.name, r.err, want)
		}
	}
	if want == nil {
		return "", true
	}
	return want.Error(), false
}

func hFileDS(f *File) *DataSet {
	if f == nil {
		return nil
	}
	return &f.DataSet
}

// ---------------------------------------------------------------------------
// Known writer asymmetry.

// TestHostileBigEndianUNSequence: a UN sequence of undefined length is
// implicit VR little endian inside (PS3.5 6.2.2), its sequence delimiter
// included, whatever the outer syntax; the reader reads it that way. This
// pins the reader side with a hand-made encoding, and checks that the
// writer reproduces it.
func TestHostileBigEndianUNSequence(t *testing.T) {
	b := hBE().el(0x00090010, "LO", 4, []byte("ACME")...).
		el(0x00091010, "UN", UndefinedLength).
		bytes(hLE().iel(TagItem, UndefinedLength).iel(TagPatientID, 4, []byte("ID01")...).iel(TagItemDelimitation, 0).iel(TagSequenceDelimitation, 0).b...).
		el(0x00091020, "US", 2, 0, 7).b
	ds, err := Parse(b, ExplicitVRBigEndian, nil)
	if err != nil {
		t.Fatal(err)
	}
	seq := ds.Get(0x00091010)
	if seq == nil || !seq.IsSequence() || len(seq.Items) != 1 || seq.Items[0].String(TagPatientID) != "ID01" {
		t.Fatalf("UN sequence not read: %+v", seq)
	}
	if v, err := ds.Get(0x00091020).Ints(); err != nil || len(v) != 1 || v[0] != 7 {
		t.Fatalf("element after the UN sequence: %v %v", v, err)
	}
	out, err := MarshalDataSet(ds, ExplicitVRBigEndian)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, b) {
		i := 0
		for i < len(out) && i < len(b) && out[i] == b[i] {
			i++
		}
		t.Errorf("writer: re-encoding differs from offset %d: wrote % X, read % X", i, out[i:min(len(out), i+8)], b[i:min(len(b), i+8)])
		if _, err := Parse(out, ExplicitVRBigEndian, nil); err != nil {
			t.Errorf("writer: its output does not read back: %v", err)
		}
	}
}

// ---------------------------------------------------------------------------
// Crashers found by the fuzz targets. Each input is also committed under
// testdata/fuzz/<target>/<name>, where go test replays it through the
// target's full property; here it is pinned to the specific error.

func TestHostileFuzzCrashers(t *testing.T) {
	cases := []struct {
		name   string // file name under testdata/fuzz/FuzzParse
		b      []byte
		sel    byte // FuzzParse selector: fzSyntaxes[sel%4]
		want   error
		reason string
	}{
		{
			name: "1b328e300ca538ac", b: []byte("00000"), sel: 'G', want: ErrMalformed,
			reason: "a corrupt deflate stream surfaced as a bare flate.CorruptInputError, wrapping no sentinel",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ts := fzSyntaxes[c.sel%4]
			var err error
			u := hMeasure(func() { _, err = Parse(c.b, ts, nil) })
			t.Logf("%s (%s): %v; %s", c.reason, hTS(ts), err, u)
			hWantErr(t, err, c.want)
			_, err = NewDecoder(hHide(c.b), ts, nil).Decode()
			hWantErr(t, err, c.want)
			fzCheckParse(t, c.b, c.sel)
		})
	}
}
