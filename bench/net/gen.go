// Package net holds the networking benchmarks: a generator of synthetic
// Part 10 files, a file-writing storage SCP built on internal/dimse (used
// by cmd/dsscp and by the in-process Go benchmarks), and a minimal C-STORE
// sender for the Go benchmarks. The side-by-side comparison with DCMTK is
// the program cmd/netbench.
package net

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"

	"github.com/dicomshield/dicomshield/internal/dicom"
)

// SOP classes of the generated files: one per set, so that a single
// presentation context carries a whole set.
const (
	CTImageStorage = "1.2.840.10008.5.1.4.1.1.2"
	// MultiFrameWordSCStorage is Multi-frame Grayscale Word Secondary
	// Capture Image Storage: 16-bit multi-frame without functional groups.
	MultiFrameWordSCStorage = "1.2.840.10008.5.1.4.1.1.7.3"
)

// Set describes one generated set of files.
type Set struct {
	Name   string // short name for tables: "CT" or "MF"
	Files  int
	Rows   int
	Cols   int
	Frames int // 1: single-frame CT; more: multi-frame secondary capture
}

// Default sets of the network benchmark: 200 CT-like 512x512x16-bit
// files (~0.5 MB each) and 20 multi-frame files of 40 such frames
// (~20 MB each), all Explicit VR Little Endian.
var (
	SetCT = Set{Name: "CT", Files: 200, Rows: 512, Cols: 512, Frames: 1}
	SetMF = Set{Name: "MF", Files: 20, Rows: 512, Cols: 512, Frames: 40}
)

// Generated is a set written to disk.
type Generated struct {
	Set   Set
	Dir   string
	Paths []string
	Bytes int64 // sum of the file sizes
}

// uidRoot is a 2.25 (UUID-derived) root for the synthetic UIDs; every
// generated UID is the root plus a few numeric components.
const uidRoot = "2.25.246171127414939232178617025341235431983"

// Generate writes s.Files synthetic files into dir (created if needed) with
// dicomshield's writer. Values are synthetic: no patient data. seed makes
// the UIDs of two sets distinct.
func Generate(dir string, s Set, seed int) (*Generated, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	g := &Generated{Set: s, Dir: dir}
	pixels := syntheticPixels(s.Rows*s.Cols*s.Frames, uint32(seed))
	study := fmt.Sprintf("%s.%d.1", uidRoot, seed)
	series := fmt.Sprintf("%s.%d.2", uidRoot, seed)
	for i := 0; i < s.Files; i++ {
		ds := dataSet(s, study, series, fmt.Sprintf("%s.%d.3.%d", uidRoot, seed, i+1), i+1, pixels)
		path := filepath.Join(dir, fmt.Sprintf("%s%04d.dcm", s.Name, i+1))
		if err := writeFile(path, dicom.NewFile(ds, dicom.ExplicitVRLittleEndian)); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		st, err := os.Stat(path)
		if err != nil {
			return nil, err
		}
		g.Paths = append(g.Paths, path)
		g.Bytes += st.Size()
	}
	return g, nil
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

// syntheticPixels returns n 16-bit samples: a smooth ramp plus a little
// pseudo-random noise (xorshift), 12 bits stored.
func syntheticPixels(n int, seed uint32) []byte {
	b := make([]byte, 2*n)
	x := seed*2654435761 + 1
	for i := 0; i < n; i++ {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		v := uint16((i%512)*4+int(x&0x3F)) & 0x0FFF
		binary.LittleEndian.PutUint16(b[2*i:], v)
	}
	return b
}

func text(ds *dicom.DataSet, g, e uint16, v dicom.VR, vals ...string) {
	ds.Set(dicom.NewText(dicom.NewTag(g, e), v, vals...))
}

func us(ds *dicom.DataSet, g, e uint16, vals ...uint16) {
	ds.Set(dicom.NewUint16s(dicom.NewTag(g, e), dicom.US, vals...))
}

// dataSet builds a CT-like header (a few dozen elements, as a modality
// sends) with the given pixel data.
func dataSet(s Set, study, series, inst string, num int, pixels []byte) *dicom.DataSet {
	ds := &dicom.DataSet{}
	class, modality := CTImageStorage, "CT"
	if s.Frames > 1 {
		class, modality = MultiFrameWordSCStorage, "OT"
	}
	text(ds, 0x0008, 0x0005, dicom.CS, "ISO_IR 100")
	text(ds, 0x0008, 0x0008, dicom.CS, "ORIGINAL", "PRIMARY", "AXIAL")
	text(ds, 0x0008, 0x0012, dicom.DA, "20240101")
	text(ds, 0x0008, 0x0013, dicom.TM, "120000")
	text(ds, 0x0008, 0x0016, dicom.UI, class)
	text(ds, 0x0008, 0x0018, dicom.UI, inst)
	text(ds, 0x0008, 0x0020, dicom.DA, "20240101")
	text(ds, 0x0008, 0x0030, dicom.TM, "120000")
	text(ds, 0x0008, 0x0050, dicom.SH, "BENCH0001")
	text(ds, 0x0008, 0x0060, dicom.CS, modality)
	text(ds, 0x0008, 0x0070, dicom.LO, "SYNTHETIC")
	text(ds, 0x0008, 0x0080, dicom.LO, "BENCH HOSPITAL")
	text(ds, 0x0008, 0x0090, dicom.PN, "REFERRER^SYNTHETIC")
	text(ds, 0x0008, 0x1030, dicom.LO, "SYNTHETIC BENCHMARK STUDY")
	text(ds, 0x0008, 0x103E, dicom.LO, "SYNTHETIC SERIES")
	text(ds, 0x0010, 0x0010, dicom.PN, "BENCH^SYNTHETIC")
	text(ds, 0x0010, 0x0020, dicom.LO, "BENCH-0001")
	text(ds, 0x0010, 0x0030, dicom.DA, "19700101")
	text(ds, 0x0010, 0x0040, dicom.CS, "O")
	text(ds, 0x0018, 0x0050, dicom.DS, "1.25")
	text(ds, 0x0018, 0x0060, dicom.DS, "120")
	text(ds, 0x0018, 0x1151, dicom.IS, "200")
	text(ds, 0x0018, 0x5100, dicom.CS, "HFS")
	text(ds, 0x0020, 0x000D, dicom.UI, study)
	text(ds, 0x0020, 0x000E, dicom.UI, series)
	text(ds, 0x0020, 0x0010, dicom.SH, "1")
	text(ds, 0x0020, 0x0011, dicom.IS, "1")
	text(ds, 0x0020, 0x0013, dicom.IS, fmt.Sprint(num))
	text(ds, 0x0020, 0x0032, dicom.DS, "-250", "-250", fmt.Sprintf("%.2f", float64(num)*1.25))
	text(ds, 0x0020, 0x0037, dicom.DS, "1", "0", "0", "0", "1", "0")
	text(ds, 0x0020, 0x0052, dicom.UI, study+".9")
	text(ds, 0x0020, 0x1041, dicom.DS, fmt.Sprintf("%.2f", float64(num)*1.25))
	us(ds, 0x0028, 0x0002, 1)
	text(ds, 0x0028, 0x0004, dicom.CS, "MONOCHROME2")
	if s.Frames > 1 {
		text(ds, 0x0028, 0x0008, dicom.IS, fmt.Sprint(s.Frames))
		// Frame Increment Pointer -> Frame Time (0018,1063).
		text(ds, 0x0018, 0x1063, dicom.DS, "33.3")
		ds.Set(dicom.NewUint16s(dicom.NewTag(0x0028, 0x0009), dicom.AT, 0x0018, 0x1063))
	}
	us(ds, 0x0028, 0x0010, uint16(s.Rows))
	us(ds, 0x0028, 0x0011, uint16(s.Cols))
	text(ds, 0x0028, 0x0030, dicom.DS, "0.5", "0.5")
	us(ds, 0x0028, 0x0100, 16)
	us(ds, 0x0028, 0x0101, 12)
	us(ds, 0x0028, 0x0102, 11)
	us(ds, 0x0028, 0x0103, 0)
	text(ds, 0x0028, 0x1050, dicom.DS, "40")
	text(ds, 0x0028, 0x1051, dicom.DS, "400")
	text(ds, 0x0028, 0x1052, dicom.DS, "-1024")
	text(ds, 0x0028, 0x1053, dicom.DS, "1")
	ds.Set(dicom.NewBytes(dicom.TagPixelData, dicom.OW, pixels))
	return ds
}
