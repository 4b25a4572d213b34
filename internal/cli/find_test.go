package cli

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/dicomtest"
)

func studyMatch(pid, name, date, uid string) *dicom.DataSet {
	ds := &dicom.DataSet{}
	ds.Set(dicom.NewText(dicom.TagSpecificCharacterSet, dicom.CS, "ISO_IR 100"))
	ds.Set(dicom.NewText(dicom.NewTag(0x0008, 0x0020), dicom.DA, date))
	ds.Set(dicom.NewText(tagQueryRetrieveLevel, dicom.CS, "STUDY"))
	ds.Set(dicom.NewText(dicom.TagPatientName, dicom.PN, name))
	ds.Set(dicom.NewText(dicom.TagPatientID, dicom.LO, pid))
	ds.Set(dicom.NewText(dicom.TagStudyInstanceUID, dicom.UI, uid))
	return ds
}

func TestFind(t *testing.T) {
	pki := dicomtest.NewPKI(t, "MODALITY")
	arch := newTestArchive()
	arch.matches = []*dicom.DataSet{
		studyMatch("PAT1", "M\xfcller^Anna", "20240105", "1.2.826.0.1.3680043.10.7.1"),
		studyMatch("PAT2", "Doe^John", "20240612", "1.2.826.0.1.3680043.10.7.2"),
		studyMatch("PAT3", "Evil\x1b]0;pwned\x07^Name", "20241231", "1.2.826.0.1.3680043.10.7.3"),
	}
	addr := startServer(t, arch.server(nil))
	secure := startServer(t, arch.server(pki.Server))
	query := []string{"--level", "STUDY", "-k", "0010,0020=PAT*", "-k", "PatientName", "-k", "StudyDate=20240101-20241231"}

	t.Run("table", func(t *testing.T) {
		out, _ := cliCase{args: append([]string{"find", "--aec", "ARCHIVE", addr}, query...), code: 0,
			stdout: []string{"PatientID  PatientName", "StudyDate", "PAT1       M\u00fcller^Anna", "20240105", "PAT2       Doe^John", "0;pwned"},
			stderr: []string{"3 matches"}}.check(t)
		if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 4 {
			t.Errorf("%d lines, want a header and 3 rows:\n%s", len(lines), out)
		}
		if strings.ContainsAny(out, "\x1b\x07") {
			t.Errorf("control characters from the peer reached the terminal: %q", out)
		}
		arch.mu.Lock()
		id := arch.queries[len(arch.queries)-1]
		arch.mu.Unlock()
		for tag, want := range map[dicom.Tag]string{
			tagQueryRetrieveLevel:        "STUDY",
			dicom.TagPatientID:           "PAT*",
			dicom.TagPatientName:         "",
			dicom.NewTag(0x0008, 0x0020): "20240101-20241231",
		} {
			if e := id.Get(tag); e == nil || id.String(tag) != want {
				t.Errorf("identifier %s = %q (present %v), want %q", tag, id.String(tag), e != nil, want)
			}
		}
		if e := id.Get(dicom.TagPatientName); e == nil || e.VR != dicom.PN {
			t.Errorf("PatientName sent as %+v", e)
		}
	})

	t.Run("json over TLS", func(t *testing.T) {
		args := append([]string{"find", "--json", "--aec", "ARCHIVE", "--tls", "--ca", pki.CAFile, "--cert", pki.ClientCert, "--key", pki.ClientKey, secure}, query...)
		out, _ := cliCase{args: args, code: 0, stderr: []string{"3 matches"}}.check(t)
		var got []map[string]struct {
			VR    string
			Value []any
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("not a JSON array: %v\n%s", err, out)
		}
		if len(got) != 3 || got[1]["00100020"].Value[0] != "PAT2" || got[0]["00100010"].VR != "PN" || got[2]["0020000D"].Value[0] != "1.2.826.0.1.3680043.10.7.3" {
			t.Errorf("unexpected JSON: %s", out)
		}
	})

	t.Run("no matches json", func(t *testing.T) {
		empty := newTestArchive()
		a := startServer(t, empty.server(nil))
		out, _ := cliCase{args: []string{"find", "--json", "--aec", "ARCHIVE", a}, code: 0, stderr: []string{"0 matches"}}.check(t)
		if strings.TrimSpace(out) != "[]" {
			t.Errorf("got %q, want []", out)
		}
	})

	t.Run("default column", func(t *testing.T) {
		cliCase{args: []string{"find", "--aec", "ARCHIVE", addr}, code: 0,
			stdout: []string{"StudyInstanceUID\n1.2.826.0.1.3680043.10.7.1\n"}}.check(t)
	})

	for _, tc := range []cliCase{
		{name: "unknown keyword", args: []string{"find", addr, "-k", "PatientNom=X"}, code: 1,
			stderr: []string{`"PatientNom" is neither a tag (gggg,eeee) nor a dictionary keyword`}},
		{name: "private tag", args: []string{"find", addr, "-k", "0009,1001=X"}, code: 1,
			stderr: []string{"not in the data dictionary"}},
		{name: "meta tag", args: []string{"find", addr, "-k", "0002,0010=X"}, code: 1,
			stderr: []string{"not a data set element"}},
		{name: "bad level", args: []string{"find", addr, "--level", "FRAME"}, code: 1,
			stderr: []string{"use PATIENT, STUDY, SERIES or IMAGE"}},
		{name: "patient level in study root", args: []string{"find", addr, "--level", "patient"}, code: 1,
			stderr: []string{"use --model patient"}},
		{name: "bad model", args: []string{"find", addr, "--model", "worklist"}, code: 1,
			stderr: []string{"use study or patient"}},
		{name: "value for a sequence", args: []string{"find", addr, "-k", "ReferencedStudySequence=x"}, code: 1,
			stderr: []string{"is a sequence"}},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.check(t) })
	}
}

// TestFindMax checks that --max cancels the query with C-CANCEL.
func TestFindMax(t *testing.T) {
	arch := newTestArchive()
	for i := range 200 {
		arch.matches = append(arch.matches, studyMatch(fmt.Sprintf("PAT%d", i), "Doe^John", "20240101", fmt.Sprintf("1.2.3.%d", i+1)))
	}
	arch.matchDelay = 5 * time.Millisecond
	addr := startServer(t, arch.server(nil))
	out, _ := cliCase{args: []string{"find", "--aec", "ARCHIVE", addr, "-k", "PatientID", "--max", "2"}, code: 0,
		stdout: []string{"PatientID\nPAT0\nPAT1\n"},
		stderr: []string{"2 matches shown; query cancelled at --max 2"}}.check(t)
	if strings.Contains(out, "PAT2") {
		t.Errorf("more than 2 matches printed:\n%s", out)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		arch.mu.Lock()
		cancelled, emitted := arch.cancelled, arch.emitted
		arch.mu.Unlock()
		if cancelled {
			if emitted >= 200 {
				t.Errorf("the SCP emitted all %d matches", emitted)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the SCP never saw the C-CANCEL (%d matches emitted)", emitted)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestParseKey(t *testing.T) {
	for _, tc := range []struct {
		arg   string
		tag   dicom.Tag
		vr    dicom.VR
		value []byte
	}{
		{"PatientID=PAT*", dicom.TagPatientID, dicom.LO, []byte("PAT*")},
		{"0010,0010", dicom.TagPatientName, dicom.PN, nil},
		{"(0008,0020)=20240101-20241231", dicom.NewTag(0x0008, 0x0020), dicom.DA, []byte("20240101-20241231 ")},
		{"StudyInstanceUID=1.2.3", dicom.TagStudyInstanceUID, dicom.UI, []byte("1.2.3\x00")},
		{"00201208", dicom.NewTag(0x0020, 0x1208), dicom.IS, nil},
		{"Rows=512", dicom.NewTag(0x0028, 0x0010), dicom.US, []byte{0, 2}},
		{"PatientName=Doe=Jane", dicom.TagPatientName, dicom.PN, []byte("Doe=Jane")},
	} {
		e, err := parseKey(tc.arg)
		if err != nil || e.Tag != tc.tag || e.VR != tc.vr || string(e.Value) != string(tc.value) {
			t.Errorf("parseKey(%q) = %s %s %q, %v", tc.arg, e.Tag, e.VR, e.Value, err)
		}
	}
	for _, bad := range []string{"Rows=-1", "Rows=x", "NoSuchKeyword", "0010,0020x", "PixelData=1"} {
		if _, err := parseKey(bad); err == nil {
			t.Errorf("parseKey(%q) accepted", bad)
		}
	}
	q := &queryOptions{level: "study", keys: []string{"PatientName=M\u00fcller*"}}
	id, cols, err := q.identifier()
	if err != nil || len(cols) != 1 || id.String(dicom.TagSpecificCharacterSet) != "ISO_IR 192" || id.String(tagQueryRetrieveLevel) != "STUDY" {
		t.Errorf("identifier %v, %v, %v", id, cols, err)
	}
}
