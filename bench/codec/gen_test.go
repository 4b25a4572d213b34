package codec

// Synthetic test files for the codec benchmarks. They are generated once per
// test binary run, with dicomshield's own writer, into a temporary directory
// that TestMain removes; nothing here is real patient data and nothing is
// committed.

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/dicomshield/dicomshield/internal/dicom"
)

// benchFile is one generated input.
type benchFile struct {
	name string // sub-benchmark name
	path string
	size int64
	data []byte // whole file, for the in-memory variants

	// Facts used by TestSameValues and the allocs/elem metric, taken from
	// the data set as it was generated.
	patientName string
	studyUID    string
	rows, cols  int
	pixelBytes  int

	// Elements counted with dicomshield's parser (meta group included,
	// nested elements included, items not counted).
	headerElems int // everything before Pixel Data
	fullElems   int // everything
}

var (
	filesOnce sync.Once
	filesDir  string
	files     []*benchFile
	filesErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if filesDir != "" {
		os.RemoveAll(filesDir)
	}
	os.Exit(code)
}

// testFiles generates the inputs on first use and returns them.
func testFiles(tb testing.TB) []*benchFile {
	tb.Helper()
	filesOnce.Do(func() { files, filesErr = generate() })
	if filesErr != nil {
		tb.Fatalf("generating test files: %v", filesErr)
	}
	return files
}

func generate() ([]*benchFile, error) {
	dir, err := os.MkdirTemp("", "dicomshield-codec-bench-")
	if err != nil {
		return nil, err
	}
	filesDir = dir
	specs := []struct {
		name string
		ds   *dicom.DataSet
		ts   dicom.TransferSyntax
	}{
		{"CT_ExplicitLE", ctDataSet(1), dicom.ExplicitVRLittleEndian},
		{"CT_ImplicitLE", ctDataSet(1), dicom.ImplicitVRLittleEndian},
		{"MR_ExplicitLE", mrDataSet(), dicom.ExplicitVRLittleEndian},
		{"MultiFrame100_ExplicitLE", ctDataSet(100), dicom.ExplicitVRLittleEndian},
	}
	var out []*benchFile
	for _, s := range specs {
		bf := &benchFile{name: s.name, path: filepath.Join(dir, s.name+".dcm")}
		if err := writeFile(bf.path, dicom.NewFile(s.ds, s.ts)); err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		if bf.data, err = os.ReadFile(bf.path); err != nil {
			return nil, err
		}
		bf.size = int64(len(bf.data))
		bf.patientName = s.ds.String(dicom.TagPatientName)
		bf.studyUID = s.ds.String(dicom.TagStudyInstanceUID)
		bf.rows = int(us(s.ds, 0x0028, 0x0010))
		bf.cols = int(us(s.ds, 0x0028, 0x0011))
		bf.pixelBytes = len(s.ds.Get(dicom.TagPixelData).Value)

		// Count elements with our parser, as the benchmarks will see them.
		hf, err := dicom.ParseFile(bf.data, &dicom.ReadOptions{StopAt: dicom.TagPixelData})
		if err != nil {
			return nil, fmt.Errorf("%s: header-only read back: %w", s.name, err)
		}
		bf.headerElems = countElems(hf)
		ff, err := dicom.ParseFile(bf.data, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: full read back: %w", s.name, err)
		}
		bf.fullElems = countElems(ff)
		out = append(out, bf)
	}
	return out, nil
}

func writeFile(path string, f *dicom.File) error {
	fh, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(fh, 1<<20)
	if err := dicom.WriteFile(w, f); err != nil {
		fh.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		fh.Close()
		return err
	}
	return fh.Close()
}

// countElems counts the meta elements and every element of the data set,
// nested ones included (items themselves are not elements).
func countElems(f *dicom.File) int {
	n := f.Meta.Len()
	f.DataSet.Walk(func(int, *dicom.Element) bool { n++; return true })
	return n
}

func us(ds *dicom.DataSet, g, e uint16) uint16 {
	el := ds.Get(dicom.NewTag(g, e))
	if el == nil || len(el.Value) < 2 {
		return 0
	}
	return binary.LittleEndian.Uint16(el.Value)
}

// --- data set builders -----------------------------------------------------

// builder adds elements to a data set with terse calls.
type builder struct{ ds *dicom.DataSet }

func newBuilder() *builder { return &builder{ds: &dicom.DataSet{}} }

func (b *builder) text(g, e uint16, v dicom.VR, vals ...string) *builder {
	b.ds.Set(dicom.NewText(dicom.NewTag(g, e), v, vals...))
	return b
}

func (b *builder) us(g, e uint16, vals ...uint16) *builder {
	b.ds.Set(dicom.NewUint16s(dicom.NewTag(g, e), dicom.US, vals...))
	return b
}

func (b *builder) ul(g, e uint16, vals ...uint32) *builder {
	b.ds.Set(dicom.NewUint32s(dicom.NewTag(g, e), dicom.UL, vals...))
	return b
}

func (b *builder) sl(g, e uint16, vals ...int32) *builder {
	u := make([]uint32, len(vals))
	for i, x := range vals {
		u[i] = uint32(x)
	}
	b.ds.Set(dicom.NewUint32s(dicom.NewTag(g, e), dicom.SL, u...))
	return b
}

func (b *builder) fl(g, e uint16, vals ...float32) *builder {
	buf := make([]byte, 4*len(vals))
	for i, x := range vals {
		binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(x))
	}
	b.ds.Set(dicom.NewBytes(dicom.NewTag(g, e), dicom.FL, buf))
	return b
}

func (b *builder) fd(g, e uint16, vals ...float64) *builder {
	buf := make([]byte, 8*len(vals))
	for i, x := range vals {
		binary.LittleEndian.PutUint64(buf[8*i:], math.Float64bits(x))
	}
	b.ds.Set(dicom.NewBytes(dicom.NewTag(g, e), dicom.FD, buf))
	return b
}

func (b *builder) at(g, e uint16, tags ...dicom.Tag) *builder {
	buf := make([]byte, 4*len(tags))
	for i, t := range tags {
		binary.LittleEndian.PutUint16(buf[4*i:], t.Group())
		binary.LittleEndian.PutUint16(buf[4*i+2:], t.Element())
	}
	b.ds.Set(dicom.NewBytes(dicom.NewTag(g, e), dicom.AT, buf))
	return b
}

func (b *builder) bytes(g, e uint16, v dicom.VR, val []byte) *builder {
	b.ds.Set(dicom.NewBytes(dicom.NewTag(g, e), v, val))
	return b
}

func (b *builder) seq(g, e uint16, items ...*builder) *builder {
	ds := make([]*dicom.DataSet, len(items))
	for i, it := range items {
		ds[i] = it.ds
	}
	b.ds.Set(dicom.NewSequence(dicom.NewTag(g, e), ds...))
	return b
}

// code is a Code Sequence Macro item (PS3.3 8.8).
func code(value, scheme, meaning string) *builder {
	return newBuilder().
		text(0x0008, 0x0100, dicom.SH, value).
		text(0x0008, 0x0102, dicom.SH, scheme).
		text(0x0008, 0x0104, dicom.LO, meaning)
}

// uid returns a synthetic UID under the UUID-derived root 2.25 (PS3.5 B.2);
// deterministic so that runs are comparable.
func uid(kind, n int) string {
	return fmt.Sprintf("2.25.%d%012d%06d", 31415926535, kind*7919+13, n)
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*131 + i>>7)
	}
	return b
}

// pixels returns frames*rows*cols 16-bit samples (12 bits stored): a
// synthetic phantom of concentric rings that changes slightly per frame.
func pixels(frames, rows, cols int) []byte {
	out := make([]byte, frames*rows*cols*2)
	i := 0
	for f := 0; f < frames; f++ {
		for y := 0; y < rows; y++ {
			dy := y - rows/2
			for x := 0; x < cols; x++ {
				dx := x - cols/2
				r := (dx*dx + dy*dy + f*97) >> 6
				binary.LittleEndian.PutUint16(out[i:], uint16((r*37+x^y)&0x0FFF))
				i += 2
			}
		}
	}
	return out
}

// ctDataSet is a CT Image IOD-like data set of about 120 header elements
// (nested ones included) and frames of 512x512 16-bit pixel data in OW.
func ctDataSet(frames int) *dicom.DataSet {
	const rows, cols = 512, 512
	b := newBuilder()
	// SOP Common, General Study, General Series, General Equipment, ...
	b.text(0x0008, 0x0005, dicom.CS, "ISO_IR 100").
		text(0x0008, 0x0008, dicom.CS, "ORIGINAL", "PRIMARY", "AXIAL").
		text(0x0008, 0x0012, dicom.DA, "20250314").
		text(0x0008, 0x0013, dicom.TM, "101532.125000").
		text(0x0008, 0x0016, dicom.UI, "1.2.840.10008.5.1.4.1.1.2").
		text(0x0008, 0x0018, dicom.UI, uid(1, frames)).
		text(0x0008, 0x0020, dicom.DA, "20250314").
		text(0x0008, 0x0021, dicom.DA, "20250314").
		text(0x0008, 0x0022, dicom.DA, "20250314").
		text(0x0008, 0x0023, dicom.DA, "20250314").
		text(0x0008, 0x002A, dicom.DT, "20250314101502.512000").
		text(0x0008, 0x0030, dicom.TM, "100812").
		text(0x0008, 0x0031, dicom.TM, "101455.000000").
		text(0x0008, 0x0032, dicom.TM, "101502.512000").
		text(0x0008, 0x0033, dicom.TM, "101532.125000").
		text(0x0008, 0x0050, dicom.SH, "ACC20250314001").
		text(0x0008, 0x0060, dicom.CS, "CT").
		text(0x0008, 0x0070, dicom.LO, "Synthetic Medical Systems").
		text(0x0008, 0x0080, dicom.LO, "Example General Hospital").
		text(0x0008, 0x0081, dicom.ST, "1 Example Road, Sample City, Nowhere 00000").
		text(0x0008, 0x0090, dicom.PN, "REFERRER^ALEX^^DR").
		text(0x0008, 0x0201, dicom.SH, "+0100").
		text(0x0008, 0x1010, dicom.SH, "CTSIM01").
		text(0x0008, 0x1030, dicom.LO, "CT CHEST ABDOMEN PELVIS W CONTRAST").
		seq(0x0008, 0x1032, code("CTCAP", "SYNTH", "CT chest, abdomen and pelvis with contrast")).
		text(0x0008, 0x103E, dicom.LO, "Abdomen 1.0 Br40 3").
		text(0x0008, 0x1040, dicom.LO, "Radiology").
		text(0x0008, 0x1070, dicom.PN, "OPERATOR^SAM").
		text(0x0008, 0x1090, dicom.LO, "SynthScan 128").
		seq(0x0008, 0x1140,
			newBuilder().text(0x0008, 0x1150, dicom.UI, "1.2.840.10008.5.1.4.1.1.2").text(0x0008, 0x1155, dicom.UI, uid(9, 1)),
			newBuilder().text(0x0008, 0x1150, dicom.UI, "1.2.840.10008.5.1.4.1.1.2").text(0x0008, 0x1155, dicom.UI, uid(9, 2))).
		text(0x0008, 0x2111, dicom.ST, "Synthetic reconstruction for benchmarking")
	// A private block (Siemens-style layout, synthetic creator).
	b.text(0x0009, 0x0010, dicom.LO, "DICOMSHIELD SYNTH 1.0").
		text(0x0009, 0x1001, dicom.LO, "SYNTH_CT_PROTOCOL_V2").
		text(0x0009, 0x1002, dicom.SH, "HELICAL").
		bytes(0x0009, 0x1010, dicom.OB, pattern(256)).
		bytes(0x0009, 0x1020, dicom.UN, pattern(64))
	// Patient.
	b.text(0x0010, 0x0010, dicom.PN, "SYNTHETIC^JANE^Q").
		text(0x0010, 0x0020, dicom.LO, "SYN-0000042").
		text(0x0010, 0x0021, dicom.LO, "SYNTH-HOSPITAL").
		text(0x0010, 0x0030, dicom.DA, "19700101").
		text(0x0010, 0x0040, dicom.CS, "F").
		seq(0x0010, 0x1002,
			newBuilder().text(0x0010, 0x0020, dicom.LO, "ALT-77").text(0x0010, 0x0021, dicom.LO, "OTHER-SITE")).
		text(0x0010, 0x1010, dicom.AS, "055Y").
		text(0x0010, 0x1020, dicom.DS, "1.68").
		text(0x0010, 0x1030, dicom.DS, "64.5").
		text(0x0010, 0x4000, dicom.LT, "Synthetic patient. No real person is described by this record.")
	// CT Image, CT acquisition and reconstruction.
	b.text(0x0018, 0x0010, dicom.LO, "IOPAMIDOL 370").
		text(0x0018, 0x0015, dicom.CS, "ABDOMEN").
		text(0x0018, 0x0022, dicom.CS, "HELICAL MODE").
		text(0x0018, 0x0050, dicom.DS, "1.0").
		text(0x0018, 0x0060, dicom.DS, "120").
		text(0x0018, 0x0090, dicom.DS, "500.0").
		text(0x0018, 0x1000, dicom.LO, "SN-000123").
		text(0x0018, 0x1020, dicom.LO, "SYNTH VB20A").
		text(0x0018, 0x1030, dicom.LO, "ABDOMEN_ROUTINE").
		text(0x0018, 0x1100, dicom.DS, "380.0").
		text(0x0018, 0x1110, dicom.DS, "1085.6").
		text(0x0018, 0x1111, dicom.DS, "595.0").
		text(0x0018, 0x1120, dicom.DS, "0.0").
		text(0x0018, 0x1130, dicom.DS, "152.5").
		text(0x0018, 0x1140, dicom.CS, "CW").
		text(0x0018, 0x1150, dicom.IS, "500").
		text(0x0018, 0x1151, dicom.IS, "212").
		text(0x0018, 0x1152, dicom.IS, "106").
		text(0x0018, 0x1160, dicom.SH, "FLAT").
		text(0x0018, 0x1170, dicom.IS, "25").
		text(0x0018, 0x1190, dicom.DS, "0.7", "1.2").
		text(0x0018, 0x1210, dicom.SH, "Br40d", "3").
		text(0x0018, 0x5100, dicom.CS, "FFS").
		fd(0x0018, 0x9305, 0.5).
		fd(0x0018, 0x9306, 0.6).
		fd(0x0018, 0x9307, 38.4).
		fd(0x0018, 0x9309, 46.08).
		fd(0x0018, 0x9310, 23.04).
		fd(0x0018, 0x9311, 0.6).
		fd(0x0018, 0x9345, 11.73).
		seq(0x0018, 0x9346, code("113691", "DCM", "IEC Body Dosimetry Phantom"))
	if frames > 1 {
		b.text(0x0018, 0x1063, dicom.DS, "500.0")
	}
	// Private block with binary VRs.
	b.text(0x0019, 0x0010, dicom.LO, "DICOMSHIELD SYNTH 1.0").
		text(0x0019, 0x1001, dicom.DS, "0.5").
		text(0x0019, 0x1002, dicom.IS, "64").
		text(0x0019, 0x1003, dicom.SH, "FAST").
		text(0x0019, 0x1004, dicom.LO, "DoseMod:ON", "AEC:ON")
	// Study, series, frame of reference, image plane.
	b.text(0x0020, 0x000D, dicom.UI, uid(2, 1)).
		text(0x0020, 0x000E, dicom.UI, uid(3, frames)).
		text(0x0020, 0x0010, dicom.SH, "STU0001").
		text(0x0020, 0x0011, dicom.IS, "3").
		text(0x0020, 0x0012, dicom.IS, "1").
		text(0x0020, 0x0013, dicom.IS, "57").
		text(0x0020, 0x0020, dicom.CS, "L", "P").
		text(0x0020, 0x0032, dicom.DS, "-189.6289", "-331.6289", "-113.5").
		text(0x0020, 0x0037, dicom.DS, "1", "0", "0", "0", "1", "0").
		text(0x0020, 0x0052, dicom.UI, uid(4, 1)).
		text(0x0020, 0x1040, dicom.LO, "IC").
		text(0x0020, 0x1041, dicom.DS, "-113.5").
		text(0x0020, 0x4000, dicom.LT, "Synthetic image generated for codec benchmarks")
	// Image pixel.
	b.us(0x0028, 0x0002, 1).
		text(0x0028, 0x0004, dicom.CS, "MONOCHROME2")
	if frames > 1 {
		b.text(0x0028, 0x0008, dicom.IS, fmt.Sprint(frames)).
			at(0x0028, 0x0009, dicom.NewTag(0x0018, 0x1063))
	}
	b.us(0x0028, 0x0010, rows).
		us(0x0028, 0x0011, cols).
		text(0x0028, 0x0030, dicom.DS, "0.740234375", "0.740234375").
		us(0x0028, 0x0100, 16).
		us(0x0028, 0x0101, 12).
		us(0x0028, 0x0102, 11).
		us(0x0028, 0x0103, 0).
		text(0x0028, 0x1050, dicom.DS, "40", "400").
		text(0x0028, 0x1051, dicom.DS, "400", "1500").
		text(0x0028, 0x1052, dicom.DS, "-1024").
		text(0x0028, 0x1053, dicom.DS, "1").
		text(0x0028, 0x1054, dicom.LO, "HU").
		text(0x0028, 0x1055, dicom.LO, "WINDOW1", "WINDOW2").
		text(0x0028, 0x2110, dicom.CS, "00")
	// Requesting and performed procedure step, with nested code sequences.
	b.text(0x0032, 0x1032, dicom.PN, "REQUESTER^ROBIN").
		text(0x0032, 0x1060, dicom.LO, "CT ABDOMEN PELVIS").
		text(0x0040, 0x0244, dicom.DA, "20250314").
		text(0x0040, 0x0245, dicom.TM, "100812").
		text(0x0040, 0x0253, dicom.SH, "PPS0001").
		text(0x0040, 0x0254, dicom.LO, "CT ABDOMEN PELVIS").
		seq(0x0040, 0x0275, newBuilder().
			text(0x0040, 0x0007, dicom.LO, "CT ABDOMEN PELVIS W").
			seq(0x0040, 0x0008, code("CTAPW", "SYNTH", "CT abdomen pelvis with contrast")).
			text(0x0040, 0x0009, dicom.SH, "SPS0001").
			text(0x0040, 0x1001, dicom.SH, "RP0001"))
	b.bytes(0x7FE0, 0x0010, dicom.OW, pixels(frames, rows, cols))
	return b.ds
}

// mrDataSet is an MR Image IOD-like data set: about 250 elements outside the
// large sequence (many of them private, as MR vendors write), a 50-item
// Acquisition Context Sequence of 10 elements per item (nested code
// sequences included), and 256x256 16-bit pixel data.
func mrDataSet() *dicom.DataSet {
	const rows, cols = 256, 256
	b := newBuilder()
	b.text(0x0008, 0x0005, dicom.CS, "ISO_IR 100").
		text(0x0008, 0x0008, dicom.CS, "ORIGINAL", "PRIMARY", "M", "ND", "NORM").
		text(0x0008, 0x0012, dicom.DA, "20250402").
		text(0x0008, 0x0013, dicom.TM, "143012.004000").
		text(0x0008, 0x0016, dicom.UI, "1.2.840.10008.5.1.4.1.1.4").
		text(0x0008, 0x0018, dicom.UI, uid(11, 1)).
		text(0x0008, 0x0020, dicom.DA, "20250402").
		text(0x0008, 0x0021, dicom.DA, "20250402").
		text(0x0008, 0x0022, dicom.DA, "20250402").
		text(0x0008, 0x0023, dicom.DA, "20250402").
		text(0x0008, 0x0030, dicom.TM, "141201.000000").
		text(0x0008, 0x0031, dicom.TM, "142733.118000").
		text(0x0008, 0x0032, dicom.TM, "142801.447500").
		text(0x0008, 0x0033, dicom.TM, "143012.004000").
		text(0x0008, 0x0050, dicom.SH, "ACC20250402117").
		text(0x0008, 0x0060, dicom.CS, "MR").
		text(0x0008, 0x0070, dicom.LO, "Synthetic Medical Systems").
		text(0x0008, 0x0080, dicom.LO, "Example General Hospital").
		text(0x0008, 0x0081, dicom.ST, "1 Example Road, Sample City, Nowhere 00000").
		text(0x0008, 0x0090, dicom.PN, "REFERRER^ALEX^^DR").
		text(0x0008, 0x1010, dicom.SH, "MRSIM03").
		text(0x0008, 0x1030, dicom.LO, "MR BRAIN W WO CONTRAST").
		seq(0x0008, 0x1032, code("MRBRWWO", "SYNTH", "MR brain with and without contrast")).
		text(0x0008, 0x103E, dicom.LO, "t1_mprage_sag_p2_iso").
		text(0x0008, 0x1040, dicom.LO, "Neuroradiology").
		text(0x0008, 0x1070, dicom.PN, "OPERATOR^SAM").
		text(0x0008, 0x1090, dicom.LO, "SynthMag 3T").
		seq(0x0008, 0x1111, newBuilder().
			text(0x0008, 0x1150, dicom.UI, "1.2.840.10008.3.1.2.3.3").
			text(0x0008, 0x1155, dicom.UI, uid(12, 1)))
	refs := make([]*builder, 3)
	for i := range refs {
		refs[i] = newBuilder().text(0x0008, 0x1150, dicom.UI, "1.2.840.10008.5.1.4.1.1.4").text(0x0008, 0x1155, dicom.UI, uid(13, i))
	}
	b.seq(0x0008, 0x1140, refs...)
	b.text(0x0010, 0x0010, dicom.PN, "SYNTHETIC^JOHN^B").
		text(0x0010, 0x0020, dicom.LO, "SYN-0009731").
		text(0x0010, 0x0030, dicom.DA, "19820615").
		text(0x0010, 0x0040, dicom.CS, "M").
		text(0x0010, 0x1010, dicom.AS, "042Y").
		text(0x0010, 0x1020, dicom.DS, "1.81").
		text(0x0010, 0x1030, dicom.DS, "82").
		text(0x0010, 0x21B0, dicom.LT, "Synthetic history: none.")
	// MR acquisition.
	b.text(0x0018, 0x0015, dicom.CS, "HEAD").
		text(0x0018, 0x0020, dicom.CS, "GR", "IR").
		text(0x0018, 0x0021, dicom.CS, "SP", "MP").
		text(0x0018, 0x0022, dicom.CS, "IR").
		text(0x0018, 0x0023, dicom.CS, "3D").
		text(0x0018, 0x0024, dicom.SH, "*tfl3d1_16ns").
		text(0x0018, 0x0025, dicom.CS, "N").
		text(0x0018, 0x0050, dicom.DS, "1").
		text(0x0018, 0x0080, dicom.DS, "2300").
		text(0x0018, 0x0081, dicom.DS, "2.32").
		text(0x0018, 0x0082, dicom.DS, "900").
		text(0x0018, 0x0083, dicom.DS, "1").
		text(0x0018, 0x0084, dicom.DS, "123.250936").
		text(0x0018, 0x0085, dicom.SH, "1H").
		text(0x0018, 0x0086, dicom.IS, "1").
		text(0x0018, 0x0087, dicom.DS, "3").
		text(0x0018, 0x0088, dicom.DS, "1").
		text(0x0018, 0x0089, dicom.IS, "248").
		text(0x0018, 0x0091, dicom.IS, "1").
		text(0x0018, 0x0093, dicom.DS, "100").
		text(0x0018, 0x0094, dicom.DS, "100").
		text(0x0018, 0x0095, dicom.DS, "200").
		text(0x0018, 0x1000, dicom.LO, "SN-045678").
		text(0x0018, 0x1020, dicom.LO, "SYNTH XA30").
		text(0x0018, 0x1030, dicom.LO, "t1_mprage_sag_p2_iso").
		text(0x0018, 0x1250, dicom.SH, "Head_32").
		text(0x0018, 0x1251, dicom.SH, "Body").
		us(0x0018, 0x1310, 0, 256, 256, 0).
		text(0x0018, 0x1312, dicom.CS, "ROW").
		text(0x0018, 0x1314, dicom.DS, "8").
		text(0x0018, 0x1315, dicom.CS, "N").
		text(0x0018, 0x1316, dicom.DS, "0.0512").
		text(0x0018, 0x1318, dicom.DS, "0").
		text(0x0018, 0x5100, dicom.CS, "HFS")
	// Vendor private groups: MR headers carry many private elements.
	b.text(0x0019, 0x0010, dicom.LO, "DICOMSHIELD SYNTH MR 1.0")
	for i := 0; i < 60; i++ {
		el := uint16(0x1000 + i)
		switch i % 6 {
		case 0:
			b.text(0x0019, el, dicom.DS, fmt.Sprintf("%d.%03d", i, i*7))
		case 1:
			b.text(0x0019, el, dicom.IS, fmt.Sprint(i*11))
		case 2:
			b.text(0x0019, el, dicom.SH, fmt.Sprintf("PARAM_%02d", i))
		case 3:
			b.fd(0x0019, el, float64(i)*0.125, float64(i)*0.5, -float64(i))
		case 4:
			b.sl(0x0019, el, int32(-i*1000), int32(i))
		case 5:
			b.us(0x0019, el, uint16(i), uint16(2*i))
		}
	}
	b.text(0x0020, 0x000D, dicom.UI, uid(14, 1)).
		text(0x0020, 0x000E, dicom.UI, uid(15, 1)).
		text(0x0020, 0x0010, dicom.SH, "STU0117").
		text(0x0020, 0x0011, dicom.IS, "5").
		text(0x0020, 0x0012, dicom.IS, "1").
		text(0x0020, 0x0013, dicom.IS, "96").
		text(0x0020, 0x0032, dicom.DS, "-74.123", "-128.456", "131.789").
		text(0x0020, 0x0037, dicom.DS, "0", "1", "0", "0", "0", "-1").
		text(0x0020, 0x0052, dicom.UI, uid(16, 1)).
		text(0x0020, 0x1040, dicom.LO, "").
		text(0x0020, 0x1041, dicom.DS, "-74.123")
	b.text(0x0021, 0x0010, dicom.LO, "DICOMSHIELD SYNTH MR 1.0")
	for i := 0; i < 50; i++ {
		el := uint16(0x1000 + i)
		switch i % 5 {
		case 0:
			b.text(0x0021, el, dicom.LO, fmt.Sprintf("Coil element %d", i))
		case 1:
			b.fl(0x0021, el, float32(i)*1.5, float32(i)*2.5)
		case 2:
			b.text(0x0021, el, dicom.CS, "ON")
		case 3:
			b.ul(0x0021, el, uint32(i*100000))
		case 4:
			b.text(0x0021, el, dicom.DS, "0.5", "0.5", "1.0")
		}
	}
	b.us(0x0028, 0x0002, 1).
		text(0x0028, 0x0004, dicom.CS, "MONOCHROME2").
		us(0x0028, 0x0010, rows).
		us(0x0028, 0x0011, cols).
		text(0x0028, 0x0030, dicom.DS, "1", "1").
		us(0x0028, 0x0100, 16).
		us(0x0028, 0x0101, 12).
		us(0x0028, 0x0102, 11).
		us(0x0028, 0x0103, 0).
		text(0x0028, 0x1050, dicom.DS, "588").
		text(0x0028, 0x1051, dicom.DS, "1202").
		text(0x0028, 0x1055, dicom.LO, "Algo1")
	// Siemens-CSA-like private blobs (synthetic bytes).
	b.text(0x0029, 0x0010, dicom.LO, "DICOMSHIELD SYNTH CSA").
		text(0x0029, 0x1008, dicom.CS, "IMAGE NUM 4").
		text(0x0029, 0x1009, dicom.LO, "20250402").
		bytes(0x0029, 0x1010, dicom.OB, pattern(9000)).
		text(0x0029, 0x1018, dicom.CS, "MR").
		text(0x0029, 0x1019, dicom.LO, "20250402").
		bytes(0x0029, 0x1020, dicom.OB, pattern(60000))
	b.text(0x0032, 0x1032, dicom.PN, "REQUESTER^ROBIN").
		text(0x0032, 0x1060, dicom.LO, "MR BRAIN W WO").
		text(0x0040, 0x0244, dicom.DA, "20250402").
		text(0x0040, 0x0245, dicom.TM, "141201").
		text(0x0040, 0x0253, dicom.SH, "PPS0117").
		text(0x0040, 0x0254, dicom.LO, "MR BRAIN W WO")
	// Acquisition Context Sequence: 50 items x 10 elements (nested included).
	ctx := make([]*builder, 50)
	for i := range ctx {
		ctx[i] = newBuilder().
			text(0x0040, 0xA040, dicom.CS, "NUMERIC").
			seq(0x0040, 0xA043, code(fmt.Sprintf("SYN%04d", i), "99SYNTH", fmt.Sprintf("Synthetic acquisition parameter %d", i))).
			seq(0x0040, 0x08EA, code("ms", "UCUM", "millisecond")).
			text(0x0040, 0xA30A, dicom.DS, fmt.Sprintf("%d.%d", 100+i, i%10))
	}
	b.seq(0x0040, 0x0555, ctx...)
	b.seq(0x0040, 0x0275, newBuilder().
		text(0x0040, 0x0007, dicom.LO, "MR BRAIN W WO").
		seq(0x0040, 0x0008, code("MRBRWWO", "SYNTH", "MR brain with and without contrast")).
		text(0x0040, 0x0009, dicom.SH, "SPS0117").
		text(0x0040, 0x1001, dicom.SH, "RP0117"))
	// Private group after the sequences, with long text values.
	b.text(0x0051, 0x0010, dicom.LO, "DICOMSHIELD SYNTH MR HDR")
	for i := 0; i < 40; i++ {
		b.text(0x0051, uint16(0x1000+i), dicom.LO, strings.Repeat(fmt.Sprintf("v%d ", i), 1+i%8))
	}
	b.bytes(0x7FE0, 0x0010, dicom.OW, pixels(1, rows, cols))
	return b.ds
}
