package dicom

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// codecSample builds a data set that exercises every structural form: text
// and binary VRs, a sequence of undefined length with items of both kinds,
// a sequence of defined length, a UN sequence, private elements, a value
// too long for a 16-bit length and encapsulated pixel data.
func codecSample(encapsulated bool) *DataSet {
	ds := &DataSet{}
	ds.Set(NewText(TagSpecificCharacterSet, CS, "ISO_IR 100"))
	ds.Set(NewText(TagSOPClassUID, UI, "1.2.840.10008.5.1.4.1.1.7"))
	ds.Set(NewText(TagSOPInstanceUID, UI, "1.2.3.4.5.6.7.8"))
	ds.Set(NewText(NewTag(0x0008, 0x0020), DA, "20261123"))
	ds.Set(NewText(NewTag(0x0008, 0x0060), CS, "OT"))
	ds.Set(NewText(TagPatientName, PN, "Doe^J\xe9r\xf4me"))
	ds.Set(NewText(TagPatientID, LO, "PAT-0001"))
	ds.Set(NewText(NewTag(0x0018, 0x0050), DS, "0.625"))
	ds.Set(NewText(NewTag(0x0020, 0x0013), IS, "12"))
	ds.Set(NewText(NewTag(0x0020, 0x0032), DS, "-125.5", "-130", "42.25"))
	ds.Set(NewUint16s(NewTag(0x0028, 0x0010), US, 2))
	ds.Set(NewUint16s(NewTag(0x0028, 0x0011), US, 2))
	ds.Set(NewUint32s(NewTag(0x0018, 0x6020), SL, 0xFFFFFFFE))
	ds.Set(NewBytes(NewTag(0x0018, 0x9089), FD, []byte{0, 0, 0, 0, 0, 0, 0xF0, 0x3F}))
	ds.Set(Element{Tag: NewTag(0x0028, 0x0009), VR: AT, Value: []byte{0x54, 0x00, 0x10, 0x00}})
	ds.Set(NewText(NewTag(0x0040, 0xA160), UT, strings.Repeat("long text ", 7000)))
	item1 := &DataSet{UndefinedLength: true}
	item1.Set(NewText(NewTag(0x0008, 0x1150), UI, "1.2.840.10008.5.1.4.1.1.7"))
	item1.Set(NewText(NewTag(0x0008, 0x1155), UI, "1.2.3.9"))
	item2 := &DataSet{}
	item2.Set(NewText(NewTag(0x0008, 0x1155), UI, "1.2.3.10"))
	ds.Set(NewSequence(NewTag(0x0008, 0x1140), item1, item2))
	inner := &DataSet{}
	inner.Set(NewText(NewTag(0x0008, 0x0100), SH, "T-D1100"))
	outer := &DataSet{}
	outer.Set(Element{Tag: NewTag(0x0008, 0x2228), VR: SQ, Items: []*DataSet{inner}})
	ds.Set(Element{Tag: NewTag(0x0008, 0x2218), VR: SQ, Items: []*DataSet{outer}})
	ds.Set(NewText(NewTag(0x0029, 0x0010), LO, "DICOMSHIELD TEST"))
	ds.Set(NewBytes(NewTag(0x0029, 0x1001), UN, []byte{1, 2, 3, 4}))
	unItem := &DataSet{UndefinedLength: true}
	unItem.Set(NewText(NewTag(0x0029, 0x1010), LO, "inside UN"))
	ds.Set(Element{Tag: NewTag(0x0029, 0x1002), VR: UN, UndefinedLength: true, Items: []*DataSet{unItem}})
	if encapsulated {
		ds.Set(Element{Tag: TagPixelData, VR: OB, UndefinedLength: true,
			Fragments: [][]byte{{0, 0, 0, 0}, {0xFF, 0xD8, 0xFF, 0xD9}, {1, 2, 3, 4, 5, 6}}})
	} else {
		ds.Set(NewUint16s(TagPixelData, OW, 1, 2, 0x0300, 0xFFFF))
	}
	return ds
}

var allSyntaxes = []TransferSyntax{ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian}

// TestRoundTrip writes the sample in every transfer syntax, reads it back
// from bytes and from a stream, and requires the same bytes again.
func TestRoundTrip(t *testing.T) {
	for _, ts := range allSyntaxes {
		for _, encaps := range []bool{false, true} {
			name := ts.Name
			if encaps {
				name += "/encapsulated"
			}
			t.Run(name, func(t *testing.T) {
				want, err := MarshalDataSet(codecSample(encaps), ts)
				if err != nil {
					t.Fatal(err)
				}
				fromBytes, err := Parse(want, ts, nil)
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				fromStream, err := NewDecoder(bytes.NewReader(want), ts, nil).Decode()
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				for src, ds := range map[string]*DataSet{"bytes": fromBytes, "stream": fromStream} {
					got, err := MarshalDataSet(ds, ts)
					if err != nil {
						t.Fatal(err)
					}
					if !ts.Deflated && !bytes.Equal(got, want) {
						t.Fatalf("%s: re-encoding differs (%d vs %d bytes)", src, len(got), len(want))
					}
					if name := ds.String(TagPatientName); name != "Doe^J\xe9r\xf4me" {
						t.Errorf("%s: PatientName %q", src, name)
					}
					px, _ := ds.Get(TagPixelData).Ints()
					if !encaps && (len(px) != 4 || px[2] != 0x0300 || px[3] != 0xFFFF) {
						t.Errorf("%s: pixel values %v", src, px)
					}
					if encaps && len(ds.Get(TagPixelData).Fragments) != 3 {
						t.Errorf("%s: fragments %d", src, len(ds.Get(TagPixelData).Fragments))
					}
					un := ds.Get(NewTag(0x0029, 0x1002))
					if un == nil || len(un.Items) != 1 || un.Items[0].String(NewTag(0x0029, 0x1010)) != "inside UN" {
						t.Errorf("%s: UN sequence not decoded as implicit VR items: %+v", src, un)
					}
					if ut := ds.Get(NewTag(0x0040, 0xA160)); ut == nil || len(ut.Value) != 70000 {
						t.Errorf("%s: UT value lost", src)
					}
				}
			})
		}
	}
}

// TestTranscode converts between every pair of syntaxes and requires the
// result to equal a direct encoding of the sample.
func TestTranscode(t *testing.T) {
	for _, from := range allSyntaxes {
		for _, to := range allSyntaxes {
			t.Run(from.Name+"->"+to.Name, func(t *testing.T) {
				b, err := MarshalDataSet(codecSample(false), from)
				if err != nil {
					t.Fatal(err)
				}
				ds, err := Parse(b, from, nil)
				if err != nil {
					t.Fatal(err)
				}
				got, err := MarshalDataSet(ds, to)
				if err != nil {
					t.Fatal(err)
				}
				want, _ := MarshalDataSet(codecSample(false), to)
				if from == ImplicitVRLittleEndian && to.Explicit {
					// Implicit VR loses the VR of private elements: they come
					// back as UN, which is what PS3.5 prescribes.
					ds2, err := Parse(got, to, nil)
					if err != nil {
						t.Fatal(err)
					}
					if v := ds2.Get(NewTag(0x0029, 0x1001)).VR; v != UN {
						t.Errorf("private element VR %s, want UN", v)
					}
					return
				}
				if to.Deflated {
					got, want = inflateAll(t, got), inflateAll(t, want)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("transcoded bytes differ from a direct encoding (%d vs %d bytes)", len(got), len(want))
				}
			})
		}
	}
}

func inflateAll(t *testing.T, b []byte) []byte {
	t.Helper()
	out, err := io.ReadAll(inflate(bytes.NewReader(b), 1<<30))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestGolden pins the encoding of the sample in each syntax to checked-in
// hex files, so that any change of the writer's output is seen in review.
func TestGolden(t *testing.T) {
	for _, ts := range allSyntaxes[:3] {
		ds := codecSample(true)
		ds.Delete(NewTag(0x0040, 0xA160)) // keep the golden files small
		f := NewFile(ds, ts)
		got, err := MarshalFile(f)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("testdata", "golden", strings.ReplaceAll(strings.ToLower(ts.Name), " ", "_")+".hex")
		if *update {
			os.MkdirAll(filepath.Dir(path), 0o755)
			if err := os.WriteFile(path, []byte(hex.Dump(got)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -run Golden -update to create it)", err)
		}
		if hex.Dump(got) != string(want) {
			t.Errorf("%s: encoding differs from %s:\n%s", ts.Name, path, hex.Dump(got))
		}
		back, err := ParseFile(got, nil)
		if err != nil {
			t.Fatal(err)
		}
		if back.TransferSyntax.UID != ts.UID || back.Meta.String(TagImplementationClass) != ImplementationClassUID {
			t.Errorf("meta: %+v", back.Meta)
		}
	}
}

func TestHeaderOnlyAndRest(t *testing.T) {
	b, err := MarshalDataSet(codecSample(false), ExplicitVRLittleEndian)
	if err != nil {
		t.Fatal(err)
	}
	d := NewDecoder(bytes.NewReader(b), ExplicitVRLittleEndian, &ReadOptions{StopAt: TagPixelData})
	ds, err := d.Decode()
	if err != nil {
		t.Fatal(err)
	}
	if !d.Stopped() || ds.Get(TagPixelData) != nil || ds.Get(NewTag(0x0029, 0x1002)) == nil {
		t.Fatalf("stopped=%v pixel=%v", d.Stopped(), ds.Get(TagPixelData))
	}
	rest, _ := io.ReadAll(d.Rest())
	if int(d.Offset())+len(rest) != len(b) || !bytes.Equal(rest, b[d.Offset():]) {
		t.Fatalf("rest is not the unread input: offset %d + %d != %d", d.Offset(), len(rest), len(b))
	}
	// The rest decodes as the pixel data element alone.
	tail, err := Parse(rest, ExplicitVRLittleEndian, nil)
	if err != nil || tail.Len() != 1 || tail.Elements[0].Tag != TagPixelData {
		t.Fatalf("tail: %v %+v", err, tail)
	}
}

type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

func TestValueSinkStreamsLargeValues(t *testing.T) {
	ds := codecSample(false)
	big := make([]byte, 3<<20)
	for i := range big {
		big[i] = byte(i)
	}
	ds.Set(NewBytes(TagPixelData, OB, big))
	b, _ := MarshalDataSet(ds, ExplicitVRLittleEndian)
	var sunk countingWriter
	var asked []Tag
	opts := &ReadOptions{ValueSink: func(tag Tag, vr VR, n int64) io.Writer {
		asked = append(asked, tag)
		if tag == TagPixelData {
			return &sunk
		}
		return nil
	}}
	got, err := NewDecoder(bytes.NewReader(b), ExplicitVRLittleEndian, opts).Decode()
	if err != nil {
		t.Fatal(err)
	}
	px := got.Get(TagPixelData)
	if !px.Streamed || px.Value != nil || px.Length != int64(len(big)) || sunk.n != int64(len(big)) {
		t.Fatalf("pixel data not streamed: %+v sunk %d", px.Streamed, sunk.n)
	}
	// The 70000-byte UT was offered too (it is over ValueSinkMin) and kept.
	if len(asked) != 2 || got.Get(NewTag(0x0040, 0xA160)) == nil {
		t.Fatalf("asked %v", asked)
	}
	if _, err := MarshalDataSet(got, ExplicitVRLittleEndian); !errors.Is(err, ErrEncode) {
		t.Fatalf("writing a streamed element: %v", err)
	}

	// Encapsulated pixel data: the sink receives the encoded items.
	ds = codecSample(true)
	b, _ = MarshalDataSet(ds, ExplicitVRLittleEndian)
	var buf bytes.Buffer
	opts.ValueSink = func(tag Tag, _ VR, n int64) io.Writer {
		if n < 0 {
			return &buf
		}
		return nil
	}
	got, err = Parse(b, ExplicitVRLittleEndian, opts)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0xFE, 0xFF, 0x00, 0xE0, 4, 0, 0, 0, 0, 0, 0, 0}
	if !bytes.HasPrefix(buf.Bytes(), want) || buf.Len() != 3*8+4+4+6 || got.Get(TagPixelData).Length != int64(buf.Len()) {
		t.Fatalf("encapsulated sink got % x", buf.Bytes())
	}
}

func TestDetectBareDataSet(t *testing.T) {
	for _, ts := range allSyntaxes[:3] {
		b, _ := MarshalDataSet(codecSample(false), ts)
		f, err := ParseFile(b, nil)
		if err != nil {
			t.Fatalf("%s: %v", ts.Name, err)
		}
		if f.TransferSyntax.UID != ts.UID || f.Preamble != nil || f.Meta.Len() != 0 {
			t.Errorf("%s detected as %s", ts.Name, f.TransferSyntax.Name)
		}
	}
	if _, err := ParseFile([]byte("GIF89a this is not dicom at all"), nil); !errors.Is(err, ErrNotDICOM) {
		t.Errorf("non-DICOM input: %v", err)
	}
}

func TestTagParseAndString(t *testing.T) {
	tests := []struct {
		in   string
		want Tag
		ok   bool
	}{
		{"(0010,0020)", TagPatientID, true},
		{"0010,0020", TagPatientID, true},
		{"00100020", TagPatientID, true},
		{"PatientID", TagPatientID, true},
		{"StudyInstanceUID", TagStudyInstanceUID, true},
		{"(7fe0,0010)", TagPixelData, true},
		{"NoSuchKeyword", 0, false},
		{"0010,002", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseTag(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseTag(%q) = %v, %v", tt.in, got, err)
		}
	}
	if s := NewTag(0x7FE0, 0x0010).String(); s != "(7FE0,0010)" {
		t.Errorf("String = %s", s)
	}
	if TagPatientID.Keyword() != "PatientID" {
		t.Errorf("Keyword = %q", TagPatientID.Keyword())
	}
	if c, ok := NewTag(0x0029, 0x1002).PrivateCreatorTag(); !ok || c != NewTag(0x0029, 0x0010) {
		t.Errorf("PrivateCreatorTag = %v %v", c, ok)
	}
}

func TestVRTable(t *testing.T) {
	all := "AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV"
	long := map[string]bool{"OB": true, "OD": true, "OF": true, "OL": true, "OV": true, "OW": true, "SQ": true, "SV": true, "UC": true, "UN": true, "UR": true, "UT": true, "UV": true}
	for _, s := range strings.Fields(all) {
		v, ok := ParseVR(s)
		if !ok || v.String() != s {
			t.Errorf("ParseVR(%s) = %v %v", s, v, ok)
		}
		if v.LongLength() != long[s] {
			t.Errorf("%s LongLength = %v", s, v.LongLength())
		}
	}
	for _, s := range []string{"XX", "ob", "", "A", "\x00\x01"} {
		if _, ok := ParseVR(s); ok {
			t.Errorf("ParseVR(%q) accepted", s)
		}
	}
}

func TestAccessors(t *testing.T) {
	be := Element{Tag: 1, VR: US, BigEndian: true, Value: []byte{0x01, 0x02}}
	if v, _ := be.Ints(); v[0] != 0x0102 {
		t.Errorf("big-endian US = %v", v)
	}
	ss := Element{VR: SS, Value: []byte{0xFE, 0xFF}}
	if v, _ := ss.Ints(); v[0] != -2 {
		t.Errorf("SS = %v", v)
	}
	is := NewText(1, IS, " 12", "-3 ")
	if v, err := is.Ints(); err != nil || len(v) != 2 || v[1] != -3 {
		t.Errorf("IS = %v %v", v, err)
	}
	ds := NewText(1, DS, "1.5e2")
	if v, _ := ds.Floats(); v[0] != 150 {
		t.Errorf("DS = %v", v)
	}
	bad := NewText(1, DS, "abc")
	if _, err := bad.Floats(); !errors.Is(err, ErrValue) {
		t.Errorf("bad DS: %v", err)
	}
	odd := Element{VR: UL, Value: []byte{1, 2, 3}}
	if _, err := odd.Ints(); !errors.Is(err, ErrValue) {
		t.Errorf("UL of 3 bytes: %v", err)
	}
	lt := NewText(1, LT, `a\b  `)
	if s := lt.Strings(); len(s) != 1 || s[0] != `a\b` {
		t.Errorf("LT = %q", s)
	}
	ui := NewText(1, UI, "1.2.3")
	if ui.Value[len(ui.Value)-1] != 0 || ui.String() != "1.2.3" {
		t.Errorf("UI padding %q", ui.Value)
	}
}

func TestDataSetSetOrder(t *testing.T) {
	var ds DataSet
	for _, tag := range []Tag{30, 10, 20, 10} {
		ds.Set(NewText(tag, LO, "x"))
	}
	if ds.Len() != 3 || ds.Elements[0].Tag != 10 || ds.Elements[2].Tag != 30 {
		t.Fatalf("order %+v", ds.Elements)
	}
	if !ds.Delete(20) || ds.Delete(20) || ds.Get(20) != nil {
		t.Fatal("delete")
	}
}
