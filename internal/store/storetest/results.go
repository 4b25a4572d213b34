package storetest

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/store"
)

// wantElement is one element a response must hold.
type wantElement struct {
	kw    string
	vr    dicom.VR
	value string // '\' joined; raw bytes
}

func checkResponse(t *testing.T, ds *dicom.DataSet, want []wantElement) {
	t.Helper()
	for _, w := range want {
		e := ds.Get(mustTag(t, w.kw))
		if e == nil {
			t.Errorf("%s missing from the response", w.kw)
			continue
		}
		if e.VR != w.vr {
			t.Errorf("%s: VR %s, want %s", w.kw, e.VR, w.vr)
		}
		var got string
		if e.IsSequence() {
			if len(e.Items) != 0 {
				t.Errorf("%s: %d items, want an empty sequence", w.kw, len(e.Items))
			}
		} else {
			got = strings.Join(e.Strings(), `\`)
		}
		if got != w.value {
			t.Errorf("%s = %q, want %q", w.kw, got, w.value)
		}
	}
	if ds.Len() != len(want) {
		var tags []string
		for _, e := range ds.Elements {
			tags = append(tags, e.Tag.String()+" "+e.Tag.Keyword())
		}
		t.Errorf("response has %d elements, want %d: %v", ds.Len(), len(want), tags)
	}
	// It encodes.
	b, err := dicom.MarshalDataSet(ds, dicom.ExplicitVRLittleEndian)
	if err != nil {
		t.Fatalf("response does not encode: %v", err)
	}
	if _, err := dicom.Parse(b, dicom.ExplicitVRLittleEndian, nil); err != nil {
		t.Fatalf("encoded response does not parse: %v", err)
	}
}

// mustTag parses a keyword.
func mustTag(t *testing.T, s string) dicom.Tag {
	t.Helper()
	tag, err := dicom.ParseTag(s)
	if err != nil {
		t.Fatal(err)
	}
	return tag
}

func testReturnKeys(t *testing.T, newIndex func(t *testing.T) store.Index) {
	ix, _ := loaded(t, newIndex)
	keys := []string{"PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
		"AccessionNumber", "StudyID", "StudyDescription", "ReferringPhysicianName", "ModalitiesInStudy",
		"SOPClassesInStudy", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances",
		"NumberOfPatientRelatedStudies", "PatientAge", "Modality", "OtherPatientIDsSequence"}
	id := ident(t, append(slices.Clone(keys), "StudyInstanceUID="+stSmithCT)...)
	// A private key is not returned.
	id.Set(dicom.Element{Tag: dicom.NewTag(0x0009, 0x0010), VR: dicom.LO, Value: []byte("ACME")})
	id.Set(dicom.Element{Tag: dicom.NewTag(0x0009, 0x1001), VR: dicom.LO, Value: []byte("xx")})
	res, _ := find(t, ix, &store.Query{Level: "STUDY", Identifier: id})
	if len(res) != 1 {
		t.Fatalf("%d results, want 1", len(res))
	}
	checkResponse(t, res[0], []wantElement{
		{"PatientName", dicom.PN, "Smith^John"},
		{"PatientID", dicom.LO, "PAT001"},
		{"PatientBirthDate", dicom.DA, "19700101"},
		{"PatientSex", dicom.CS, "M"},
		{"StudyInstanceUID", dicom.UI, stSmithCT},
		{"StudyDate", dicom.DA, "20240105"},
		{"StudyTime", dicom.TM, "083000"},
		{"AccessionNumber", dicom.SH, "ACC-1"},
		{"StudyID", dicom.SH, "S1"},
		{"StudyDescription", dicom.LO, "CT CHEST"},
		{"ReferringPhysicianName", dicom.PN, "House^Gregory"},
		{"ModalitiesInStudy", dicom.CS, `CT\SR`},
		{"SOPClassesInStudy", dicom.UI, ctImage + `\` + srBasic},
		{"NumberOfStudyRelatedSeries", dicom.IS, "2"},
		{"NumberOfStudyRelatedInstances", dicom.IS, "4"},
		{"NumberOfPatientRelatedStudies", dicom.IS, "2"},
		{"PatientAge", dicom.AS, ""},              // not supported: empty
		{"Modality", dicom.CS, ""},                // below the level: empty
		{"OtherPatientIDsSequence", dicom.SQ, ""}, // sequence: empty
		{"QueryRetrieveLevel", dicom.CS, "STUDY"}, // always
	})

	// Non-ASCII values: UTF-8, announced.
	res, _ = find(t, ix, &store.Query{Level: "STUDY", Identifier: ident(t, "StudyInstanceUID="+stMueller,
		"PatientName", "StudyDescription", "ReferringPhysicianName")})
	if len(res) != 1 {
		t.Fatalf("%d results, want 1", len(res))
	}
	checkResponse(t, res[0], []wantElement{
		{"SpecificCharacterSet", dicom.CS, "ISO_IR 192"},
		{"QueryRetrieveLevel", dicom.CS, "STUDY"},
		{"PatientName", dicom.PN, "Müller^Jürgen"},
		{"StudyInstanceUID", dicom.UI, stMueller},
		{"StudyDescription", dicom.LO, "Röntgen Thorax"},
		{"ReferringPhysicianName", dicom.PN, "Grün^Anna"},
	})

	// Only the requested keys, and the level.
	res, _ = find(t, ix, &store.Query{Level: "STUDY", Identifier: ident(t, "PatientID=PAT002")})
	if len(res) != 1 {
		t.Fatalf("%d results, want 1", len(res))
	}
	checkResponse(t, res[0], []wantElement{
		{"PatientID", dicom.LO, "PAT002"},
		{"QueryRetrieveLevel", dicom.CS, "STUDY"},
	})
}

func testQueryCharset(t *testing.T, newIndex func(t *testing.T) store.Index) {
	ix, _ := loaded(t, newIndex)
	for _, tc := range []struct {
		name    string
		charset string
		tag     dicom.Tag
		vr      dicom.VR
		raw     string
		want    []string
	}{
		{"Latin-1 name", "ISO_IR 100", dicom.TagPatientName, dicom.PN, "M\xfcller*", []string{stMueller}},
		{"Latin-1 upper-case name", "ISO_IR 100", dicom.TagPatientName, dicom.PN, "M\xdcLLER^J\xdcRGEN", []string{stMueller}},
		{"Latin-1 description", "ISO_IR 100", store.TagStudyDescription, dicom.LO, "R\xf6ntgen Thorax", []string{stMueller}},
		{"UTF-8 name", "ISO_IR 192", dicom.TagPatientName, dicom.PN, "müller^jürgen", []string{stMueller}},
		{"UTF-8 bytes read as Latin-1", "ISO_IR 100", dicom.TagPatientName, dicom.PN, "müller^jürgen", nil},
		{"Latin-1 bytes read as UTF-8", "ISO_IR 192", dicom.TagPatientName, dicom.PN, "M\xfcller*", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := ident(t, "StudyInstanceUID", "SpecificCharacterSet="+tc.charset)
			id.Set(dicom.NewBytes(tc.tag, tc.vr, []byte(tc.raw)))
			res, _ := find(t, ix, &store.Query{Level: "STUDY", Identifier: id})
			if got := values(res, dicom.TagStudyInstanceUID); !slices.Equal(got, append([]string{}, tc.want...)) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func testCounts(t *testing.T, newIndex func(t *testing.T) store.Index) {
	ix, _ := loaded(t, newIndex)
	res, _ := find(t, ix, &store.Query{Level: "PATIENT", Model: "PATIENT", Identifier: ident(t, "PatientID=PAT001",
		"PatientName", "NumberOfPatientRelatedStudies", "NumberOfPatientRelatedSeries", "NumberOfPatientRelatedInstances",
		"StudyDate")})
	if len(res) != 1 {
		t.Fatalf("%d patients, want 1", len(res))
	}
	checkResponse(t, res[0], []wantElement{
		{"PatientID", dicom.LO, "PAT001"},
		{"PatientName", dicom.PN, "Smith^John"},
		{"NumberOfPatientRelatedStudies", dicom.IS, "2"},
		{"NumberOfPatientRelatedSeries", dicom.IS, "3"},
		{"NumberOfPatientRelatedInstances", dicom.IS, "6"},
		{"StudyDate", dicom.DA, ""}, // below the level
		{"QueryRetrieveLevel", dicom.CS, "PATIENT"},
	})

	res, _ = find(t, ix, &store.Query{Level: "SERIES", Identifier: ident(t, "StudyInstanceUID="+stSmithCT,
		"SeriesInstanceUID", "Modality", "SeriesNumber", "SeriesDescription", "NumberOfSeriesRelatedInstances")})
	if len(res) != 2 {
		t.Fatalf("%d series, want 2", len(res))
	}
	slices.SortFunc(res, func(a, b *dicom.DataSet) int {
		return strings.Compare(a.String(dicom.TagSeriesInstanceUID), b.String(dicom.TagSeriesInstanceUID))
	})
	checkResponse(t, res[0], []wantElement{
		{"StudyInstanceUID", dicom.UI, stSmithCT},
		{"SeriesInstanceUID", dicom.UI, seSmithCT},
		{"Modality", dicom.CS, "CT"},
		{"SeriesNumber", dicom.IS, "1"},
		{"SeriesDescription", dicom.LO, "AXIAL"},
		{"NumberOfSeriesRelatedInstances", dicom.IS, "3"},
		{"QueryRetrieveLevel", dicom.CS, "SERIES"},
	})

	res, _ = find(t, ix, &store.Query{Level: "IMAGE", Identifier: ident(t, "SOPInstanceUID="+seSmithSR+".1",
		"SOPClassUID", "InstanceNumber", "AvailableTransferSyntaxUID", "Modality", "StudyDate")})
	if len(res) != 1 {
		t.Fatalf("%d instances, want 1", len(res))
	}
	checkResponse(t, res[0], []wantElement{
		{"SOPInstanceUID", dicom.UI, seSmithSR + ".1"},
		{"SOPClassUID", dicom.UI, srBasic},
		{"InstanceNumber", dicom.IS, "1"},
		{"AvailableTransferSyntaxUID", dicom.UI, explVR},
		{"Modality", dicom.CS, "SR"},
		{"StudyDate", dicom.DA, "20240105"},
		{"QueryRetrieveLevel", dicom.CS, "IMAGE"},
	})
}

func sopUIDs(insts []*store.Instance) []string {
	out := []string{}
	for _, in := range insts {
		out = append(out, in.SOPInstanceUID)
	}
	return out
}

func testRetrieve(t *testing.T, newIndex func(t *testing.T) store.Index) {
	ix, insts := loaded(t, newIndex)
	ctx := context.Background()
	var smithSOPs []string
	for _, in := range insts {
		if in.PatientID == "PAT001" {
			smithSOPs = append(smithSOPs, in.SOPInstanceUID)
		}
	}
	for _, tc := range []struct {
		name  string
		model string
		level string
		keys  []string
		want  []string // in the order added
	}{
		{"patient", "PATIENT", "PATIENT", []string{"PatientID=PAT001"}, smithSOPs},
		{"patient wildcard is literal", "PATIENT", "PATIENT", []string{"PatientID=PAT*"}, nil},
		{"patient star is literal", "PATIENT", "PATIENT", []string{"PatientID=*"}, nil},
		{"patient injection", "PATIENT", "PATIENT", []string{"PatientID=PAT001' OR '1'='1"}, nil},
		{"study", "", "STUDY", []string{"StudyInstanceUID=" + stSmithMR}, []string{stSmithMR + ".1.1", stSmithMR + ".1.2"}},
		{"study list", "", "STUDY", []string{`StudyInstanceUID=` + stMueller + `\` + stSmithMR},
			[]string{stSmithMR + ".1.1", stSmithMR + ".1.2", stMueller + ".1.1"}},
		{"study of another patient", "PATIENT", "STUDY", []string{"PatientID=PAT002", "StudyInstanceUID=" + stSmithMR}, nil},
		{"study of its patient", "PATIENT", "STUDY", []string{"PatientID=PAT001", "StudyInstanceUID=" + stSmithMR},
			[]string{stSmithMR + ".1.1", stSmithMR + ".1.2"}},
		{"study star is literal", "", "STUDY", []string{"StudyInstanceUID=*"}, nil},
		{"series", "", "SERIES", []string{"StudyInstanceUID=" + stSmithCT, "SeriesInstanceUID=" + seSmithSR}, []string{seSmithSR + ".1"}},
		{"series of another study", "", "SERIES", []string{"StudyInstanceUID=" + stSmithMR, "SeriesInstanceUID=" + seSmithSR}, nil},
		{"series alone", "", "SERIES", []string{"SeriesInstanceUID=" + seSmithCT}, []string{seSmithCT + ".1", seSmithCT + ".2", seSmithCT + ".3"}},
		{"images", "", "IMAGE", []string{`SOPInstanceUID=` + seSmithSR + `.1\` + seSmithCT + `.2\1.2.3`}, []string{seSmithCT + ".2", seSmithSR + ".1"}},
		{"other keys ignored", "", "STUDY", []string{"StudyInstanceUID=" + stMueller, "PatientName=Nobody", "StudyDate=19000101"}, []string{stMueller + ".1.1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ix.Instances(ctx, &store.Query{Level: tc.level, Model: tc.model, Identifier: ident(t, tc.keys...)})
			if err != nil {
				t.Fatalf("Instances: %v", err)
			}
			if g := sopUIDs(got); !slices.Equal(g, append([]string{}, tc.want...)) {
				t.Errorf("got %q\nwant %q", g, tc.want)
			}
			for _, in := range got {
				full, err := ix.Get(ctx, in.SOPInstanceUID)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(in, full) {
					t.Errorf("Instances gave %+v, Get %+v", *in, *full)
				}
			}
		})
	}
	for _, tc := range []struct {
		name  string
		model string
		level string
		keys  []string
	}{
		{"no unique key", "", "STUDY", []string{"PatientID=PAT001"}},
		{"empty unique key", "", "STUDY", []string{"StudyInstanceUID="}},
		{"empty list", "", "STUDY", []string{`StudyInstanceUID=\`}},
		{"key below the level", "", "STUDY", []string{"StudyInstanceUID=" + stSmithCT, "SeriesInstanceUID=" + seSmithCT}},
		{"patient level in study root", "", "PATIENT", []string{"PatientID=PAT001"}},
		{"bad level", "", "EVERYTHING", []string{"PatientID=PAT001"}},
		{"no level", "", "", []string{"PatientID=PAT001"}},
	} {
		_, err := ix.Instances(ctx, &store.Query{Level: tc.level, Model: tc.model, Identifier: ident(t, tc.keys...)})
		if !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: Instances = %v, want ErrInvalid", tc.name, err)
		}
	}
}
