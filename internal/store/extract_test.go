package store

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/dicomshield/dicomshield/internal/dicom"
)

// header returns a data set with the required UIDs and the given extra
// elements.
func header(extra ...dicom.Element) *dicom.DataSet {
	ds := &dicom.DataSet{}
	ds.Set(dicom.NewText(dicom.TagSOPClassUID, dicom.UI, "1.2.840.10008.5.1.4.1.1.2"))
	ds.Set(dicom.NewText(dicom.TagSOPInstanceUID, dicom.UI, "1.2.826.0.1.1.1.1"))
	ds.Set(dicom.NewText(dicom.TagStudyInstanceUID, dicom.UI, "1.2.826.0.1.1"))
	ds.Set(dicom.NewText(dicom.TagSeriesInstanceUID, dicom.UI, "1.2.826.0.1.1.1"))
	for _, e := range extra {
		ds.Set(e)
	}
	return ds
}

func raw(tag dicom.Tag, vr dicom.VR, b string) dicom.Element {
	return dicom.NewBytes(tag, vr, []byte(b))
}

func TestExtractInstanceCharsets(t *testing.T) {
	for _, tc := range []struct {
		name    string
		charset string // "" for none
		name_   string // raw bytes of Patient Name
		desc    string // raw bytes of Study Description
		want    string
		wantD   string
	}{
		{"ASCII", "", "Smith^John", "CT CHEST", "Smith^John", "CT CHEST"},
		{"Latin-1", "ISO_IR 100", "M\xfcller^J\xfcrgen", "R\xf6ntgen Thorax", "Müller^Jürgen", "Röntgen Thorax"},
		{"UTF-8", "ISO_IR 192", "Müller^Jürgen", "Röntgen", "Müller^Jürgen", "Röntgen"},
		{"UTF-8 Japanese", "ISO_IR 192", "山田^太郎=やまだ^たろう", "胸部", "山田^太郎=やまだ^たろう", "胸部"},
		{"Latin-1 with padding", "ISO_IR 100", "Andr\xe9^Fran\xe7ois ", "caf\xe9", "André^François", "café"},
		{"ISO 2022 Japanese", `\ISO 2022 IR 87`, "Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B", "", "Yamada^Tarou=山田^太郎", ""},
		{"unsupported charset still stores", "ISO_IR 999", "Smith^John", "", "Smith^John", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var extra []dicom.Element
			if tc.charset != "" {
				extra = append(extra, dicom.NewText(dicom.TagSpecificCharacterSet, dicom.CS, tc.charset))
			}
			extra = append(extra, raw(dicom.TagPatientName, dicom.PN, tc.name_), raw(TagStudyDescription, dicom.LO, tc.desc))
			in, err := ExtractInstance(header(extra...))
			if err != nil {
				t.Fatal(err)
			}
			if in.PatientName != tc.want || in.StudyDescription != tc.wantD {
				t.Errorf("got name %q, description %q; want %q, %q", in.PatientName, in.StudyDescription, tc.want, tc.wantD)
			}
		})
	}
}

func TestExtractInstanceFields(t *testing.T) {
	ds := header(
		dicom.NewText(dicom.TagPatientID, dicom.LO, "PAT001"),
		dicom.NewText(dicom.TagPatientName, dicom.PN, "Smith^John"),
		dicom.NewText(TagPatientBirthDate, dicom.DA, "1970.01.01"), // ACR-NEMA form
		dicom.NewText(TagPatientSex, dicom.CS, "M"),
		dicom.NewText(TagStudyDate, dicom.DA, "20240105"),
		dicom.NewText(TagStudyTime, dicom.TM, "08:30:00"), // ACR-NEMA form
		dicom.NewText(TagAccessionNumber, dicom.SH, "ACC-1"),
		dicom.NewText(TagStudyID, dicom.SH, "S1"),
		dicom.NewText(TagReferringPhysicianName, dicom.PN, "House^Gregory"),
		dicom.NewText(TagModalitiesInStudy, dicom.CS, "CT", "", "SR"),
		dicom.NewText(TagModality, dicom.CS, "CT"),
		dicom.NewText(TagSeriesNumber, dicom.IS, " 3"),
		dicom.NewText(TagSeriesDescription, dicom.LO, "AXIAL", "ignored second value"),
		dicom.NewText(TagInstanceNumber, dicom.IS, "12"),
	)
	in, err := ExtractInstance(ds)
	if err != nil {
		t.Fatal(err)
	}
	want := Instance{
		PatientID: "PAT001", PatientName: "Smith^John", PatientBirthDate: "19700101", PatientSex: "M",
		StudyInstanceUID: "1.2.826.0.1.1", StudyDate: "20240105", StudyTime: "083000", AccessionNumber: "ACC-1",
		StudyID: "S1", ReferringPhysicianName: "House^Gregory", ModalitiesInStudy: `CT\SR`,
		SeriesInstanceUID: "1.2.826.0.1.1.1", Modality: "CT", SeriesNumber: "3", SeriesDescription: "AXIAL",
		SOPInstanceUID: "1.2.826.0.1.1.1.1", SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", InstanceNumber: "12",
	}
	if *in != want {
		t.Errorf("got  %+v\nwant %+v", *in, want)
	}
}

func TestExtractInstanceInvalid(t *testing.T) {
	for _, tc := range []struct {
		name string
		ds   *dicom.DataSet
	}{
		{"nil", nil},
		{"empty", &dicom.DataSet{}},
		{"no SOP class", without(header(), dicom.TagSOPClassUID)},
		{"no SOP instance", without(header(), dicom.TagSOPInstanceUID)},
		{"no study", without(header(), dicom.TagStudyInstanceUID)},
		{"no series", without(header(), dicom.TagSeriesInstanceUID)},
		{"empty series", header(dicom.NewText(dicom.TagSeriesInstanceUID, dicom.UI, ""))},
		{"letters in UID", header(dicom.NewText(dicom.TagStudyInstanceUID, dicom.UI, "1.2.abc"))},
		{"path in UID", header(dicom.NewText(dicom.TagSOPInstanceUID, dicom.UI, "../../etc/passwd"))},
		{"injection in UID", header(dicom.NewText(dicom.TagSOPInstanceUID, dicom.UI, "1.2'; DROP TABLE instance;--"))},
		{"double dot", header(dicom.NewText(dicom.TagSOPInstanceUID, dicom.UI, "1..2"))},
		{"trailing dot", header(dicom.NewText(dicom.TagSOPInstanceUID, dicom.UI, "1.2."))},
		{"UID too long", header(dicom.NewText(dicom.TagSOPInstanceUID, dicom.UI, "1."+strings.Repeat("2", 63)))},
		{"huge name", header(dicom.NewText(dicom.TagPatientName, dicom.PN, strings.Repeat("A", MaxValueLength+1)))},
		{"huge description", header(dicom.NewText(TagStudyDescription, dicom.LO, strings.Repeat("é", MaxValueLength)))},
	} {
		if _, err := ExtractInstance(tc.ds); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", tc.name, err)
		}
	}
	// Errors never carry the values (patient data).
	_, err := ExtractInstance(header(dicom.NewText(dicom.TagPatientName, dicom.PN, "SECRET^"+strings.Repeat("A", MaxValueLength))))
	if err == nil || strings.Contains(err.Error(), "SECRET") {
		t.Errorf("error %v", err)
	}
}

func without(ds *dicom.DataSet, tag dicom.Tag) *dicom.DataSet {
	ds.Delete(tag)
	return ds
}

// TestExtractInstanceHeaderOnly reads the header of an encoded file, as
// the store path does, and extracts from it.
func TestExtractInstanceHeaderOnly(t *testing.T) {
	ds := header(
		dicom.NewText(dicom.TagSpecificCharacterSet, dicom.CS, "ISO_IR 100"),
		raw(dicom.TagPatientName, dicom.PN, "M\xfcller^J\xfcrgen"),
		dicom.NewText(dicom.TagPatientID, dicom.LO, "PAT002"),
		dicom.NewBytes(dicom.TagPixelData, dicom.OW, make([]byte, 1<<16)),
	)
	for _, ts := range []dicom.TransferSyntax{dicom.ImplicitVRLittleEndian, dicom.ExplicitVRLittleEndian, dicom.ExplicitVRBigEndian} {
		var buf bytes.Buffer
		if err := dicom.WriteFile(&buf, dicom.NewFile(ds, ts)); err != nil {
			t.Fatal(err)
		}
		f, err := dicom.ReadFileFrom(&buf, &dicom.ReadOptions{StopAt: dicom.TagPixelData})
		if err != nil {
			t.Fatal(err)
		}
		in, err := ExtractInstance(&f.DataSet)
		if err != nil {
			t.Fatal(err)
		}
		if in.PatientName != "Müller^Jürgen" || in.PatientID != "PAT002" || in.SOPInstanceUID != "1.2.826.0.1.1.1.1" {
			t.Errorf("%s: %+v", ts.Name, *in)
		}
		// With the meta group, the transfer syntax is known too.
		f.DataSet.Set(dicom.NewText(dicom.TagTransferSyntaxUID, dicom.UI, f.TransferSyntax.UID))
		if in, _ := ExtractInstance(&f.DataSet); in.TransferSyntaxUID != ts.UID {
			t.Errorf("%s: transfer syntax %q", ts.Name, in.TransferSyntaxUID)
		}
	}
}

func TestValidUID(t *testing.T) {
	for s, want := range map[string]bool{
		"1.2.840.10008.1.2": true, "1": true, "2.25.0123": true, strings.Repeat("1", 64): true,
		"": false, ".1": false, "1.": false, "1..2": false, "1.2a": false, "1.2 ": false, "1/2": false,
		strings.Repeat("1", 65): false,
	} {
		if got := ValidUID(s); got != want {
			t.Errorf("ValidUID(%q) = %v", s, got)
		}
	}
}
