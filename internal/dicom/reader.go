package dicom

import (
	"compress/flate"
	"encoding/binary"
	"fmt"
	"io"
	"sync"

	"github.com/dicomshield/dicomshield/internal/dicom/dict"
)

// Default limits. Each bounds what a hostile input can make the reader
// allocate or do; each is a field of Limits whose zero value selects it.
const (
	// DefaultMaxValueLength: one value held in memory. Large enough for the
	// pixel data of nearly every real instance; bigger values should be
	// streamed with ReadOptions.ValueSink.
	DefaultMaxValueLength = 1 << 30
	// DefaultMaxDepth: sequence nesting. Real IODs, structured reports
	// included, nest well under 20 levels.
	DefaultMaxDepth = 64
	// DefaultMaxElements: elements, items and fragments in one data set,
	// nested ones included. Real instances hold hundreds to a few thousand.
	DefaultMaxElements = 1 << 20
	// DefaultMaxInflatedSize: the decompressed size of a deflated data set.
	// Deflate is used for non-image objects (reports, waveforms), so 256 MiB
	// is generous, and it stops deflate bombs.
	DefaultMaxInflatedSize = 256 << 20
	// DefaultValueSinkMin: values at least this long go to a ValueSink.
	DefaultValueSinkMin = 64 << 10
)

// Limits bound what the reader accepts. The zero value of each field selects
// the default constant of the same name.
type Limits struct {
	MaxValueLength  int64
	MaxDepth        int
	MaxElements     int
	MaxInflatedSize int64
}

func (l Limits) withDefaults() Limits {
	if l.MaxValueLength <= 0 {
		l.MaxValueLength = DefaultMaxValueLength
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.MaxElements <= 0 {
		l.MaxElements = DefaultMaxElements
	}
	if l.MaxInflatedSize <= 0 {
		l.MaxInflatedSize = DefaultMaxInflatedSize
	}
	return l
}

// ReadOptions control reading. A nil *ReadOptions means all defaults.
type ReadOptions struct {
	Limits Limits
	// StopAt, when non-zero, ends reading of the top-level data set before the
	// first element whose tag is StopAt or greater; nothing of it is read.
	// Header-only reading uses TagPixelData.
	StopAt Tag
	// ValueSink, when set, is asked for each top-level value that is at
	// least ValueSinkMin bytes long or is encapsulated pixel data. If it
	// returns a writer, the value's bytes are copied to it as they arrive
	// and the element is marked Streamed (for encapsulated pixel data the
	// bytes handed over are the encoded items, fragment headers included,
	// without the sequence delimiter). A nil writer keeps the value.
	ValueSink func(tag Tag, vr VR, length int64) io.Writer
	// ValueSinkMin: zero means DefaultValueSinkMin.
	ValueSinkMin int64
}

// Decoder reads one data set from a stream in a known transfer syntax, as
// the network delivers it.
type Decoder struct {
	scratch *[][]Element
	items   []DataSet
	src     *source
	ts      TransferSyntax
	lim     Limits
	opts    ReadOptions
	count   int
	stopped bool
}

// NewDecoder returns a decoder for a data set encoded in ts read from r.
// Deflated syntaxes are inflated on the fly, bounded by MaxInflatedSize.
func NewDecoder(r io.Reader, ts TransferSyntax, opts *ReadOptions) *Decoder {
	d := newDecoder(opts)
	d.ts = ts
	if ts.Deflated {
		r = inflate(r, d.lim.MaxInflatedSize)
	}
	d.src = newStreamSource(r, -1)
	return d
}

func newDecoder(opts *ReadOptions) *Decoder {
	d := &Decoder{}
	if opts != nil {
		d.opts = *opts
	}
	d.lim = d.opts.Limits.withDefaults()
	if d.opts.ValueSinkMin <= 0 {
		d.opts.ValueSinkMin = DefaultValueSinkMin
	}
	return d
}

// Parse decodes a whole data set held in b, encoded in ts. Values of the
// result alias b (nothing is copied, except for deflated input), so b must
// not be modified while the data set is in use.
func Parse(b []byte, ts TransferSyntax, opts *ReadOptions) (*DataSet, error) {
	if ts.Deflated {
		return NewDecoder(bytesReader(b), ts, opts).Decode()
	}
	d := newDecoder(opts)
	d.ts = ts
	d.src = newBytesSource(b)
	return d.Decode()
}

// Decode reads the data set to the end of the input, or up to
// ReadOptions.StopAt.
func (d *Decoder) Decode() (*DataSet, error) {
	ds := &DataSet{}
	err := d.readDataSet(ds, -1, d.ts.Explicit, d.ts.BigEndian, 0, true)
	if d.scratch != nil {
		scratchPool.Put(d.scratch)
		d.scratch = nil
	}
	return ds, err
}

// Stopped reports whether Decode ended at ReadOptions.StopAt rather than at
// the end of the input.
func (d *Decoder) Stopped() bool { return d.stopped }

// Offset returns the number of (inflated) bytes consumed so far.
func (d *Decoder) Offset() int64 { return d.src.offset() }

// Rest returns the input the decoder has not consumed: after a StopAt, the
// element it stopped at and everything after it.
func (d *Decoder) Rest() io.Reader { return d.src.rest() }

func (d *Decoder) errorf(kind error, tag Tag, format string, args ...any) error {
	return &SyntaxError{Offset: d.src.offset(), Tag: tag, Err: kind, Msg: fmt.Sprintf(format, args...)}
}

// readErr turns a source error into a SyntaxError: a short input is
// ErrTruncated; a read fault or a limit from the inflater is passed on.
func (d *Decoder) readErr(err error, tag Tag, what string) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return d.errorf(ErrTruncated, tag, "input ends inside %s", what)
	}
	if se, ok := err.(*SyntaxError); ok {
		return se
	}
	return fmt.Errorf("dicom: reading %s: %w", what, err)
}

func byteOrder(big bool) binary.ByteOrder {
	if big {
		return binary.BigEndian
	}
	return binary.LittleEndian
}

// header reads an element or item header.
func (d *Decoder) header(explicit, big bool) (Tag, VR, uint32, error) {
	s := d.src
	if err := s.fill(8); err != nil {
		return 0, 0, 0, d.readErr(err, 0, "an element header")
	}
	b := s.avail()
	o := byteOrder(big)
	tag := NewTag(o.Uint16(b), o.Uint16(b[2:]))
	if tag.Group() == 0xFFFE || !explicit {
		s.pos += 8
		if tag.Group() == 0xFFFE {
			return tag, 0, o.Uint32(b[4:]), nil
		}
		return tag, implicitVR(tag), o.Uint32(b[4:]), nil
	}
	v := VR(b[4])<<8 | VR(b[5])
	info := v.info()
	if !info.known {
		return tag, v, 0, d.errorf(ErrMalformed, tag, "invalid VR %s in explicit VR data", v)
	}
	if !info.long {
		s.pos += 8
		return tag, v, uint32(o.Uint16(b[6:])), nil
	}
	if err := s.fill(12); err != nil {
		return tag, v, 0, d.readErr(err, tag, "an element header")
	}
	b = s.avail()
	s.pos += 12
	return tag, v, o.Uint32(b[8:]), nil
}

// implicitVR returns the VR the data dictionary gives a tag, as implicit VR
// transfer syntaxes require (PS3.5 A.1): UL for group lengths, LO for
// private creators, UN for anything unknown, OW where the dictionary allows
// OB or OW, and the first VR of an ambiguous "US or SS".
func implicitVR(t Tag) VR {
	if t.Element() == 0 {
		return UL
	}
	if t.IsPrivate() {
		if t.IsPrivateCreator() {
			return LO
		}
		return UN
	}
	e, ok := dict.Lookup(uint32(t))
	if !ok || len(e.VR) != 2 {
		return UN
	}
	if e.AltVR == "OW" {
		return OW
	}
	return vr(e.VR)
}

// checkLength applies the value-length cap and the bytes that remain, both
// in the enclosing item (end) and in the input when its size is known.
func (d *Decoder) checkLength(tag Tag, n uint32, end int64) error {
	if int64(n) > d.lim.MaxValueLength {
		return d.errorf(ErrLimit, tag, "value length %d exceeds the limit of %d bytes", n, d.lim.MaxValueLength)
	}
	off := d.src.offset()
	if end >= 0 && off+int64(n) > end {
		return d.errorf(ErrMalformed, tag, "value length %d overruns the enclosing item by %d bytes", n, off+int64(n)-end)
	}
	if d.src.end >= 0 && off+int64(n) > d.src.end {
		return d.errorf(ErrTruncated, tag, "value length %d exceeds the %d bytes that remain", n, d.src.end-off)
	}
	if d.ts.Deflated && off+int64(n) > d.lim.MaxInflatedSize {
		// Offsets of a deflated data set count inflated bytes: this value
		// cannot arrive within the limit, so refuse it before inflating
		// (and holding) the part of it that would.
		return d.errorf(ErrLimit, tag, "value length %d would inflate the data set beyond %d bytes", n, d.lim.MaxInflatedSize)
	}
	return nil
}

func (d *Decoder) counted(tag Tag) error {
	d.count++
	if d.count > d.lim.MaxElements {
		return d.errorf(ErrLimit, tag, "more than %d elements", d.lim.MaxElements)
	}
	return nil
}

// readDataSet reads elements into ds until end (an absolute offset), or,
// with end < 0, until an item delimiter (items) or the end of the input
// (top level).
func (d *Decoder) readDataSet(ds *DataSet, end int64, explicit, big bool, depth int, top bool) error {
	// Elements are collected in a scratch slice kept per nesting depth and
	// reused across items and reads, then copied once into a slice of the
	// exact size: growing every data set's slice by doubling was most of
	// the reader's time and garbage.
	if d.scratch == nil {
		d.scratch = scratchPool.Get().(*[][]Element)
	}
	for len(*d.scratch) <= depth {
		*d.scratch = append(*d.scratch, nil)
	}
	ds.Elements = (*d.scratch)[depth][:0]
	err := d.readElements(ds, end, explicit, big, depth, top)
	got := ds.Elements
	ds.Elements = nil
	if len(got) > 0 {
		ds.Elements = make([]Element, len(got))
		copy(ds.Elements, got)
	}
	clear(got)
	if cap(got) > maxPooledElements {
		got = nil // do not keep a hostile input's worth of memory pooled
	}
	(*d.scratch)[depth] = got[:0]
	return err
}

// maxPooledElements bounds the scratch a finished read leaves in the pool:
// a few times a large real header, far below what MaxElements admits.
const maxPooledElements = 1 << 14

// scratchPool recycles the per-depth element buffers of finished reads.
var scratchPool = sync.Pool{New: func() any { return new([][]Element) }}

// newItem returns an empty item, allocated in chunks: a sequence of many
// small items would otherwise cost an allocation per item.
func (d *Decoder) newItem() *DataSet {
	if len(d.items) == 0 {
		d.items = make([]DataSet, 16)
	}
	it := &d.items[0]
	d.items = d.items[1:]
	return it
}

func (d *Decoder) readElements(ds *DataSet, end int64, explicit, big bool, depth int, top bool) error {
	s := d.src
	// At the top level the end of the input ends the data set; its size,
	// when known, is not passed down as an item end (end stays -1), so that
	// a value running past it is ErrTruncated (checkLength), not a value
	// overrunning an item (ErrMalformed).
	for {
		if end >= 0 {
			off := s.offset()
			if off == end {
				return nil
			}
			if off > end {
				return d.errorf(ErrMalformed, 0, "element overruns its item")
			}
		} else if top {
			done, err := s.atEnd()
			if err != nil {
				return d.readErr(err, 0, "the data set")
			}
			if done {
				return nil
			}
		}
		if top && d.opts.StopAt != 0 {
			if err := s.fill(4); err != nil {
				return d.readErr(err, 0, "an element header")
			}
			b := s.avail()
			o := byteOrder(big)
			if NewTag(o.Uint16(b), o.Uint16(b[2:])) >= d.opts.StopAt {
				d.stopped = true
				return nil
			}
		}
		tag, v, length, err := d.header(explicit, big)
		if err != nil {
			return err
		}
		if tag.Group() == 0xFFFE {
			if tag == TagItemDelimitation && !top && end < 0 {
				return nil
			}
			return d.errorf(ErrMalformed, tag, "unexpected item tag among data elements")
		}
		if err := d.counted(tag); err != nil {
			return err
		}
		if n := len(ds.Elements); n > 0 && tag <= ds.Elements[n-1].Tag {
			ds.unsorted = true
		}
		e := Element{Tag: tag, VR: v, BigEndian: big}
		switch {
		case length == UndefinedLength:
			e.UndefinedLength = true
			switch v {
			case SQ:
				err = d.readSequence(&e, -1, explicit, big, depth+1)
			case UN:
				// PS3.5 6.2.2: a UN value of undefined length is a sequence
				// in implicit VR little endian.
				e.BigEndian = false
				err = d.readSequence(&e, -1, false, false, depth+1)
			case OB, OW:
				err = d.readFragments(&e, end, top)
			default:
				err = d.errorf(ErrMalformed, tag, "undefined length on VR %s", v)
			}
		case v == SQ:
			if err = d.checkLength(tag, length, end); err == nil {
				err = d.readSequence(&e, s.offset()+int64(length), explicit, big, depth+1)
			}
		default:
			if err = d.checkLength(tag, length, end); err != nil {
				break
			}
			if top && d.opts.ValueSink != nil && int64(length) >= d.opts.ValueSinkMin {
				if w := d.opts.ValueSink(tag, v, int64(length)); w != nil {
					e.Streamed, e.Length = true, int64(length)
					if err = s.copyTo(w, int64(length)); err != nil {
						err = d.readErr(err, tag, "a value")
					}
					break
				}
			}
			if e.Value, err = s.value(int(length)); err != nil {
				err = d.readErr(err, tag, "a value")
			}
		}
		if err != nil {
			return err
		}
		ds.Elements = append(ds.Elements, e)
	}
}

// readSequence reads the items of a sequence up to end, or to a sequence
// delimiter when end < 0.
func (d *Decoder) readSequence(e *Element, end int64, explicit, big bool, depth int) error {
	if depth > d.lim.MaxDepth {
		return d.errorf(ErrLimit, e.Tag, "sequences nested deeper than %d", d.lim.MaxDepth)
	}
	s := d.src
	e.Items = []*DataSet{}
	for {
		if end >= 0 {
			off := s.offset()
			if off == end {
				return nil
			}
			if off > end {
				return d.errorf(ErrMalformed, e.Tag, "item overruns its sequence")
			}
		}
		tag, _, length, err := d.header(false, big)
		if err != nil {
			return err
		}
		if tag == TagSequenceDelimitation {
			if end >= 0 {
				return d.errorf(ErrMalformed, e.Tag, "sequence delimiter in a sequence of defined length")
			}
			return nil
		}
		if tag != TagItem {
			return d.errorf(ErrMalformed, e.Tag, "found %s where a sequence item was expected", tag)
		}
		if err := d.counted(tag); err != nil {
			return err
		}
		item := d.newItem()
		if length == UndefinedLength {
			item.UndefinedLength = true
			err = d.readDataSet(item, -1, explicit, big, depth, false)
		} else if err = d.checkLength(e.Tag, length, end); err == nil {
			err = d.readDataSet(item, s.offset()+int64(length), explicit, big, depth, false)
		}
		if err != nil {
			return err
		}
		e.Items = append(e.Items, item)
	}
}

// readFragments reads encapsulated pixel data (PS3.5 A.4): items holding
// the basic offset table and the fragments, up to a sequence delimiter.
func (d *Decoder) readFragments(e *Element, end int64, top bool) error {
	s := d.src
	var sink io.Writer
	if top && d.opts.ValueSink != nil {
		sink = d.opts.ValueSink(e.Tag, e.VR, -1)
	}
	if sink == nil {
		e.Fragments = [][]byte{}
	}
	var hdr [8]byte
	o := byteOrder(e.BigEndian)
	for {
		tag, _, length, err := d.header(false, e.BigEndian)
		if err != nil {
			return err
		}
		if tag == TagSequenceDelimitation {
			return nil
		}
		if tag != TagItem {
			return d.errorf(ErrMalformed, e.Tag, "found %s where a pixel data fragment was expected", tag)
		}
		if length == UndefinedLength {
			return d.errorf(ErrMalformed, e.Tag, "pixel data fragment of undefined length")
		}
		if err := d.counted(e.Tag); err != nil {
			return err
		}
		if err := d.checkLength(e.Tag, length, end); err != nil {
			return err
		}
		if sink != nil {
			o.PutUint16(hdr[0:], 0xFFFE)
			o.PutUint16(hdr[2:], 0xE000)
			o.PutUint32(hdr[4:], length)
			if _, err := sink.Write(hdr[:]); err != nil {
				return err
			}
			if err := s.copyTo(sink, int64(length)); err != nil {
				return d.readErr(err, e.Tag, "a pixel data fragment")
			}
			e.Streamed = true
			e.Length += 8 + int64(length)
			continue
		}
		v, err := s.value(int(length))
		if err != nil {
			return d.readErr(err, e.Tag, "a pixel data fragment")
		}
		e.Fragments = append(e.Fragments, v)
	}
}

// inflate returns a reader of the raw-deflated stream r that fails with an
// ErrLimit SyntaxError past max bytes.
func inflate(r io.Reader, max int64) io.Reader {
	return &limitedInflater{r: flate.NewReader(r), left: max, max: max}
}

type limitedInflater struct {
	r         io.Reader
	left, max int64
}

func (l *limitedInflater) Read(p []byte) (int, error) {
	if l.left <= 0 {
		// Is there more? One byte tells.
		var one [1]byte
		n, err := l.r.Read(one[:])
		if n == 0 && err != nil {
			return 0, l.wrap(err)
		}
		return 0, &SyntaxError{Offset: l.max, Err: ErrLimit, Msg: fmt.Sprintf("deflated data inflates beyond %d bytes", l.max)}
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, l.wrap(err)
}

// wrap turns a corrupt deflate stream into an ErrMalformed SyntaxError, so
// that it wraps a sentinel like every other error of the reader. End of
// input and read faults pass unchanged.
func (l *limitedInflater) wrap(err error) error {
	if ce, ok := err.(flate.CorruptInputError); ok {
		return &SyntaxError{Offset: l.max - l.left, Err: ErrMalformed, Msg: "deflated data: " + ce.Error()}
	}
	return err
}
