package charset

import "unicode/utf8"

const esc = 0x1b

// designation is the effect of one escape sequence: set designated to G0
// (g == 0) or G1 (g == 1).
type designation struct {
	g   uint8
	set *graphicSet
}

// designations maps the bytes after ESC (intermediates and final byte) of the
// recognised designation escape sequences (ISO/IEC 2022, PS3.3 tables C.12-3
// and C.12-4, PS3.5 H.1).
var designations = map[string]designation{
	// 94-character sets to G0 / G1.
	"(B": {0, setASCII},
	"(J": {0, setRomaji},
	"(I": {0, setKatakana},
	")I": {1, setKatakana},

	// 94x94 sets. The short forms ESC $ @, ESC $ A, ESC $ B designate to G0.
	"$@":  {0, setJIS0208}, // JIS C 6226-1978, treated as JIS X 0208
	"$B":  {0, setJIS0208},
	"$A":  {0, setGB2312},
	"$(@": {0, setJIS0208},
	"$(B": {0, setJIS0208},
	"$(D": {0, setJIS0212},
	"$(C": {0, setKSX1001},
	"$(A": {0, setGB2312},
	"$)@": {1, setJIS0208},
	"$)B": {1, setJIS0208},
	"$)D": {1, setJIS0212},
	"$)C": {1, setKSX1001},
	"$)A": {1, setGB2312},

	// 96-character sets to G1.
	"-A": {1, setLatin1},
	"-B": {1, setLatin2},
	"-C": {1, setLatin3},
	"-D": {1, setLatin4},
	"-L": {1, setCyrillic},
	"-G": {1, setArabic},
	"-F": {1, setGreek},
	"-H": {1, setHebrew},
	"-M": {1, setLatin5},
	"-b": {1, setLatin9},
	"-T": {1, setThai},
}

// parseEscape parses the escape sequence at the start of p (p[0] == ESC). It
// returns the number of bytes consumed and whether p holds a recognised
// designation. A truncated or malformed sequence (no final byte 0x30-0x7E
// after the intermediates 0x20-0x2F) consumes only ESC and the
// intermediates, so that the offending byte is decoded normally.
func parseEscape(p []byte) (n int, d designation, ok bool) {
	j := 1
	for j < len(p) && p[j] >= 0x20 && p[j] <= 0x2f {
		j++
	}
	if j == len(p) || p[j] < 0x30 || p[j] > 0x7e {
		return j, designation{}, false
	}
	d, ok = designations[string(p[1:j+1])]
	return j + 1, d, ok
}

// isDelimiter reports whether the G0 byte b is a delimiter of a value of the
// given kind, at which the initial character sets are reinstated.
func isDelimiter(b byte, kind textVR) bool {
	switch kind {
	case vrPN:
		return b == '\\' || b == '^' || b == '='
	case vrMultiValue:
		return b == '\\'
	}
	return false
}

// decode2022 decodes a text value with ISO 2022 code extension (PS3.5
// 6.1.2.5). It also serves the single-byte sets without code extensions,
// which are the same state machine without escapes.
func (d *Decoder) decode2022(raw []byte, kind textVR) string {
	init0, init1 := d.g0, d.g1
	if init0 == nil {
		init0 = setASCII
	}
	// Fast path: plain ASCII in an ASCII G0 needs no work.
	if init0 == setASCII && isPlainASCII(raw) {
		return string(raw)
	}

	g0, g1 := init0, init1
	out := make([]byte, 0, len(raw)+len(raw)/2+4)
	for i := 0; i < len(raw); {
		b := raw[i]
		switch {
		case b == esc:
			n, des, ok := parseEscape(raw[i:])
			i += n
			if !ok {
				out = utf8.AppendRune(out, utf8.RuneError)
				continue
			}
			if des.g == 0 {
				g0 = des.set
			} else {
				g1 = des.set
			}

		case b < 0x20:
			// Any control character other than ESC (CR, LF, FF, TAB, ...)
			// reinstates the initial sets.
			g0, g1 = init0, init1
			out = append(out, b)
			i++

		case b == 0x20 || b == 0x7f:
			// SPACE and DELETE are not part of any 94-character G0 set.
			out = append(out, b)
			i++

		case b < 0x80: // GL: G0
			if g0.kind == kind94x94 {
				if i+1 < len(raw) && raw[i+1] >= 0x21 && raw[i+1] <= 0x7e {
					out = utf8.AppendRune(out, g0.decode2(b, raw[i+1]))
					i += 2
				} else {
					// Lone first byte: the next byte is decoded on its own.
					out = utf8.AppendRune(out, utf8.RuneError)
					i++
				}
				continue
			}
			if g0.delims && isDelimiter(b, kind) {
				g0, g1 = init0, init1
				out = append(out, b)
				i++
				continue
			}
			out = utf8.AppendRune(out, g0.decode1(b))
			i++

		case g1 == nil:
			// No G1 set designated: be lenient and read ISO 8859-1.
			out = utf8.AppendRune(out, rune(b))
			i++

		case b < 0xa0:
			// C1 control area of an 8-bit ISO 2022 code.
			out = utf8.AppendRune(out, rune(b))
			i++

		case g1.kind == kind94x94: // GR: G1, two bytes with the high bit set
			if b != 0xa0 && b != 0xff && i+1 < len(raw) && raw[i+1] >= 0xa1 && raw[i+1] <= 0xfe {
				out = utf8.AppendRune(out, g1.decode2(b, raw[i+1]))
				i += 2
			} else {
				out = utf8.AppendRune(out, utf8.RuneError)
				i++
			}

		case g1.kind == kind94 && (b == 0xa0 || b == 0xff):
			// Positions 0xA0 and 0xFF do not exist in a 94-character set.
			out = utf8.AppendRune(out, utf8.RuneError)
			i++

		default: // GR: one-byte G1 set
			out = utf8.AppendRune(out, g1.decode1(b))
			i++
		}
	}
	return string(out)
}

// isPlainASCII reports whether raw has only bytes 0x00-0x7F and no ESC.
func isPlainASCII(raw []byte) bool {
	for _, b := range raw {
		if b >= 0x80 || b == esc {
			return false
		}
	}
	return true
}
