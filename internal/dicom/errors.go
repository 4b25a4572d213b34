package dicom

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error the reader returns wraps one of them, so that
// callers can ask errors.Is(err, dicom.ErrTruncated) rather than parse text.
var (
	// ErrTruncated: the input ended inside an element, item or sequence.
	ErrTruncated = errors.New("truncated input")
	// ErrMalformed: the input is not a valid encoding (an invalid VR, an
	// item where an element belongs, a value that overruns its item...).
	ErrMalformed = errors.New("malformed data set")
	// ErrLimit: the input exceeds one of the reader's Limits.
	ErrLimit = errors.New("limit exceeded")
	// ErrNotDICOM: the input is neither a Part 10 file nor a data set that
	// could be recognised.
	ErrNotDICOM = errors.New("not a DICOM file")
)

// SyntaxError locates a decoding error in the input. It unwraps to one of
// the sentinel errors.
type SyntaxError struct {
	Offset int64 // byte offset from the start of the data set (or file)
	Tag    Tag   // the element being read, when known
	Msg    string
	Err    error // ErrTruncated, ErrMalformed or ErrLimit
}

func (e *SyntaxError) Error() string {
	if e.Tag != 0 {
		return fmt.Sprintf("dicom: %v at offset %d in %s: %s", e.Err, e.Offset, e.Tag, e.Msg)
	}
	return fmt.Sprintf("dicom: %v at offset %d: %s", e.Err, e.Offset, e.Msg)
}

func (e *SyntaxError) Unwrap() error { return e.Err }
