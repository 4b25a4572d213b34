package prove

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/dimse"
	"github.com/dicomshield/dicomshield/internal/scan"
	"github.com/dicomshield/dicomshield/internal/ul"
)

func TestPresent(t *testing.T) {
	for _, tc := range []struct {
		name  string
		value string
		want  bool
	}{
		{"absent", "\x01", false}, // replaced by a nil element below
		{"empty", "", false},
		{"padding", "  ", false},
		{"nul padding", "\x00\x00", false},
		{"empty person name", "^^^^", false},
		{"empty name groups", "^=^", false},
		{"empty list", `\ \`, false},
		{"name", "DOE^J", true},
		{"date", "19700101", true},
		{"one letter", " X ", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e *dicom.Element
			if tc.name != "absent" {
				el := dicom.NewText(dicom.TagPatientName, dicom.PN, tc.value)
				e = &el
			}
			if got := present(e); got != tc.want {
				t.Errorf("present(%q) = %v, want %v", tc.value, got, tc.want)
			}
		})
	}
}

func TestVerdict(t *testing.T) {
	status := func(s uint16) error { return &dimse.StatusError{Op: "C-GET", Status: s} }
	for _, tc := range []struct {
		name  string
		sub   dimse.SubOps
		err   error
		tried bool
		want  string
	}{
		{"a sub-operation arrived", dimse.SubOps{}, status(dimse.StatusCancel), true, scan.ExposureOpen},
		{"sub-operations reported", dimse.SubOps{Failed: 1}, status(dimse.StatusOutOfResourcesSubOps), false, scan.ExposureOpen},
		{"completed", dimse.SubOps{Completed: 3}, nil, false, scan.ExposureOpen},
		{"unable to perform sub-operations", dimse.SubOps{}, status(dimse.StatusOutOfResourcesSubOps), false, scan.ExposureOpen},
		{"nothing matched", dimse.SubOps{}, nil, false, scan.ExposureUnproven},
		{"destination unknown", dimse.SubOps{}, status(dimse.StatusMoveDestinationUnknown), false, scan.ExposureClosed},
		{"not authorized", dimse.SubOps{}, status(dimse.StatusNotAuthorized), false, scan.ExposureClosed},
		{"no context", dimse.SubOps{}, dimse.ErrNoContext, false, scan.ExposureClosed},
		{"cancelled by someone else", dimse.SubOps{}, status(dimse.StatusCancel), false, scan.ExposureUnproven},
		{"transport", dimse.SubOps{}, errors.New("connection reset"), false, scan.ExposureUnproven},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := verdict(tc.sub, tc.err, tc.tried); got != tc.want {
				t.Errorf("verdict = %q, want %q", got, tc.want)
			}
		})
	}
	if got := verdictDial(&ul.RejectedError{}); got != scan.ExposureClosed {
		t.Errorf("verdictDial(rejected) = %q, want closed", got)
	}
	if got := verdictDial(errors.New("i/o timeout")); got != scan.ExposureUnproven {
		t.Errorf("verdictDial(timeout) = %q, want unproven", got)
	}
}

func TestNewUID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		u := newUID()
		if len(u) > 64 || !strings.HasPrefix(u, ScannerUIDRoot+".") || seen[u] {
			t.Fatalf("newUID() = %q (%d chars, seen %v)", u, len(u), seen[u])
		}
		for _, arc := range strings.Split(u, ".") {
			if arc == "" || (len(arc) > 1 && arc[0] == '0') {
				t.Fatalf("newUID() = %q: bad arc %q", u, arc)
			}
		}
		seen[u] = true
	}
	if ae := randomAE(); len(ae) != 16 || strings.Trim(ae, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
		t.Fatalf("randomAE() = %q", ae)
	}
}

// TestSyntheticLabelled: the write-test instance says what it is.
func TestSyntheticLabelled(t *testing.T) {
	s := synthetic{Study: newUID(), Series: newUID(), SOP: newUID(), Number: 1, Comment: "c", Shade: 1}
	ds := s.dataSet(time.Now())
	for _, c := range []struct {
		tag  dicom.Tag
		want string
	}{
		{dicom.TagPatientName, TestPatientName},
		{dicom.TagPatientID, TestPatientID},
		{tagStudyDescription, TestDescription},
		{tagSeriesDescription, TestDescription},
		{dicom.TagSOPClassUID, secondaryCapture},
	} {
		if got := ds.String(c.tag); got != c.want {
			t.Errorf("%v = %q, want %q", c.tag, got, c.want)
		}
	}
	for _, tag := range []dicom.Tag{dicom.TagStudyInstanceUID, dicom.TagSeriesInstanceUID, dicom.TagSOPInstanceUID} {
		if !strings.HasPrefix(ds.String(tag), ScannerUIDRoot) {
			t.Errorf("%v = %q: not under the scanner's root", tag, ds.String(tag))
		}
	}
	if _, err := dicom.MarshalDataSet(ds, dicom.ExplicitVRLittleEndian); err != nil {
		t.Fatal(err)
	}
}

func TestApply(t *testing.T) {
	for _, tc := range []struct {
		name            string
		proof           *scan.Proof
		write           *scan.WriteTest
		query, retrieve string
		findings        []string
	}{
		{"records and get",
			&scan.Proof{Records: map[string]int{"PATIENT": 4, "STUDY": 7}, Fields: map[string]bool{"PatientName": true, "PatientAddress": false},
				Get: "open", Move: "open", MoveAnyDest: "closed", UserIdentity: IdentityIgnored},
			nil, "open", "open", []string{"DS-QUERY-OPEN", scan.FindingIdentityIgnored}},
		{"refused everywhere",
			&scan.Proof{Records: map[string]int{"PATIENT": -1, "STUDY": -1}, Get: "closed", Move: "closed", MoveAnyDest: "closed", UserIdentity: IdentityAccepted},
			&scan.WriteTest{Append: WriteUntested, Overwrite: WriteUntested, Detail: noAssociation}, "closed", "closed", nil},
		{"answered empty, move anywhere",
			&scan.Proof{Records: map[string]int{"PATIENT": -1, "STUDY": 0}, Get: "unproven", Move: "open", MoveAnyDest: "open"},
			nil, "open", "open", []string{scan.FindingMoveAnyDest}},
		{"storage only with tampering",
			&scan.Proof{Records: map[string]int{"PATIENT": -1, "STUDY": -1}, Get: "closed", Move: "closed", MoveAnyDest: "closed"},
			&scan.WriteTest{Stored: true, Append: WriteAccepted, Overwrite: WriteAccepted}, "closed", "closed",
			[]string{scan.FindingStoreOpen, scan.FindingWriteAppend, scan.FindingWriteOverwrite}},
		{"get unsettled keeps the engine's verdict, store refused",
			&scan.Proof{Records: map[string]int{"PATIENT": -1, "STUDY": -1}, Get: "unproven", Move: "closed", MoveAnyDest: "closed"},
			&scan.WriteTest{Append: WriteUntested, Overwrite: WriteUntested, Detail: storeRefused + "refused: not authorized (0x0124)"},
			"closed", "unproven", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &scan.Result{Proof: tc.proof, WriteTest: tc.write,
				Exposure: scan.Exposure{Query: scan.ExposureUnproven, Retrieve: scan.ExposureUnproven, Store: scan.ExposureUnproven}}
			Apply(r)
			Apply(r) // idempotent: findings replaced, not repeated
			store := scan.ExposureUnproven
			if tc.write != nil {
				store = scan.ExposureClosed
				if tc.write.Stored {
					store = scan.ExposureOpen
				}
			}
			if r.Exposure.Store != store {
				t.Errorf("store exposure %s, want %s", r.Exposure.Store, store)
			}
			if r.Exposure.Query != tc.query || r.Exposure.Retrieve != tc.retrieve {
				t.Errorf("exposure %+v, want query %s retrieve %s", r.Exposure, tc.query, tc.retrieve)
			}
			var ids []string
			for _, f := range r.Findings {
				ids = append(ids, f.ID)
			}
			if strings.Join(ids, ",") != strings.Join(tc.findings, ",") {
				t.Errorf("findings %v, want %v", ids, tc.findings)
			}
		})
	}
}
