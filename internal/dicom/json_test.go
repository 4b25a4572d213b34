package dicom

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func init() {
	// Registered only if no other test file of the package did.
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite golden files")
	}
}

func jUpdateGolden() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// Helpers building test elements.

func jtxt(tag uint32, v VR, vals ...string) Element { return NewText(Tag(tag), v, vals...) }

func jraw(tag uint32, v VR, b []byte) Element { return Element{Tag: Tag(tag), VR: v, Value: b} }

func jds(els ...Element) *DataSet {
	d := &DataSet{}
	for _, e := range els {
		d.Set(e)
	}
	return d
}

func jle16(vals ...uint16) []byte {
	var b []byte
	for _, v := range vals {
		b = binary.LittleEndian.AppendUint16(b, v)
	}
	return b
}

func jle32(vals ...uint32) []byte {
	var b []byte
	for _, v := range vals {
		b = binary.LittleEndian.AppendUint32(b, v)
	}
	return b
}

func jle64(vals ...uint64) []byte {
	var b []byte
	for _, v := range vals {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	return b
}

func jf32s(vals ...float32) []byte {
	var b []byte
	for _, v := range vals {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

func jf64s(vals ...float64) []byte {
	var b []byte
	for _, v := range vals {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	}
	return b
}

// jBigEndian returns a copy of e with its value in big-endian order.
func jBigEndian(e Element) Element {
	unit := e.VR.SwapUnit()
	v := slices.Clone(e.Value)
	for i := 0; unit > 0 && i+unit <= len(v); i += unit {
		for j := 0; j < unit; j++ {
			v[i+j] = e.Value[i+unit-1-j]
		}
	}
	e.Value = v
	e.BigEndian = true
	return e
}

func jb64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func jEVRLE(t *testing.T, ds *DataSet) []byte {
	t.Helper()
	b, err := MarshalDataSet(ds, ExplicitVRLittleEndian)
	if err != nil {
		t.Fatalf("MarshalDataSet: %v", err)
	}
	return b
}

// jMustJSON marshals ds and checks that the output is valid JSON.
func jMustJSON(t *testing.T, ds *DataSet, opts *JSONOptions) []byte {
	t.Helper()
	out, err := MarshalJSON(ds, opts)
	if err != nil {
		t.Fatalf("MarshalJSON: %v", err)
	}
	if !json.Valid(out) {
		t.Fatalf("MarshalJSON produced invalid JSON: %s", out)
	}
	return out
}

// jRoundTrip checks UnmarshalJSON(MarshalJSON(ds)) encodes in Explicit VR
// Little Endian exactly as ds does, and that encoding it again gives the
// same JSON. It returns the JSON.
func jRoundTrip(t *testing.T, ds *DataSet) []byte {
	t.Helper()
	out := jMustJSON(t, ds, nil)
	back, err := UnmarshalJSON(out)
	if err != nil {
		t.Fatalf("UnmarshalJSON(%s): %v", out, err)
	}
	if want, got := jEVRLE(t, ds), jEVRLE(t, back); !bytes.Equal(want, got) {
		t.Fatalf("round trip changed the data set\njson: %s\nwant % X\ngot  % X", out, want, got)
	}
	if again := jMustJSON(t, back, nil); !bytes.Equal(again, out) {
		t.Fatalf("re-encoding differs\nfirst:  %s\nsecond: %s", out, again)
	}
	return out
}

func TestJSONEveryVR(t *testing.T) {
	tests := []struct {
		name string
		e    Element
		want string // the attribute object
	}{
		{"AE", jtxt(0x00020016, AE, "STORESCU", "PACS"), `{"vr":"AE","Value":["STORESCU","PACS"]}`},
		{"AS", jtxt(0x00101010, AS, "042Y"), `{"vr":"AS","Value":["042Y"]}`},
		{"AT", jraw(0x00209165, AT, jle16(0x0010, 0x0010, 0x7FE0, 0x0010)), `{"vr":"AT","Value":["00100010","7FE00010"]}`},
		{"CS", jtxt(0x00080008, CS, "ORIGINAL", "PRIMARY", "AXIAL"), `{"vr":"CS","Value":["ORIGINAL","PRIMARY","AXIAL"]}`},
		{"DA", jtxt(0x00080020, DA, "20240131"), `{"vr":"DA","Value":["20240131"]}`},
		{"DS", jtxt(0x00280030, DS, "0.5", "1.50", "-3e2"), `{"vr":"DS","Value":[0.5,1.50,-3e2]}`},
		{"DT", jtxt(0x0008002A, DT, "20240131123456.123456+0100"), `{"vr":"DT","Value":["20240131123456.123456+0100"]}`},
		{"FD", jraw(0x00186028, FD, jf64s(1.5, -0.1, 1e300)), `{"vr":"FD","Value":[1.5,-0.1,1e+300]}`},
		{"FL", jraw(0x00189219, FL, jf32s(0.1, -2, 3.4028235e38)), `{"vr":"FL","Value":[0.1,-2,3.4028235e+38]}`},
		{"IS", jtxt(0x00200013, IS, "12", "-7"), `{"vr":"IS","Value":[12,-7]}`},
		{"LO", jtxt(0x00081030, LO, "Study", "Second"), `{"vr":"LO","Value":["Study","Second"]}`},
		{"LT", jtxt(0x00204000, LT, `Line 1\with "quotes"`+"\r\nLine 2"), `{"vr":"LT","Value":["Line 1\\with \"quotes\"\r\nLine 2"]}`},
		{"OB", jraw(0x00420011, OB, []byte{0, 1, 2, 0xFF}), `{"vr":"OB","InlineBinary":"AAEC/w=="}`},
		{"OD", jraw(0x7FE00009, OD, jf64s(1, 2)), `{"vr":"OD","InlineBinary":"` + jb64(jf64s(1, 2)) + `"}`},
		{"OF", jraw(0x7FE00008, OF, jf32s(1, 2)), `{"vr":"OF","InlineBinary":"` + jb64(jf32s(1, 2)) + `"}`},
		{"OL", jraw(0x00660040, OL, jle32(1, 0xDEADBEEF)), `{"vr":"OL","InlineBinary":"` + jb64(jle32(1, 0xDEADBEEF)) + `"}`},
		{"OV", jraw(0x00660050, OV, jle64(1, math.MaxUint64)), `{"vr":"OV","InlineBinary":"` + jb64(jle64(1, math.MaxUint64)) + `"}`},
		{"OW", jraw(0x00283006, OW, jle16(1, 0x1234)), `{"vr":"OW","InlineBinary":"` + jb64(jle16(1, 0x1234)) + `"}`},
		{"PN", jtxt(0x00100010, PN, "Doe^John", "Roe^Jane"), `{"vr":"PN","Value":[{"Alphabetic":"Doe^John"},{"Alphabetic":"Roe^Jane"}]}`},
		{"SH", jtxt(0x00080050, SH, "ACC1"), `{"vr":"SH","Value":["ACC1"]}`},
		{"SL", jraw(0x00186020, SL, jle32(0x80000000, 5)), `{"vr":"SL","Value":[-2147483648,5]}`},
		{"SQ", NewSequence(0x00081115, jds(jtxt(0x00081150, UI, "1.2.3")), jds()), `{"vr":"SQ","Value":[{"00081150":{"vr":"UI","Value":["1.2.3"]}},{}]}`},
		{"SS", jraw(0x00189219, SS, jle16(0x8000, 0x7FFF)), `{"vr":"SS","Value":[-32768,32767]}`},
		{"ST", jtxt(0x00080081, ST, "1 Main St"), `{"vr":"ST","Value":["1 Main St"]}`},
		{"SV", jraw(0x00720082, SV, jle64(1<<63, math.MaxInt64)), `{"vr":"SV","Value":[-9223372036854775808,9223372036854775807]}`},
		{"TM", jtxt(0x00080030, TM, "123456.789"), `{"vr":"TM","Value":["123456.789"]}`},
		{"UC", jtxt(0x00189918, UC, "a", "b"), `{"vr":"UC","Value":["a","b"]}`},
		{"UI", jtxt(0x00080016, UI, "1.2.840.10008.5.1.4.1.1.2"), `{"vr":"UI","Value":["1.2.840.10008.5.1.4.1.1.2"]}`},
		{"UL", jraw(0x00081161, UL, jle32(0, 0xFFFFFFFF)), `{"vr":"UL","Value":[0,4294967295]}`},
		{"UN", jraw(0x00091001, UN, []byte("ab")), `{"vr":"UN","InlineBinary":"YWI="}`},
		{"UR", jtxt(0x00081190, UR, "https://example.org/a?b=c&d"), `{"vr":"UR","Value":["https://example.org/a?b=c&d"]}`},
		{"US", jraw(0x00280010, US, jle16(0, 512, 65535)), `{"vr":"US","Value":[0,512,65535]}`},
		{"UT", jtxt(0x00287FE0, UT, "unlimited\ttext\u0001"), `{"vr":"UT","Value":["unlimited\ttext\u0001"]}`},
		{"UV", jraw(0x00720083, UV, jle64(0, math.MaxUint64)), `{"vr":"UV","Value":[0,18446744073709551615]}`},
	}
	seen := map[VR]bool{}
	for _, tt := range tests {
		seen[tt.e.VR] = true
		t.Run(tt.name, func(t *testing.T) {
			ds := jds(tt.e)
			got := jRoundTrip(t, ds)
			want := fmt.Sprintf(`{"%08X":%s}`, uint32(tt.e.Tag), tt.want)
			if string(got) != want {
				t.Errorf("MarshalJSON\ngot  %s\nwant %s", got, want)
			}
			// Decoding the expected JSON gives the element back.
			back, err := UnmarshalJSON([]byte(want))
			if err != nil {
				t.Fatalf("UnmarshalJSON: %v", err)
			}
			if !bytes.Equal(jEVRLE(t, back), jEVRLE(t, ds)) {
				t.Errorf("UnmarshalJSON(%s) differs from the element", want)
			}
		})
	}
	for v := range vrTable {
		if !seen[v] {
			t.Errorf("VR %s not covered", v)
		}
	}
}

// TestJSONEmptyValues: an element without value has no "Value"; empty
// values among others are null.
func TestJSONEmptyValues(t *testing.T) {
	for v := range vrTable {
		if v == SQ {
			continue
		}
		t.Run(v.String(), func(t *testing.T) {
			e := Element{Tag: 0x00091010, VR: v}
			got := jRoundTrip(t, jds(e))
			if want := `{"00091010":{"vr":"` + v.String() + `"}}`; string(got) != want {
				t.Errorf("got %s, want %s", got, want)
			}
		})
	}
	tests := []struct {
		e    Element
		want string
	}{
		{NewSequence(0x00081115), `{"vr":"SQ"}`},
		{jtxt(0x00080008, CS, "A", "", "B"), `{"vr":"CS","Value":["A",null,"B"]}`},
		{jtxt(0x00080008, CS, "", ""), `{"vr":"CS","Value":[null,null]}`},
		{jtxt(0x00280030, DS, "", "2"), `{"vr":"DS","Value":[null,2]}`},
		{jtxt(0x00100010, PN, "", "Doe"), `{"vr":"PN","Value":[null,{"Alphabetic":"Doe"}]}`},
		{jtxt(0x00100010, PN, ""), `{"vr":"PN"}`},
	}
	for _, tt := range tests {
		got := jRoundTrip(t, jds(tt.e))
		if want := fmt.Sprintf(`{"%08X":%s}`, uint32(tt.e.Tag), tt.want); string(got) != want {
			t.Errorf("got %s, want %s", got, want)
		}
	}
	// Padding alone is an empty value; Value [] and [null] are empty.
	for _, in := range []string{
		`{"00100020":{"vr":"LO","Value":[]}}`,
		`{"00100020":{"vr":"LO","Value":[null]}}`,
		`{"00100020":{"vr":"LO","Value":[""]}}`,
	} {
		ds, err := UnmarshalJSON([]byte(in))
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if e := ds.Get(TagPatientID); e == nil || len(e.Value) != 0 || e.VR != LO {
			t.Errorf("%s: got %+v", in, e)
		}
	}
}

func TestJSONPersonName(t *testing.T) {
	const jp = "Yamada^Tarou=山田^太郎=やまだ^たろう"
	ds := jds(
		jtxt(0x00080005, CS, "ISO_IR 192"),
		jtxt(0x00100010, PN, jp, "=Ideo^Only", "Alpha==Phon"),
	)
	got := jRoundTrip(t, ds)
	want := `{"00080005":{"vr":"CS","Value":["ISO_IR 192"]},"00100010":{"vr":"PN","Value":[` +
		`{"Alphabetic":"Yamada^Tarou","Ideographic":"山田^太郎","Phonetic":"やまだ^たろう"},` +
		`{"Ideographic":"Ideo^Only"},{"Alphabetic":"Alpha","Phonetic":"Phon"}]}}`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}

	// Without (0008,0005), non-ASCII text makes the decoder add ISO_IR 192.
	back, err := UnmarshalJSON([]byte(`{"00100010":{"vr":"PN","Value":[{"Alphabetic":"Yamada^Tarou","Ideographic":"山田^太郎","Phonetic":"やまだ^たろう"}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if cs := back.String(TagSpecificCharacterSet); cs != "ISO_IR 192" {
		t.Errorf("Specific Character Set = %q, want ISO_IR 192", cs)
	}
	if got := string(back.Get(TagPatientName).Value); got != jp {
		t.Errorf("PN value %q, want %q", got, jp)
	}
	// ASCII text adds nothing.
	back, err = UnmarshalJSON([]byte(`{"00100010":{"vr":"PN","Value":[{"Alphabetic":"Doe^J"}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if back.Get(TagSpecificCharacterSet) != nil {
		t.Error("Specific Character Set added for ASCII text")
	}
}

// TestJSONCharset: text is decoded with the data set's character set, and
// items inherit it unless they carry their own.
func TestJSONCharset(t *testing.T) {
	// PS3.5 H.3.1: ISO 2022 IR 87 (JIS X 0208) with code extensions.
	jis := "Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B"
	ds := jds(
		jtxt(0x00080005, CS, "", "ISO 2022 IR 87"),
		jtxt(0x00100010, PN, jis),
		NewSequence(0x00081115,
			jds(jtxt(0x00081030, LO, "\x1b$B;3ED\x1b(B")), // inherits JIS
			jds(jtxt(0x00080005, CS, "ISO_IR 100"), jtxt(0x00081030, LO, "Caf\xe9")),
		),
	)
	out := jMustJSON(t, ds, nil)
	want := `{"00080005":{"vr":"CS","Value":[null,"ISO 2022 IR 87"]},` +
		`"00081115":{"vr":"SQ","Value":[{"00081030":{"vr":"LO","Value":["山田"]}},` +
		`{"00080005":{"vr":"CS","Value":["ISO_IR 100"]},"00081030":{"vr":"LO","Value":["Café"]}}]},` +
		`"00100010":{"vr":"PN","Value":[{"Alphabetic":"Yamada^Tarou","Ideographic":"山田^太郎","Phonetic":"やまだ^たろう"}]}}`
	if string(out) != want {
		t.Fatalf("got  %s\nwant %s", out, want)
	}
	// Decoding writes UTF-8 and relabels the character sets that govern
	// non-ASCII text.
	back, err := UnmarshalJSON(out)
	if err != nil {
		t.Fatal(err)
	}
	if cs := back.String(TagSpecificCharacterSet); cs != "ISO_IR 192" {
		t.Errorf("top-level Specific Character Set = %q, want ISO_IR 192", cs)
	}
	it := back.Get(0x00081115).Items[1]
	if cs := it.String(TagSpecificCharacterSet); cs != "ISO_IR 192" {
		t.Errorf("item Specific Character Set = %q, want ISO_IR 192", cs)
	}
	if got := it.String(0x00081030); got != "Café" {
		t.Errorf("item LO = %q", got)
	}
	if again := jMustJSON(t, back, nil); !strings.Contains(string(again), `"Café"`) || !strings.Contains(string(again), `"山田^太郎"`) {
		t.Errorf("re-encoded: %s", again)
	}
	// An unsupported character set is an error naming the element.
	_, err = MarshalJSON(jds(jtxt(0x00080005, CS, "ISO_IR 999"), jtxt(0x00100010, PN, "x")), nil)
	if err == nil || !strings.Contains(err.Error(), "(0008,0005)") {
		t.Errorf("unsupported character set: err = %v", err)
	}
	// Text VRs not affected by the character set are ISO 8859-1.
	got := jRoundTrip(t, jds(jtxt(0x00080008, CS, "CAF\xc9")))
	if string(got) != `{"00080008":{"vr":"CS","Value":["CAFÉ"]}}` {
		t.Errorf("CS latin-1: %s", got)
	}
}

func TestJSONDecimalAndInteger(t *testing.T) {
	tests := []struct {
		e    Element
		want string
	}{
		{jtxt(0x00280030, DS, "1.50"), `[1.50]`},
		{jtxt(0x00200013, IS, "-0012"), `[-12]`},
		{jtxt(0x00200013, IS, "+0", "007"), `[0,7]`},
		{jtxt(0x00280030, DS, "+.5", "5.", "-00.25E+02", " 1 "), `[0.5,5,-0.25E+02,1]`},
	}
	for _, tt := range tests {
		out := jMustJSON(t, jds(tt.e), nil)
		want := fmt.Sprintf(`{"%08X":{"vr":"%s","Value":%s}}`, uint32(tt.e.Tag), tt.e.VR, tt.want)
		if string(out) != want {
			t.Errorf("%q: got %s, want %s", tt.e.Value, out, want)
		}
		if _, err := UnmarshalJSON(out); err != nil {
			t.Errorf("%s: %v", out, err)
		}
	}
	// "1.50" round-trips textually; so does a string value.
	ds, err := UnmarshalJSON([]byte(`{"00280030":{"vr":"DS","Value":[1.50,"-0012.0"]},"00200013":{"vr":"IS","Value":["-0012",3]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(ds.Get(0x00280030).Value); got != `1.50\-0012.0` {
		t.Errorf("DS = %q", got)
	}
	if got := string(ds.Get(0x00200013).Value); got != `-0012\3 ` {
		t.Errorf("IS = %q", got)
	}
	// A long JSON number is fitted into 16 characters.
	ds, err = UnmarshalJSON([]byte(`{"00280030":{"vr":"DS","Value":[0.30000000000000004,-0.123456789012345,123456789012345678]}}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ds.Get(0x00280030).Strings() {
		if len(s) > 16 {
			t.Errorf("DS value %q longer than 16", s)
		}
	}
	if got := string(ds.Get(0x00280030).Value); got != `0.3\-.12345678901234\1.23456789012e17 ` {
		t.Errorf("fitted DS = %q", got)
	}
	// Unparseable values are errors naming the tag, not panics.
	for _, e := range []Element{
		jtxt(0x00280030, DS, "abc"),
		jtxt(0x00280030, DS, "1", "NaN"),
		jtxt(0x00280030, DS, "1e"),
		jtxt(0x00200013, IS, "1.5"),
		jtxt(0x00200013, IS, "+"),
	} {
		_, err := MarshalJSON(jds(e), nil)
		if err == nil || !strings.Contains(err.Error(), e.Tag.String()) || !errors.Is(err, ErrEncode) {
			t.Errorf("%s %q: err = %v", e.VR, e.Value, err)
		}
	}
}

func TestJSONNestedSequences(t *testing.T) {
	inner := jds(jtxt(0x00080100, SH, "T-04000"), jtxt(0x00080102, SH, "SRT"), jtxt(0x00080104, LO, "Breast"))
	mid := jds(
		jtxt(0x0040A010, CS, "CONTAINS"),
		NewSequence(0x0040A168, inner, jds()),
		jtxt(0x0040A040, CS, "CODE"),
	)
	ds := jds(
		jtxt(0x00100020, LO, "P1"),
		NewSequence(0x0040A730, mid, jds(NewSequence(0x0040A730))),
		NewSequence(0x00081115, jds(jraw(0x00280010, US, jle16(7)))),
	)
	out := jRoundTrip(t, ds)
	// Defined or undefined lengths do not show in JSON.
	ds.Get(0x00081115).UndefinedLength = false
	mid.UndefinedLength = true
	if again := jMustJSON(t, ds, nil); !bytes.Equal(again, out) {
		t.Errorf("length forms changed the JSON: %s", again)
	}
	want := `{"00081115":{"vr":"SQ","Value":[{"00280010":{"vr":"US","Value":[7]}}]},"00100020":{"vr":"LO","Value":["P1"]},` +
		`"0040A730":{"vr":"SQ","Value":[{"0040A010":{"vr":"CS","Value":["CONTAINS"]},"0040A040":{"vr":"CS","Value":["CODE"]},` +
		`"0040A168":{"vr":"SQ","Value":[{"00080100":{"vr":"SH","Value":["T-04000"]},"00080102":{"vr":"SH","Value":["SRT"]},` +
		`"00080104":{"vr":"LO","Value":["Breast"]}},{}]}},{"0040A730":{"vr":"SQ"}}]}}`
	if string(out) != want {
		t.Errorf("got  %s\nwant %s", out, want)
	}
}

func TestJSON64BitExtremes(t *testing.T) {
	ds := jds(
		jraw(0x00720082, SV, jle64(uint64(1)<<63, 0, math.MaxInt64, uint64(math.MaxUint64))), // -1 last
		jraw(0x00720083, UV, jle64(math.MaxUint64, 0, 1<<63)),
	)
	out := jRoundTrip(t, ds)
	want := `{"00720082":{"vr":"SV","Value":[-9223372036854775808,0,9223372036854775807,-1]},` +
		`"00720083":{"vr":"UV","Value":[18446744073709551615,0,9223372036854775808]}}`
	if string(out) != want {
		t.Errorf("got  %s\nwant %s", out, want)
	}
	// Strings are accepted for 64-bit integers (PS3.18 F.2.3).
	back, err := UnmarshalJSON([]byte(`{"00720082":{"vr":"SV","Value":["-9223372036854775808"]},"00720083":{"vr":"UV","Value":["18446744073709551615"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if u, _ := back.Get(0x00720083).Uint64s(); len(u) != 1 || u[0] != math.MaxUint64 {
		t.Errorf("UV = %v", u)
	}
	if n, _ := back.Get(0x00720082).Ints(); len(n) != 1 || n[0] != math.MinInt64 {
		t.Errorf("SV = %v", n)
	}
	for _, in := range []string{
		`{"00720083":{"vr":"UV","Value":[18446744073709551616]}}`,
		`{"00720083":{"vr":"UV","Value":[-1]}}`,
		`{"00720082":{"vr":"SV","Value":[9223372036854775808]}}`,
		`{"00720082":{"vr":"SV","Value":[-9223372036854775809]}}`,
		`{"00720082":{"vr":"SV","Value":[1.0]}}`,
	} {
		if _, err := UnmarshalJSON([]byte(in)); err == nil || !strings.Contains(err.Error(), "(0072,008") {
			t.Errorf("%s: err = %v", in, err)
		}
	}
}

// TestJSONBigEndian: a big-endian source element gives the JSON of its
// little-endian twin.
func TestJSONBigEndian(t *testing.T) {
	els := []Element{
		jraw(0x00209165, AT, jle16(0x0010, 0x0010, 0x0028, 0x0010)),
		jraw(0x00186028, FD, jf64s(1.5, -2)),
		jraw(0x00189219, FL, jf32s(0.25)),
		jraw(0x00186020, SL, jle32(0xFFFFFFFE)),
		jraw(0x00189218, SS, jle16(0xFFFE)),
		jraw(0x00720082, SV, jle64(1<<63)),
		jraw(0x00081161, UL, jle32(0x01020304)),
		jraw(0x00280010, US, jle16(0x0102)),
		jraw(0x00720083, UV, jle64(0x0102030405060708)),
		jraw(0x7FE00009, OD, jf64s(3.25)),
		jraw(0x7FE00008, OF, jf32s(3.25)),
		jraw(0x00660040, OL, jle32(0x01020304)),
		jraw(0x00660050, OV, jle64(0x0102030405060708)),
		jraw(0x00283006, OW, jle16(0x0102, 0x0304)),
		jraw(0x00420011, OB, []byte{1, 2, 3, 4}),
	}
	for _, e := range els {
		little := jMustJSON(t, jds(e), nil)
		big := jMustJSON(t, jds(jBigEndian(e)), nil)
		if !bytes.Equal(little, big) {
			t.Errorf("%s: big endian %s, little endian %s", e.VR, big, little)
		}
	}
	// The same through the binary codec: a data set read from Explicit VR
	// Big Endian.
	ds := jds(els...)
	b, err := MarshalDataSet(ds, ExplicitVRBigEndian)
	if err != nil {
		t.Fatal(err)
	}
	read, err := Parse(b, ExplicitVRBigEndian, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !read.Get(0x00186028).BigEndian {
		t.Fatal("parsed element is not marked big endian")
	}
	if want, got := jMustJSON(t, ds, nil), jMustJSON(t, read, nil); !bytes.Equal(want, got) {
		t.Errorf("big endian data set\ngot  %s\nwant %s", got, want)
	}
}

func jEncapsulatedSample() Element {
	return Element{
		Tag: TagPixelData, VR: OB, UndefinedLength: true,
		Fragments: [][]byte{jle32(0, 6), {0xFF, 0xD8, 1, 2, 0xFF, 0xD9}, {0xFF, 0xD8, 3, 4, 5, 6, 0xFF, 0xD9}},
	}
}

func TestJSONEncapsulatedPixelData(t *testing.T) {
	e := jEncapsulatedSample()
	ds := jds(jtxt(0x00280004, CS, "YBR_FULL_422"), e)
	out := jRoundTrip(t, ds)
	items := []byte{
		0xFE, 0xFF, 0x00, 0xE0, 8, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0,
		0xFE, 0xFF, 0x00, 0xE0, 6, 0, 0, 0, 0xFF, 0xD8, 1, 2, 0xFF, 0xD9,
		0xFE, 0xFF, 0x00, 0xE0, 8, 0, 0, 0, 0xFF, 0xD8, 3, 4, 5, 6, 0xFF, 0xD9,
		0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0,
	}
	want := `{"00280004":{"vr":"CS","Value":["YBR_FULL_422"]},"7FE00010":{"vr":"OB","InlineBinary":"` + jb64(items) + `"}}`
	if string(out) != want {
		t.Errorf("got  %s\nwant %s", out, want)
	}
	back, err := UnmarshalJSON(out)
	if err != nil {
		t.Fatal(err)
	}
	pd := back.Get(TagPixelData)
	if len(pd.Fragments) != 3 || !bytes.Equal(pd.Fragments[2], e.Fragments[2]) || pd.Value != nil || !pd.UndefinedLength {
		t.Errorf("fragments: %+v", pd)
	}
	// An empty basic offset table, and native pixel data that is not an
	// item sequence, stay as they are.
	e2 := Element{Tag: TagPixelData, VR: OB, UndefinedLength: true, Fragments: [][]byte{{}, {1, 2}}}
	jRoundTrip(t, jds(e2))
	native := jraw(uint32(TagPixelData), OW, []byte{0xFE, 0xFF, 0x00, 0xE0, 2, 0, 0, 0, 1, 2})
	back, err = UnmarshalJSON(jMustJSON(t, jds(native), nil))
	if err != nil {
		t.Fatal(err)
	}
	if pd := back.Get(TagPixelData); pd.Fragments != nil || !bytes.Equal(pd.Value, native.Value) {
		t.Errorf("native pixel data decoded as %+v", pd)
	}
}

func TestJSONBulkDataURI(t *testing.T) {
	big := make([]byte, 64)
	for i := range big {
		big[i] = byte(i)
	}
	ds := jds(
		jraw(0x00420011, OB, []byte{1, 2}), // below BulkDataMin: inline
		jraw(0x00283006, OW, big),
		NewSequence(0x00540016, jds(jraw(0x00283006, OW, big))),
		jtxt(0x00081030, LO, strings.Repeat("x", 100)), // text: never offered
		jEncapsulatedSample(),
	)
	var paths []string
	opts := &JSONOptions{
		BulkDataMin: 16,
		BulkDataURI: func(path []Tag, e *Element) string {
			var p []string
			for _, t := range path {
				p = append(p, fmt.Sprintf("%08X", uint32(t)))
			}
			s := strings.Join(p, "/")
			paths = append(paths, s)
			return "https://pacs.example/bulk/" + s
		},
	}
	out := jMustJSON(t, ds, opts)
	if want := []string{"00283006", "00540016/00283006", "7FE00010"}; fmt.Sprint(paths) != fmt.Sprint(want) {
		t.Errorf("offered %v, want %v", paths, want)
	}
	want := `{"00081030":{"vr":"LO","Value":["` + strings.Repeat("x", 100) + `"]},` +
		`"00283006":{"vr":"OW","BulkDataURI":"https://pacs.example/bulk/00283006"},` +
		`"00420011":{"vr":"OB","InlineBinary":"AQI="},` +
		`"00540016":{"vr":"SQ","Value":[{"00283006":{"vr":"OW","BulkDataURI":"https://pacs.example/bulk/00540016/00283006"}}]},` +
		`"7FE00010":{"vr":"OB","BulkDataURI":"https://pacs.example/bulk/7FE00010"}}`
	if string(out) != want {
		t.Errorf("got  %s\nwant %s", out, want)
	}

	// An empty return keeps InlineBinary.
	none := &JSONOptions{BulkDataURI: func([]Tag, *Element) string { return "" }}
	if got, plain := jMustJSON(t, ds, none), jMustJSON(t, ds, nil); !bytes.Equal(got, plain) {
		t.Errorf("empty URI changed the output")
	}

	// Without a resolver, a bulk data URI is an error wrapping ErrBulkData.
	_, err := UnmarshalJSON(out)
	if !errors.Is(err, ErrBulkData) {
		t.Fatalf("UnmarshalJSON: err = %v, want ErrBulkData", err)
	}
	if want := "dicom: json: bulk data URI for (0028,3006) not resolved"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}

	// With one, the values come back.
	store := map[string][]byte{
		"https://pacs.example/bulk/00283006":          big,
		"https://pacs.example/bulk/00540016/00283006": big,
		"https://pacs.example/bulk/7FE00010":          encapsulatedBytes(jEncapsulatedSample().Fragments),
	}
	back, err := UnmarshalJSONWith(out, func(uri string) ([]byte, error) {
		if b, ok := store[uri]; ok {
			return b, nil
		}
		return nil, fmt.Errorf("no such URI %q", uri)
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(jEVRLE(t, back), jEVRLE(t, ds)) {
		t.Error("resolved bulk data differs from the original")
	}
	fail := errors.New("HTTP 404")
	_, err = UnmarshalJSONWith(out, func(string) ([]byte, error) { return nil, fail })
	if !errors.Is(err, ErrBulkData) || !errors.Is(err, fail) {
		t.Errorf("resolver failure: err = %v", err)
	}
	// Bulk data for text and numbers.
	back, err = UnmarshalJSONWith([]byte(`{"00280010":{"vr":"US","BulkDataURI":"a"},"00204000":{"vr":"LT","BulkDataURI":"b"},"00280030":{"vr":"DS","BulkDataURI":"c"}}`),
		func(uri string) ([]byte, error) {
			return map[string][]byte{"a": jle16(512), "b": []byte("Grüße"), "c": []byte(`1.5\2`)}[uri], nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if got := back.String(0x00204000); got != "Grüße" || back.String(TagSpecificCharacterSet) != "ISO_IR 192" {
		t.Errorf("LT %q, charset %q", got, back.String(TagSpecificCharacterSet))
	}
	if got := string(back.Get(0x00280030).Value); got != `1.5\2 ` {
		t.Errorf("DS %q", got)
	}

	// Streamed elements need a URI.
	streamed := jds(Element{Tag: 0x00420011, VR: OB, Streamed: true, Length: 1 << 20})
	if _, err := MarshalJSON(streamed, nil); err == nil || !strings.Contains(err.Error(), "(0042,0011)") {
		t.Errorf("streamed without URI: err = %v", err)
	}
	out = jMustJSON(t, streamed, &JSONOptions{BulkDataMin: 1 << 30, BulkDataURI: func(_ []Tag, e *Element) string {
		if e.Streamed {
			return "urn:streamed"
		}
		return ""
	}})
	if string(out) != `{"00420011":{"vr":"OB","BulkDataURI":"urn:streamed"}}` {
		t.Errorf("streamed: %s", out)
	}
}

func TestJSONPrivateAndSpecial(t *testing.T) {
	ds := jds(
		jtxt(0x00090010, LO, "ACME 1.0"),
		jraw(0x00091001, UN, []byte{1, 2, 3}), // odd: padded
		jtxt(0x00091002, LO, "private text"),
		jraw(0x00080000, UL, jle32(100)), // group length: left out
		Element{Tag: 0x00091003, VR: 0},  // unknown VR: as UN
	)
	out := jMustJSON(t, ds, nil)
	want := `{"00090010":{"vr":"LO","Value":["ACME 1.0"]},"00091001":{"vr":"UN","InlineBinary":"AQID"},` +
		`"00091002":{"vr":"LO","Value":["private text"]},"00091003":{"vr":"UN"}}`
	if string(out) != want {
		t.Errorf("got  %s\nwant %s", out, want)
	}
	// A UN sequence (undefined length) is its implicit VR value field.
	un := Element{Tag: 0x00091004, VR: UN, UndefinedLength: true, Items: []*DataSet{jds(jtxt(0x00100020, LO, "X"))}}
	out = jMustJSON(t, jds(un), nil)
	var obj map[string]struct{ InlineBinary string }
	if err := json.Unmarshal(out, &obj); err != nil {
		t.Fatal(err)
	}
	val, _ := base64.StdEncoding.DecodeString(obj["00091004"].InlineBinary)
	parsed, err := Parse(append(jle16(0x0009, 0x1004, 0xFFFF, 0xFFFF), val...), ImplicitVRLittleEndian, nil)
	if err != nil {
		t.Fatalf("UN value does not parse: %v", err)
	}
	if got := parsed.Get(0x00091004); got == nil || len(got.Items) != 1 || got.Items[0].String(TagPatientID) != "X" {
		t.Errorf("UN sequence: %+v", got)
	}
	// Unsorted input is written in tag order; duplicates are an error.
	uns := &DataSet{Elements: []Element{jtxt(0x00100020, LO, "B"), jtxt(0x00100010, PN, "A")}}
	if got := jMustJSON(t, uns, nil); !strings.HasPrefix(string(got), `{"00100010"`) {
		t.Errorf("unsorted: %s", got)
	}
	// (0008,0005) is found in an unsorted data set built by hand.
	uns = &DataSet{Elements: []Element{jtxt(0x00100010, PN, "Caf\xe9"), jtxt(0x00080005, CS, "ISO_IR 100")}}
	if got := jMustJSON(t, uns, nil); !strings.Contains(string(got), `"Café"`) {
		t.Errorf("unsorted charset: %s", got)
	}
	dup := &DataSet{Elements: []Element{jtxt(0x00100020, LO, "B"), jtxt(0x00100020, LO, "A")}}
	if _, err := MarshalJSON(dup, nil); err == nil {
		t.Error("duplicate element: no error")
	}
	// Values that cannot be JSON.
	for _, e := range []Element{
		jraw(0x00186028, FD, jf64s(math.NaN())),
		jraw(0x00189219, FL, jf32s(float32(math.Inf(1)))),
		jraw(0x00280010, US, []byte{1, 2, 3}),
	} {
		if _, err := MarshalJSON(jds(e), nil); err == nil || !strings.Contains(err.Error(), e.Tag.String()) {
			t.Errorf("%s % X: err = %v", e.VR, e.Value, err)
		}
	}
	// Nil and empty data sets.
	if out := jMustJSON(t, nil, nil); string(out) != "{}" {
		t.Errorf("nil: %s", out)
	}
}

// jNestedJSON returns a data set nesting n sequences.
func jNestedJSON(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteString(`{"0040A730":{"vr":"SQ","Value":[`)
	}
	b.WriteString(`{"00100020":{"vr":"LO","Value":["deep"]}}`)
	for i := 0; i < n; i++ {
		b.WriteString(`]}}`)
	}
	return b.String()
}

func TestJSONDecodeErrors(t *testing.T) {
	tests := []struct {
		name, in string
		want     string // in the error text
		kind     error
	}{
		{"short key", `{"0010001":{"vr":"PN"}}`, `"0010001"`, ErrMalformed},
		{"non-hex key", `{"0010001G":{"vr":"PN"}}`, `"0010001G"`, ErrMalformed},
		{"keyword key", `{"PatientName":{"vr":"PN"}}`, `"PatientName"`, ErrMalformed},
		{"item tag key", `{"FFFEE000":{"vr":"OB"}}`, "(FFFE,E000)", ErrMalformed},
		{"unknown VR", `{"00100010":{"vr":"XX"}}`, "(0010,0010): unknown VR", ErrMalformed},
		{"lower-case VR", `{"00100010":{"vr":"pn"}}`, "(0010,0010): unknown VR", ErrMalformed},
		{"missing vr", `{"00100010":{"Value":[]}}`, "(0010,0010)", ErrMalformed},
		{"vr not string", `{"00100010":{"vr":1}}`, "(0010,0010)", ErrMalformed},
		{"unknown key", `{"00100010":{"vr":"PN","value":[]}}`, `(0010,0010): unknown key "value"`, ErrMalformed},
		{"string for US", `{"00280010":{"vr":"US","Value":["512"]}}`, "(0028,0010): US value is a string, not a number", ErrMalformed},
		{"70000 for US", `{"00280010":{"vr":"US","Value":[70000]}}`, "(0028,0010): US value 70000 does not fit", ErrMalformed},
		{"negative US", `{"00280010":{"vr":"US","Value":[-1]}}`, "(0028,0010)", ErrMalformed},
		{"fraction for US", `{"00280010":{"vr":"US","Value":[1.5]}}`, "(0028,0010)", ErrMalformed},
		{"SS overflow", `{"00189219":{"vr":"SS","Value":[32768]}}`, "(0018,9219)", ErrMalformed},
		{"UL overflow", `{"00081161":{"vr":"UL","Value":[4294967296]}}`, "(0008,1161)", ErrMalformed},
		{"SL underflow", `{"00186020":{"vr":"SL","Value":[-2147483649]}}`, "(0018,6020)", ErrMalformed},
		{"FL overflow", `{"00189219":{"vr":"FL","Value":[1e39]}}`, "(0018,9219)", ErrMalformed},
		{"FD overflow", `{"00186028":{"vr":"FD","Value":[1e309]}}`, "(0018,6028)", ErrMalformed},
		{"IS overflow", `{"00200013":{"vr":"IS","Value":[2147483648]}}`, "(0020,0013)", ErrMalformed},
		{"IS fraction", `{"00200013":{"vr":"IS","Value":[1.5]}}`, "(0020,0013)", ErrMalformed},
		{"DS string", `{"00280030":{"vr":"DS","Value":["abc"]}}`, "(0028,0030)", ErrMalformed},
		{"DS bool", `{"00280030":{"vr":"DS","Value":[true]}}`, "(0028,0030)", ErrMalformed},
		{"number for LO", `{"00100020":{"vr":"LO","Value":[12]}}`, "(0010,0020): LO value is a number", ErrMalformed},
		{"object for CS", `{"00080060":{"vr":"CS","Value":[{}]}}`, "(0008,0060)", ErrMalformed},
		{"delimiter in CS", `{"00080060":{"vr":"CS","Value":["A\\B"]}}`, "(0008,0060)", ErrMalformed},
		{"non-latin1 in CS", `{"00080060":{"vr":"CS","Value":["山"]}}`, "(0008,0060)", ErrMalformed},
		{"two LT values", `{"00204000":{"vr":"LT","Value":["a","b"]}}`, "(0020,4000)", ErrMalformed},
		{"Value not array", `{"00100020":{"vr":"LO","Value":"x"}}`, `(0010,0020): "Value" is a string`, ErrMalformed},
		{"Value null", `{"00100020":{"vr":"LO","Value":null}}`, "(0010,0020)", ErrMalformed},
		{"PN string", `{"00100010":{"vr":"PN","Value":["Doe^John"]}}`, "(0010,0010): PN value is a string", ErrMalformed},
		{"PN bad group", `{"00100010":{"vr":"PN","Value":[{"Alphabetical":"x"}]}}`, "(0010,0010)", ErrMalformed},
		{"PN group number", `{"00100010":{"vr":"PN","Value":[{"Alphabetic":1}]}}`, "(0010,0010)", ErrMalformed},
		{"PN equals", `{"00100010":{"vr":"PN","Value":[{"Alphabetic":"a=b"}]}}`, "(0010,0010)", ErrMalformed},
		{"AT bad", `{"00209165":{"vr":"AT","Value":["(0010,0010)"]}}`, "(0020,9165)", ErrMalformed},
		{"AT number", `{"00209165":{"vr":"AT","Value":[1048592]}}`, "(0020,9165)", ErrMalformed},
		{"Value for OB", `{"00420011":{"vr":"OB","Value":[1]}}`, "(0042,0011)", ErrMalformed},
		{"InlineBinary for LO", `{"00100020":{"vr":"LO","InlineBinary":"AA=="}}`, "(0010,0020)", ErrMalformed},
		{"InlineBinary number", `{"00420011":{"vr":"OB","InlineBinary":1}}`, "(0042,0011)", ErrMalformed},
		{"bad base64", `{"00420011":{"vr":"OB","InlineBinary":"!!!"}}`, "(0042,0011)", ErrMalformed},
		{"OW odd", `{"00283006":{"vr":"OW","InlineBinary":"AAAA"}}`, "(0028,3006)", ErrMalformed},
		{"OF length", `{"7FE00008":{"vr":"OF","InlineBinary":"AAA="}}`, "(7FE0,0008)", ErrMalformed},
		{"Value and InlineBinary", `{"00420011":{"vr":"OB","Value":[],"InlineBinary":""}}`, "(0042,0011)", ErrMalformed},
		{"BulkDataURI for PN", `{"00100010":{"vr":"PN","BulkDataURI":"x"}}`, "(0010,0010)", ErrMalformed},
		{"BulkDataURI number", `{"00420011":{"vr":"OB","BulkDataURI":1}}`, "(0042,0011)", ErrMalformed},
		{"item not object", `{"00081115":{"vr":"SQ","Value":[1]}}`, "(0008,1115)[0]", ErrMalformed},
		{"nested error path", `{"00081115":{"vr":"SQ","Value":[{},{"00081150":{"vr":"UI","Value":[1]}}]}}`, "(0008,1115)[1](0008,1150)", ErrMalformed},
		{"attribute not object", `{"00100020":"x"}`, "(0010,0020)", ErrMalformed},
		{"duplicate key", `{"00100020":{"vr":"LO"},"00100020":{"vr":"LO"}}`, "duplicate key", ErrMalformed},
		{"duplicate tag", `{"0010001a":{"vr":"LO"},"0010001A":{"vr":"LO"}}`, "(0010,001A)", ErrMalformed},
		{"charset not CS", `{"00080005":{"vr":"LO","Value":["ISO_IR 192"]}}`, "(0008,0005)", ErrMalformed},
		{"charset unknown", `{"00080005":{"vr":"CS","Value":["ISO_IR 999"]}}`, "(0008,0005)", ErrMalformed},
		{"top-level array", `[{}]`, "not a JSON object", ErrMalformed},
		{"top-level null", `null`, "not a JSON object", ErrMalformed},
		{"trailing data", `{} {}`, "after the top-level", ErrMalformed},
		{"truncated", `{"00100020":{"vr":"LO"`, "invalid JSON", ErrMalformed},
		{"syntax", `{"00100020":{"vr":"LO",}}`, "invalid JSON", ErrMalformed},
		{"empty", ``, "invalid JSON", ErrMalformed},
		{"depth 65", jNestedJSON(65), "nested deeper than 64", ErrLimit},
		{"deep JSON", strings.Repeat("[", 10000), "nested deeper", ErrLimit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds, err := UnmarshalJSON([]byte(tt.in))
			if err == nil {
				t.Fatalf("no error; decoded %+v", ds)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if !errors.Is(err, tt.kind) {
				t.Errorf("error %q does not wrap %v", err, tt.kind)
			}
			if !strings.HasPrefix(err.Error(), "dicom: json: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
	// 64 levels is within the limit, and so is MarshalJSON of the result.
	ds, err := UnmarshalJSON([]byte(jNestedJSON(64)))
	if err != nil {
		t.Fatalf("depth 64: %v", err)
	}
	jRoundTrip(t, ds)
	// One level more built in memory is refused by MarshalJSON.
	deep := jds(NewSequence(0x0040A730, ds))
	if _, err := MarshalJSON(deep, nil); !errors.Is(err, ErrLimit) {
		t.Errorf("MarshalJSON depth 65: err = %v", err)
	}
}

func TestJSONDecodeLenient(t *testing.T) {
	// Keys in any order and lower-case hex are accepted; the result is in
	// tag order. Group lengths are dropped.
	ds, err := UnmarshalJSON([]byte(` { "00100020" : {"Value":["B"],"vr":"LO"}, "00100010":{"vr":"PN"}, "00100000":{"vr":"UL","Value":[8]}, "0009100a":{"vr":"UN","InlineBinary":"AQID"} } `))
	if err != nil {
		t.Fatal(err)
	}
	var tags []Tag
	for _, e := range ds.Elements {
		tags = append(tags, e.Tag)
	}
	if fmt.Sprint(tags) != fmt.Sprint([]Tag{0x0009100A, 0x00100010, 0x00100020}) {
		t.Errorf("tags %v", tags)
	}
	if got := ds.Get(0x0009100A).Value; !bytes.Equal(got, []byte{1, 2, 3, 0}) {
		t.Errorf("UN value % X (want padded to even length)", got)
	}
	if got := ds.Get(TagPatientID).Value; string(got) != "B " {
		t.Errorf("LO %q", got)
	}
	// UI pads with NUL.
	ds, err = UnmarshalJSON([]byte(`{"00080016":{"vr":"UI","Value":["1.2.3"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := ds.Get(TagSOPClassUID).Value; string(got) != "1.2.3\x00" {
		t.Errorf("UI %q", got)
	}
}

// jSample is a data set with every kind of value.
func jSample() *DataSet {
	return jds(
		jtxt(0x00080005, CS, "ISO_IR 192"),
		jtxt(0x00080008, CS, "ORIGINAL", "PRIMARY"),
		jtxt(0x00080016, UI, "1.2.840.10008.5.1.4.1.1.7"),
		jtxt(0x00080018, UI, "2.25.1234567890"),
		jtxt(0x00080020, DA, "20240131"),
		jtxt(0x00080030, TM, "101010"),
		jtxt(0x0008002A, DT, "20240131101010"),
		jtxt(0x00080050, SH, "ACC-1"),
		jtxt(0x00080060, CS, "OT"),
		jtxt(0x00081030, LO, "Étude", "Zweite Beschreibung"),
		jtxt(0x00081190, UR, "https://pacs.example/studies/1"),
		jtxt(0x00090010, LO, "ACME 1.0"),
		jraw(0x00091001, UN, []byte{0xDE, 0xAD, 0xBE, 0xEF}),
		jtxt(0x00100010, PN, "Yamada^Tarou=山田^太郎=やまだ^たろう"),
		jtxt(0x00100020, LO, "PID-001"),
		jtxt(0x00101010, AS, "042Y"),
		jtxt(0x00180015, CS, "CHEST"),
		jBigEndian(jraw(0x00186028, FD, jf64s(0.5, -1e-10))),
		jraw(0x00189219, FL, jf32s(2.5)),
		jtxt(0x00200013, IS, "7"),
		jraw(0x00209165, AT, jle16(0x0010, 0x0020)),
		jtxt(0x00204000, LT, "Comment with\nnewline and \"quotes\""),
		jtxt(0x00280002, US, ""), // empty
		jBigEndian(jraw(0x00280010, US, jle16(2))),
		jraw(0x00280011, US, jle16(2)),
		jtxt(0x00280030, DS, "0.5", "1.50"),
		jBigEndian(jraw(0x00283006, OW, jle16(0, 1, 2, 65535))),
		jtxt(0x00287FE0, UT, "unlimited"),
		NewSequence(0x0040A730,
			jds(
				jtxt(0x0040A010, CS, "CONTAINS"),
				NewSequence(0x0040A043, jds(jtxt(0x00080100, SH, "121071"), jtxt(0x00080104, LO, "Finding"))),
				jtxt(0x0040A160, UT, "Text with ü"),
			),
			jds(),
		),
		jraw(0x00720082, SV, jle64(1<<63)),
		jraw(0x00720083, UV, jle64(math.MaxUint64)),
		jEncapsulatedSample(),
	)
}

func TestJSONRoundTrip(t *testing.T) {
	ds := jSample()
	out := jRoundTrip(t, ds)
	// And through the binary codec in every syntax.
	for _, ts := range []TransferSyntax{ExplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian} {
		b, err := MarshalDataSet(ds, ts)
		if err != nil {
			t.Fatal(err)
		}
		read, err := Parse(b, ts, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := jMustJSON(t, read, nil); !bytes.Equal(got, out) {
			t.Errorf("%s: JSON of the parsed data set differs\ngot  %s\nwant %s", ts.Name, got, out)
		}
	}
}

func TestJSONGolden(t *testing.T) {
	out := jMustJSON(t, jSample(), nil)
	var indented bytes.Buffer
	if err := json.Indent(&indented, out, "", "  "); err != nil {
		t.Fatal(err)
	}
	indented.WriteByte('\n')
	path := filepath.Join("testdata", "json", "sample.json")
	if jUpdateGolden() {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, indented.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run Golden -update)", err)
	}
	// The golden file is the output indented: compare it exactly, and the
	// compacted golden file with the output exactly.
	if !bytes.Equal(indented.Bytes(), golden) {
		t.Errorf("MarshalJSON differs from %s (run go test -run Golden -update after checking)\ngot:\n%s", path, indented.Bytes())
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, golden); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(compact.Bytes(), out) {
		t.Errorf("compacted golden file differs from MarshalJSON output")
	}
	// The golden file decodes to the sample.
	back, err := UnmarshalJSON(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(jEVRLE(t, back), jEVRLE(t, jSample())) {
		t.Error("golden file does not decode to the sample data set")
	}
}

// jCheckStable is the fuzz property: anything UnmarshalJSON accepts
// encodes, and decodes again to the same JSON.
func jCheckStable(t *testing.T, data []byte) {
	ds, err := UnmarshalJSON(data)
	if err != nil {
		if ds != nil {
			t.Fatalf("error %v with a data set", err)
		}
		return
	}
	out, err := MarshalJSON(ds, nil)
	if err != nil {
		t.Fatalf("MarshalJSON of a decoded data set: %v\ninput: %q", err, data)
	}
	ds2, err := UnmarshalJSON(out)
	if err != nil {
		t.Fatalf("UnmarshalJSON of re-encoded JSON: %v\ninput: %q\njson:  %s", err, data, out)
	}
	out2, err := MarshalJSON(ds2, nil)
	if err != nil {
		t.Fatalf("second MarshalJSON: %v", err)
	}
	if !bytes.Equal(out, out2) {
		t.Fatalf("encoding not stable\ninput:  %q\nfirst:  %s\nsecond: %s", data, out, out2)
	}
	if _, err := MarshalDataSet(ds, ExplicitVRLittleEndian); err != nil {
		t.Fatalf("MarshalDataSet of a decoded data set: %v", err)
	}
}

var jFuzzSeeds = []string{
	`{}`,
	`{"00100010":{"vr":"PN","Value":[{"Alphabetic":"Doe^John","Ideographic":"山田","Phonetic":"やまだ"}]}}`,
	`{"00280030":{"vr":"DS","Value":[1.50,"-0012",null]},"00200013":{"vr":"IS","Value":["-0012",3]}}`,
	`{"00280010":{"vr":"US","Value":[512]},"00720083":{"vr":"UV","Value":[18446744073709551615,"1"]},"00720082":{"vr":"SV","Value":[-9223372036854775808]}}`,
	`{"00186028":{"vr":"FD","Value":[1e300,-0]},"00189219":{"vr":"FL","Value":[0.1]}}`,
	`{"00081115":{"vr":"SQ","Value":[{"00080005":{"vr":"CS","Value":["ISO_IR 100"]},"00081030":{"vr":"LO","Value":["Café"]}},{}]}}`,
	`{"7FE00010":{"vr":"OB","InlineBinary":"/v8A4AAAAAD+/wDgAgAAAAEC/v/d4AAAAAA="}}`,
	`{"00209165":{"vr":"AT","Value":["00100010"]},"00080008":{"vr":"CS","Value":["A",null,"B"]}}`,
	`{"00280030":{"vr":"DS","Value":[0.30000000000000004,.5]}}`,
	`{"00080005":{"vr":"CS","Value":[null,"ISO 2022 IR 87"]},"00100010":{"vr":"PN","Value":[{"Alphabetic":"\u001b$B;3ED\u001b(B"}]}}`,
}

// TestJSONFuzzRegressions holds the inputs the fuzzer found.
func TestJSONFuzzRegressions(t *testing.T) {
	tests := []struct{ name, in string }{
		// A PN value whose component groups are all blank ("==  ") was
		// written as {} and then decoded as an empty value.
		{"PN blank groups", `{"00000010":{"vr":"PN","Value":[{"Phonetic":" "}]}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { jCheckStable(t, []byte(tt.in)) })
	}
}

func TestJSONFuzzSeeds(t *testing.T) {
	for _, s := range jFuzzSeeds {
		jCheckStable(t, []byte(s))
	}
	golden, err := os.ReadFile(filepath.Join("testdata", "json", "sample.json"))
	if err == nil {
		jCheckStable(t, golden)
	}
}

func FuzzUnmarshalJSON(f *testing.F) {
	for _, s := range jFuzzSeeds {
		f.Add([]byte(s))
	}
	if golden, err := os.ReadFile(filepath.Join("testdata", "json", "sample.json")); err == nil {
		f.Add(golden)
	}
	f.Add([]byte(jNestedJSON(3)))
	f.Fuzz(func(t *testing.T, data []byte) {
		jCheckStable(t, data)
	})
}
