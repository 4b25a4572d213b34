package main

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"
)

const defaultInput = "/usr/share/libdcmtk17/dicom.dic"

// TestCheckedInOutputUpToDate regenerates zdict.go in memory and compares it
// with the checked-in file.
func TestCheckedInOutputUpToDate(t *testing.T) {
	in, err := os.ReadFile(defaultInput)
	if errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s not installed: install the Debian package dcmtk (.ci/run does)", defaultInput)
	}
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := generate(bytes.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("../zdict.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := 0; i < len(gl) || i < len(wl); i++ {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("../zdict.go is out of date (run go generate in internal/dicom/dict); first difference at line %d:\ngenerated: %s\nchecked in: %s", i+1, g, w)
			}
		}
		t.Fatal("../zdict.go is out of date")
	}
}

func TestParseTag(t *testing.T) {
	tests := []struct {
		in        string
		tag, mask uint32
		err       bool
	}{
		{in: "(0010,0010)", tag: 0x00100010, mask: 0xFFFFFFFF},
		{in: "(7fe0,0010)", tag: 0x7FE00010, mask: 0xFFFFFFFF},
		{in: "(6000-60FF,3000)", tag: 0x60003000, mask: 0xFF01FFFF},
		{in: "(6000-e-60FF,3000)", tag: 0x60003000, mask: 0xFF01FFFF},
		{in: "(7F00-7FFF,0010)", tag: 0x7F000010, mask: 0xFF01FFFF},
		{in: "(0020,3100-31FF)", tag: 0x00203100, mask: 0xFFFFFF01},
		{in: "(0000-u-FFFF,0000)", tag: 0x00000000, mask: 0x0000FFFF},
		{in: "(6001-o-60FF,0010)", tag: 0x60010010, mask: 0xFF01FFFF},
		{in: "(0009-o-FFFF,0000)", err: true}, // not a power-of-two block
		{in: "(6001-60FF,0010)", err: true},   // even range starting odd
		{in: "(6000-x-60FF,0010)", err: true},
		{in: "(60FF-6000,0010)", err: true},
		{in: "(6000,001)", err: true},
		{in: "6000,0010", err: true},
		{in: "(6000;0010)", err: true},
		{in: "(50xx,0005)", err: true},
	}
	for _, tt := range tests {
		tag, mask, err := parseTag(tt.in)
		if tt.err {
			if err == nil {
				t.Errorf("parseTag(%q) = %08X, %08X; want error", tt.in, tag, mask)
			}
			continue
		}
		if err != nil || tag != tt.tag || mask != tt.mask {
			t.Errorf("parseTag(%q) = %08X, %08X, %v; want %08X, %08X", tt.in, tag, mask, err, tt.tag, tt.mask)
		}
	}
}

func TestParse(t *testing.T) {
	const in = "# comment\n" +
		"# Generated automatically from DICOM PS 3.6-2099a.\n" +
		"(0010,0010)\tPN\tPatientName\t1\tDICOM\n" +
		"(6000-60FF,3000)\tox\tOverlayData\t1\tDICOM\n" +
		"(0028,0104)\txs\tRETIRED_SmallestValidPixelValue\t1\tDICOM/retired\n" +
		"(0014,0025)\tST\tComponentManufacturingProcedure\t1\tDICOM/DICONDE\n" +
		"(FFFE,E000)\tna\tItem\t1\tDICOM\n" +
		"(0009-o-FFFF,0000)\tUL\tPrivateGroupLength\t1\tPRIVATE\n" +
		"(0000-u-FFFF,0000)\tUL\tGenericGroupLength\t1\tGENERIC\n" +
		"(0010,0010)\tPN\tPatientsName\t1\tDICOM\n" // overrides the first row
	exact, masked, st, err := parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if st.source != "DICOM PS 3.6-2099a." || st.skipped["PRIVATE"] != 1 || st.skipped["GENERIC"] != 1 {
		t.Errorf("stats = %+v", st)
	}
	if len(exact) != 4 || len(masked) != 1 {
		t.Fatalf("got %d exact, %d masked entries", len(exact), len(masked))
	}
	want := []record{
		{tag: 0x00100010, mask: 0xFFFFFFFF, vr: "PN", vm: "1", keyword: "PatientsName", line: 10},
		{tag: 0x00140025, mask: 0xFFFFFFFF, vr: "ST", vm: "1", keyword: "ComponentManufacturingProcedure", line: 6},
		{tag: 0x00280104, mask: 0xFFFFFFFF, vr: "US", altVR: "SS", vm: "1", keyword: "SmallestValidPixelValue", retired: true, line: 5},
		{tag: 0xFFFEE000, mask: 0xFFFFFFFF, vm: "1", keyword: "Item", line: 7},
	}
	for i, w := range want {
		if exact[i] != w {
			t.Errorf("exact[%d] = %+v, want %+v", i, exact[i], w)
		}
	}
	if m := masked[0]; m.vr != "OB" || m.altVR != "OW" || m.mask != 0xFF01FFFF {
		t.Errorf("masked[0] = %+v", m)
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{
		"(0010,0010)\tPN\tPatientName\t1\n",                            // 4 fields
		"(0010,0010)\tPN\tPatientName\t1\tDICOM\textra\n",              // 6 fields
		"(0010,0010)\tQQ\tPatientName\t1\tDICOM\n",                     // unknown VR
		"(0010,0010)\tPN\tRETIRED_PatientName\t1\tDICOM\n",             // prefix without status
		"(0010,0010)\tPN\tPatientName\t1\tDICOM/retired\n",             // status without prefix
		"(0010,0010)\tPN\tPatient Name\t1\tDICOM\n",                    // bad keyword
		"(0010,0010)\tPN\tPatientName\t\tDICOM\n",                      // empty VM
		"(0010,0010)\tPN\tA\t1\tDICOM\n(0010,0020)\tLO\tA\t1\tDICOM\n", // duplicate keyword
	} {
		if _, _, _, err := parse(strings.NewReader(in)); err == nil {
			t.Errorf("parse(%q) succeeded, want error", in)
		}
	}
}
