package dicom

// DICOM JSON Model (PS3.18 Annex F.2).
//
// MarshalJSON turns a data set into one DICOM JSON object; UnmarshalJSON
// turns such an object back into the binary model (values encoded as in
// Explicit VR Little Endian). Text is UTF-8 in JSON: text values of VRs
// affected by Specific Character Set are decoded with the data set's
// character set on the way out, and written back as UTF-8 (ISO_IR 192) on
// the way in.

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/dicomshield/dicomshield/internal/dicom/charset"
)

// JSONOptions control the DICOM JSON encoding. Nil means defaults.
type JSONOptions struct {
	// BulkDataURI, when set, is called for binary values (OB OD OF OL OV OW
	// UN, UN sequences and encapsulated pixel data) at least BulkDataMin
	// bytes long, and for every streamed element (Element.Streamed); a
	// non-empty return is written as "BulkDataURI" instead of
	// "InlineBinary". path holds the tags from the top-level data set down
	// to e.Tag (item indexes are not part of it). Empty values are never
	// offered.
	BulkDataURI func(path []Tag, e *Element) string
	// BulkDataMin is the minimum value length offered to BulkDataURI: 0
	// means every (non-empty) binary value is offered.
	BulkDataMin int
}

// ErrBulkData is wrapped by the error UnmarshalJSON returns for an
// attribute given by "BulkDataURI", which it cannot fetch, and by the error
// of UnmarshalJSONWith when its resolver fails.
var ErrBulkData = errors.New("dicom: json: bulk data URI not resolved")

// maxJSONDepth bounds sequence nesting in both directions (the reader's
// default bound).
const maxJSONDepth = DefaultMaxDepth

// jsonError locates an error of the JSON codec: path names the element
// ("(0008,1115)[0](0008,1150)"). It unwraps to ErrEncode, ErrMalformed or
// ErrLimit.
type jsonError struct {
	path string
	msg  string
	kind error
}

func (e *jsonError) Error() string {
	if e.path == "" {
		return "dicom: json: " + e.msg
	}
	return "dicom: json: " + e.path + ": " + e.msg
}

func (e *jsonError) Unwrap() error { return e.kind }

// bulkDataError is the error for an unresolved bulk data URI.
type bulkDataError struct {
	tag Tag
	err error // the resolver's error, or nil
}

func (e *bulkDataError) Error() string {
	if e.err != nil {
		return fmt.Sprintf("dicom: json: bulk data URI for %s not resolved: %v", e.tag, e.err)
	}
	return fmt.Sprintf("dicom: json: bulk data URI for %s not resolved", e.tag)
}

func (e *bulkDataError) Unwrap() []error {
	if e.err != nil {
		return []error{ErrBulkData, e.err}
	}
	return []error{ErrBulkData}
}

// isBulkVR reports whether a VR is written as InlineBinary (PS3.18 F.2.7).
func isBulkVR(v VR) bool {
	switch v {
	case OB, OD, OF, OL, OV, OW, UN:
		return true
	}
	return false
}

// bulkURIAllowed reports whether PS3.18 F.2.2 allows "BulkDataURI" for v.
func bulkURIAllowed(v VR) bool {
	switch v {
	case DS, FL, FD, IS, LT, OB, OD, OF, OL, OV, OW, SL, SS, ST, SV, UC, UL, UN, US, UT, UV:
		return true
	}
	return false
}

// ---------------------------------------------------------------------------
// Encoding

// MarshalJSON encodes ds as one DICOM JSON object (PS3.18 F.2): keys are
// the tags as "GGGGEEEE" in upper-case hexadecimal, in ascending order;
// group length elements (gggg,0000) are left out. Text of VRs affected by
// Specific Character Set is decoded to UTF-8 with the data set's (or the
// enclosing data set's) (0008,0005), which is itself kept unchanged.
func MarshalJSON(ds *DataSet, opts *JSONOptions) ([]byte, error) {
	enc := &jsonEncoder{}
	if opts != nil {
		enc.opts = *opts
	}
	if ds == nil {
		ds = &DataSet{}
	}
	if err := enc.dataSet(ds, nil, 0, ""); err != nil {
		return nil, err
	}
	return enc.buf, nil
}

type jsonEncoder struct {
	opts JSONOptions
	buf  []byte
	tags []Tag // path of tags to the current element
}

func (enc *jsonEncoder) fail(path, format string, args ...any) error {
	return &jsonError{path: path, msg: fmt.Sprintf(format, args...), kind: ErrEncode}
}

// dataSetCharset returns the decoder for the text of ds: its own Specific
// Character Set, or inherited.
func dataSetCharset(ds *DataSet, inherited *charset.Decoder, path string) (*charset.Decoder, error) {
	// A linear search: a data set built by hand may be out of order without
	// being marked so, and Get would then miss the element.
	var e *Element
	for i := range ds.Elements {
		if ds.Elements[i].Tag == TagSpecificCharacterSet {
			e = &ds.Elements[i]
			break
		}
	}
	if e == nil {
		return inherited, nil
	}
	if !e.VR.IsText() {
		return nil, &jsonError{path: path + TagSpecificCharacterSet.String(), msg: fmt.Sprintf("Specific Character Set has VR %s", e.VR), kind: ErrEncode}
	}
	dec, err := charset.New(e.Strings())
	if err != nil {
		return nil, &jsonError{path: path + TagSpecificCharacterSet.String(), msg: err.Error(), kind: ErrEncode}
	}
	return dec, nil
}

func (enc *jsonEncoder) dataSet(ds *DataSet, cs *charset.Decoder, depth int, path string) error {
	cs, err := dataSetCharset(ds, cs, path)
	if err != nil {
		return err
	}
	order := make([]int, len(ds.Elements))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		ta, tb := ds.Elements[a].Tag, ds.Elements[b].Tag
		switch {
		case ta < tb:
			return -1
		case ta > tb:
			return 1
		}
		return 0
	})
	enc.buf = append(enc.buf, '{')
	first := true
	for k, i := range order {
		e := &ds.Elements[i]
		epath := path + e.Tag.String()
		if k > 0 && ds.Elements[order[k-1]].Tag == e.Tag {
			return enc.fail(epath, "element appears twice in a data set")
		}
		if e.Tag.Group() == 0xFFFE {
			return enc.fail(epath, "item tag among data elements")
		}
		if e.Tag.Element() == 0 {
			continue // group lengths are not included (PS3.18 F.2.2)
		}
		if !first {
			enc.buf = append(enc.buf, ',')
		}
		first = false
		enc.buf = append(enc.buf, '"')
		enc.buf = appendTagHex(enc.buf, e.Tag)
		enc.buf = append(enc.buf, '"', ':')
		enc.tags = append(enc.tags, e.Tag)
		err := enc.element(e, cs, depth, epath)
		enc.tags = enc.tags[:len(enc.tags)-1]
		if err != nil {
			return err
		}
	}
	enc.buf = append(enc.buf, '}')
	return nil
}

func appendTagHex(b []byte, t Tag) []byte {
	const hx = "0123456789ABCDEF"
	for i := 28; i >= 0; i -= 4 {
		b = append(b, hx[(t>>uint(i))&0xF])
	}
	return b
}

// offer asks the BulkDataURI callback for a URI for e, whose value is n
// bytes long.
func (enc *jsonEncoder) offer(e *Element, n int64, force bool) string {
	if enc.opts.BulkDataURI == nil || n <= 0 && !force {
		return ""
	}
	if !force && n < int64(enc.opts.BulkDataMin) {
		return ""
	}
	return enc.opts.BulkDataURI(slices.Clone(enc.tags), e)
}

func (enc *jsonEncoder) open(v VR) {
	enc.buf = append(enc.buf, `{"vr":"`...)
	enc.buf = append(enc.buf, v.String()...)
	enc.buf = append(enc.buf, '"')
}

func (enc *jsonEncoder) bulk(v VR, uri string) {
	enc.open(v)
	enc.buf = append(enc.buf, `,"BulkDataURI":`...)
	enc.buf = appendJSONString(enc.buf, uri)
	enc.buf = append(enc.buf, '}')
}

// binary writes a bulk value (little endian) as InlineBinary or BulkDataURI.
func (enc *jsonEncoder) binary(e *Element, v VR, data []byte) {
	if uri := enc.offer(e, int64(len(data)), false); uri != "" {
		enc.bulk(v, uri)
		return
	}
	enc.inline(v, data)
}

// inline writes a bulk value as InlineBinary.
func (enc *jsonEncoder) inline(v VR, data []byte) {
	enc.open(v)
	if len(data) > 0 {
		enc.buf = append(enc.buf, `,"InlineBinary":"`...)
		enc.buf = base64.StdEncoding.AppendEncode(enc.buf, data)
		enc.buf = append(enc.buf, '"')
	}
	enc.buf = append(enc.buf, '}')
}

func (enc *jsonEncoder) element(e *Element, cs *charset.Decoder, depth int, path string) error {
	v := e.VR
	if !v.Known() {
		v = UN
	}
	switch {
	case e.Streamed:
		if e.UndefinedLength && (v == OB || v == OW) {
			v = OB // streamed encapsulated pixel data
		}
		if !bulkURIAllowed(v) {
			return enc.fail(path, "value was streamed to a sink and VR %s cannot be given by a bulk data URI", v)
		}
		uri := enc.offer(e, e.Length, true)
		if uri == "" {
			return enc.fail(path, "value was streamed to a sink and is not held, and no bulk data URI was given for it")
		}
		enc.bulk(v, uri)
		return nil
	case e.IsSequence():
		if v == UN {
			// A UN sequence: its value field is the implicit VR little
			// endian encoding of the items.
			data, err := unSequenceBytes(e)
			if err != nil {
				return enc.fail(path, "%v", err)
			}
			enc.binary(e, UN, data)
			return nil
		}
		if depth >= maxJSONDepth {
			return &jsonError{path: path, msg: fmt.Sprintf("sequences nested deeper than %d", maxJSONDepth), kind: ErrLimit}
		}
		enc.open(SQ)
		if len(e.Items) > 0 {
			enc.buf = append(enc.buf, `,"Value":[`...)
			for i, it := range e.Items {
				if i > 0 {
					enc.buf = append(enc.buf, ',')
				}
				if it == nil {
					it = &DataSet{}
				}
				if err := enc.dataSet(it, cs, depth+1, fmt.Sprintf("%s[%d]", path, i)); err != nil {
					return err
				}
			}
			enc.buf = append(enc.buf, ']')
		}
		enc.buf = append(enc.buf, '}')
		return nil
	case e.Fragments != nil:
		if v != OB && v != OW {
			v = OB
		}
		n := int64(8)
		for _, f := range e.Fragments {
			n += 8 + int64(len(f))
		}
		if uri := enc.offer(e, n, false); uri != "" {
			enc.bulk(v, uri)
			return nil
		}
		enc.inline(v, encapsulatedBytes(e.Fragments))
		return nil
	}

	switch {
	case isBulkVR(v):
		enc.binary(e, v, littleEndianValue(e))
		return nil
	case v == SQ:
		// unreachable: IsSequence covers SQ
		return enc.fail(path, "sequence without items")
	case v == PN:
		return enc.personNames(e, cs, path)
	case v == DS || v == IS:
		return enc.numberStrings(e, v, path)
	case v.IsText():
		return enc.texts(e, v, cs, path)
	case v == AT:
		tags, err := e.Tags()
		if err != nil {
			return enc.fail(path, "%v", err)
		}
		enc.open(AT)
		if len(tags) > 0 {
			enc.buf = append(enc.buf, `,"Value":[`...)
			for i, t := range tags {
				if i > 0 {
					enc.buf = append(enc.buf, ',')
				}
				enc.buf = append(enc.buf, '"')
				enc.buf = appendTagHex(enc.buf, t)
				enc.buf = append(enc.buf, '"')
			}
			enc.buf = append(enc.buf, ']')
		}
		enc.buf = append(enc.buf, '}')
		return nil
	}
	return enc.numbers(e, v, path)
}

// littleEndianValue returns e's value in little-endian byte order.
func littleEndianValue(e *Element) []byte {
	unit := e.VR.SwapUnit()
	if !e.BigEndian || unit == 0 || len(e.Value)%unit != 0 {
		return e.Value
	}
	out := make([]byte, len(e.Value))
	for i := 0; i < len(out); i += unit {
		for j := 0; j < unit; j++ {
			out[i+j] = e.Value[i+unit-1-j]
		}
	}
	return out
}

// encapsulatedBytes returns the encoded items of encapsulated pixel data
// (PS3.5 A.4), each (FFFE,E000) item with its fragment, and the sequence
// delimiter, in little endian.
func encapsulatedBytes(frags [][]byte) []byte {
	n := 8
	for _, f := range frags {
		n += 8 + len(f)
	}
	out := make([]byte, 0, n)
	for _, f := range frags {
		out = binary.LittleEndian.AppendUint16(out, 0xFFFE)
		out = binary.LittleEndian.AppendUint16(out, 0xE000)
		out = binary.LittleEndian.AppendUint32(out, uint32(len(f)))
		out = append(out, f...)
	}
	out = binary.LittleEndian.AppendUint16(out, 0xFFFE)
	out = binary.LittleEndian.AppendUint16(out, 0xE0DD)
	out = binary.LittleEndian.AppendUint32(out, 0)
	return out
}

// parseEncapsulated splits data into fragments if it is exactly a sequence
// of items, the first being the basic offset table, ended by a sequence
// delimiter.
func parseEncapsulated(data []byte) ([][]byte, bool) {
	var frags [][]byte
	for pos := 0; pos+8 <= len(data); {
		g := binary.LittleEndian.Uint16(data[pos:])
		el := binary.LittleEndian.Uint16(data[pos+2:])
		n := binary.LittleEndian.Uint32(data[pos+4:])
		pos += 8
		switch NewTag(g, el) {
		case TagItem:
			if n == UndefinedLength || uint64(n) > uint64(len(data)-pos) {
				return nil, false
			}
			frags = append(frags, data[pos:pos+int(n):pos+int(n)])
			pos += int(n)
		case TagSequenceDelimitation:
			return frags, n == 0 && pos == len(data) && len(frags) > 0
		default:
			return nil, false
		}
	}
	return nil, false
}

// unSequenceBytes encodes the items of a UN sequence as its value field:
// implicit VR little endian items and a sequence delimiter.
func unSequenceBytes(e *Element) ([]byte, error) {
	c := *e
	c.UndefinedLength = true
	c.BigEndian = false
	ds := &DataSet{Elements: []Element{c}}
	b, err := MarshalDataSet(ds, ImplicitVRLittleEndian)
	if err != nil {
		return nil, err
	}
	return b[8:], nil // drop the element header
}

// decodeText returns the text of a value: through the character set for
// the VRs it applies to, as ISO 8859-1 otherwise.
func decodeText(e *Element, v VR, cs *charset.Decoder) (string, error) {
	if v.UsesCharset() {
		return cs.Decode(e.Value, v.String())
	}
	if isASCII(e.Value) {
		return string(e.Value), nil
	}
	out := make([]byte, 0, 2*len(e.Value))
	for _, b := range e.Value {
		out = utf8.AppendRune(out, rune(b))
	}
	return string(out), nil
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// textValues splits and trims the decoded text of e into its values.
func textValues(e *Element, v VR, cs *charset.Decoder) ([]string, error) {
	s, err := decodeText(e, v, cs)
	if err != nil {
		return nil, err
	}
	if !v.MultiValued() {
		s = trimValue(v, s)
		if s == "" {
			return nil, nil
		}
		return []string{s}, nil
	}
	if s == "" {
		return nil, nil
	}
	parts := strings.Split(s, `\`)
	for i, p := range parts {
		parts[i] = trimValue(v, p)
	}
	if len(parts) == 1 && parts[0] == "" {
		return nil, nil
	}
	return parts, nil
}

func (enc *jsonEncoder) texts(e *Element, v VR, cs *charset.Decoder, path string) error {
	vals, err := textValues(e, v, cs)
	if err != nil {
		return enc.fail(path, "%v", err)
	}
	enc.open(v)
	if len(vals) > 0 {
		enc.buf = append(enc.buf, `,"Value":[`...)
		for i, s := range vals {
			if i > 0 {
				enc.buf = append(enc.buf, ',')
			}
			if s == "" {
				enc.buf = append(enc.buf, "null"...)
			} else {
				enc.buf = appendJSONString(enc.buf, s)
			}
		}
		enc.buf = append(enc.buf, ']')
	}
	enc.buf = append(enc.buf, '}')
	return nil
}

var pnGroupNames = [3]string{"Alphabetic", "Ideographic", "Phonetic"}

func (enc *jsonEncoder) personNames(e *Element, cs *charset.Decoder, path string) error {
	vals, err := textValues(e, PN, cs)
	if err != nil {
		return enc.fail(path, "%v", err)
	}
	for i, s := range vals {
		if strings.Trim(s, "=") == "" {
			vals[i] = "" // no component group: an empty value
		}
	}
	if len(vals) == 1 && vals[0] == "" {
		vals = nil
	}
	enc.open(PN)
	if len(vals) > 0 {
		enc.buf = append(enc.buf, `,"Value":[`...)
		for i, s := range vals {
			if i > 0 {
				enc.buf = append(enc.buf, ',')
			}
			if s == "" {
				enc.buf = append(enc.buf, "null"...)
				continue
			}
			groups := strings.Split(s, "=")
			if len(groups) > 3 {
				return enc.fail(path, "person name %s has more than three component groups", clip(s))
			}
			enc.buf = append(enc.buf, '{')
			n := 0
			for g, str := range groups {
				if str == "" {
					continue
				}
				if n > 0 {
					enc.buf = append(enc.buf, ',')
				}
				n++
				enc.buf = append(enc.buf, '"')
				enc.buf = append(enc.buf, pnGroupNames[g]...)
				enc.buf = append(enc.buf, '"', ':')
				enc.buf = appendJSONString(enc.buf, str)
			}
			enc.buf = append(enc.buf, '}')
		}
		enc.buf = append(enc.buf, ']')
	}
	enc.buf = append(enc.buf, '}')
	return nil
}

// numberStrings writes DS and IS values as JSON numbers, keeping their text
// where it is a valid JSON number and normalising it otherwise (a leading
// '+', leading zeros, a bare '.').
func (enc *jsonEncoder) numberStrings(e *Element, v VR, path string) error {
	vals, err := textValues(e, v, nil)
	if err != nil {
		return enc.fail(path, "%v", err)
	}
	enc.open(v)
	if len(vals) > 0 {
		enc.buf = append(enc.buf, `,"Value":[`...)
		for i, s := range vals {
			if i > 0 {
				enc.buf = append(enc.buf, ',')
			}
			if s == "" {
				enc.buf = append(enc.buf, "null"...)
				continue
			}
			var num string
			var ok bool
			if v == IS {
				num, ok = jsonInteger(s)
			} else {
				num, ok = jsonDecimal(s)
			}
			if !ok {
				what := "a decimal string"
				if v == IS {
					what = "an integer string"
				}
				return enc.fail(path, "%s value %s is not %s", v, clip(s), what)
			}
			enc.buf = append(enc.buf, num...)
		}
		enc.buf = append(enc.buf, ']')
	}
	enc.buf = append(enc.buf, '}')
	return nil
}

// decimalParts splits a DS value ([+-] digits [. digits] [(e|E) [+-]
// digits], with at least one digit in the mantissa).
func decimalParts(s string) (neg bool, intp, frac, exp string, ok bool) {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	start := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	intp = s[start:i]
	if i < len(s) && s[i] == '.' {
		i++
		start = i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		frac = s[start:i]
	}
	if intp == "" && frac == "" {
		return false, "", "", "", false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		start = i
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		d := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == d {
			return false, "", "", "", false
		}
		exp = s[start:i]
	}
	return neg, intp, frac, exp, i == len(s)
}

// jsonDecimal returns the DS value s as a valid JSON number, unchanged if
// it is one.
func jsonDecimal(s string) (string, bool) {
	neg, intp, frac, exp, ok := decimalParts(s)
	if !ok {
		return "", false
	}
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	intp = strings.TrimLeft(intp, "0")
	if intp == "" {
		intp = "0"
	}
	b.WriteString(intp)
	if frac != "" {
		b.WriteByte('.')
		b.WriteString(frac)
	}
	b.WriteString(exp)
	return b.String(), true
}

// integerParts validates an IS value: [+-] digits.
func integerParts(s string) (neg bool, digits string, ok bool) {
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	if s == "" {
		return false, "", false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false, "", false
		}
	}
	return neg, s, true
}

// jsonInteger returns the IS value s as a valid JSON number.
func jsonInteger(s string) (string, bool) {
	neg, digits, ok := integerParts(s)
	if !ok {
		return "", false
	}
	digits = strings.TrimLeft(digits, "0")
	if digits == "" {
		digits = "0"
	}
	if neg {
		return "-" + digits, true
	}
	return digits, true
}

// numbers writes binary numeric values (FL FD SL SS UL US SV UV).
func (enc *jsonEncoder) numbers(e *Element, v VR, path string) error {
	unit := v.SwapUnit()
	if unit == 0 {
		return enc.fail(path, "VR %s has no JSON encoding", v)
	}
	if len(e.Value)%unit != 0 {
		return enc.fail(path, "value length %d of VR %s is not a multiple of %d", len(e.Value), v, unit)
	}
	o := e.order()
	enc.open(v)
	if len(e.Value) > 0 {
		enc.buf = append(enc.buf, `,"Value":[`...)
		for i := 0; i < len(e.Value); i += unit {
			if i > 0 {
				enc.buf = append(enc.buf, ',')
			}
			b := e.Value[i:]
			switch v {
			case US:
				enc.buf = strconv.AppendUint(enc.buf, uint64(o.Uint16(b)), 10)
			case SS:
				enc.buf = strconv.AppendInt(enc.buf, int64(int16(o.Uint16(b))), 10)
			case UL:
				enc.buf = strconv.AppendUint(enc.buf, uint64(o.Uint32(b)), 10)
			case SL:
				enc.buf = strconv.AppendInt(enc.buf, int64(int32(o.Uint32(b))), 10)
			case UV:
				enc.buf = strconv.AppendUint(enc.buf, o.Uint64(b), 10)
			case SV:
				enc.buf = strconv.AppendInt(enc.buf, int64(o.Uint64(b)), 10)
			case FL:
				f := math.Float32frombits(o.Uint32(b))
				if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
					return enc.fail(path, "FL value %v has no JSON representation", f)
				}
				enc.buf = strconv.AppendFloat(enc.buf, float64(f), 'g', -1, 32)
			case FD:
				f := math.Float64frombits(o.Uint64(b))
				if math.IsNaN(f) || math.IsInf(f, 0) {
					return enc.fail(path, "FD value %v has no JSON representation", f)
				}
				enc.buf = strconv.AppendFloat(enc.buf, f, 'g', -1, 64)
			default:
				return enc.fail(path, "VR %s has no JSON encoding", v)
			}
		}
		enc.buf = append(enc.buf, ']')
	}
	enc.buf = append(enc.buf, '}')
	return nil
}

// appendJSONString appends s as a JSON string; invalid UTF-8 becomes
// U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hx = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20 || c == 0x7F:
				b = append(b, '\\', 'u', '0', '0', hx[c>>4], hx[c&0xF])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u', '2', '0', '2', hx[r&0xF])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// ---------------------------------------------------------------------------
// Decoding

// UnmarshalJSON decodes one DICOM JSON object (PS3.18 F.2) into a data set
// in the binary model: binary values in little endian, text padded to even
// length as its VR requires, sequences of undefined length holding items of
// defined length, encapsulated Pixel Data (an InlineBinary holding items
// and a sequence delimiter) split into Fragments. Text is written as UTF-8:
// if any text of a VR affected by Specific Character Set is not ASCII, the
// (0008,0005) governing it is set to "ISO_IR 192" (added at the top level
// when absent). Group length attributes are dropped.
//
// Decoding is strict: an unknown "vr", a key that is not a tag of eight
// hexadecimal digits, a value of the wrong JSON type, a number that does
// not fit its VR, sequences nested deeper than 64 and a "BulkDataURI" (see
// ErrBulkData and UnmarshalJSONWith) are errors.
func UnmarshalJSON(b []byte) (*DataSet, error) {
	return UnmarshalJSONWith(b, nil)
}

// UnmarshalJSONWith is UnmarshalJSON that fetches the value of attributes
// given by "BulkDataURI" with resolve. The bytes it returns are taken as the
// value field: little-endian binary values, UTF-8 text ('\' separating
// values). For Pixel Data, bytes that are exactly a sequence of items ended
// by a sequence delimiter (as in InlineBinary) become Fragments; anything
// else, a bare compressed stream included, is kept as a native value. The
// returned bytes are used without copying.
func UnmarshalJSONWith(b []byte, resolve func(uri string) ([]byte, error)) (*DataSet, error) {
	root, err := parseJSON(b)
	if err != nil {
		return nil, err
	}
	if root.kind != jObject {
		return nil, &jsonError{msg: "top level is not a JSON object", kind: ErrMalformed}
	}
	d := &jsonDecoder{resolve: resolve}
	ds, err := d.dataSet(root, 0, "")
	if err != nil {
		return nil, err
	}
	need, err := fixCharsets(ds, nil, "")
	if err != nil {
		return nil, err
	}
	if need {
		ds.Set(NewText(TagSpecificCharacterSet, CS, "ISO_IR 192"))
	}
	return ds, nil
}

// jnode is a parsed JSON value.
type jnode struct {
	kind  byte
	str   string   // string value or number text
	keys  []string // object
	vals  []*jnode // object values, or array elements
	boolv bool
}

const (
	jNull byte = iota
	jBool
	jNumber
	jString
	jArray
	jObject
)

func (n *jnode) kindName() string {
	switch n.kind {
	case jNull:
		return "null"
	case jBool:
		return "a boolean"
	case jNumber:
		return "a number"
	case jString:
		return "a string"
	case jArray:
		return "an array"
	}
	return "an object"
}

// maxJSONNesting bounds JSON nesting: three levels per sequence (data set,
// attribute, Value array), plus the PN object.
const maxJSONNesting = 3*(maxJSONDepth+2) + 2

func parseJSON(b []byte) (*jnode, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	n, err := parseNode(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &jsonError{msg: "data after the top-level object", kind: ErrMalformed}
	}
	return n, nil
}

func syntaxErr(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return &jsonError{msg: "invalid JSON: " + err.Error(), kind: ErrMalformed}
}

func parseNode(dec *json.Decoder, depth int) (*jnode, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, syntaxErr(err)
	}
	switch t := tok.(type) {
	case nil:
		return &jnode{kind: jNull}, nil
	case bool:
		return &jnode{kind: jBool, boolv: t}, nil
	case json.Number:
		return &jnode{kind: jNumber, str: string(t)}, nil
	case string:
		return &jnode{kind: jString, str: t}, nil
	case json.Delim:
		if depth >= maxJSONNesting {
			return nil, &jsonError{msg: fmt.Sprintf("JSON nested deeper than %d levels", maxJSONNesting), kind: ErrLimit}
		}
		if t == '[' {
			n := &jnode{kind: jArray}
			for dec.More() {
				v, err := parseNode(dec, depth+1)
				if err != nil {
					return nil, err
				}
				n.vals = append(n.vals, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, syntaxErr(err)
			}
			return n, nil
		}
		if t == '{' {
			n := &jnode{kind: jObject}
			var seen map[string]bool // for objects with many keys
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, syntaxErr(err)
				}
				key, ok := kt.(string)
				if !ok {
					return nil, &jsonError{msg: "invalid JSON: object key is not a string", kind: ErrMalformed}
				}
				dup := false
				if len(n.keys) < 16 {
					dup = slices.Contains(n.keys, key)
				} else {
					if seen == nil {
						seen = make(map[string]bool, 2*len(n.keys))
						for _, k := range n.keys {
							seen[k] = true
						}
					}
					dup = seen[key]
					seen[key] = true
				}
				if dup {
					return nil, &jsonError{msg: fmt.Sprintf("duplicate key %s", clip(key)), kind: ErrMalformed}
				}
				v, err := parseNode(dec, depth+1)
				if err != nil {
					return nil, err
				}
				n.keys = append(n.keys, key)
				n.vals = append(n.vals, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, syntaxErr(err)
			}
			return n, nil
		}
	}
	return nil, &jsonError{msg: fmt.Sprintf("invalid JSON token %v", tok), kind: ErrMalformed}
}

// clip quotes s for an error message, shortened to 64 bytes.
func clip(s string) string {
	const max = 64
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return strconv.Quote(s[:cut]) + "..."
	}
	return strconv.Quote(s)
}

// clipN shortens s (a number) for an error message.
func clipN(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

type jsonDecoder struct {
	resolve func(uri string) ([]byte, error)
}

func (d *jsonDecoder) fail(path, format string, args ...any) error {
	return &jsonError{path: path, msg: fmt.Sprintf(format, args...), kind: ErrMalformed}
}

// parseTagKey parses an attribute key: exactly eight hexadecimal digits.
func parseTagKey(s string) (Tag, bool) {
	if len(s) != 8 {
		return 0, false
	}
	var t uint32
	for i := 0; i < 8; i++ {
		c := s[i]
		var v byte
		switch {
		case c >= '0' && c <= '9':
			v = c - '0'
		case c >= 'A' && c <= 'F':
			v = c - 'A' + 10
		case c >= 'a' && c <= 'f':
			v = c - 'a' + 10
		default:
			return 0, false
		}
		t = t<<4 | uint32(v)
	}
	return Tag(t), true
}

// dataSet decodes one DICOM JSON object.
func (d *jsonDecoder) dataSet(n *jnode, depth int, path string) (*DataSet, error) {
	els := make([]Element, 0, len(n.keys))
	for i, key := range n.keys {
		tag, ok := parseTagKey(key)
		if !ok {
			return nil, d.fail(path, "key %s is not a tag of eight hexadecimal digits", clip(key))
		}
		epath := path + tag.String()
		if tag.Group() == 0xFFFE {
			return nil, d.fail(epath, "item tag used as an attribute")
		}
		e, err := d.element(tag, n.vals[i], depth, epath)
		if err != nil {
			return nil, err
		}
		if tag.Element() == 0 {
			continue // group length: dropped
		}
		els = append(els, e)
	}
	slices.SortStableFunc(els, func(a, b Element) int {
		switch {
		case a.Tag < b.Tag:
			return -1
		case a.Tag > b.Tag:
			return 1
		}
		return 0
	})
	for i := 1; i < len(els); i++ {
		if els[i].Tag == els[i-1].Tag {
			return nil, d.fail(path+els[i].Tag.String(), "attribute appears twice")
		}
	}
	return &DataSet{Elements: els}, nil
}

// fixCharsets checks the Specific Character Set of ds and its items, and
// relabels as ISO_IR 192 each one that governs text (written as UTF-8)
// which it would not decode to the same characters: non-ASCII text, or
// ASCII that it gives another meaning (ISO 2022 escape sequences, JIS X
// 0201 romaji). It reports such text in ds (items included) that ds's own
// (0008,0005) does not govern, for the enclosing data set to handle.
func fixCharsets(ds *DataSet, inherited *charset.Decoder, path string) (bool, error) {
	dec := inherited
	own := ds.Get(TagSpecificCharacterSet)
	var terms []string
	if own != nil {
		cpath := path + TagSpecificCharacterSet.String()
		if own.VR != CS {
			return false, &jsonError{path: cpath, msg: fmt.Sprintf("Specific Character Set has VR %s, not CS", own.VR), kind: ErrMalformed}
		}
		terms = own.Strings()
		var err error
		if dec, err = charset.New(terms); err != nil {
			return false, &jsonError{path: cpath, msg: err.Error(), kind: ErrMalformed}
		}
	}
	need := false
	for i := range ds.Elements {
		e := &ds.Elements[i]
		if e.VR.UsesCharset() && len(e.Value) > 0 && !need {
			s, err := dec.Decode(e.Value, e.VR.String())
			need = err != nil || s != string(e.Value)
		}
		if e.VR == SQ {
			for k, it := range e.Items {
				n, err := fixCharsets(it, dec, fmt.Sprintf("%s%s[%d]", path, e.Tag, k))
				if err != nil {
					return false, err
				}
				need = need || n
			}
		}
	}
	if own == nil {
		return need, nil
	}
	if need && !isUTF8Charset(terms) {
		*own = NewText(TagSpecificCharacterSet, CS, "ISO_IR 192")
	}
	return false, nil
}

// isUTF8Charset reports whether Specific Character Set values select UTF-8
// (charset.New lets the first of ISO_IR 192, GB18030, GBK govern).
func isUTF8Charset(terms []string) bool {
	for _, t := range terms {
		switch strings.TrimSpace(t) {
		case "ISO_IR 192":
			return true
		case "GB18030", "GBK":
			return false
		}
	}
	return false
}

func (d *jsonDecoder) element(tag Tag, n *jnode, depth int, path string) (Element, error) {
	e := Element{Tag: tag}
	if n.kind != jObject {
		return e, d.fail(path, "attribute is %s, not an object", n.kindName())
	}
	var vrNode, value, inline, uri *jnode
	for i, k := range n.keys {
		switch k {
		case "vr":
			vrNode = n.vals[i]
		case "Value":
			value = n.vals[i]
		case "InlineBinary":
			inline = n.vals[i]
		case "BulkDataURI":
			uri = n.vals[i]
		default:
			return e, d.fail(path, "unknown key %s in attribute", clip(k))
		}
	}
	if vrNode == nil {
		return e, d.fail(path, `attribute has no "vr"`)
	}
	if vrNode.kind != jString {
		return e, d.fail(path, `"vr" is %s, not a string`, vrNode.kindName())
	}
	v, ok := ParseVR(vrNode.str)
	if !ok {
		return e, d.fail(path, "unknown VR %s", clip(vrNode.str))
	}
	e.VR = v
	count := 0
	for _, x := range []*jnode{value, inline, uri} {
		if x != nil {
			count++
		}
	}
	if count > 1 {
		return e, d.fail(path, `attribute has more than one of "Value", "InlineBinary" and "BulkDataURI"`)
	}
	switch {
	case uri != nil:
		if uri.kind != jString {
			return e, d.fail(path, `"BulkDataURI" is %s, not a string`, uri.kindName())
		}
		if !bulkURIAllowed(v) {
			return e, d.fail(path, `"BulkDataURI" is not allowed for VR %s`, v)
		}
		if d.resolve == nil {
			return e, &bulkDataError{tag: tag}
		}
		data, err := d.resolve(uri.str)
		if err != nil {
			return e, &bulkDataError{tag: tag, err: err}
		}
		return d.bulkValue(e, data, path)
	case inline != nil:
		if inline.kind != jString {
			return e, d.fail(path, `"InlineBinary" is %s, not a string`, inline.kindName())
		}
		if !isBulkVR(v) {
			return e, d.fail(path, `"InlineBinary" is not allowed for VR %s`, v)
		}
		data, err := base64.StdEncoding.DecodeString(inline.str)
		if err != nil {
			return e, d.fail(path, `"InlineBinary" is not valid base64: %v`, err)
		}
		return d.binaryValue(e, data, path)
	case value == nil:
		if v == SQ {
			e.Items = []*DataSet{}
			e.UndefinedLength = true
		}
		return e, nil
	}
	if value.kind != jArray {
		return e, d.fail(path, `"Value" is %s, not an array`, value.kindName())
	}
	switch {
	case v == SQ:
		if depth+1 > maxJSONDepth {
			return e, &jsonError{path: path, msg: fmt.Sprintf("sequences nested deeper than %d", maxJSONDepth), kind: ErrLimit}
		}
		e.UndefinedLength = true
		e.Items = make([]*DataSet, 0, len(value.vals))
		for i, it := range value.vals {
			ipath := fmt.Sprintf("%s[%d]", path, i)
			if it.kind != jObject {
				return e, d.fail(ipath, "sequence item is %s, not an object", it.kindName())
			}
			ds, err := d.dataSet(it, depth+1, ipath)
			if err != nil {
				return e, err
			}
			e.Items = append(e.Items, ds)
		}
		return e, nil
	case isBulkVR(v):
		return e, d.fail(path, `VR %s takes "InlineBinary" or "BulkDataURI", not "Value"`, v)
	case v == PN:
		return d.personNames(e, value.vals, path)
	case v == AT:
		b := make([]byte, 0, 4*len(value.vals))
		for _, x := range value.vals {
			if x.kind != jString {
				return e, d.fail(path, "AT value is %s, not a string", x.kindName())
			}
			t, ok := parseTagKey(x.str)
			if !ok {
				return e, d.fail(path, "AT value %s is not a tag of eight hexadecimal digits", clip(x.str))
			}
			b = binary.LittleEndian.AppendUint16(b, t.Group())
			b = binary.LittleEndian.AppendUint16(b, t.Element())
		}
		e.Value = b
		return e, nil
	case v == DS || v == IS:
		return d.numberStrings(e, value.vals, path)
	case v.IsText():
		return d.texts(e, value.vals, path)
	}
	var err error
	e.Value, err = d.numbers(v, value.vals, path)
	return e, err
}

// binaryValue makes the value of an OB OD OF OL OV OW UN element from its
// little-endian bytes.
func (d *jsonDecoder) binaryValue(e Element, data []byte, path string) (Element, error) {
	if (e.VR == OB || e.VR == OW) && e.Tag == TagPixelData {
		if frags, ok := parseEncapsulated(data); ok {
			e.Fragments = frags
			e.UndefinedLength = true
			return e, nil
		}
	}
	if unit := e.VR.SwapUnit(); unit > 0 && len(data)%unit != 0 {
		return e, d.fail(path, "value length %d of VR %s is not a multiple of %d", len(data), e.VR, unit)
	}
	if len(data) == 0 {
		return e, nil
	}
	e.Value = NewBytes(e.Tag, e.VR, data).Value
	return e, nil
}

// bulkValue makes an element's value from the bytes of a bulk data URI.
func (d *jsonDecoder) bulkValue(e Element, data []byte, path string) (Element, error) {
	v := e.VR
	switch {
	case isBulkVR(v):
		return d.binaryValue(e, data, path)
	case v.IsText():
		s := string(data)
		if !utf8.ValidString(s) {
			return e, d.fail(path, "bulk data of VR %s is not valid UTF-8", v)
		}
		var parts []string
		if v.MultiValued() {
			if s != "" {
				parts = strings.Split(s, `\`)
			}
		} else {
			parts = []string{s}
		}
		nodes := make([]*jnode, len(parts))
		for i, p := range parts {
			p = trimValue(v, p)
			if p == "" {
				nodes[i] = &jnode{kind: jNull}
			} else {
				nodes[i] = &jnode{kind: jString, str: p}
			}
		}
		if v == DS || v == IS {
			return d.numberStrings(e, nodes, path)
		}
		return d.texts(e, nodes, path)
	}
	// Binary numbers.
	if unit := v.SwapUnit(); unit == 0 || len(data)%unit != 0 {
		return e, d.fail(path, "bulk data length %d of VR %s is not a multiple of %d", len(data), v, unit)
	}
	if len(data) > 0 {
		e.Value = data
	}
	return e, nil
}

// joinText joins values with '\' and pads them to even length.
func joinText(v VR, vals []string) []byte {
	n := len(vals)
	for _, s := range vals {
		n += len(s)
	}
	b := make([]byte, 0, n+1)
	for i, s := range vals {
		if i > 0 {
			b = append(b, '\\')
		}
		b = append(b, s...)
	}
	if len(b)%2 == 1 {
		b = append(b, v.PadByte())
	}
	if len(b) == 0 {
		return nil
	}
	return b
}

// latin1 encodes s for a VR not affected by Specific Character Set: such
// text is decoded as ISO 8859-1, so it is encoded so.
func latin1(s string) (string, bool) {
	if isASCII([]byte(s)) {
		return s, true
	}
	b := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xFF {
			return "", false
		}
		b = append(b, byte(r))
	}
	return string(b), true
}

func (d *jsonDecoder) texts(e Element, vals []*jnode, path string) (Element, error) {
	v := e.VR
	if !v.MultiValued() && len(vals) > 1 {
		return e, d.fail(path, "VR %s holds one value, not %d", v, len(vals))
	}
	out := make([]string, len(vals))
	for i, x := range vals {
		switch x.kind {
		case jNull:
			continue
		case jString:
		default:
			return e, d.fail(path, "%s value is %s, not a string", v, x.kindName())
		}
		s := x.str
		if v.MultiValued() && strings.Contains(s, `\`) {
			return e, d.fail(path, `%s value %s contains the value delimiter '\'`, v, clip(s))
		}
		if !v.UsesCharset() {
			var ok bool
			if s, ok = latin1(s); !ok {
				return e, d.fail(path, "%s value %s has characters outside the default repertoire and ISO 8859-1", v, clip(x.str))
			}
		}
		out[i] = s
	}
	e.Value = joinText(v, out)
	return e, nil
}

func (d *jsonDecoder) personNames(e Element, vals []*jnode, path string) (Element, error) {
	out := make([]string, len(vals))
	for i, x := range vals {
		if x.kind == jNull {
			continue
		}
		if x.kind != jObject {
			return e, d.fail(path, "PN value is %s, not an object", x.kindName())
		}
		var groups [3]string
		for k, key := range x.keys {
			g := slices.Index(pnGroupNames[:], key)
			if g < 0 {
				return e, d.fail(path, "unknown person name component group %s", clip(key))
			}
			c := x.vals[k]
			if c.kind == jNull {
				continue
			}
			if c.kind != jString {
				return e, d.fail(path, "person name group %s is %s, not a string", key, c.kindName())
			}
			if strings.ContainsAny(c.str, `=\`) {
				return e, d.fail(path, `person name group %s %s contains '=' or '\'`, key, clip(c.str))
			}
			groups[g] = c.str
		}
		last := -1
		for g := range groups {
			if groups[g] != "" {
				last = g
			}
		}
		out[i] = strings.Join(groups[:last+1], "=")
	}
	e.Value = joinText(PN, out)
	return e, nil
}

// maxDS and maxIS are the maximum lengths of one DS and one IS value.
const (
	maxDS = 16
	maxIS = 12
)

// fitDecimal returns a DS value for the decimal number s (DS syntax), at
// most 16 characters long: s itself if it fits, else s written shorter (no
// leading zero before the point, no '+' or leading zeros in the exponent),
// else s rounded to as many significant digits as fit.
func fitDecimal(s string) (string, bool) {
	if len(s) <= maxDS {
		return s, true
	}
	if t := shortDecimal(s); len(t) <= maxDS {
		return t, true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return "", false
	}
	for prec := 17; prec > 0; prec-- {
		t := strconv.FormatFloat(f, 'g', prec, 64)
		if len(t) <= maxDS {
			return t, true
		}
		if t = shortDecimal(t); len(t) <= maxDS {
			return t, true
		}
	}
	return "", false
}

// shortDecimal drops the characters of a decimal number that carry no
// information: a leading '+', a zero before the decimal point, a '+' and
// leading zeros in the exponent.
func shortDecimal(s string) string {
	neg, intp, frac, exp, ok := decimalParts(s)
	if !ok {
		return s
	}
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	intp = strings.TrimLeft(intp, "0")
	if intp == "" && frac == "" {
		intp = "0"
	}
	b.WriteString(intp)
	if frac != "" {
		b.WriteByte('.')
		b.WriteString(frac)
	}
	if exp != "" {
		digits := exp[1:]
		sign := ""
		if digits[0] == '+' || digits[0] == '-' {
			if digits[0] == '-' {
				sign = "-"
			}
			digits = digits[1:]
		}
		if digits = strings.TrimLeft(digits, "0"); digits != "" {
			b.WriteByte(exp[0])
			b.WriteString(sign)
			b.WriteString(digits)
		}
	}
	return b.String()
}

func (d *jsonDecoder) numberStrings(e Element, vals []*jnode, path string) (Element, error) {
	v := e.VR
	out := make([]string, len(vals))
	for i, x := range vals {
		var s string
		switch x.kind {
		case jNull:
			continue
		case jNumber:
			s = x.str
		case jString:
			// PS3.18 F.2.3 allows a string to keep the original text.
			s = strings.Trim(x.str, " ")
			if s == "" {
				continue
			}
		default:
			return e, d.fail(path, "%s value is %s, not a number", v, x.kindName())
		}
		if v == IS {
			if _, _, ok := integerParts(s); !ok || len(s) > maxIS {
				return e, d.fail(path, "IS value %s is not an integer string", clip(s))
			}
			if _, err := strconv.ParseInt(s, 10, 32); err != nil {
				return e, d.fail(path, "IS value %s does not fit VR IS (-2^31 to 2^31-1)", clipN(s))
			}
		} else {
			if _, _, _, _, ok := decimalParts(s); !ok {
				return e, d.fail(path, "DS value %s is not a decimal number", clip(s))
			}
			t, ok := fitDecimal(s)
			if !ok {
				return e, d.fail(path, "DS value %s does not fit VR DS", clipN(s))
			}
			s = t
		}
		out[i] = s
	}
	e.Value = joinText(v, out)
	return e, nil
}

// numbers encodes binary numeric values in little endian.
func (d *jsonDecoder) numbers(v VR, vals []*jnode, path string) ([]byte, error) {
	unit := v.SwapUnit()
	if unit == 0 {
		return nil, d.fail(path, "VR %s has no JSON value", v)
	}
	b := make([]byte, 0, unit*len(vals))
	le := binary.LittleEndian
	for _, x := range vals {
		text := x.str
		switch {
		case x.kind == jNumber:
		case x.kind == jString && (v == SV || v == UV):
			// PS3.18 F.2.3 allows strings for 64-bit integers.
		default:
			return nil, d.fail(path, "%s value is %s, not a number", v, x.kindName())
		}
		switch v {
		case FL, FD:
			bits := 64
			if v == FL {
				bits = 32
			}
			f, err := strconv.ParseFloat(text, bits)
			if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
				return nil, d.fail(path, "%s value %s does not fit VR %s", v, clipN(text), v)
			}
			if v == FL {
				b = le.AppendUint32(b, math.Float32bits(float32(f)))
			} else {
				b = le.AppendUint64(b, math.Float64bits(f))
			}
		case US, UL, UV, SS, SL, SV:
			if _, _, ok := integerParts(text); !ok {
				return nil, d.fail(path, "%s value %s is not an integer", v, clipN(text))
			}
			// Both signednesses end as the same bits of the VR's width.
			var u uint64
			var err error
			if v == SS || v == SL || v == SV {
				var n int64
				n, err = strconv.ParseInt(text, 10, 8*unit)
				u = uint64(n)
			} else {
				u, err = strconv.ParseUint(text, 10, 8*unit)
			}
			if err != nil {
				return nil, d.fail(path, "%s value %s does not fit VR %s", v, clipN(text), v)
			}
			switch unit {
			case 2:
				b = le.AppendUint16(b, uint16(u))
			case 4:
				b = le.AppendUint32(b, uint32(u))
			default:
				b = le.AppendUint64(b, u)
			}
		default:
			return nil, d.fail(path, "VR %s has no JSON value", v)
		}
	}
	if len(b) == 0 {
		return nil, nil
	}
	return b, nil
}
