package dicom

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// UndefinedLength is the value length 0xFFFFFFFF, used by sequences, items
// and encapsulated pixel data whose end is marked by a delimiter.
const UndefinedLength = 0xFFFFFFFF

// Element is one data element.
//
// The zero Element is an empty value of unknown VR with tag (0000,0000).
type Element struct {
	Tag Tag
	VR  VR
	// BigEndian records that Value holds binary numbers in big-endian order
	// (the element was read with Explicit VR Big Endian). The writer swaps
	// bytes when it encodes into a syntax of the other byte order.
	BigEndian bool
	// UndefinedLength records that the value was encoded with undefined
	// length (a sequence, an encapsulated Pixel Data value or a UN
	// sequence); the writer keeps that form.
	UndefinedLength bool
	// Streamed records that the value was handed to ReadOptions.ValueSink
	// rather than kept: Value, Items and Fragments are nil and Length holds
	// the number of bytes handed over.
	Streamed bool
	// Length is the number of value bytes handed to a ValueSink (see
	// Streamed); otherwise zero.
	Length int64
	// Value is the value field exactly as encoded, padding included. Nil for
	// sequences and encapsulated pixel data.
	Value []byte
	// Items are the items of a sequence (VR SQ, or VR UN with undefined
	// length, which PS3.5 6.2.2 says is an implicit VR little endian
	// sequence).
	Items []*DataSet
	// Fragments hold encapsulated pixel data: Fragments[0] is the Basic
	// Offset Table (empty when absent), the rest are the fragments, kept as
	// they are and never decompressed.
	Fragments [][]byte
}

// IsSequence reports whether the element holds items rather than a value.
func (e *Element) IsSequence() bool {
	return e.VR == SQ || (e.VR == UN && e.UndefinedLength && e.Fragments == nil)
}

// IsEncapsulated reports whether the element holds pixel data fragments.
func (e *Element) IsEncapsulated() bool { return e.Fragments != nil }

func (e *Element) order() binary.ByteOrder {
	if e.BigEndian {
		return binary.BigEndian
	}
	return binary.LittleEndian
}

// Strings splits a text value into its values ('\' separated, except for
// LT, ST, UT and UR, which hold one value) and trims the padding each VR
// allows (trailing spaces and NULs; leading spaces too except for the text
// VRs where they are significant). No character set is applied: see
// DataSet.Text for that.
func (e *Element) Strings() []string {
	s := string(e.Value)
	if !e.VR.MultiValued() {
		return []string{trimValue(e.VR, s)}
	}
	if s == "" {
		return nil
	}
	parts := strings.Split(s, `\`)
	for i, p := range parts {
		parts[i] = trimValue(e.VR, p)
	}
	return parts
}

// String returns the first value of a text element, trimmed, or "" when it
// has none.
func (e *Element) String() string {
	if !e.VR.MultiValued() {
		return trimValue(e.VR, string(e.Value))
	}
	s := string(e.Value)
	if i := strings.IndexByte(s, '\\'); i >= 0 {
		s = s[:i]
	}
	return trimValue(e.VR, s)
}

func trimValue(v VR, s string) string {
	s = strings.TrimRight(s, " \x00")
	switch v {
	case LT, ST, UT:
		return s
	}
	return strings.TrimLeft(s, " ")
}

// ErrValue is wrapped by the errors of the typed accessors when a value does
// not fit the requested type.
var ErrValue = fmt.Errorf("dicom: value does not fit")

func (e *Element) unitCheck(vrs []VR, size int) error {
	ok := false
	for _, v := range vrs {
		if e.VR == v {
			ok = true
		}
	}
	if !ok {
		return fmt.Errorf("%w: %s has VR %s", ErrValue, e.Tag, e.VR)
	}
	if len(e.Value)%size != 0 {
		return fmt.Errorf("%w: %s length %d is not a multiple of %d", ErrValue, e.Tag, len(e.Value), size)
	}
	return nil
}

// Uint16s decodes a US, OW or (as unsigned) SS value.
func (e *Element) Uint16s() ([]uint16, error) {
	if err := e.unitCheck([]VR{US, OW, SS}, 2); err != nil {
		return nil, err
	}
	o := e.order()
	out := make([]uint16, len(e.Value)/2)
	for i := range out {
		out[i] = o.Uint16(e.Value[2*i:])
	}
	return out, nil
}

// Ints decodes any binary integer VR (US, SS, UL, SL, UV, SV, OW, OL, OV)
// or an IS text value into int64s. UV values above the int64 range are an
// error.
func (e *Element) Ints() ([]int64, error) {
	o := e.order()
	var out []int64
	switch e.VR {
	case IS:
		for _, s := range e.Strings() {
			if s == "" {
				continue
			}
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %q is not an integer string", ErrValue, e.Tag, s)
			}
			out = append(out, n)
		}
		return out, nil
	case US, OW:
		if err := e.unitCheck([]VR{e.VR}, 2); err != nil {
			return nil, err
		}
		for i := 0; i+2 <= len(e.Value); i += 2 {
			out = append(out, int64(o.Uint16(e.Value[i:])))
		}
	case SS:
		if err := e.unitCheck([]VR{SS}, 2); err != nil {
			return nil, err
		}
		for i := 0; i+2 <= len(e.Value); i += 2 {
			out = append(out, int64(int16(o.Uint16(e.Value[i:]))))
		}
	case UL, OL:
		if err := e.unitCheck([]VR{e.VR}, 4); err != nil {
			return nil, err
		}
		for i := 0; i+4 <= len(e.Value); i += 4 {
			out = append(out, int64(o.Uint32(e.Value[i:])))
		}
	case SL:
		if err := e.unitCheck([]VR{SL}, 4); err != nil {
			return nil, err
		}
		for i := 0; i+4 <= len(e.Value); i += 4 {
			out = append(out, int64(int32(o.Uint32(e.Value[i:]))))
		}
	case SV:
		if err := e.unitCheck([]VR{SV}, 8); err != nil {
			return nil, err
		}
		for i := 0; i+8 <= len(e.Value); i += 8 {
			out = append(out, int64(o.Uint64(e.Value[i:])))
		}
	case UV, OV:
		if err := e.unitCheck([]VR{e.VR}, 8); err != nil {
			return nil, err
		}
		for i := 0; i+8 <= len(e.Value); i += 8 {
			u := o.Uint64(e.Value[i:])
			if u > math.MaxInt64 {
				return nil, fmt.Errorf("%w: %s: %d exceeds int64", ErrValue, e.Tag, u)
			}
			out = append(out, int64(u))
		}
	default:
		return nil, fmt.Errorf("%w: %s has VR %s, not an integer VR", ErrValue, e.Tag, e.VR)
	}
	return out, nil
}

// Uint64s decodes a UV or OV value.
func (e *Element) Uint64s() ([]uint64, error) {
	if err := e.unitCheck([]VR{UV, OV}, 8); err != nil {
		return nil, err
	}
	o := e.order()
	out := make([]uint64, len(e.Value)/8)
	for i := range out {
		out[i] = o.Uint64(e.Value[8*i:])
	}
	return out, nil
}

// Floats decodes FL, FD, OF, OD values, or a DS text value.
func (e *Element) Floats() ([]float64, error) {
	o := e.order()
	switch e.VR {
	case DS:
		var out []float64
		for _, s := range e.Strings() {
			if s == "" {
				continue
			}
			f, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %q is not a decimal string", ErrValue, e.Tag, s)
			}
			out = append(out, f)
		}
		return out, nil
	case FL, OF:
		if err := e.unitCheck([]VR{e.VR}, 4); err != nil {
			return nil, err
		}
		out := make([]float64, len(e.Value)/4)
		for i := range out {
			out[i] = float64(math.Float32frombits(o.Uint32(e.Value[4*i:])))
		}
		return out, nil
	case FD, OD:
		if err := e.unitCheck([]VR{e.VR}, 8); err != nil {
			return nil, err
		}
		out := make([]float64, len(e.Value)/8)
		for i := range out {
			out[i] = math.Float64frombits(o.Uint64(e.Value[8*i:]))
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: %s has VR %s, not a floating point VR", ErrValue, e.Tag, e.VR)
}

// Tags decodes an AT value.
func (e *Element) Tags() ([]Tag, error) {
	if err := e.unitCheck([]VR{AT}, 4); err != nil {
		return nil, err
	}
	o := e.order()
	out := make([]Tag, len(e.Value)/4)
	for i := range out {
		out[i] = NewTag(o.Uint16(e.Value[4*i:]), o.Uint16(e.Value[4*i+2:]))
	}
	return out, nil
}

// NewText returns a text element with the values joined by '\' and padded
// to even length with the VR's padding byte.
func NewText(tag Tag, v VR, values ...string) Element {
	s := strings.Join(values, `\`)
	b := make([]byte, len(s), len(s)+1)
	copy(b, s)
	if len(b)%2 == 1 {
		b = append(b, v.PadByte())
	}
	return Element{Tag: tag, VR: v, Value: b}
}

// NewBytes returns an element holding b as its (little-endian) value,
// padded to even length.
func NewBytes(tag Tag, v VR, b []byte) Element {
	if len(b)%2 == 1 {
		b = append(b[:len(b):len(b)], v.PadByte())
	}
	return Element{Tag: tag, VR: v, Value: b}
}

// NewUint16s returns a little-endian US (or OW) element.
func NewUint16s(tag Tag, v VR, values ...uint16) Element {
	b := make([]byte, 2*len(values))
	for i, x := range values {
		binary.LittleEndian.PutUint16(b[2*i:], x)
	}
	return Element{Tag: tag, VR: v, Value: b}
}

// NewUint32s returns a little-endian UL (or OL) element.
func NewUint32s(tag Tag, v VR, values ...uint32) Element {
	b := make([]byte, 4*len(values))
	for i, x := range values {
		binary.LittleEndian.PutUint32(b[4*i:], x)
	}
	return Element{Tag: tag, VR: v, Value: b}
}

// NewSequence returns an SQ element with the given items, encoded with
// undefined length.
func NewSequence(tag Tag, items ...*DataSet) Element {
	if items == nil {
		items = []*DataSet{}
	}
	return Element{Tag: tag, VR: SQ, Items: items, UndefinedLength: true}
}
