package charset

import (
	"sync"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/encoding/simplifiedchinese"
)

// setKind is the ISO 2022 structure of a graphic character set.
type setKind uint8

const (
	kind94    setKind = iota + 1 // one byte, codes 0x21-0x7E
	kind96                       // one byte, codes 0x20-0x7F (G1 only)
	kind94x94                    // two bytes, each 0x21-0x7E
)

// graphicSet is a coded character set that can be designated to G0 or G1.
type graphicSet struct {
	name   string
	kind   setKind
	delims bool                  // DICOM delimiters are recognised while this set is G0
	single [128]rune             // kind94/kind96: 7-bit code -> rune, 0 = unassigned
	double func() *[94 * 94]rune // kind94x94: lazily built table, 0 = unassigned
}

// decode1 decodes the 7-bit code c of a one-byte set.
func (s *graphicSet) decode1(c byte) rune {
	if r := s.single[c&0x7f]; r != 0 {
		return r
	}
	return utf8.RuneError
}

// decode2 decodes the two 7-bit codes c1 c2 (both 0x21-0x7E after masking the
// high bit) of a two-byte set.
func (s *graphicSet) decode2(c1, c2 byte) rune {
	c1, c2 = c1&0x7f, c2&0x7f
	if c1 < 0x21 || c1 > 0x7e || c2 < 0x21 || c2 > 0x7e {
		return utf8.RuneError
	}
	if r := s.double()[int(c1-0x21)*94+int(c2-0x21)]; r != 0 {
		return r
	}
	return utf8.RuneError
}

var (
	setASCII    = newASCII()
	setRomaji   = newRomaji()
	setKatakana = newKatakana()

	setLatin1   = new96("ISO-IR 100", charmap.ISO8859_1)
	setLatin2   = new96("ISO-IR 101", charmap.ISO8859_2)
	setLatin3   = new96("ISO-IR 109", charmap.ISO8859_3)
	setLatin4   = new96("ISO-IR 110", charmap.ISO8859_4)
	setCyrillic = new96("ISO-IR 144", charmap.ISO8859_5)
	setArabic   = new96("ISO-IR 127", charmap.ISO8859_6)
	setGreek    = new96("ISO-IR 126", charmap.ISO8859_7)
	setHebrew   = new96("ISO-IR 138", charmap.ISO8859_8)
	setLatin5   = new96("ISO-IR 148", charmap.ISO8859_9)
	setLatin9   = new96("ISO-IR 203", charmap.ISO8859_15)
	// TIS 620 is the upper half of Windows-874 (which adds only 0x80-0x9F).
	setThai = new96("ISO-IR 166", charmap.Windows874)

	setJIS0208 = new94x94("ISO-IR 87", japanese.EUCJP, nil)
	setJIS0212 = new94x94("ISO-IR 159", japanese.EUCJP, []byte{0x8f}) // EUC-JP code set 3
	setKSX1001 = new94x94("ISO-IR 149", korean.EUCKR, nil)
	setGB2312  = new94x94("ISO-IR 58", simplifiedchinese.GBK, nil)
)

func newASCII() *graphicSet {
	s := &graphicSet{name: "ISO-IR 6", kind: kind94, delims: true}
	for c := 0x21; c <= 0x7e; c++ {
		s.single[c] = rune(c)
	}
	return s
}

// newRomaji returns JIS X 0201 romaji (ISO-IR 14): ASCII except YEN SIGN at
// 0x5C and OVERLINE at 0x7E (PS3.5 H.1.1).
func newRomaji() *graphicSet {
	s := newASCII()
	s.name = "ISO-IR 14"
	s.single[0x5c] = '\u00a5'
	s.single[0x7e] = '\u203e'
	return s
}

// newKatakana returns JIS X 0201 katakana (ISO-IR 13): 0x21-0x5F map to the
// halfwidth katakana block U+FF61-U+FF9F; 0x60-0x7E are unassigned.
func newKatakana() *graphicSet {
	s := &graphicSet{name: "ISO-IR 13", kind: kind94}
	for c := 0x21; c <= 0x5f; c++ {
		s.single[c] = rune(0xff61 + c - 0x21)
	}
	return s
}

// new96 returns the upper half (0xA0-0xFF) of an 8-bit charmap as a 96-set.
func new96(name string, cm *charmap.Charmap) *graphicSet {
	s := &graphicSet{name: name, kind: kind96}
	for c := 0x20; c <= 0x7f; c++ {
		if r := cm.DecodeByte(byte(c | 0x80)); r != utf8.RuneError {
			s.single[c] = r
		}
	}
	return s
}

// new94x94 returns a two-byte set whose codes are decoded by enc as EUC bytes
// (each code byte with the high bit set), after prefix.
func new94x94(name string, enc encoding.Encoding, prefix []byte) *graphicSet {
	return &graphicSet{
		name:   name,
		kind:   kind94x94,
		double: sync.OnceValue(func() *[94 * 94]rune { return build94x94(enc, prefix) }),
	}
}

func build94x94(enc encoding.Encoding, prefix []byte) *[94 * 94]rune {
	var t [94 * 94]rune
	dec := enc.NewDecoder()
	src := make([]byte, 0, len(prefix)+2)
	var dst [16]byte
	for row := 0; row < 94; row++ {
		for col := 0; col < 94; col++ {
			src = append(append(src[:0], prefix...), byte(0xa1+row), byte(0xa1+col))
			dec.Reset()
			nDst, nSrc, err := dec.Transform(dst[:], src, true)
			if err != nil || nSrc != len(src) {
				continue
			}
			r, size := utf8.DecodeRune(dst[:nDst])
			if size != nDst || r == utf8.RuneError || isPrivateUse(r) {
				continue
			}
			t[row*94+col] = r
		}
	}
	return &t
}

func isPrivateUse(r rune) bool {
	return (r >= 0xe000 && r <= 0xf8ff) || r >= 0xf0000
}
