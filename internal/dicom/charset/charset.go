// Package charset decodes DICOM text values to UTF-8 according to the
// Specific Character Set (0008,0005) of the data set (PS3.3 C.12.1.1.2,
// PS3.5 section 6.1).
//
// # Supported Defined Terms
//
// Single-byte without code extensions: ISO_IR 100, 101, 109, 110, 144, 127,
// 126, 138, 148, 203, 13 and 166 (and the empty value / "ISO_IR 6" for the
// default repertoire).
//
// Multi-byte without code extensions: ISO_IR 192 (UTF-8), GB18030 and GBK
// (both decoded with the GB18030 decoder, of which GBK is a subset).
//
// With code extensions (ISO/IEC 2022): ISO 2022 IR 6, 100, 101, 109, 110,
// 144, 127, 126, 138, 148, 203, 13, 166, 87 (JIS X 0208), 159 (JIS X 0212),
// 149 (KS X 1001) and 58 (GB 2312).
//
// # ISO 2022 decoding
//
// The escape-sequence switching of PS3.5 6.1.2.5 is implemented here; the
// mapping of each coded character set to Unicode comes from golang.org/x/text
// (ISO 8859 parts and Windows-874 for the upper half of TIS 620, EUC-JP for
// JIS X 0208 and JIS X 0212, EUC-KR for KS X 1001, GBK for GB 2312).
// JIS X 0201 (ISO-IR 13/14) is mapped directly.
//
// The initial state is G0 = ISO-IR 6 (ASCII), or ISO-IR 14 (JIS X 0201
// romaji) for ISO_IR 13 / ISO 2022 IR 13, and G1 = the set of value 1 of
// Specific Character Set. When value 1 is ISO 2022 IR 149 or ISO 2022 IR 58
// (not strictly allowed, but seen in practice) that set is the initial G1;
// when it is ISO 2022 IR 87 or 159 the initial G0 stays ASCII. While no G1
// set is designated, bytes 0x80-0xFF decode as ISO 8859-1.
//
// The state returns to the initial one at the start of every value and, for
// PN, SH, LO, UC, ST, LT and UT, at every C0 control character other than ESC
// (CR, LF, FF, TAB, ...). While G0 holds ASCII or JIS X 0201 romaji it also
// returns at the value delimiter "\" (all of these VRs but ST, LT and UT) and
// at the PN delimiters "^" and "=". While G0 holds a two-byte set these bytes
// are part of two-byte codes and are not delimiters, as PS3.5 requires the
// encoder to switch back to the single-byte set before a delimiter.
//
// Every recognised designation escape is honoured, whether or not its set is
// listed in Specific Character Set. G0: ESC ( B (ASCII), ESC ( J (JIS X 0201
// romaji), ESC ( I (JIS X 0201 katakana), ESC $ B / ESC $ @ / ESC $ ( B (JIS
// X 0208), ESC $ ( D (JIS X 0212), ESC $ ( C (KS X 1001), ESC $ A / ESC $ ( A
// (GB 2312). G1: ESC ) I (katakana), ESC $ ) C (KS X 1001), ESC $ ) A (GB
// 2312), ESC $ ) B (JIS X 0208), ESC $ ) D (JIS X 0212), and ESC - F for the
// ISO 8859 parts and TIS 620 (F = A B C D L G F H M b T). Two-byte sets in
// G1 are used with the high bit set (EUC style), as PS3.5 Annexes I and K show.
//
// # Malformed input
//
// Decode never fails on malformed input. An unknown, truncated or malformed
// escape sequence becomes one U+FFFD and leaves the state unchanged; the byte
// that broke a malformed escape is decoded normally. A code that is not
// assigned in the designated set, and a lone byte of a two-byte code, each
// become U+FFFD. In the 94x94 sets the user-defined areas, which x/text maps
// to private-use code points, also become U+FFFD. Invalid UTF-8 under
// ISO_IR 192 becomes one U+FFFD per invalid byte; invalid sequences under
// GB18030/GBK become U+FFFD as the x/text decoder reports them.
//
// # Notes on particular sets
//
// JIS X 0201 romaji (the initial G0 of ISO_IR 13) maps 0x5C to YEN SIGN and
// 0x7E to OVERLINE, as PS3.5 H.1.1 states, except that 0x5C is returned as
// "\" where it is a value delimiter (PS3.5 H.1.1 note 3). Byte values
// 0x80-0x9F are C1 control characters in ISO 2022 and decode to U+0080-U+009F
// unless they are part of a valid two-byte code. KS X 1001 is decoded
// strictly: UHC (CP949) extensions become U+FFFD. The JIS X 0208 table is
// x/text's (the WHATWG index), which also maps the NEC and IBM extension
// rows; JIS X 0212 is served by x/text's EUC-JP code set 3.
package charset

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/simplifiedchinese"
)

// ErrUnsupported is wrapped by the error New returns for an unknown or
// unsupported Defined Term.
var ErrUnsupported = errors.New("charset: unsupported specific character set")

// mode selects how a Decoder treats text values.
type mode uint8

const (
	modeISO2022 mode = iota // single-byte sets, with or without code extensions
	modeUTF8                // ISO_IR 192
	modeGB18030             // GB18030, GBK
)

// Decoder decodes text values of one data set. Zero value / nil = default
// repertoire (ISO-IR 6, treated as ASCII; bytes >= 0x80 are decoded as
// ISO-8859-1 rather than failing, since real-world data does that).
//
// A Decoder is immutable and safe for concurrent use.
type Decoder struct {
	mode mode
	g0   *graphicSet // initial G0; nil means ASCII
	g1   *graphicSet // initial G1; nil means none (ISO 8859-1 fallback)
}

// termInfo describes one Defined Term of Specific Character Set.
type termInfo struct {
	mode mode        // modeUTF8 or modeGB18030 for terms without code extensions
	g0   *graphicSet // G0 set invoked when the term is value 1 (nil: ASCII)
	g1   *graphicSet // G1 set invoked when the term is value 1 (nil: none)
}

// terms maps the Defined Terms of PS3.3 tables C.12-2 to C.12-5.
var terms = map[string]termInfo{
	"":              {},
	"ISO_IR 6":      {}, // not a Defined Term, but common for the default
	"ISO 2022 IR 6": {},

	"ISO_IR 100": {g1: setLatin1}, "ISO 2022 IR 100": {g1: setLatin1},
	"ISO_IR 101": {g1: setLatin2}, "ISO 2022 IR 101": {g1: setLatin2},
	"ISO_IR 109": {g1: setLatin3}, "ISO 2022 IR 109": {g1: setLatin3},
	"ISO_IR 110": {g1: setLatin4}, "ISO 2022 IR 110": {g1: setLatin4},
	"ISO_IR 144": {g1: setCyrillic}, "ISO 2022 IR 144": {g1: setCyrillic},
	"ISO_IR 127": {g1: setArabic}, "ISO 2022 IR 127": {g1: setArabic},
	"ISO_IR 126": {g1: setGreek}, "ISO 2022 IR 126": {g1: setGreek},
	"ISO_IR 138": {g1: setHebrew}, "ISO 2022 IR 138": {g1: setHebrew},
	"ISO_IR 148": {g1: setLatin5}, "ISO 2022 IR 148": {g1: setLatin5},
	"ISO_IR 203": {g1: setLatin9}, "ISO 2022 IR 203": {g1: setLatin9},
	"ISO_IR 13": {g0: setRomaji, g1: setKatakana}, "ISO 2022 IR 13": {g0: setRomaji, g1: setKatakana},
	"ISO_IR 166": {g1: setThai}, "ISO 2022 IR 166": {g1: setThai},

	// Multi-byte sets with code extensions: only reachable through escape
	// sequences, except that a G1 set listed as value 1 is invoked initially.
	"ISO 2022 IR 87":  {},
	"ISO 2022 IR 159": {},
	"ISO 2022 IR 149": {g1: setKSX1001},
	"ISO 2022 IR 58":  {g1: setGB2312},

	// Multi-byte without code extensions.
	"ISO_IR 192": {mode: modeUTF8},
	"GB18030":    {mode: modeGB18030},
	"GBK":        {mode: modeGB18030},
}

// normTerm removes the insignificant leading and trailing spaces (and NUL
// padding) of a CS value.
func normTerm(term string) string {
	return strings.Trim(term, " \x00")
}

// Supported reports whether term is a Defined Term of Specific Character Set
// (0008,0005) that New accepts. Leading and trailing spaces are ignored; the
// empty term (default repertoire) is supported.
func Supported(term string) bool {
	_, ok := terms[normTerm(term)]
	return ok
}

// New returns a decoder for the values of Specific Character Set (0008,0005),
// in order (value 1 may be empty meaning the default repertoire). Unknown or
// unsupported terms return an error wrapping ErrUnsupported naming the term.
//
// If any value is ISO_IR 192, GB18030 or GBK (which do not allow code
// extensions), the first such value governs all text and the others are
// ignored. An empty or nil terms means the default repertoire.
func New(terms []string) (*Decoder, error) {
	infos := make([]termInfo, len(terms))
	for i, t := range terms {
		info, ok := lookupTerm(t)
		if !ok {
			return nil, fmt.Errorf("%w: %q (value %d of (0008,0005))", ErrUnsupported, t, i+1)
		}
		infos[i] = info
	}
	d := &Decoder{}
	for _, info := range infos {
		if info.mode != modeISO2022 {
			d.mode = info.mode
			return d, nil
		}
	}
	if len(infos) > 0 {
		d.g0, d.g1 = infos[0].g0, infos[0].g1
	}
	return d, nil
}

func lookupTerm(t string) (termInfo, bool) {
	info, ok := terms[normTerm(t)]
	return info, ok
}

// textVR classifies the VRs whose values the character set applies to.
type textVR uint8

const (
	vrOther      textVR = iota // not affected: ASCII / Latin-1
	vrPN                       // PN: delimiters \ ^ =
	vrMultiValue               // SH, LO, UC: delimiter \
	vrSingle                   // ST, LT, UT: no delimiter
)

func classifyVR(vr string) textVR {
	if len(vr) != 2 {
		return vrOther
	}
	a, b := vr[0]&^0x20, vr[1]&^0x20 // ASCII upper case
	switch string([]byte{a, b}) {
	case "PN":
		return vrPN
	case "SH", "LO", "UC":
		return vrMultiValue
	case "ST", "LT", "UT":
		return vrSingle
	}
	return vrOther
}

// Decode converts a raw value of the given VR (two letters, e.g. "PN", "LO",
// "LT", "ST", "UT", "SH", "UC") to UTF-8. Only PN, SH, LO, UC, ST, LT, UT are
// affected by the character set; other VRs are decoded as ASCII/Latin-1.
// Must never panic on any input; invalid sequences become U+FFFD rather than
// errors unless the input is structurally unusable.
//
// raw is the whole value field (all values of a multi-valued element, with
// their "\" delimiters); padding is not removed. The returned error is
// currently always nil: every malformation is reported in-band as U+FFFD.
func (d *Decoder) Decode(raw []byte, vr string) (string, error) {
	kind := classifyVR(vr)
	if kind == vrOther {
		return decodeLatin1(raw), nil
	}
	if d == nil {
		d = &Decoder{}
	}
	switch d.mode {
	case modeUTF8:
		return decodeUTF8(raw), nil
	case modeGB18030:
		if isASCII(raw) {
			return string(raw), nil
		}
		out, err := simplifiedchinese.GB18030.NewDecoder().Bytes(raw)
		if err != nil {
			return "", fmt.Errorf("charset: GB18030 decoding: %w", err)
		}
		return string(out), nil
	}
	return d.decode2022(raw, kind), nil
}

func isASCII(raw []byte) bool {
	for _, b := range raw {
		if b >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// decodeLatin1 maps every byte to the code point of the same value.
func decodeLatin1(raw []byte) string {
	if isASCII(raw) {
		return string(raw)
	}
	out := make([]byte, 0, len(raw)*2)
	for _, b := range raw {
		out = utf8.AppendRune(out, rune(b))
	}
	return string(out)
}

// decodeUTF8 returns raw with every byte that does not start a valid UTF-8
// sequence replaced by U+FFFD.
func decodeUTF8(raw []byte) string {
	if utf8.Valid(raw) {
		return string(raw)
	}
	out := make([]byte, 0, len(raw)+8)
	for i := 0; i < len(raw); {
		r, size := utf8.DecodeRune(raw[i:])
		out = utf8.AppendRune(out, r) // RuneError for an invalid byte
		i += size
	}
	return string(out)
}
