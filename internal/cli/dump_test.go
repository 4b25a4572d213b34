package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dicomshield/dicomshield/internal/dicom"
)

func writeTestFile(t *testing.T, dir, name string, ts dicom.TransferSyntax) (string, []byte) {
	t.Helper()
	ds := &dicom.DataSet{}
	ds.Set(dicom.NewText(dicom.TagSpecificCharacterSet, dicom.CS, "ISO_IR 100"))
	ds.Set(dicom.NewText(dicom.TagSOPClassUID, dicom.UI, "1.2.840.10008.5.1.4.1.1.7"))
	ds.Set(dicom.NewText(dicom.TagSOPInstanceUID, dicom.UI, "1.2.3.4"))
	ds.Set(dicom.NewText(dicom.TagPatientName, dicom.PN, "M\xfcller^Anna"))
	ds.Set(dicom.NewUint16s(dicom.NewTag(0x0028, 0x0010), dicom.US, 512))
	item := &dicom.DataSet{}
	item.Set(dicom.NewText(dicom.NewTag(0x0008, 0x1155), dicom.UI, "1.2.3.5"))
	ds.Set(dicom.NewSequence(dicom.NewTag(0x0008, 0x1140), item))
	ds.Set(dicom.NewBytes(dicom.TagPixelData, dicom.OB, make([]byte, 64)))
	b, err := dicom.MarshalFile(dicom.NewFile(ds, ts))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, b
}

func run(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Main(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestDump(t *testing.T) {
	dir := t.TempDir()
	good, raw := writeTestFile(t, dir, "good.dcm", dicom.ExplicitVRLittleEndian)
	truncated := filepath.Join(dir, "truncated.dcm")
	os.WriteFile(truncated, raw[:len(raw)-10], 0o644)
	notDICOM := filepath.Join(dir, "notes.txt")
	os.WriteFile(notDICOM, []byte("this is a text file, not DICOM"), 0o644)

	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   []string
		stderr   []string
		noStdout []string
	}{
		{"listing", []string{"dump", good}, 0,
			[]string{"(0010,0010) PN PatientName", "[Müller^Anna]", "(0028,0010) US Rows", "512", "> item 1", "(0008,1155) UI ReferencedSOPInstanceUID", "(64 bytes)", "Explicit VR Little Endian"}, nil, nil},
		{"header only", []string{"dump", "--header-only", good}, 0,
			[]string{"stopped before Pixel Data"}, nil, []string{"(7FE0,0010)"}},
		{"truncated", []string{"dump", truncated}, 1,
			nil, []string{"truncated.dcm", "truncated input", "(7FE0,0010)", "1 of 1 files could not be read"}, nil},
		{"not dicom", []string{"dump", notDICOM}, 1, nil, []string{"not a DICOM file"}, nil},
		{"missing file", []string{"dump", filepath.Join(dir, "nope.dcm")}, 1, nil, []string{"no such file"}, nil},
		{"good and bad", []string{"dump", good, truncated}, 1, []string{"PatientName"}, []string{"1 of 2 files"}, nil},
		{"no args", []string{"dump"}, 1, nil, []string{"requires at least 1 arg"}, nil},
		{"version", []string{"version"}, 0, []string{"dicomshield", dicom.ImplementationClassUID}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := run(tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr %q", code, tt.code, errs)
			}
			for _, s := range tt.stdout {
				if !strings.Contains(out, s) {
					t.Errorf("stdout lacks %q:\n%s", s, out)
				}
			}
			for _, s := range tt.stderr {
				if !strings.Contains(errs, s) {
					t.Errorf("stderr lacks %q:\n%s", s, errs)
				}
			}
			for _, s := range tt.noStdout {
				if strings.Contains(out, s) {
					t.Errorf("stdout has %q:\n%s", s, out)
				}
			}
		})
	}
}

func TestDumpJSON(t *testing.T) {
	dir := t.TempDir()
	a, _ := writeTestFile(t, dir, "a.dcm", dicom.ImplicitVRLittleEndian)
	b, _ := writeTestFile(t, dir, "b.dcm", dicom.ExplicitVRBigEndian)

	code, out, errs := run("dump", "--json", a)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var one map[string]struct {
		VR    string            `json:"vr"`
		Value []json.RawMessage `json:"Value"`
	}
	if err := json.Unmarshal([]byte(out), &one); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if one["00100010"].VR != "PN" || !strings.Contains(string(one["00100010"].Value[0]), "Müller^Anna") {
		t.Errorf("PatientName: %+v", one["00100010"])
	}
	if string(one["00280010"].Value[0]) != "512" {
		t.Errorf("Rows: %s", one["00280010"].Value)
	}

	code, out, errs = run("dump", "--json", a, b)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var many []map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &many); err != nil || len(many) != 2 {
		t.Fatalf("want an array of 2: %v\n%s", err, out)
	}
	if string(many[0]["00280010"]) != string(many[1]["00280010"]) {
		t.Errorf("big endian file gives other JSON: %s vs %s", many[0]["00280010"], many[1]["00280010"])
	}
}
