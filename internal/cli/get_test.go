package cli

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/dicomtest"
	"github.com/dicomshield/dicomshield/internal/dimse"
)

// fillArchive stores instances of several classes in both uncompressed
// syntaxes in arch and returns their data set bytes by SOP Instance UID.
func fillArchive(t *testing.T, arch *testArchive) map[string][]byte {
	want := map[string][]byte{}
	for _, in := range []struct {
		class, inst string
		ts          dicom.TransferSyntax
	}{
		{ctImage, "1.2.826.0.1.3680043.10.8.1", dicom.ExplicitVRLittleEndian},
		{ctImage, "1.2.826.0.1.3680043.10.8.2", dicom.ImplicitVRLittleEndian},
		{mrImage, "1.2.826.0.1.3680043.10.8.3", dicom.ExplicitVRLittleEndian},
		{comprehensSR, "1.2.826.0.1.3680043.10.8.4", dicom.ImplicitVRLittleEndian},
	} {
		_, data := part10(t, testInstance(in.class, in.inst, 70000), in.ts)
		arch.put(in.class, in.inst, in.ts.UID, data)
		want[in.inst] = data
	}
	return want
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

func checkRetrieved(t *testing.T, dir string, arch *testArchive, want map[string][]byte) {
	t.Helper()
	for inst, data := range want {
		path := filepath.Join(dir, inst+".dcm")
		f, err := dicom.ReadFile(path, nil)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		_, ts, _ := arch.get(inst)
		if f.TransferSyntax.UID != ts || f.Meta.String(dicom.TagMediaStorageSOPInst) != inst ||
			f.Meta.String(dicom.TagMediaStorageSOPClass) != f.DataSet.String(dicom.TagSOPClassUID) ||
			f.Meta.String(dicom.TagSourceAETitle) != "ARCHIVE" {
			t.Errorf("%s: meta information %+v in %s", path, f.Meta, f.TransferSyntax.Name)
		}
		again, err := dicom.MarshalDataSet(&f.DataSet, f.TransferSyntax)
		if err != nil || !bytes.Equal(again, data) {
			t.Errorf("%s: data set read back differs from the one the SCP holds (%v)", path, err)
		}
		raw, _ := os.ReadFile(path)
		if !bytes.HasSuffix(raw, data) {
			t.Errorf("%s: the data set was not stored as received", path)
		}
		if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", path, st.Mode())
		}
	}
}

func TestGet(t *testing.T) {
	pki := dicomtest.NewPKI(t, "MODALITY")
	arch := newTestArchive()
	want := fillArchive(t, arch)
	addr := startServer(t, arch.server(nil))
	secure := startServer(t, arch.server(pki.Server))

	for _, tc := range []struct {
		name  string
		addr  string
		flags []string
	}{
		{"plain", addr, nil},
		{"tls", secure, []string{"--tls", "--ca", pki.CAFile, "--cert", pki.ClientCert, "--key", pki.ClientKey}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "new", "folder")
			args := append([]string{"get", "--aec", "ARCHIVE", tc.addr, "--level", "STUDY", "-k", "StudyInstanceUID=1.2.3", "--out", out}, tc.flags...)
			cliCase{args: args, code: 0,
				stdout: []string{"C-GET from ARCHIVE@" + tc.addr + ": 4 completed, 0 failed, 0 warning; 4 files (0.3 MB) written to " + out}}.check(t)
			checkRetrieved(t, out, arch, want)
			if names := listDir(t, out); len(names) != 4 {
				t.Errorf("files in --out: %v", names)
			}
			arch.mu.Lock()
			id := arch.queries[len(arch.queries)-1]
			arch.mu.Unlock()
			if id.String(tagQueryRetrieveLevel) != "STUDY" || id.String(dicom.TagStudyInstanceUID) != "1.2.3" {
				t.Errorf("identifier: %+v", id)
			}
		})
	}
}

// TestGetRefusesUnsafeUIDs has the peer send C-GET sub-operations whose
// SOP Instance UIDs are paths: they must be refused and nothing written
// outside --out.
func TestGetRefusesUnsafeUIDs(t *testing.T) {
	arch := newTestArchive()
	want := fillArchive(t, arch)
	_, evil := part10(t, testInstance(ctImage, "1.2.3.666", 10), dicom.ExplicitVRLittleEndian)
	for _, uid := range []string{"../../evil", "..", "1.2.3/../../../evil2", "/tmp/evil3", `..\..\evil4`, "1.2.3\x00/evil5", ".hidden"} {
		arch.extra = append(arch.extra, dimse.Instance{SOPClassUID: ctImage, SOPInstanceUID: uid, TransferSyntax: dicom.ExplicitVRLittleEndianUID,
			Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(evil)), nil }})
	}
	addr := startServer(t, arch.server(nil))
	top := t.TempDir()
	out := filepath.Join(top, "a", "b", "out")
	cliCase{args: []string{"get", "--aec", "ARCHIVE", addr, "-k", "StudyInstanceUID=1.2.3", "--out", out}, code: 1,
		stdout: []string{"4 completed, 7 failed, 0 warning; 4 files"},
		stderr: []string{`refused an instance: its SOP Instance UID "../../evil"`, "only digits and dots are allowed", "7 instances not retrieved (7 refused here)"}}.check(t)
	checkRetrieved(t, out, arch, want)
	var found []string
	filepath.Walk(top, func(path string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			found = append(found, path)
		}
		return nil
	})
	if len(found) != 4 {
		t.Errorf("files written: %v", found)
	}
	for _, p := range []string{"/tmp/evil3", filepath.Join(top, "evil"), filepath.Join(top, "a", "evil")} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s was written", p)
		}
	}
}

func TestReceiverWrite(t *testing.T) {
	dir := t.TempDir()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	rc := &receiver{root: root, sourceAE: "PEER", stderr: io.Discard}
	_, data := part10(t, testInstance(ctImage, "1.2.3.4", 10), dicom.ImplicitVRLittleEndian)
	// A data set cut by a broken association leaves no file behind.
	st := rc.store(&dimse.Request{TransferSyntax: dicom.ImplicitVRLittleEndianUID,
		Command: &dimse.Command{AffectedSOPClass: ctImage, AffectedSOPInstance: "1.2.3.4"}},
		io.MultiReader(bytes.NewReader(data[:20]), errReader{io.ErrUnexpectedEOF}))
	if st.Code == dimse.StatusSuccess {
		t.Fatal("incomplete data set accepted")
	}
	if names := listDir(t, dir); len(names) != 0 {
		t.Fatalf("left behind: %v", names)
	}
	st = rc.store(&dimse.Request{TransferSyntax: dicom.ImplicitVRLittleEndianUID,
		Command: &dimse.Command{AffectedSOPClass: ctImage, AffectedSOPInstance: "1.2.3.4"}}, bytes.NewReader(data))
	if st.Code != dimse.StatusSuccess {
		t.Fatalf("status %+v", st)
	}
	f, err := dicom.ReadFile(filepath.Join(dir, "1.2.3.4.dcm"), nil)
	if err != nil || f.DataSet.String(dicom.TagSOPInstanceUID) != "1.2.3.4" || f.Meta.String(dicom.TagSourceAETitle) != "PEER" {
		t.Fatalf("read back: %v", err)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
