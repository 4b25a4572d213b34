package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/dicomshield/dicomshield/internal/store"
)

// SOP classes of the fixture.
const (
	ctImage = "1.2.840.10008.5.1.4.1.1.2"
	mrImage = "1.2.840.10008.5.1.4.1.1.4"
	crImage = "1.2.840.10008.5.1.4.1.1.1"
	srBasic = "1.2.840.10008.5.1.4.1.1.88.11"
	scImage = "1.2.840.10008.5.1.4.1.1.7"
	explVR  = "1.2.840.10008.1.2.1"
)

// Study Instance UIDs of the fixture, named for the tests.
const (
	stSmithCT   = "1.2.826.0.1.1"
	stSmithMR   = "1.2.826.0.1.2"
	stMueller   = "1.2.826.0.2.1"
	stPercent   = "1.2.826.0.3.1"
	stUnder     = "1.2.826.0.4.1"
	stPlain     = "1.2.826.0.5.1"
	stBracket   = "1.2.826.0.6.1"
	stInjection = "1.2.826.0.7.1"
)

// allStudies in the order they are added.
var allStudies = []string{stSmithCT, stSmithMR, stMueller, stPercent, stUnder, stPlain, stBracket, stInjection}

// fixtureTime is the ReceivedAt of the fixture's instances (plus their
// index in nanoseconds).
var fixtureTime = time.Date(2024, 3, 1, 12, 0, 0, 123456789, time.UTC)

type patientSpec struct{ id, name, birth, sex string }

type studySpec struct {
	patient                                              patientSpec
	uid, date, time, accession, studyID, desc, referring string
	series                                               []seriesSpec
}

type seriesSpec struct {
	uid, modality, number, desc, sopClass string
	instances                             int
}

var (
	smith     = patientSpec{"PAT001", "Smith^John", "19700101", "M"}
	mueller   = patientSpec{"PAT002", "Müller^Jürgen", "19851224", "M"}
	percent   = patientSpec{"A%B", "O'Brien^Pat", "19900101", "F"}
	under     = patientSpec{"A_B", "Under^Score", "19910101", "O"}
	plain     = patientSpec{"AxB", "Plain^Name", "19920101", "F"}
	bracket   = patientSpec{"A[1]B", "Bracket^Test", "19930101", "M"}
	injection = patientSpec{"1234", "Injection^Target", "19940101", "F"}
)

// fixtureStudies is the archive most index tests run on: names, IDs and
// descriptions that are SQL and pattern syntax, non-ASCII names, an empty
// accession number, studies of several series.
var fixtureStudies = []studySpec{
	{smith, stSmithCT, "20240105", "083000", "ACC-1", "S1", "CT CHEST", "House^Gregory", []seriesSpec{
		{stSmithCT + ".1", "CT", "1", "AXIAL", ctImage, 3},
		{stSmithCT + ".2", "SR", "2", "REPORT", srBasic, 1},
	}},
	{smith, stSmithMR, "20230715", "170000", "", "S2", "MR HEAD", "", []seriesSpec{
		{stSmithMR + ".1", "MR", "1", "T1", mrImage, 2},
	}},
	{mueller, stMueller, "20240210", "0930", "ACC-2", "S3", "Röntgen Thorax", "Grün^Anna", []seriesSpec{
		{stMueller + ".1", "CR", "1", "PA", crImage, 1},
	}},
	{percent, stPercent, "20240301", "101010", "A_1", "S4", "100% done", "", []seriesSpec{
		{stPercent + ".1", "OT", "1", "", scImage, 1},
	}},
	{under, stUnder, "20240302", "111111", "A%1", "S5", "x_y", "", []seriesSpec{
		{stUnder + ".1", "OT", "1", "", scImage, 1},
	}},
	{plain, stPlain, "20240303", "121212", "AXY", "S6", `back\slash`, "", []seriesSpec{
		{stPlain + ".1", "OT", "1", "", scImage, 1},
	}},
	{bracket, stBracket, "20240304", "131313", "A[1]", "S7", "[brackets]", "", []seriesSpec{
		{stBracket + ".1", "OT", "1", "", scImage, 1},
	}},
	{injection, stInjection, "20240305", "141414", "1234", "S8", "x'); DROP TABLE patient;--", "", []seriesSpec{
		{stInjection + ".1", "OT", "1", "", scImage, 1},
	}},
}

// fixtureInstances expands fixtureStudies, in the order they are added.
// SOP Instance UIDs are "<series UID>.<n>", n from 1; every instance has its
// own blob key except the two last CT images of stSmithCT, which share one
// (identical content is stored once).
func fixtureInstances() []*store.Instance {
	var out []*store.Instance
	for _, st := range fixtureStudies {
		for _, se := range st.series {
			for n := 1; n <= se.instances; n++ {
				sop := fmt.Sprintf("%s.%d", se.uid, n)
				key := blobKeyFor(sop)
				if se.uid == stSmithCT+".1" && n == 3 {
					key = blobKeyFor(stSmithCT + ".1.2")
				}
				out = append(out, &store.Instance{
					PatientID: st.patient.id, PatientName: st.patient.name,
					PatientBirthDate: st.patient.birth, PatientSex: st.patient.sex,
					StudyInstanceUID: st.uid, StudyDate: st.date, StudyTime: st.time,
					AccessionNumber: st.accession, StudyID: st.studyID, StudyDescription: st.desc,
					ReferringPhysicianName: st.referring,
					SeriesInstanceUID:      se.uid, Modality: se.modality, SeriesNumber: se.number,
					SeriesDescription: se.desc,
					SOPInstanceUID:    sop, SOPClassUID: se.sopClass, InstanceNumber: fmt.Sprint(n),
					TransferSyntaxUID: explVR, BlobKey: key, Size: int64(1000 + len(out)),
					Sender: "MODALITY1", ReceivedAt: fixtureTime.Add(time.Duration(len(out))),
				})
			}
		}
	}
	return out
}

// blobKeyFor makes a distinct, well-formed blob key for a SOP instance.
func blobKeyFor(sop string) string {
	return hashOf([]byte(sop))
}

// loaded returns a new index holding the fixture.
func loaded(t *testing.T, newIndex func(t *testing.T) store.Index) (store.Index, []*store.Instance) {
	t.Helper()
	ix := newIndex(t)
	insts := fixtureInstances()
	for _, in := range insts {
		if err := ix.Add(context.Background(), in, store.Guard{}); err != nil {
			t.Fatalf("Add(%s): %v", in.SOPInstanceUID, err)
		}
	}
	return ix, insts
}
