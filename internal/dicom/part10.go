package dicom

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// Implementation identity written into the meta header of files dicomshield
// makes. The class UID is under the 2.25 (UUID) root, so it is dicomshield's
// own and never another product's.
const (
	ImplementationClassUID    = "2.25.163054148398715237815937516574406524381"
	ImplementationVersionName = "DICOMSHIELD_01"
)

// maxMetaLength bounds the file meta information group: it holds a few UIDs
// and titles, so anything near this size is not a meta header.
const maxMetaLength = 1 << 20

// File is a DICOM Part 10 file (PS3.10 section 7): preamble, meta
// information and a data set.
type File struct {
	// Preamble is the 128-byte preamble, or nil for input that had none (a
	// bare data set).
	Preamble []byte
	// Meta is the file meta information group (0002,xxxx), empty for a bare
	// data set.
	Meta DataSet
	// DataSet is the data set that follows the meta group.
	DataSet DataSet
	// TransferSyntax the data set is encoded in: from (0002,0010), or
	// detected for a bare data set.
	TransferSyntax TransferSyntax
	// HeaderOnly is true when reading stopped at ReadOptions.StopAt.
	HeaderOnly bool
}

// ReadFile reads the file at path. With ReadOptions.StopAt set (for example
// to TagPixelData for header-only reading) it reads no further than needed.
func ReadFile(path string, opts *ReadOptions) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	if !st.Mode().IsRegular() {
		size = -1
	}
	d := newDecoder(opts)
	src := newPooledSource(fh, size)
	d.src = src
	defer src.release()
	return d.readFile()
}

// ReadFileFrom reads a Part 10 file (or a bare data set) from r.
func ReadFileFrom(r io.Reader, opts *ReadOptions) (*File, error) {
	d := newDecoder(opts)
	d.src = newStreamSource(r, -1)
	return d.readFile()
}

// ParseFile reads a Part 10 file (or a bare data set) held in b. The values
// of the result alias b.
func ParseFile(b []byte, opts *ReadOptions) (*File, error) {
	d := newDecoder(opts)
	d.src = newBytesSource(b)
	return d.readFile()
}

func (d *Decoder) readFile() (*File, error) {
	f := &File{}
	s := d.src
	if err := s.fill(132); err == nil && string(s.avail()[128:132]) == "DICM" {
		f.Preamble = append([]byte(nil), s.avail()[:128]...)
		s.pos += 132
	} else if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return nil, err
	}
	// A meta group is read when present, also in files that lack the
	// preamble (seen from some writers).
	metaErr := s.fill(2)
	if metaErr == nil && binary.LittleEndian.Uint16(s.avail()) == 0x0002 {
		if err := d.readMeta(&f.Meta); err != nil {
			return f, err
		}
		uid := f.Meta.String(TagTransferSyntaxUID)
		if uid == "" {
			return f, d.errorf(ErrMalformed, TagTransferSyntaxUID, "file meta information has no transfer syntax UID")
		}
		f.TransferSyntax = LookupTransferSyntax(uid)
	} else if f.Preamble != nil {
		if metaErr != nil {
			// The input ends (or fails) right after "DICM".
			return f, d.readErr(metaErr, 0, "the file meta information")
		}
		return f, d.errorf(ErrMalformed, 0, "file meta information group missing after the preamble")
	} else {
		ts, err := d.detect()
		if err != nil {
			return nil, err
		}
		f.TransferSyntax = ts
	}
	d.ts = f.TransferSyntax
	if d.ts.Deflated {
		d.src = newStreamSource(inflate(s.rest(), d.lim.MaxInflatedSize), -1)
	}
	ds, err := d.Decode()
	if ds != nil {
		f.DataSet = *ds
	}
	f.HeaderOnly = d.stopped
	return f, err
}

// readMeta reads the group 0002 elements, always explicit VR little endian
// (PS3.10 7.1), whether or not a group length is present.
func (d *Decoder) readMeta(meta *DataSet) error {
	s := d.src
	start := s.offset()
	// end is where the group length (0002,0000), when it comes first, says
	// the group ends. The group is read element by element whatever it says
	// (some writers get it wrong), but input that ends before it is
	// truncated, not a complete file with a short meta group.
	end := int64(-1)
	for {
		if err := s.fill(2); err != nil {
			if err == io.EOF && s.offset() >= end {
				return nil
			}
			return d.readErr(err, 0, "the file meta information")
		}
		if binary.LittleEndian.Uint16(s.avail()) != 0x0002 {
			return nil
		}
		tag, v, length, err := d.header(true, false)
		if err != nil {
			return err
		}
		if length == UndefinedLength || v == SQ {
			return d.errorf(ErrMalformed, tag, "sequence or undefined length in the file meta information")
		}
		if s.offset()+int64(length)-start > maxMetaLength {
			return d.errorf(ErrLimit, tag, "file meta information longer than %d bytes", maxMetaLength)
		}
		if err := d.checkLength(tag, length, -1); err != nil {
			return err
		}
		if err := d.counted(tag); err != nil {
			return err
		}
		val, err := s.value(int(length))
		if err != nil {
			return d.readErr(err, tag, "a meta information value")
		}
		if n := len(meta.Elements); n > 0 && tag <= meta.Elements[n-1].Tag {
			meta.unsorted = true
		}
		if tag == TagFileMetaGroupLength && len(meta.Elements) == 0 && len(val) == 4 {
			end = s.offset() + int64(binary.LittleEndian.Uint32(val))
		}
		meta.Elements = append(meta.Elements, Element{Tag: tag, VR: v, Value: val})
	}
}

// detect guesses the transfer syntax of a data set that has no meta
// header from its first element: a group that reads sensibly little- or
// big-endian, and whether a valid VR follows the tag.
func (d *Decoder) detect() (TransferSyntax, error) {
	s := d.src
	if err := s.fill(8); err != nil {
		return TransferSyntax{}, fmt.Errorf("dicom: %w: input shorter than one element", ErrNotDICOM)
	}
	b := s.avail()
	le, be := binary.LittleEndian.Uint16(b), binary.BigEndian.Uint16(b)
	_, explicit := ParseVR(string(b[4:6]))
	plausible := func(g uint16) bool { return g >= 0x0002 && g <= 0x7FE0 && g%2 == 0 }
	switch {
	case explicit && plausible(be) && (!plausible(le) || be < le):
		return ExplicitVRBigEndian, nil
	case explicit && plausible(le):
		return ExplicitVRLittleEndian, nil
	case plausible(le) && binary.LittleEndian.Uint32(b[4:]) < 1<<24:
		return ImplicitVRLittleEndian, nil
	}
	return TransferSyntax{}, fmt.Errorf("dicom: %w: no DICM marker and the first bytes are not a data element", ErrNotDICOM)
}

// NewFile returns a file for ds in ts with a complete meta header:
// version, media storage SOP class and instance UIDs taken from ds, the
// transfer syntax, and dicomshield's implementation UID and version name.
func NewFile(ds *DataSet, ts TransferSyntax) *File {
	f := &File{Preamble: make([]byte, 128), TransferSyntax: ts}
	f.Meta.Set(NewBytes(TagFileMetaVersion, OB, []byte{0, 1}))
	f.Meta.Set(NewText(TagMediaStorageSOPClass, UI, ds.String(TagSOPClassUID)))
	f.Meta.Set(NewText(TagMediaStorageSOPInst, UI, ds.String(TagSOPInstanceUID)))
	f.Meta.Set(NewText(TagTransferSyntaxUID, UI, ts.UID))
	f.Meta.Set(NewText(TagImplementationClass, UI, ImplementationClassUID))
	f.Meta.Set(NewText(TagImplementationVersion, SH, ImplementationVersionName))
	f.DataSet = *ds
	return f
}

// WriteFile writes f as a Part 10 file: the preamble (zeros if f has
// none), "DICM", the meta group in explicit VR little endian with its group
// length recomputed and its transfer syntax UID set to f.TransferSyntax, and
// the data set in that syntax.
func WriteFile(w io.Writer, f *File) error {
	if f.TransferSyntax.UID == "" {
		return fmt.Errorf("dicom: %w: file has no transfer syntax", ErrEncode)
	}
	meta := DataSet{Elements: append([]Element(nil), f.Meta.Elements...), unsorted: f.Meta.unsorted}
	if meta.String(TagTransferSyntaxUID) != f.TransferSyntax.UID {
		meta.Set(NewText(TagTransferSyntaxUID, UI, f.TransferSyntax.UID))
	}
	meta.Delete(TagFileMetaGroupLength)
	body, err := MarshalDataSet(&meta, ExplicitVRLittleEndian)
	if err != nil {
		return err
	}
	bw := writerPool.Get().(*bufio.Writer)
	bw.Reset(w)
	defer func() {
		bw.Reset(nil)
		writerPool.Put(bw)
	}()
	pre := f.Preamble
	if len(pre) != 128 {
		pre = make([]byte, 128)
	}
	bw.Write(pre)
	bw.WriteString("DICM")
	gl := NewUint32s(TagFileMetaGroupLength, UL, uint32(len(body)))
	if err := WriteDataSet(bw, &DataSet{Elements: []Element{gl}}, ExplicitVRLittleEndian); err != nil {
		return err
	}
	bw.Write(body)
	if err := WriteDataSet(bw, &f.DataSet, f.TransferSyntax); err != nil {
		return err
	}
	return bw.Flush()
}

// MarshalFile returns the Part 10 encoding of f.
func MarshalFile(f *File) ([]byte, error) {
	var buf bytes.Buffer
	err := WriteFile(&buf, f)
	return buf.Bytes(), err
}
