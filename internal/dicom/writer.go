package dicom

import (
	"bufio"
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
)

// ErrEncode is wrapped by errors of the writer: a data set that cannot be
// expressed in the requested transfer syntax.
var ErrEncode = errors.New("cannot encode")

// WriteDataSet encodes ds in the transfer syntax ts to w. Values are written
// as they are held; binary values whose byte order differs from ts are
// swapped; sequences, items and encapsulated pixel data keep the defined or
// undefined length they were read with. A data set that was read and not
// changed is reproduced byte for byte.
func WriteDataSet(w io.Writer, ds *DataSet, ts TransferSyntax) error {
	var fw *flate.Writer
	var cw *byteCounter
	if ts.Deflated {
		var err error
		cw = &byteCounter{w: w}
		if fw, err = flate.NewWriter(cw, flate.DefaultCompression); err != nil {
			return err
		}
		w = fw
	}
	bw := writerPool.Get().(*bufio.Writer)
	bw.Reset(w)
	defer func() {
		bw.Reset(nil)
		writerPool.Put(bw)
	}()
	enc := &encoder{w: bw, explicit: ts.Explicit, big: ts.BigEndian}
	if err := enc.dataSet(ds); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if fw != nil {
		if err := fw.Close(); err != nil {
			return err
		}
		// PS3.5 A.5: a deflated stream of odd length is padded with one
		// NUL byte; DCMTK rejects odd fragment lengths otherwise.
		if cw.n%2 == 1 {
			_, err := cw.w.Write([]byte{0})
			return err
		}
	}
	return nil
}

type byteCounter struct {
	w io.Writer
	n int64
}

func (c *byteCounter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writerPool recycles the writer's buffers: small encodings (DIMSE
// command sets, meta headers) are frequent, and a fresh 64 KiB buffer each
// made them garbage-collector bound.
var writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 64<<10) }}

// MarshalDataSet returns the encoding of ds in ts.
func MarshalDataSet(ds *DataSet, ts TransferSyntax) ([]byte, error) {
	var buf bytes.Buffer
	if err := WriteDataSet(&buf, ds, ts); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

type encoder struct {
	w        *bufio.Writer
	explicit bool
	big      bool
	hdr      [12]byte
	swap     []byte
}

func (enc *encoder) sub(explicit, big bool) *encoder {
	return &encoder{w: enc.w, explicit: explicit, big: big}
}

func (enc *encoder) dataSet(ds *DataSet) error {
	for i := range ds.Elements {
		if err := enc.element(&ds.Elements[i]); err != nil {
			return err
		}
	}
	return nil
}

func (enc *encoder) itemHeader(tag Tag, length uint32) error {
	o := byteOrder(enc.big)
	o.PutUint16(enc.hdr[0:], tag.Group())
	o.PutUint16(enc.hdr[2:], tag.Element())
	o.PutUint32(enc.hdr[4:], length)
	_, err := enc.w.Write(enc.hdr[:8])
	return err
}

// elementHeader writes the header of e with the given VR and length.
func (enc *encoder) elementHeader(tag Tag, v VR, length uint32) error {
	if !enc.explicit {
		return enc.itemHeader(tag, length)
	}
	o := byteOrder(enc.big)
	o.PutUint16(enc.hdr[0:], tag.Group())
	o.PutUint16(enc.hdr[2:], tag.Element())
	enc.hdr[4], enc.hdr[5] = byte(v>>8), byte(v)
	if v.LongLength() {
		enc.hdr[6], enc.hdr[7] = 0, 0
		o.PutUint32(enc.hdr[8:], length)
		_, err := enc.w.Write(enc.hdr[:12])
		return err
	}
	o.PutUint16(enc.hdr[6:], uint16(length))
	_, err := enc.w.Write(enc.hdr[:8])
	return err
}

// explicitVR is the VR written for e in explicit VR: UN where the VR is
// unknown or where a value is too long for a 16-bit length (PS3.5 6.2.2).
func explicitVR(e *Element, valueLen int64) VR {
	v := e.VR
	if !v.Known() {
		return UN
	}
	if !v.LongLength() && valueLen > 0xFFFF {
		return UN
	}
	return v
}

func (enc *encoder) element(e *Element) error {
	if e.Streamed {
		return fmt.Errorf("dicom: %w: %s was streamed to a sink and is not held", ErrEncode, e.Tag)
	}
	switch {
	case e.IsSequence():
		return enc.sequence(e)
	case e.Fragments != nil:
		v := e.VR
		if v != OB && v != OW {
			v = OB
		}
		if err := enc.elementHeader(e.Tag, v, UndefinedLength); err != nil {
			return err
		}
		for _, f := range e.Fragments {
			if int64(len(f)) >= UndefinedLength {
				return fmt.Errorf("dicom: %w: fragment of %s is too long", ErrEncode, e.Tag)
			}
			if err := enc.itemHeader(TagItem, uint32(len(f))); err != nil {
				return err
			}
			if _, err := enc.w.Write(f); err != nil {
				return err
			}
		}
		return enc.itemHeader(TagSequenceDelimitation, 0)
	}
	n := int64(len(e.Value))
	if n >= UndefinedLength {
		return fmt.Errorf("dicom: %w: value of %s is too long", ErrEncode, e.Tag)
	}
	if err := enc.elementHeader(e.Tag, explicitVR(e, n), uint32(n)); err != nil {
		return err
	}
	_, err := enc.w.Write(enc.ordered(e))
	return err
}

// ordered returns e's value in the encoder's byte order.
func (enc *encoder) ordered(e *Element) []byte {
	unit := e.VR.SwapUnit()
	if e.BigEndian == enc.big || unit == 0 || len(e.Value)%unit != 0 {
		return e.Value
	}
	if cap(enc.swap) < len(e.Value) {
		enc.swap = make([]byte, len(e.Value))
	}
	out := enc.swap[:len(e.Value)]
	for i := 0; i < len(out); i += unit {
		for j := 0; j < unit; j++ {
			out[i+j] = e.Value[i+unit-1-j]
		}
	}
	return out
}

func (enc *encoder) sequence(e *Element) error {
	items := enc
	v := SQ
	if e.VR == UN {
		// A UN sequence is implicit VR little endian whatever the syntax.
		items = enc.sub(false, false)
		v = UN
	}
	length := uint32(UndefinedLength)
	if !e.UndefinedLength {
		n, err := items.sequenceLen(e)
		if err != nil {
			return err
		}
		length = n
	}
	if err := enc.elementHeader(e.Tag, v, length); err != nil {
		return err
	}
	for _, it := range e.Items {
		il := uint32(UndefinedLength)
		if !it.UndefinedLength {
			n, err := items.dataSetLen(it)
			if err != nil {
				return err
			}
			il = n
		}
		if err := items.itemHeader(TagItem, il); err != nil {
			return err
		}
		if err := items.dataSet(it); err != nil {
			return err
		}
		if it.UndefinedLength {
			if err := items.itemHeader(TagItemDelimitation, 0); err != nil {
				return err
			}
		}
	}
	if e.UndefinedLength {
		return items.itemHeader(TagSequenceDelimitation, 0)
	}
	return nil
}

// dataSetLen returns the encoded length of the elements of ds.
func (enc *encoder) dataSetLen(ds *DataSet) (uint32, error) {
	var total int64
	for i := range ds.Elements {
		n, err := enc.elementLen(&ds.Elements[i])
		if err != nil {
			return 0, err
		}
		total += n
	}
	if total >= UndefinedLength {
		return 0, fmt.Errorf("dicom: %w: item longer than 4 GiB", ErrEncode)
	}
	return uint32(total), nil
}

func (enc *encoder) sequenceLen(e *Element) (uint32, error) {
	var total int64
	for _, it := range e.Items {
		total += 8
		if it.UndefinedLength {
			total += 8
		}
		n, err := enc.dataSetLen(it)
		if err != nil {
			return 0, err
		}
		total += int64(n)
	}
	if total >= UndefinedLength {
		return 0, fmt.Errorf("dicom: %w: sequence %s longer than 4 GiB", ErrEncode, e.Tag)
	}
	return uint32(total), nil
}

// elementLen returns the encoded length of e, header included.
func (enc *encoder) elementLen(e *Element) (int64, error) {
	header := func(v VR) int64 {
		if enc.explicit && v.LongLength() {
			return 12
		}
		return 8
	}
	switch {
	case e.Streamed:
		return 0, fmt.Errorf("dicom: %w: %s was streamed to a sink and is not held", ErrEncode, e.Tag)
	case e.IsSequence():
		items := enc
		if e.VR == UN {
			items = enc.sub(false, false)
		}
		n, err := items.sequenceLen(e)
		if err != nil {
			return 0, err
		}
		total := header(SQ) + int64(n)
		if e.UndefinedLength {
			total += 8
		}
		return total, nil
	case e.Fragments != nil:
		total := header(OB) + 8
		for _, f := range e.Fragments {
			total += 8 + int64(len(f))
		}
		if total > math.MaxUint32 {
			return 0, fmt.Errorf("dicom: %w: %s longer than 4 GiB", ErrEncode, e.Tag)
		}
		return total, nil
	}
	n := int64(len(e.Value))
	return header(explicitVR(e, n)) + n, nil
}
