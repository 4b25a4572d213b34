package charset

import (
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// h parses space-separated hex bytes, e.g. "1b 24 42".
func h(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

// cat concatenates byte slices and strings into one raw value.
func cat(parts ...any) []byte {
	var out []byte
	for _, p := range parts {
		switch p := p.(type) {
		case string:
			out = append(out, p...)
		case []byte:
			out = append(out, p...)
		default:
			panic("cat: bad part")
		}
	}
	return out
}

type decodeCase struct {
	name  string
	terms []string // nil: nil *Decoder
	vr    string
	raw   []byte
	want  string
}

var decodeCases = []decodeCase{
	// PS3.5 Example H.3-1: value 1 absent, JIS X 0208 through ESC $ B.
	{
		name:  "AnnexH.3-1/JIS X 0208",
		terms: []string{"", "ISO 2022 IR 87"},
		vr:    "PN",
		raw: h("59 61 6d 61 64 61 5e 54 61 72 6f 75 3d" +
			"1b 24 42 3b 33 45 44 1b 28 42 5e 1b 24 42 42 40 4f 3a 1b 28 42 3d" +
			"1b 24 42 24 64 24 5e 24 40 1b 28 42 5e 1b 24 42 24 3f 24 6d 24 26 1b 28 42"),
		want: "Yamada^Tarou=山田^太郎=やまだ^たろう",
	},
	// PS3.5 Example H.3-2: value 1 ISO 2022 IR 13, romaji/katakana initially.
	{
		name:  "AnnexH.3-2/JIS X 0201+0208",
		terms: []string{"ISO 2022 IR 13", "ISO 2022 IR 87"},
		vr:    "PN",
		raw: h("d4 cf c0 de 5e c0 db b3 3d" +
			"1b 24 42 3b 33 45 44 1b 28 4a 5e 1b 24 42 42 40 4f 3a 1b 28 4a 3d" +
			"1b 24 42 24 64 24 5e 24 40 1b 28 4a 5e 1b 24 42 24 3f 24 6d 24 26 1b 28 4a"),
		want: "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう",
	},
	{
		name:  "AnnexH.3-2/ISO_IR 13 as value 1",
		terms: []string{"ISO_IR 13", "ISO 2022 IR 87"},
		vr:    "PN",
		raw:   h("d4 cf c0 de 5e c0 db b3 3d 1b 24 42 3b 33 45 44 1b 28 4a 5e 1b 24 42 42 40 4f 3a 1b 28 4a"),
		want:  "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎",
	},
	{
		name:  "ISO_IR 13 katakana without extensions",
		terms: []string{"ISO_IR 13"},
		vr:    "PN",
		raw:   h("d4 cf c0 de 5e c0 db b3"),
		want:  "ﾔﾏﾀﾞ^ﾀﾛｳ",
	},
	// JIS X 0212 row 16 cell 1 (0x3021) is U+4E02.
	{
		name:  "JIS X 0212",
		terms: []string{"", "ISO 2022 IR 87", "ISO 2022 IR 159"},
		vr:    "LO",
		raw:   h("41 1b 24 28 44 30 21 1b 28 42 42"),
		want:  "A\u4e02B",
	},
	// PS3.5 Example I.2-1.
	{
		name:  "AnnexI.2/KS X 1001",
		terms: []string{"", "ISO 2022 IR 149"},
		vr:    "PN",
		raw: h("48 6f 6e 67 5e 47 69 6c 64 6f 6e 67 3d" +
			"1b 24 29 43 fb f3 5e 1b 24 29 43 d1 ce d4 d7 3d" +
			"1b 24 29 43 c8 ab 5e 1b 24 29 43 b1 e6 b5 bf"),
		want: "Hong^Gildong=洪^吉洞=홍^길동",
	},
	// Long text in the manner of PS3.5 I.3 (built from the I.2 codes for
	// 길동): every line needs its own escape, CR LF reinstates value 1.
	{
		name:  "KS X 1001 long text",
		terms: []string{"", "ISO 2022 IR 149"},
		vr:    "LT",
		raw: cat("The 1st line includes ", h("1b 24 29 43 b1 e6 b5 bf"), ".\r\n",
			"The 2nd line includes ", h("1b 24 29 43 b1 e6 b5 bf"), ", too.\r\n",
			"The 3rd line."),
		want: "The 1st line includes 길동.\r\nThe 2nd line includes 길동, too.\r\nThe 3rd line.",
	},
	{
		name:  "KS X 1001 G1 reset at CR LF",
		terms: []string{"", "ISO 2022 IR 149"},
		vr:    "LT",
		raw:   cat(h("1b 24 29 43 b1 e6"), "\r\n", h("b1 e6")),
		want:  "길\r\n\u00b1\u00e6", // no G1 after the reset: ISO 8859-1
	},
	{
		name:  "ISO 2022 IR 149 as value 1",
		terms: []string{"ISO 2022 IR 149"},
		vr:    "PN",
		raw:   h("c8 ab 5e b1 e6 b5 bf"),
		want:  "홍^길동",
	},
	// PS3.5 Example J.3-1 (GB18030).
	{
		name:  "AnnexJ.3/GB18030",
		terms: []string{"GB18030"},
		vr:    "PN",
		raw:   h("57 61 6e 67 5e 58 69 61 6f 44 6f 6e 67 3d cd f5 5e d0 a1 b6 ab 3d"),
		want:  "Wang^XiaoDong=王^小东=",
	},
	{
		name:  "AnnexJ.3/GBK",
		terms: []string{"GBK"},
		vr:    "PN",
		raw:   h("57 61 6e 67 5e 58 69 61 6f 44 6f 6e 67 3d cd f5 5e d0 a1 b6 ab 3d"),
		want:  "Wang^XiaoDong=王^小东=",
	},
	// GB18030 four-byte sequence 0x81 0x30 0x81 0x30 is U+0080; 0x5C as a
	// trailing byte (0x81 0x5C) is not a value delimiter.
	{
		name:  "GB18030 four-byte and 0x5C trail",
		terms: []string{"GB18030"},
		vr:    "LO",
		raw:   h("81 30 81 30 81 5c"),
		want:  "\u0080\u4e57",
	},
	// PS3.5 Example K.2-1 (GB2312 with code extensions), including the
	// example's trailing SPACE pad.
	{
		name:  "AnnexK.2/GB2312",
		terms: []string{"", "ISO 2022 IR 58"},
		vr:    "PN",
		raw: h("5a 68 61 6e 67 5e 58 69 61 6f 44 6f 6e 67 3d" +
			"1b 24 29 41 d5 c5 5e 1b 24 29 41 d0 a1 b6 ab 3d 20"),
		want: "Zhang^XiaoDong=张^小东= ",
	},
	// PS3.5 Example K.3-1 (GB2312 long text).
	{
		name:  "AnnexK.3/GB2312 long text",
		terms: []string{"", "ISO 2022 IR 58"},
		vr:    "LT",
		raw: h("31 2e 1b 24 29 41 b5 da d2 bb d0 d0 ce c4 d7 d6 a1 a3 1b 28 42 0d 0a" +
			"32 2e 1b 24 29 41 b5 da b6 fe d0 d0 ce c4 d7 d6 a1 a3 1b 28 42 0d 0a" +
			"33 2e 1b 24 29 41 b5 da c8 fd d0 d0 ce c4 d7 d6 a1 a3 1b 28 42 0d 0a 20"),
		want: "1.第一行文字。\r\n2.第二行文字。\r\n3.第三行文字。\r\n ",
	},

	// Single-byte character sets (codes from the ISO 8859 parts).
	{"Latin-1", []string{"ISO_IR 100"}, "PN", h("42 75 63 5e 4a e9 72 f4 6d 65"), "Buc^Jérôme"},
	{"Latin-1 default repertoire", nil, "PN", h("42 75 63 5e 4a e9 72 f4 6d 65"), "Buc^Jérôme"},
	{"Latin-1 empty value 1", []string{""}, "PN", h("42 75 63 5e 4a e9 72 f4 6d 65"), "Buc^Jérôme"},
	{"Latin-2", []string{"ISO_IR 101"}, "PN", h("44 76 6f f8 e1 6b"), "Dvořák"},
	{"Latin-3", []string{"ISO_IR 109"}, "LO", h("a6 bc"), "Ĥĵ"},
	{"Latin-4", []string{"ISO_IR 110"}, "LO", h("a3 bb"), "Ŗģ"},
	{"Cyrillic", []string{"ISO_IR 144"}, "PN", h("b8 d2 d0 dd de d2 5e b8 d2 d0 dd"), "Иванов^Иван"},
	{"Arabic", []string{"ISO_IR 127"}, "PN", h("e2 c8 c7 e6 ea 5e e4 e6 d2 c7 d1"), "قباني^لنزار"},
	{"Greek", []string{"ISO_IR 126"}, "PN", h("c4 e9 ef ed f5 f3 e9 ef f2"), "Διονυσιος"},
	{"Hebrew", []string{"ISO_IR 138"}, "PN", h("f9 f8 e5 ef 5e e3 e1 e5 f8 e4"), "שרון^דבורה"},
	{"Latin-5", []string{"ISO_IR 148"}, "PN", h("dd 7a 6d 69 72 5e c7 61 f0 fd 72 fe 61 6e"), "İzmir^Çağırşan"},
	{"Latin-9", []string{"ISO_IR 203"}, "LO", h("31 30 a4 20 bd"), "10€ œ"},
	{"Thai", []string{"ISO_IR 166"}, "PN", h("a1 d2 c3 5e e0 b7 a8"), "การ^เทจ"},
	{"UTF-8", []string{"ISO_IR 192"}, "PN", h("57 61 6e 67 5e 58 69 61 6f 44 6f 6e 67 3d e7 8e 8b 5e e5 b0 8f e6 9d b1 3d"), "Wang^XiaoDong=王^小東="},
	{"UTF-8 governs other values", []string{"", "ISO_IR 192"}, "LO", h("c3 a9"), "é"},

	// ISO 2022 single-byte extensions and delimiter handling.
	{"G1 switch reset at PN caret", []string{"ISO 2022 IR 100", "ISO 2022 IR 144"}, "PN",
		cat(h("1b 2d 4c bb ee da"), "^", h("e9")), "Люк^é"},
	{"G1 switch reset at PN equals", []string{"ISO 2022 IR 100", "ISO 2022 IR 126"}, "PN",
		cat(h("1b 2d 46 c4"), "=", h("c4")), "Δ=Ä"},
	{"G1 switch reset at backslash in LO", []string{"ISO 2022 IR 100", "ISO 2022 IR 144"}, "LO",
		cat(h("1b 2d 4c bb"), `\`, h("bb")), `Л\»`},
	{"no reset at caret in LO", []string{"ISO 2022 IR 100", "ISO 2022 IR 144"}, "LO",
		cat(h("1b 2d 4c bb"), "^", h("bb")), "Л^Л"},
	{"no reset at backslash in LT", []string{"ISO 2022 IR 100", "ISO 2022 IR 144"}, "LT",
		cat(h("1b 2d 4c bb"), `\`, h("bb")), `Л\Л`},
	{"reset at TAB in ST", []string{"ISO 2022 IR 100", "ISO 2022 IR 144"}, "ST",
		cat(h("1b 2d 4c bb"), "\t", h("bb")), "Л\t»"},
	{"reset at FF in UT", []string{"ISO 2022 IR 100", "ISO 2022 IR 144"}, "UT",
		cat(h("1b 2d 4c bb"), "\f", h("bb")), "Л\f»"},
	{"Latin-9 and Thai by escape", []string{"ISO 2022 IR 6", "ISO 2022 IR 203", "ISO 2022 IR 166"}, "SH",
		cat(h("1b 2d 62 a4 1b 2d 54 a1")), "€ก"},
	{"escape to every ISO 8859 part", []string{""}, "UC",
		h("1b 2d 41 c0 1b 2d 42 a3 1b 2d 43 a6 1b 2d 44 a3 1b 2d 4c b0 1b 2d 47 c7 1b 2d 46 c1 1b 2d 48 e0 1b 2d 4d fe"),
		"ÀŁĤŖАاΑאş"},
	{"multi-valued SH each value starts in initial set", []string{"", "ISO 2022 IR 149"}, "SH",
		cat(h("1b 24 29 43 b1 e6"), `\`, h("b1 e6")), `길\±æ`},
	{"JIS X 0208 G0: backslash is a trail byte", []string{"", "ISO 2022 IR 87"}, "SH",
		cat(h("1b 24 42 3b 33"), `\`, h("3b 33")), "山椹\ufffd"},
	{"JIS X 0208 G0: caret is a trail byte", []string{"", "ISO 2022 IR 87"}, "PN",
		h("1b 24 42 24 5e 1b 28 42 5e 41"), "ま^A"},

	// JIS X 0201 romaji specifics (PS3.5 H.1.1).
	{"romaji yen and overline in LT", []string{"ISO_IR 13"}, "LT", []byte(`C:\a~`), "C:¥a‾"},
	{"romaji backslash is a delimiter in LO", []string{"ISO_IR 13"}, "LO", []byte(`a\b`), `a\b`},
	{"ESC ( J then ESC ( B", []string{"ISO 2022 IR 6", "ISO 2022 IR 13"}, "LT",
		h("1b 28 4a 5c 1b 28 42 5c"), `¥\`},
	{"katakana in G0", []string{"", "ISO 2022 IR 13"}, "LO", h("1b 28 49 54 60 1b 28 42 41"), "ﾔ\ufffdA"},

	// Non-text VRs ignore the character set.
	{"CS is Latin-1 under UTF-8", []string{"ISO_IR 192"}, "CS", h("c3 a9"), "Ã©"},
	{"AE is Latin-1 under ISO 2022", []string{"", "ISO 2022 IR 87"}, "AE", h("1b 24 42 3b 33"), "\x1b$B;3"},
	{"unknown VR", []string{"ISO_IR 144"}, "", h("bb"), "»"},
	{"lower-case VR", []string{"ISO_IR 144"}, "pn", h("bb"), "Л"},

	// Robustness: malformed input becomes U+FFFD.
	{"lone ESC", []string{"", "ISO 2022 IR 87"}, "PN", h("1b"), "\ufffd"},
	{"truncated ESC $", []string{"", "ISO 2022 IR 87"}, "PN", h("41 42 1b 24"), "AB\ufffd"},
	{"truncated ESC $ )", []string{"", "ISO 2022 IR 149"}, "PN", h("41 1b 24 29"), "A\ufffd"},
	{"ESC broken by CR", []string{"", "ISO 2022 IR 87"}, "LT", h("41 1b 24 0d 42"), "A\ufffd\rB"},
	{"ESC broken by high byte", []string{"", "ISO 2022 IR 149"}, "LT", h("1b 28 e9"), "\ufffdé"},
	{"unknown escape keeps state", []string{"", "ISO 2022 IR 87"}, "PN", h("1b 28 5a 41 42"), "\ufffdAB"},
	{"unknown escape in kanji mode", []string{"", "ISO 2022 IR 87"}, "PN", h("1b 24 42 1b 25 47 3b 33"), "\ufffd山"},
	{"odd byte at end of kanji", []string{"", "ISO 2022 IR 87"}, "PN", h("1b 24 42 3b"), "\ufffd"},
	{"odd byte before ESC", []string{"", "ISO 2022 IR 87"}, "PN", h("1b 24 42 3b 33 45 1b 28 42 78"), "山\ufffdx"},
	{"kanji lead before space", []string{"", "ISO 2022 IR 87"}, "LO", h("1b 24 42 3b 20 3b 33"), "\ufffd 山"},
	{"kanji lead before high byte", []string{"", "ISO 2022 IR 87"}, "LO", h("1b 24 42 3b e9"), "\ufffdé"},
	{"odd byte at end of hangul", []string{"", "ISO 2022 IR 149"}, "PN", h("1b 24 29 43 fb"), "\ufffd"},
	{"hangul lead before ASCII", []string{"", "ISO 2022 IR 149"}, "PN", h("1b 24 29 43 fb 41"), "\ufffdA"},
	{"0xA0 and 0xFF in 94x94 G1", []string{"", "ISO 2022 IR 149"}, "LO", h("1b 24 29 43 a0 ff b1 e6"), "\ufffd\ufffd길"},
	{"C1 byte in 94x94 G1", []string{"", "ISO 2022 IR 58"}, "LO", h("1b 24 29 41 85 d5 c5"), "\u0085张"},
	{"unassigned Latin-3 code", []string{"ISO_IR 109"}, "LO", h("a5"), "\ufffd"},
	{"unassigned Thai code", []string{"ISO_IR 166"}, "LO", h("db ff"), "\ufffd\ufffd"},
	{"katakana G1 unassigned", []string{"ISO_IR 13"}, "LO", h("e0 a0 ff a1"), "\ufffd\ufffd\ufffd｡"},
	{"invalid UTF-8", []string{"ISO_IR 192"}, "LO", h("61 ff 62 e7 8e"), "a\ufffdb\ufffd\ufffd"},
	{"truncated GB18030", []string{"GB18030"}, "LO", h("61 cd"), "a\ufffd"},
	{"escape ignored under UTF-8", []string{"ISO_IR 192"}, "LO", h("1b 24 42 3b 33"), "\x1b$B;3"},
}

func TestDecode(t *testing.T) {
	for _, tc := range decodeCases {
		t.Run(tc.name, func(t *testing.T) {
			var d *Decoder
			if tc.terms != nil {
				var err error
				d, err = New(tc.terms)
				if err != nil {
					t.Fatalf("New(%q): %v", tc.terms, err)
				}
			}
			got, err := d.Decode(tc.raw, tc.vr)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if got != tc.want {
				t.Errorf("Decode(% x, %q)\n got %q\nwant %q", tc.raw, tc.vr, got, tc.want)
			}
		})
	}
}

func TestZeroDecoder(t *testing.T) {
	var d Decoder
	got, err := d.Decode(h("4a e9 1b 24 42 3b 33 1b 28 42"), "PN")
	if err != nil {
		t.Fatal(err)
	}
	// The default repertoire still honours escapes (lenient).
	if want := "Jé山"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestNew(t *testing.T) {
	for _, terms := range [][]string{
		nil,
		{},
		{""},
		{"ISO_IR 100 "},
		{" ISO 2022 IR 100", "ISO 2022 IR 87\x00"},
		{"ISO_IR 13", "ISO 2022 IR 87", "ISO 2022 IR 159"},
		{"GBK"},
	} {
		if _, err := New(terms); err != nil {
			t.Errorf("New(%q): %v", terms, err)
		}
	}
	for _, tc := range []struct {
		terms []string
		bad   string
	}{
		{[]string{"ISO_IR 999"}, "ISO_IR 999"},
		{[]string{"", "ISO 2022 IR 87", "ISO 2022 IR 666"}, "ISO 2022 IR 666"},
		{[]string{"iso_ir 100"}, "iso_ir 100"},
		{[]string{"UTF-8"}, "UTF-8"},
	} {
		_, err := New(tc.terms)
		if !errors.Is(err, ErrUnsupported) {
			t.Errorf("New(%q) = %v, want ErrUnsupported", tc.terms, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.bad) {
			t.Errorf("New(%q) error %q does not name %q", tc.terms, err, tc.bad)
		}
	}
}

func TestSupported(t *testing.T) {
	for _, term := range []string{
		"", "ISO_IR 6", "ISO_IR 100", "ISO_IR 101", "ISO_IR 109", "ISO_IR 110",
		"ISO_IR 144", "ISO_IR 127", "ISO_IR 126", "ISO_IR 138", "ISO_IR 148",
		"ISO_IR 203", "ISO_IR 13", "ISO_IR 166", "ISO_IR 192", "GB18030", "GBK",
		"ISO 2022 IR 6", "ISO 2022 IR 100", "ISO 2022 IR 101", "ISO 2022 IR 109",
		"ISO 2022 IR 110", "ISO 2022 IR 144", "ISO 2022 IR 127", "ISO 2022 IR 126",
		"ISO 2022 IR 138", "ISO 2022 IR 148", "ISO 2022 IR 203", "ISO 2022 IR 13",
		"ISO 2022 IR 166", "ISO 2022 IR 87", "ISO 2022 IR 159", "ISO 2022 IR 149",
		"ISO 2022 IR 58", " ISO_IR 192 ",
	} {
		if !Supported(term) {
			t.Errorf("Supported(%q) = false", term)
		}
	}
	for _, term := range []string{"ISO_IR 87", "ISO 2022 IR 192", "ISO-8859-1", "latin1", "ISO_IR 100\\"} {
		if Supported(term) {
			t.Errorf("Supported(%q) = true", term)
		}
	}
}

// TestThaiTable checks the TIS 620 set against its arithmetic definition:
// 0xA1-0xDA and 0xDF-0xFB map to U+0E01-U+0E5B, the rest of 0xA1-0xFF is
// unassigned.
func TestThaiTable(t *testing.T) {
	for b := 0xa1; b <= 0xff; b++ {
		want := utf8.RuneError
		if (b >= 0xa1 && b <= 0xda) || (b >= 0xdf && b <= 0xfb) {
			want = rune(b) + 0x0e01 - 0xa1
		}
		if got := setThai.decode1(byte(b)); got != want {
			t.Errorf("%s 0x%02X = %U, want %U", setThai.name, b, got, want)
		}
	}
}

// TestKatakanaTable checks JIS X 0201 katakana 0xA1-0xDF -> U+FF61-U+FF9F.
func TestKatakanaTable(t *testing.T) {
	for b := 0xa1; b <= 0xdf; b++ {
		if got, want := setKatakana.decode1(byte(b)), rune(b)+0xff61-0xa1; got != want {
			t.Errorf("0x%02X = %U, want %U", b, got, want)
		}
	}
}

// TestDoubleByteTables spot-checks the 94x94 tables with codes from the
// PS3.5 annexes and their unassigned positions.
func TestDoubleByteTables(t *testing.T) {
	for _, tc := range []struct {
		set    *graphicSet
		c1, c2 byte
		want   rune
	}{
		{setJIS0208, 0x3b, 0x33, '山'},
		{setJIS0208, 0x24, 0x26, 'う'},
		{setJIS0208, 0x22, 0x2f, utf8.RuneError}, // row 2 cell 15 is unassigned
		{setJIS0212, 0x30, 0x21, '\u4e02'},
		{setKSX1001, 0x7b, 0x73, '洪'},
		{setKSX1001, 0x31, 0x66, '길'},
		{setKSX1001, 0x2f, 0x21, utf8.RuneError}, // row 15 is unassigned
		{setGB2312, 0x55, 0x45, '张'},
		{setGB2312, 0x50, 0x21, '小'},
		{setGB2312, 0x2a, 0x21, utf8.RuneError}, // row 10 is unassigned (GBK private use)
	} {
		if got := tc.set.decode2(tc.c1, tc.c2); got != tc.want {
			t.Errorf("%s 0x%02X%02X = %U, want %U", tc.set.name, tc.c1, tc.c2, got, tc.want)
		}
		if got := tc.set.decode2(tc.c1|0x80, tc.c2|0x80); got != tc.want {
			t.Errorf("%s 0x%02X%02X (GR) = %U, want %U", tc.set.name, tc.c1|0x80, tc.c2|0x80, got, tc.want)
		}
	}
	// Out-of-range codes never index outside the table.
	for _, c := range [][2]byte{{0x20, 0x21}, {0x21, 0x7f}, {0x00, 0x00}, {0xff, 0xff}} {
		if got := setJIS0208.decode2(c[0], c[1]); got != utf8.RuneError {
			t.Errorf("decode2(%#x, %#x) = %U, want U+FFFD", c[0], c[1], got)
		}
	}
}

func TestConcurrentDecode(t *testing.T) {
	d, err := New([]string{"", "ISO 2022 IR 87", "ISO 2022 IR 149", "ISO 2022 IR 58", "ISO 2022 IR 159"})
	if err != nil {
		t.Fatal(err)
	}
	raw := h("1b 24 42 3b 33 1b 24 29 43 b1 e6 1b 24 29 41 d5 c5 1b 24 28 44 30 21")
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := d.Decode(raw, "LO")
			if err != nil || got != "山길张\u4e02" {
				t.Errorf("got %q, %v", got, err)
			}
		}()
	}
	wg.Wait()
}

// checkDecode runs one fuzz input and checks the invariants: no error, valid
// UTF-8, at most one rune per input byte, and ASCII-only input without ESC
// decoded unchanged wherever the initial G0 set is ASCII.
func checkDecode(t *testing.T, termList, vr string, raw []byte) {
	t.Helper()
	d, err := New(strings.Split(termList, `\`))
	if err != nil {
		if !errors.Is(err, ErrUnsupported) {
			t.Fatalf("New(%q): error %v does not wrap ErrUnsupported", termList, err)
		}
		d = nil
	}
	got, err := d.Decode(raw, vr)
	if err != nil {
		t.Fatalf("Decode(% x, %q) with %q: %v", raw, vr, termList, err)
	}
	if !utf8.ValidString(got) {
		t.Fatalf("Decode(% x, %q) with %q: invalid UTF-8 %q", raw, vr, termList, got)
	}
	if n := utf8.RuneCountInString(got); n > len(raw) {
		t.Fatalf("Decode(% x, %q) with %q: %d runes from %d bytes", raw, vr, termList, n, len(raw))
	}
	if isPlainASCII(raw) && (d == nil || d.g0 == nil) && got != string(raw) {
		t.Fatalf("Decode(% x, %q) with %q: ASCII changed to %q", raw, vr, termList, got)
	}
}

func FuzzDecode(f *testing.F) {
	for _, tc := range decodeCases {
		f.Add(strings.Join(tc.terms, `\`), tc.vr, tc.raw)
	}
	f.Add(`\ISO 2022 IR 87\ISO 2022 IR 159\ISO 2022 IR 149\ISO 2022 IR 58`, "PN",
		h("1b 24 42 3b 1b 24 28 44 30 1b 24 29 43 fb 1b 24 29 41 d5 1b"))
	f.Add(`ISO 2022 IR 13\ISO 2022 IR 87`, "LT", h("1b 28 4a 5c 7e 1b 29 49 e0 1b 28 49 60"))
	f.Add("GB18030", "UT", h("81 30 81 ff 81 5c 5c 80 fe"))
	f.Add("ISO_IR 192", "UC", h("ed a0 80 f4 90 80 80 c0 af"))
	f.Add("", "PN", h("1b 2d 1b 24 29 1b 24 1b"))
	f.Fuzz(checkDecode)
}

// TestDecodeAllTermsAllBytes decodes every byte pair after every designation
// escape with every supported term, as a deterministic complement to the
// fuzz test.
func TestDecodeAllTermsAllBytes(t *testing.T) {
	var escapes [][]byte
	for k := range designations {
		escapes = append(escapes, append([]byte{esc}, k...))
	}
	for term := range terms {
		for _, vr := range []string{"PN", "LO", "LT"} {
			for _, e := range escapes {
				raw := make([]byte, 0, len(e)+2)
				for b1 := 0; b1 < 256; b1 += 7 {
					for b2 := 0; b2 < 256; b2 += 11 {
						raw = append(append(raw[:0], e...), byte(b1), byte(b2))
						checkDecode(t, term, vr, raw)
					}
				}
			}
		}
	}
}

// caseRaw returns the raw value of the named decodeCases entry.
func caseRaw(name string) []byte {
	for _, tc := range decodeCases {
		if tc.name == name {
			return tc.raw
		}
	}
	panic("no decode case " + name)
}

func BenchmarkDecode(b *testing.B) {
	big := make([]byte, 0, 1<<16)
	for len(big) < 1<<16 {
		big = append(big, h("1b 24 29 43 b1 e6 b5 bf 20 1b 24 42 3b 33 45 44 1b 28 42 0d 0a 41 42 43 e9")...)
	}
	for _, bc := range []struct {
		name  string
		terms []string
		vr    string
		raw   []byte
	}{
		{"AnnexI.2", []string{"", "ISO 2022 IR 149"}, "PN", caseRaw("AnnexI.2/KS X 1001")},
		{"ISO2022-64KiB", []string{"", "ISO 2022 IR 87", "ISO 2022 IR 149"}, "LT", big},
		{"GB18030-64KiB", []string{"GB18030"}, "LT", big},
		{"ASCII", []string{"ISO_IR 100"}, "LO", []byte("DOE^JOHN^^^")},
	} {
		d, err := New(bc.terms)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.raw)))
			for b.Loop() {
				if _, err := d.Decode(bc.raw, bc.vr); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
