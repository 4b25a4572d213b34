package dimse

import (
	"bytes"
	"io"
	"testing"

	"github.com/dicomshield/dicomshield/internal/dicom"
)

const (
	tsExplicit = dicom.ExplicitVRLittleEndianUID
	tsImplicit = dicom.ImplicitVRLittleEndianUID
	tsBig      = dicom.ExplicitVRBigEndianUID
	tsDeflated = dicom.DeflatedExplicitVRLittleEndianUID
	tsJPEG     = "1.2.840.10008.1.2.4.50"
	classCT    = "1.2.840.10008.5.1.4.1.1.2"
	classMR    = "1.2.840.10008.5.1.4.1.1.4"
)

func TestChooseContext(t *testing.T) {
	tests := []struct {
		name     string
		accepted map[byte]acceptedContext
		class    string
		stored   string
		usable   bool
		wantID   byte
		wantTS   string
		wantCode uint16
	}{
		{"stored syntax accepted", map[byte]acceptedContext{1: {classCT, tsImplicit}, 3: {classCT, tsBig}}, classCT, tsBig, true, 3, tsBig, StatusSuccess},
		{"lowest id of the stored syntax", map[byte]acceptedContext{5: {classCT, tsBig}, 3: {classCT, tsBig}}, classCT, tsBig, true, 3, tsBig, StatusSuccess},
		{"big endian to implicit", map[byte]acceptedContext{1: {classCT, tsImplicit}}, classCT, tsBig, true, 1, tsImplicit, StatusSuccess},
		{"explicit preferred as target", map[byte]acceptedContext{1: {classCT, tsImplicit}, 3: {classCT, tsExplicit}}, classCT, tsDeflated, true, 3, tsExplicit, StatusSuccess},
		{"deflated target", map[byte]acceptedContext{7: {classCT, tsDeflated}}, classCT, tsImplicit, true, 7, tsDeflated, StatusSuccess},
		{"JPEG stored, only native accepted", map[byte]acceptedContext{1: {classCT, tsImplicit}, 3: {classCT, tsExplicit}}, classCT, tsJPEG, true, 0, "", StatusOutOfResourcesSubOps},
		{"native stored, only JPEG accepted", map[byte]acceptedContext{1: {classCT, tsJPEG}}, classCT, tsExplicit, true, 0, "", StatusOutOfResourcesSubOps},
		{"JPEG stored and accepted", map[byte]acceptedContext{1: {classCT, tsImplicit}, 3: {classCT, tsJPEG}}, classCT, tsJPEG, true, 3, tsJPEG, StatusSuccess},
		{"another class's context", map[byte]acceptedContext{1: {classMR, tsExplicit}}, classCT, tsExplicit, true, 0, "", StatusSOPClassNotSupported},
		{"class not usable (no SCP role)", map[byte]acceptedContext{1: {classCT, tsExplicit}}, classCT, tsExplicit, false, 0, "", StatusSOPClassNotSupported},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, ts, code := chooseContext(tc.accepted, tc.class, tc.stored, func(string) bool { return tc.usable })
			if id != tc.wantID || ts != tc.wantTS || code != tc.wantCode {
				t.Errorf("chooseContext = %d, %q, 0x%04X; want %d, %q, 0x%04X", id, ts, code, tc.wantID, tc.wantTS, tc.wantCode)
			}
		})
	}
}

func TestMoveProposals(t *testing.T) {
	insts := []Instance{
		{SOPClassUID: classCT, TransferSyntax: tsBig}, {SOPClassUID: classCT, TransferSyntax: tsBig},
		{SOPClassUID: classCT, TransferSyntax: tsExplicit}, {SOPClassUID: classMR, TransferSyntax: tsJPEG},
	}
	got := moveProposals(insts)
	want := []Proposal{
		{AbstractSyntax: classCT, TransferSyntaxes: []string{tsBig}},
		{AbstractSyntax: classCT, TransferSyntaxes: []string{tsExplicit}},
		{AbstractSyntax: classMR, TransferSyntaxes: []string{tsJPEG}},
		{AbstractSyntax: classCT, TransferSyntaxes: fallbackSyntaxes},
	}
	if len(got) != len(want) {
		t.Fatalf("%d proposals, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i].AbstractSyntax != want[i].AbstractSyntax || !equalStrings(got[i].TransferSyntaxes, want[i].TransferSyntaxes) {
			t.Errorf("proposal %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestOpenAs re-encodes between every pair of native syntaxes and refuses
// encapsulated pixel data.
func TestOpenAs(t *testing.T) {
	var ds dicom.DataSet
	ds.Set(dicom.NewText(dicom.TagSOPInstanceUID, dicom.UI, "1.2.3"))
	ds.Set(dicom.NewUint16s(dicom.Tag(0x00280010), dicom.US, 2))
	ds.Set(dicom.NewBytes(dicom.TagPixelData, dicom.OW, []byte{1, 2, 3, 4}))
	for _, from := range nativeSyntaxes {
		for _, to := range nativeSyntaxes {
			t.Run(from+"->"+to, func(t *testing.T) {
				src, err := dicom.MarshalDataSet(&ds, dicom.LookupTransferSyntax(from))
				if err != nil {
					t.Fatal(err)
				}
				inst := Instance{TransferSyntax: from, Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(src)), nil }}
				rc, err := openAs(inst, to)
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					t.Fatal(err)
				}
				got, err := dicom.Parse(b, dicom.LookupTransferSyntax(to), nil)
				if err != nil {
					t.Fatalf("re-encoded data set does not decode: %v", err)
				}
				rows, _ := got.Get(dicom.Tag(0x00280010)).Uint16s()
				px, _ := got.Get(dicom.TagPixelData).Uint16s()
				if got.String(dicom.TagSOPInstanceUID) != "1.2.3" || len(rows) != 1 || rows[0] != 2 || len(px) != 2 || px[0] != 0x0201 || px[1] != 0x0403 {
					t.Errorf("re-encoded values: uid %q rows %v pixels %#v", got.String(dicom.TagSOPInstanceUID), rows, px)
				}
			})
		}
	}
	var enc dicom.DataSet
	enc.Set(dicom.Element{Tag: dicom.TagPixelData, VR: dicom.OB, UndefinedLength: true, Fragments: [][]byte{{}, {0xFF, 0xD8}}})
	src, _ := dicom.MarshalDataSet(&enc, dicom.ExplicitVRLittleEndian)
	inst := Instance{TransferSyntax: tsJPEG, Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(src)), nil }}
	if rc, err := openAs(inst, tsExplicit); err == nil {
		rc.Close()
		t.Errorf("JPEG re-encoded as explicit VR little endian")
	}
	inst.TransferSyntax = tsExplicit // fragments where a native syntax has none
	if rc, err := openAs(inst, tsImplicit); err == nil {
		rc.Close()
		t.Errorf("encapsulated pixel data re-encoded as implicit VR little endian")
	}
}
