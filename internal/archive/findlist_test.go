package archive_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/dicomshield/dicomshield/internal/dicomtest"
)

// TestFindListOfEmptyValues: findscu sends "\" (a list of two empty
// values) in a UID key and in ModalitiesInStudy. It is refused with A900
// and no match, where it once matched every study; a real UID, and the
// same UID with an empty item after it, still match.
func TestFindListOfEmptyValues(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	dicomtest.RequireDCMTK(t, "findscu")
	dir := filepath.Join(t.TempDir(), "data")
	s := startServer(t, dir)
	b := addPeer(t, dir, "VIEWER", "--allow", "store,find", "--plaintext")
	cl := mustDial(t, s.TLSAddr, b.AE, b.TLS(t))
	var studies []string
	for i := 1; i <= 2; i++ {
		in := makeInstance(t, instanceSpec{InstanceNumber: i, Patient: "PAT-LIST"})
		mustStore(t, cl, in)
		studies = append(studies, in.Study)
	}
	tests := []struct {
		name    string
		key     string
		matches int
		final   string
	}{
		{"one study", "StudyInstanceUID=" + studies[0], 1, "Received Final Find Response (Success)"},
		{"study and an empty item", "StudyInstanceUID=" + studies[0] + `\`, 1, "Received Final Find Response (Success)"},
		{"both studies", "StudyInstanceUID=" + studies[0] + `\` + studies[1], 2, "Received Final Find Response (Success)"},
		{"lone backslash UID", `StudyInstanceUID=\`, 0, "Received Final Find Response (Error: DataSetDoesNotMatchSOPClass)"},
		{"backslashes UID", `StudyInstanceUID=\\`, 0, "Received Final Find Response (Error: DataSetDoesNotMatchSOPClass)"},
		{"lone backslash modalities", `ModalitiesInStudy=\`, 0, "Received Final Find Response (Error: DataSetDoesNotMatchSOPClass)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := dicomtest.RunSCU(t, "findscu", "-v", "-S", "-aet", b.AE, "-aec", archiveAE,
				"-k", "QueryRetrieveLevel=STUDY", "-k", "PatientID=PAT-LIST", "-k", tc.key, "127.0.0.1", port(t, s.PlainAddr))
			out := r.Describe()
			if n := strings.Count(out, "Find Response:"); n != tc.matches || !strings.Contains(out, tc.final) {
				t.Errorf("%d matches, want %d and %q:\n%s", n, tc.matches, tc.final, out)
			}
		})
	}
}
