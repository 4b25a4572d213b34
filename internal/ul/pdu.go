// Package ul implements the DICOM upper layer protocol (PS3.8): the PDUs,
// their items, reading and writing them with bounded lengths, and the
// association state machine. It knows nothing of policy: who may associate
// is decided by the caller.
//
// Every PDU type has Append (encode, append style) and a decoder that checks
// each declared length against the bytes that remain before using it.
// Malformed input yields a *ProtocolError that says which A-ABORT reason it
// calls for; no input makes the package panic.
package ul

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// PDU types (PS3.8 table 9-11 and following).
const (
	TypeAssociateRQ byte = 0x01
	TypeAssociateAC byte = 0x02
	TypeAssociateRJ byte = 0x03
	TypePDataTF     byte = 0x04
	TypeReleaseRQ   byte = 0x05
	TypeReleaseRP   byte = 0x06
	TypeAbort       byte = 0x07
)

// PDU is one protocol data unit.
type PDU interface {
	// Type returns the PDU type byte.
	Type() byte
	// Append appends the encoded PDU, header included, to b.
	Append(b []byte) []byte
}

// Limits of the reader. Each zero field selects the default constant.
const (
	// DefaultMaxPDULength bounds a received PDU when the association has not
	// set a smaller one: 16 MiB is far above what any peer proposes for
	// P-DATA (DCMTK defaults to 16 KiB, most peers to at most 1 MiB) and
	// still small enough to refuse a 4 GiB announcement at once.
	DefaultMaxPDULength = 16 << 20
	// DefaultMaxAssociatePDULength bounds A-ASSOCIATE-RQ/AC: the largest
	// real ones list a few hundred presentation contexts.
	DefaultMaxAssociatePDULength = 1 << 20
	// DefaultMaxPresentationContexts: PS3.8 numbers contexts with odd
	// bytes 1..255, so at most 128 can exist.
	DefaultMaxPresentationContexts = 128
)

// ErrProtocol is wrapped by every decoding error.
var ErrProtocol = errors.New("ul: protocol error")

// Abort reasons of a service provider (PS3.8 table 9-26).
const (
	AbortReasonNotSpecified          byte = 0
	AbortReasonUnrecognizedPDU       byte = 1
	AbortReasonUnexpectedPDU         byte = 2
	AbortReasonUnrecognizedParameter byte = 4
	AbortReasonUnexpectedParameter   byte = 5
	AbortReasonInvalidParameter      byte = 6
)

// ProtocolError is a malformed or unexpected PDU. Reason is the A-ABORT
// reason the error calls for.
type ProtocolError struct {
	Reason byte
	Msg    string
}

func (e *ProtocolError) Error() string { return "ul: protocol error: " + e.Msg }

// Unwrap lets errors.Is(err, ErrProtocol) match.
func (e *ProtocolError) Unwrap() error { return ErrProtocol }

func protoErr(reason byte, format string, args ...any) error {
	return &ProtocolError{Reason: reason, Msg: fmt.Sprintf(format, args...)}
}

// ReadPDU reads one PDU from r. maxLen bounds the PDU body (zero:
// DefaultMaxPDULength); association PDUs are further bounded by
// DefaultMaxAssociatePDULength. The length is checked before anything is
// allocated, and the buffer then grows with the bytes that arrive. The
// returned P-DATA-TF PDVs alias a buffer owned by the caller-provided
// scratch, which ReadPDU may reuse: pass the previous PDU's scratch back
// to avoid allocation, or nil.
func ReadPDU(r io.Reader, maxLen uint32, scratch []byte) (PDU, []byte, error) {
	if maxLen == 0 {
		maxLen = DefaultMaxPDULength
	}
	var hdr [6]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, scratch, err
	}
	typ, n := hdr[0], binary.BigEndian.Uint32(hdr[2:])
	limit := maxLen
	switch typ {
	case TypeAssociateRQ, TypeAssociateAC:
		limit = DefaultMaxAssociatePDULength
	case TypeAssociateRJ, TypeReleaseRQ, TypeReleaseRP, TypeAbort:
		limit = 4
	case TypePDataTF:
	default:
		return nil, scratch, protoErr(AbortReasonUnrecognizedPDU, "unknown PDU type 0x%02x", typ)
	}
	if n > limit {
		return nil, scratch, protoErr(AbortReasonInvalidParameter, "PDU type 0x%02x declares %d bytes, more than the %d allowed", typ, n, limit)
	}
	body, scratch, err := readBody(r, scratch, int(n))
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, scratch, err
	}
	p, err := DecodePDU(typ, body)
	return p, scratch, err
}

// bodyChunk is how far a PDU buffer is allocated ahead of the bytes that
// have arrived: memory follows what a peer sends, not the length it
// announces, so that a peer announcing a large PDU and then stalling holds
// no more than this.
const bodyChunk = 4 << 10

// readBody reads an n-byte PDU body into scratch when it is large enough,
// else into a buffer that doubles as the bytes arrive. It returns the
// body and the buffer to reuse.
func readBody(r io.Reader, scratch []byte, n int) ([]byte, []byte, error) {
	if cap(scratch) >= n {
		body := scratch[:n]
		_, err := io.ReadFull(r, body)
		return body, scratch, err
	}
	buf := make([]byte, 0, min(n, bodyChunk))
	for {
		m, err := io.ReadFull(r, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err != nil {
			return nil, buf, err
		}
		if len(buf) == n {
			return buf, buf, nil
		}
		grown := make([]byte, len(buf), min(n, 2*cap(buf)))
		copy(grown, buf)
		buf = grown
	}
}

// DecodePDU decodes the body of a PDU of the given type. PDVs of a
// P-DATA-TF alias body.
func DecodePDU(typ byte, body []byte) (PDU, error) {
	switch typ {
	case TypeAssociateRQ:
		return decodeAssociateRQ(body)
	case TypeAssociateAC:
		return decodeAssociateAC(body)
	case TypeAssociateRJ:
		return decodeAssociateRJ(body)
	case TypePDataTF:
		return decodePDataTF(body)
	case TypeReleaseRQ:
		if len(body) != 4 {
			return nil, protoErr(AbortReasonInvalidParameter, "A-RELEASE-RQ of %d bytes", len(body))
		}
		return &ReleaseRQ{}, nil
	case TypeReleaseRP:
		if len(body) != 4 {
			return nil, protoErr(AbortReasonInvalidParameter, "A-RELEASE-RP of %d bytes", len(body))
		}
		return &ReleaseRP{}, nil
	case TypeAbort:
		return decodeAbort(body)
	}
	return nil, protoErr(AbortReasonUnrecognizedPDU, "unknown PDU type 0x%02x", typ)
}

// appendHeader appends a PDU header with a placeholder length and returns
// the offset where the body starts; finish sets the length.
func appendHeader(b []byte, typ byte) ([]byte, int) {
	b = append(b, typ, 0, 0, 0, 0, 0)
	return b, len(b)
}

func finish(b []byte, start int) []byte {
	binary.BigEndian.PutUint32(b[start-4:], uint32(len(b)-start))
	return b
}

// WritePDU encodes p and writes it to w in one Write.
func WritePDU(w io.Writer, p PDU) error {
	_, err := w.Write(p.Append(nil))
	return err
}

// reader is a bounds-checked cursor over a PDU body.
type reader struct {
	b   []byte
	off int
}

func (r *reader) left() int { return len(r.b) - r.off }

func (r *reader) bytes(n int, what string) ([]byte, error) {
	if n < 0 || r.left() < n {
		return nil, protoErr(AbortReasonInvalidParameter, "%s needs %d bytes, %d remain", what, n, r.left())
	}
	v := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return v, nil
}

func (r *reader) u8(what string) (byte, error) {
	v, err := r.bytes(1, what)
	if err != nil {
		return 0, err
	}
	return v[0], nil
}

func (r *reader) u16(what string) (uint16, error) {
	v, err := r.bytes(2, what)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint16(v), nil
}

func (r *reader) u32(what string) (uint32, error) {
	v, err := r.bytes(4, what)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(v), nil
}

// item reads an item header (type, reserved, 16-bit length) and its body.
func (r *reader) item(what string) (byte, []byte, error) {
	typ, err := r.u8(what)
	if err != nil {
		return 0, nil, err
	}
	if _, err := r.u8(what); err != nil {
		return 0, nil, err
	}
	n, err := r.u16(what)
	if err != nil {
		return 0, nil, err
	}
	if r.left() < int(n) {
		// The name is formatted only for the error: an association
		// request holds dozens of items.
		_, err := r.bytes(int(n), fmt.Sprintf("%s (item 0x%02x)", what, typ))
		return typ, nil, err
	}
	body, err := r.bytes(int(n), what)
	return typ, body, err
}

// lenPrefixed reads a 16-bit length and that many bytes.
func (r *reader) lenPrefixed(what string) ([]byte, error) {
	n, err := r.u16(what)
	if err != nil {
		return nil, err
	}
	return r.bytes(int(n), what)
}

func appendItem(b []byte, typ byte, body func([]byte) []byte) []byte {
	b = append(b, typ, 0, 0, 0)
	start := len(b)
	b = body(b)
	binary.BigEndian.PutUint16(b[start-2:], uint16(len(b)-start))
	return b
}

func appendLenPrefixed(b []byte, v []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(v)))
	return append(b, v...)
}
