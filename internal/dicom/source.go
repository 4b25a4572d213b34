package dicom

import (
	"errors"
	"io"
	"sync"
)

// Buffer and allocation sizes of the reader.
const (
	// streamBufferSize is the read-ahead buffer for io.Reader input: large
	// enough that a typical header arrives in one read, small enough to be
	// irrelevant per association.
	streamBufferSize = 64 << 10
	// slabSize is the chunk that small values are copied into, so that a
	// data set of thousands of short elements costs a handful of
	// allocations rather than one per element.
	slabSize = 32 << 10
	// slabMaxValue is the largest value served from a slab; larger values get
	// their own allocation.
	slabMaxValue = 2 << 10
	// growStep bounds the first allocation for a large value read from a
	// stream. The buffer then grows as bytes actually arrive, so a peer that
	// declares 4 GiB and sends 100 bytes costs at most this much.
	growStep = 1 << 20
)

// source is the reader's input: either a byte slice held whole (values then
// alias it and nothing is copied) or an io.Reader read ahead through buf.
type source struct {
	buf   []byte
	pos   int
	rd    io.Reader // nil when buf is the whole input
	base  int64     // offset of buf[0] in the input
	end   int64     // size of the input when known, else -1
	err   error     // sticky error of rd
	empty int       // consecutive reads that returned nothing
	slab  []byte
	// slabNext is the size of the last slab allocated.
	slabNext int
}

func newBytesSource(b []byte) *source {
	return &source{buf: b, end: int64(len(b))}
}

func newStreamSource(r io.Reader, size int64) *source {
	return &source{buf: make([]byte, 0, streamBufferSize), rd: r, end: size}
}

// bufPool recycles read-ahead buffers of sources whose lifetime the
// package controls (ReadFile): no value ever aliases them.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, streamBufferSize); return &b }}

func newPooledSource(r io.Reader, size int64) *source {
	b := bufPool.Get().(*[]byte)
	return &source{buf: (*b)[:0], rd: r, end: size}
}

// release returns a pooled buffer; the source must not be used after.
func (s *source) release() {
	if cap(s.buf) == streamBufferSize {
		b := s.buf[:0]
		bufPool.Put(&b)
	}
	s.buf = nil
}

func (s *source) offset() int64 { return s.base + int64(s.pos) }

// avail returns the bytes buffered and not consumed.
func (s *source) avail() []byte { return s.buf[s.pos:] }

// fill makes at least n bytes available in avail(). It returns io.EOF when
// the input ended with no byte available, io.ErrUnexpectedEOF when it ended
// with fewer than n, or the underlying read error.
func (s *source) fill(n int) error {
	if len(s.buf)-s.pos >= n {
		return nil
	}
	if s.rd == nil {
		if len(s.buf) == s.pos {
			return io.EOF
		}
		return io.ErrUnexpectedEOF
	}
	if s.pos > 0 {
		m := copy(s.buf[:cap(s.buf)], s.buf[s.pos:])
		s.base += int64(s.pos)
		s.buf = s.buf[:m]
		s.pos = 0
	}
	if cap(s.buf) < n {
		nb := make([]byte, len(s.buf), n)
		copy(nb, s.buf)
		s.buf = nb
	}
	for len(s.buf) < n {
		if s.err != nil {
			if errors.Is(s.err, io.EOF) {
				if len(s.buf) == 0 {
					return io.EOF
				}
				return io.ErrUnexpectedEOF
			}
			return s.err
		}
		s.buf = s.buf[:len(s.buf)+s.readOnce(s.buf[len(s.buf):cap(s.buf)])]
	}
	return nil
}

// readOnce makes one Read into p and keeps its error in s.err. A reader
// that returns (0, nil) forever would spin: it gets as many chances as
// bufio gives, then it is a fault.
func (s *source) readOnce(p []byte) int {
	m, err := s.rd.Read(p)
	switch {
	case err != nil:
		s.err = err
	case m == 0:
		if s.empty++; s.empty >= 100 {
			s.err = io.ErrNoProgress
		}
	default:
		s.empty = 0
	}
	return m
}

// readDirect reads into p, bypassing buf, until p is full or the reader
// fails (the error is kept in s.err, as fill does). It returns the number of
// bytes read.
func (s *source) readDirect(p []byte) int {
	n := 0
	for n < len(p) && s.err == nil {
		n += s.readOnce(p[n:])
	}
	return n
}

// atEnd reports whether the input has no more bytes. A read error other than
// end of input is returned.
func (s *source) atEnd() (bool, error) {
	switch err := s.fill(1); err {
	case nil:
		return false, nil
	case io.EOF:
		return true, nil
	default:
		return false, err
	}
}

// value returns the next n bytes as a value. With a byte-slice source the
// result aliases the input; with a stream it is copied into a slab (small
// values) or into a buffer that grows only as the bytes arrive (large ones).
func (s *source) value(n int) ([]byte, error) {
	if s.rd == nil {
		if len(s.buf)-s.pos < n {
			return nil, io.ErrUnexpectedEOF
		}
		v := s.buf[s.pos : s.pos+n : s.pos+n]
		s.pos += n
		return v, nil
	}
	if n <= slabMaxValue {
		if err := s.fill(n); err != nil {
			return nil, noEOF(err)
		}
		if len(s.slab) < n {
			// Start small (a header-only read of a typical file needs a
			// few KiB) and double up to slabSize.
			s.slabNext = min(max(2*s.slabNext, 4<<10), slabSize)
			s.slab = make([]byte, s.slabNext)
		}
		v := s.slab[:n:n]
		s.slab = s.slab[n:]
		copy(v, s.buf[s.pos:])
		s.pos += n
		return v, nil
	}
	// The input size is known and checkLength has seen that n bytes
	// remain: allocate once and read straight into the value. Otherwise
	// grow as bytes arrive, doubling, so a lying length costs at most
	// twice what was sent.
	capacity := n
	if s.end < 0 && capacity > growStep {
		capacity = growStep
	}
	v := make([]byte, 0, capacity)
	for len(v) < n {
		if len(s.buf)-s.pos > 0 {
			take := min(len(s.buf)-s.pos, n-len(v))
			v = append(v, s.buf[s.pos:s.pos+take]...)
			s.pos += take
			continue
		}
		want := n - len(v)
		if want < streamBufferSize {
			if err := s.fill(want); err != nil && len(s.buf)-s.pos == 0 {
				return nil, noEOF(err)
			}
			continue
		}
		if s.err != nil {
			return nil, noEOF(s.err)
		}
		// Read large remainders straight into the value, bypassing buf.
		if cap(v) == len(v) {
			grown := make([]byte, len(v), min(n, 2*cap(v)))
			copy(grown, v)
			v = grown
		}
		want = min(want, cap(v)-len(v))
		// Not io.ReadFull: it spins forever on a reader that returns
		// (0, nil). readDirect counts such reads as fill does.
		m := s.readDirect(v[len(v) : len(v)+want])
		v = v[:len(v)+m]
		s.base += int64(m)
	}
	return v, nil
}

// copyTo hands the next n bytes to w without holding them.
func (s *source) copyTo(w io.Writer, n int64) error {
	for n > 0 {
		if err := s.fill(1); err != nil {
			return noEOF(err)
		}
		chunk := s.avail()
		if int64(len(chunk)) > n {
			chunk = chunk[:n]
		}
		if _, err := w.Write(chunk); err != nil {
			return err
		}
		s.pos += len(chunk)
		n -= int64(len(chunk))
	}
	return nil
}

// rest returns the input that was not consumed.
func (s *source) rest() io.Reader {
	buffered := append([]byte(nil), s.avail()...)
	if s.rd == nil {
		return bytesReader(buffered)
	}
	if s.err != nil {
		if errors.Is(s.err, io.EOF) {
			return bytesReader(buffered)
		}
		return io.MultiReader(bytesReader(buffered), errReader{s.err})
	}
	return io.MultiReader(bytesReader(buffered), s.rd)
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

type sliceReader struct{ b []byte }

func bytesReader(b []byte) io.Reader { return &sliceReader{b} }

func (r *sliceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}
