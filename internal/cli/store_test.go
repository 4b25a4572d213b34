package cli

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/dicomtest"
)

// testInstance returns a small instance of class with a pixel data value
// of pixels bytes.
func testInstance(class, inst string, pixels int) *dicom.DataSet {
	ds := &dicom.DataSet{}
	ds.Set(dicom.NewText(dicom.TagSpecificCharacterSet, dicom.CS, "ISO_IR 100"))
	ds.Set(dicom.NewText(dicom.TagSOPClassUID, dicom.UI, class))
	ds.Set(dicom.NewText(dicom.TagSOPInstanceUID, dicom.UI, inst))
	ds.Set(dicom.NewText(dicom.TagPatientName, dicom.PN, "M\xfcller^Anna"))
	ds.Set(dicom.NewText(dicom.TagPatientID, dicom.LO, "PAT1"))
	ds.Set(dicom.NewUint16s(dicom.NewTag(0x0028, 0x0010), dicom.US, 16))
	item := &dicom.DataSet{}
	item.Set(dicom.NewText(dicom.NewTag(0x0008, 0x1155), dicom.UI, "1.2.3.5"))
	ds.Set(dicom.NewSequence(dicom.NewTag(0x0008, 0x1140), item))
	if pixels > 0 {
		px := make([]byte, pixels)
		for i := range px {
			px[i] = byte(i * 7)
		}
		ds.Set(dicom.NewBytes(dicom.TagPixelData, dicom.OW, px))
	}
	return ds
}

// part10 encodes ds as a Part 10 file in ts and returns the file and the
// bytes of its data set, located from the meta group length (which
// dicom.WriteFile always writes first).
func part10(t *testing.T, ds *dicom.DataSet, ts dicom.TransferSyntax) (file, data []byte) {
	t.Helper()
	b, err := dicom.MarshalFile(dicom.NewFile(ds, ts))
	if err != nil {
		t.Fatal(err)
	}
	if string(b[128:132]) != "DICM" || binary.LittleEndian.Uint32(b[132:136]) != 0x00000002 {
		t.Fatal("unexpected file layout")
	}
	end := 144 + int(binary.LittleEndian.Uint32(b[140:144]))
	return b, b[end:]
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// storeFolder fills dir with DICOM files of several SOP classes, transfer
// syntaxes and layouts, and files that are not to be sent. It returns the
// data set bytes each instance must arrive with, and its transfer syntax.
func storeFolder(t *testing.T, dir string) (map[string][]byte, map[string]string) {
	want, wantTS := map[string][]byte{}, map[string]string{}
	add := func(name, class, inst string, ts dicom.TransferSyntax, layout string) {
		file, data := part10(t, testInstance(class, inst, 4096), ts)
		switch layout {
		case "no group length": // the meta group without (0002,0000)
			file = append(append([]byte(nil), file[:132]...), file[144:]...)
		case "no preamble": // meta group first, no preamble nor DICM
			file = file[132:]
		case "bare": // a data set alone, its encoding detected
			file = data
		}
		writeFile(t, filepath.Join(dir, name), file)
		want[inst], wantTS[inst] = data, ts.UID
	}
	add("ct1.dcm", ctImage, "1.2.826.0.1.3680043.10.3.1", dicom.ExplicitVRLittleEndian, "")
	add("series/ct2.dcm", ctImage, "1.2.826.0.1.3680043.10.3.2", dicom.ExplicitVRLittleEndian, "")
	add("series/deeper/mr.dcm", mrImage, "1.2.826.0.1.3680043.10.3.3", dicom.ImplicitVRLittleEndian, "")
	add("sc-deflated.dcm", scImage, "1.2.826.0.1.3680043.10.3.4", dicom.DeflatedExplicitVRLittleEndian, "")
	add("sr.dcm", comprehensSR, "1.2.826.0.1.3680043.10.3.5", dicom.ExplicitVRLittleEndian, "")
	add("pdf", pdfStorage, "1.2.826.0.1.3680043.10.3.6", dicom.ImplicitVRLittleEndian, "")
	add("odd/nogl.dcm", ctImage, "1.2.826.0.1.3680043.10.3.7", dicom.ImplicitVRLittleEndian, "no group length")
	add("odd/nopre.dcm", mrImage, "1.2.826.0.1.3680043.10.3.8", dicom.DeflatedExplicitVRLittleEndian, "no preamble")
	add("odd/bare.dcm", scImage, "1.2.826.0.1.3680043.10.3.9", dicom.ExplicitVRLittleEndian, "bare")
	writeFile(t, filepath.Join(dir, "README.txt"), []byte("this is a text file, not DICOM\n"))
	dd := &dicom.DataSet{}
	dd.Set(dicom.NewText(dicom.TagSOPClassUID, dicom.UI, mediaStorageDirectory))
	dd.Set(dicom.NewText(dicom.TagSOPInstanceUID, dicom.UI, "1.2.826.0.1.3680043.10.3.10"))
	dir0, _ := part10(t, dd, dicom.ExplicitVRLittleEndian)
	writeFile(t, filepath.Join(dir, "DICOMDIR"), dir0)
	return want, wantTS
}

func checkStored(t *testing.T, arch *testArchive, want map[string][]byte, wantTS map[string]string) {
	t.Helper()
	if arch.count() != len(want) {
		t.Errorf("archive holds %d instances, want %d", arch.count(), len(want))
	}
	for inst, data := range want {
		got, ts, ok := arch.get(inst)
		switch {
		case !ok:
			t.Errorf("%s not received", inst)
		case !bytes.Equal(got, data):
			t.Errorf("%s: received %d bytes that differ from the %d bytes after the meta header", inst, len(got), len(data))
		case ts != wantTS[inst]:
			t.Errorf("%s: received in %s, want %s", inst, ts, wantTS[inst])
		}
	}
}

func TestStore(t *testing.T) {
	dir := t.TempDir()
	want, wantTS := storeFolder(t, dir)
	pki := dicomtest.NewPKI(t, "MODALITY")
	for _, tc := range []struct {
		name string
		tls  bool
		jobs int
	}{
		{"j1", false, 1},
		{"j3", false, 3},
		{"tls j2", true, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			arch := newTestArchive()
			args := []string{"store", "--aec", "ARCHIVE", "-j", strconv.Itoa(tc.jobs)}
			var addr string
			if tc.tls {
				addr = startServer(t, arch.server(pki.Server))
				args = append(args, "--tls", "--ca", pki.CAFile, "--cert", pki.ClientCert, "--key", pki.ClientKey)
			} else {
				addr = startServer(t, arch.server(nil))
			}
			_, errs := cliCase{args: append(args, addr, dir), code: 0,
				stdout: []string{"stored 9 of 9 files (", " MB) in ", " MB/s; 0 failed; 2 skipped\n"},
				stderr: []string{"README.txt: skipped: not a DICOM file", "DICOMDIR: skipped: a DICOMDIR"},
			}.check(t)
			if strings.Contains(errs, "\r") || strings.Contains(errs, "\033") {
				t.Errorf("progress bar drawn on a stderr that is not a terminal: %q", errs)
			}
			checkStored(t, arch, want, wantTS)
			if n := arch.associations(); n != tc.jobs {
				t.Errorf("%d associations, want %d", n, tc.jobs)
			}
		})
	}
}

// TestStoreFailures checks that a file the peer does not accept, a failure
// status and an unreadable path are counted as failed and said why.
func TestStoreFailures(t *testing.T) {
	dir := t.TempDir()
	good, goodData := part10(t, testInstance(ctImage, "1.2.826.0.1.3680043.10.4.1", 100), dicom.ExplicitVRLittleEndian)
	writeFile(t, filepath.Join(dir, "good.dcm"), good)
	unsupported, _ := part10(t, testInstance(unsupportedClass, "1.2.826.0.1.3680043.10.4.2", 100), dicom.ExplicitVRLittleEndian)
	writeFile(t, filepath.Join(dir, "unsupported.dcm"), unsupported)
	refused, _ := part10(t, testInstance(ctImage, refusedInstance, 100), dicom.ExplicitVRLittleEndian)
	writeFile(t, filepath.Join(dir, "refused.dcm"), refused)
	broken := append([]byte(nil), good[:140]...) // DICM, then a cut meta group
	writeFile(t, filepath.Join(dir, "broken.dcm"), broken)

	arch := newTestArchive()
	addr := startServer(t, arch.server(nil))
	cliCase{args: []string{"store", "--aec", "ARCHIVE", addr, dir, filepath.Join(dir, "missing.dcm")}, code: 1,
		stdout: []string{"stored 1 of 5 files", "; 4 failed"},
		stderr: []string{
			"unsupported.dcm: not sent: ARCHIVE@" + addr + " did not accept " + unsupportedClass + " in Explicit VR Little Endian",
			"refused.dcm: C-STORE failed: refused: out of resources (0xA700)",
			"broken.dcm: dicom:",
			"missing.dcm: no such file or directory",
			"4 of 5 files were not stored",
		}}.check(t)
	checkStored(t, arch, map[string][]byte{"1.2.826.0.1.3680043.10.4.1": goodData}, map[string]string{"1.2.826.0.1.3680043.10.4.1": dicom.ExplicitVRLittleEndianUID})

	t.Run("no DICOM files", func(t *testing.T) {
		empty := t.TempDir()
		writeFile(t, filepath.Join(empty, "a.txt"), []byte("hello"))
		cliCase{args: []string{"store", "--aec", "ARCHIVE", addr, empty}, code: 1, stderr: []string{"no DICOM files found (1 skipped)"}}.check(t)
	})
	t.Run("peer down", func(t *testing.T) {
		cliCase{args: []string{"store", "-j", "2", "--aec", "ARCHIVE", closedPort(t), dir}, code: 1,
			stdout: []string{"stored 0 of 4 files"},
			stderr: []string{"files not sent: cannot connect to"}}.check(t)
	})
	t.Run("bad jobs", func(t *testing.T) {
		cliCase{args: []string{"store", "-j", "0", addr, dir}, code: 1, stderr: []string{"-j must be from 1 to 64"}}.check(t)
	})
}

// TestStoreManyContexts sends more (SOP class, transfer syntax) pairs than
// one association can propose.
func TestStoreManyContexts(t *testing.T) {
	dir := t.TempDir()
	want, wantTS := map[string][]byte{}, map[string]string{}
	for i := range 130 {
		class := fmt.Sprintf("1.2.826.0.1.3680043.10.5.%d", i+1)
		inst := fmt.Sprintf("1.2.826.0.1.3680043.10.6.%d", i+1)
		file, data := part10(t, testInstance(class, inst, 0), dicom.ExplicitVRLittleEndian)
		writeFile(t, filepath.Join(dir, fmt.Sprintf("f%03d.dcm", i)), file)
		want[inst], wantTS[inst] = data, dicom.ExplicitVRLittleEndianUID
	}
	arch := newTestArchive()
	addr := startServer(t, arch.server(nil))
	cliCase{args: []string{"store", "--aec", "ARCHIVE", addr, dir}, code: 0, stdout: []string{"stored 130 of 130 files"}}.check(t)
	checkStored(t, arch, want, wantTS)
	if n := arch.associations(); n != 2 {
		t.Errorf("%d associations, want 2 (128 contexts, then 2)", n)
	}
}

func TestDataSetOffset(t *testing.T) {
	file, data := part10(t, testInstance(ctImage, "1.2.3", 10), dicom.ExplicitVRLittleEndian)
	noGL := append(append([]byte(nil), file[:132]...), file[144:]...)
	for _, tc := range []struct {
		name  string
		b     []byte
		want  int
		elems int
		fails bool
	}{
		{"part 10", file, len(file) - len(data), 7, false},
		{"no group length", noGL, len(noGL) - len(data), 6, false},
		{"no preamble", file[132:], len(file) - len(data) - 132, 7, false},
		{"bare data set", data, 0, 0, false},
		{"meta only", file[:len(file)-len(data)], len(file) - len(data), 7, false},
		{"truncated meta", file[:150], 0, 0, true},
		{"empty", nil, 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			off, n, err := dataSetOffset(bytes.NewReader(tc.b), int64(len(tc.b)))
			if tc.fails {
				if err == nil {
					t.Fatalf("no error, offset %d", off)
				}
				return
			}
			if err != nil || off != int64(tc.want) || n != tc.elems {
				t.Fatalf("offset %d, %d elements, %v; want %d, %d", off, n, err, tc.want, tc.elems)
			}
		})
	}
}

// TestProgress draws the bar as on a terminal.
func TestProgress(t *testing.T) {
	var buf bytes.Buffer
	p := &progress{w: &buf, live: true}
	p.start(2, 2e6)
	p.addBytes(1e6)
	p.fileDone()
	p.warnf("%s: something", "a.dcm")
	p.finish()
	out := buf.String()
	for _, want := range []string{"\r[---", "0/2 files  0.0 MB / 2.0 MB", "\r\033[K", "dicomshield: a.dcm: something\n", "[###############---------------] 1/2 files  1.0 MB / 2.0 MB"} {
		if !strings.Contains(out, want) {
			t.Errorf("progress output lacks %q: %q", want, out)
		}
	}
	if !strings.HasSuffix(out, "\r\033[K") {
		t.Errorf("bar not cleared at the end: %q", out)
	}
	if isTerminal(&buf) {
		t.Error("a buffer is not a terminal")
	}
}
