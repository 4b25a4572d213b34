package archive_test

import (
	"bytes"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/dicomtest"
	"github.com/dicomshield/dicomshield/internal/dimse"
)

// TestRetrieveTranscodes: instances held in Explicit VR Little and Big
// Endian, deflated and JPEG Baseline are retrieved by DCMTK peers that take
// Implicit VR Little Endian only: getscu +xi (its storage contexts) and
// movescu to a storescp +xi. The native ones arrive re-encoded in Implicit
// VR Little Endian with the same elements and values, and dcmdump reads
// them without a warning; the JPEG one cannot be decompressed, so its
// sub-operation alone fails and the retrieval ends in warning B000 with
// its UID in the Failed SOP Instance UID List.
func TestRetrieveTranscodes(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	dicomtest.RequireDCMTK(t, "getscu", "movescu", "storescp", "dcmdump")
	dir := filepath.Join(t.TempDir(), "data")
	s := startServer(t, dir)
	plainPort := port(t, s.PlainAddr)
	mod := addPeer(t, dir, "MODALITY1", "--allow", "echo,store")
	addPeer(t, dir, "VIEWER", "--allow", "echo,find,get,move", "--plaintext")
	scp := dicomtest.StartStoreSCP(t, dicomtest.StoreSCPConfig{AETitle: "IMPLICITONLY", Extra: []string{"+xi"}})
	addPeer(t, dir, "IMPLICITONLY", "--allow=", "--port", strconv.Itoa(scp.Port), "--plaintext")

	stored := []string{dicom.ExplicitVRLittleEndianUID, dicom.ExplicitVRBigEndianUID,
		dicom.DeflatedExplicitVRLittleEndianUID, jpegBaseline}
	study := newUID()
	var insts []*instance
	for i, ts := range stored {
		insts = append(insts, makeInstance(t, instanceSpec{TS: ts, Study: study, Patient: "PAT-TC", InstanceNumber: i + 1}))
	}
	cl, err := dimse.Dial(testCtx(t), s.TLSAddr, &dimse.DialOptions{CallingAE: mod.AE, CalledAE: archiveAE, TLS: mod.TLS(t),
		Contexts: proposals([]string{scImage}, stored)})
	if err != nil {
		t.Fatal(err)
	}
	mustStore(t, cl, insts...)
	cl.Release()
	for _, in := range insts {
		if ts, _ := storedData(t, s.A, in.UID); ts != in.TS {
			t.Fatalf("%s stored in %s", in.TS, ts)
		}
	}

	key := []string{"-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID=" + study}
	tests := []struct {
		name string
		want string // the syntax the native instances arrive in
		// run retrieves the study and returns the peer's output and the
		// directory the instances were written to.
		run func(t *testing.T) (out, dir string)
	}{
		// getscu 3.6.7's +xi makes it propose Explicit VR Little Endian
		// alone for the storage classes (not implicit, as its help says):
		// still one syntax, so Big Endian and deflated are re-encoded.
		{"getscu +xi", dicom.ExplicitVRLittleEndianUID, func(t *testing.T) (string, string) {
			out := t.TempDir()
			r := dicomtest.RunSCUIn(t, out, "getscu", append(append([]string{"-v", "-S", "-aet", "VIEWER", "-aec", archiveAE,
				"+xi", "-od", out, "+B"}, key...), "127.0.0.1", plainPort)...)
			if o := r.Describe(); !strings.Contains(o, "Number of Completed Suboperations : 3") || !strings.Contains(o, "Number of Failed Suboperations    : 1") {
				t.Errorf("getscu: want 3 completed and 1 failed sub-operations:\n%s", o)
			}
			return r.Describe(), out
		}},
		{"movescu to storescp +xi", dicom.ImplicitVRLittleEndianUID, func(t *testing.T) (string, string) {
			r := dicomtest.RunSCU(t, "movescu", append(append([]string{"-v", "-S", "-aet", "VIEWER", "-aec", archiveAE,
				"-aem", "IMPLICITONLY"}, key...), "127.0.0.1", plainPort)...)
			o := r.Describe() + "\nstorescp:\n" + scp.Output()
			if !strings.Contains(o, "Received Final Move Response (Warning: SubOperationsCompleteOneOrMoreFailures)") ||
				strings.Count(o, "Received Store Request") != 3 {
				t.Errorf("movescu: want 3 instances stored and a final warning:\n%s", o)
			}
			return o, scp.Dir
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, got := tc.run(t)
			arrived := readPart10Dir(t, got)
			for _, in := range insts {
				g, ok := arrived[in.UID]
				if in.TS == jpegBaseline {
					if ok {
						t.Errorf("the JPEG instance arrived, as %s", g.TS)
					}
					continue
				}
				if !ok {
					t.Errorf("%s instance did not arrive:\n%s", in.TS, out)
					continue
				}
				if g.TS != tc.want {
					t.Errorf("%s instance arrived as %s, want %s", in.TS, g.TS, tc.want)
				}
				sameElements(t, in, g.TS, g.Data)
				r := dicomtest.RunDCMTK(t, "dcmdump", fileOf(t, got, in.UID))
				if r.ExitCode != 0 || len(r.Diagnostics()) > 0 || len(r.Stderr) > 0 {
					t.Errorf("dcmdump of the %s instance as received: %s\n%q", in.TS, r, r.Diagnostics())
				}
			}
		})
	}
}

// TestGetTranscodesToImplicit: a C-GET requestor (our client) that takes
// the storage class in Implicit VR Little Endian only receives the
// Explicit LE, Big Endian and deflated instances re-encoded in it; the
// JPEG one fails alone and is listed as failed.
func TestGetTranscodesToImplicit(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	dir := filepath.Join(t.TempDir(), "data")
	s := startServer(t, dir)
	b := addPeer(t, dir, "VIEWER", "--allow", "echo,store,find,get")
	stored := []string{dicom.ExplicitVRLittleEndianUID, dicom.ExplicitVRBigEndianUID,
		dicom.DeflatedExplicitVRLittleEndianUID, jpegBaseline}
	study := newUID()
	var insts []*instance
	for i, ts := range stored {
		insts = append(insts, makeInstance(t, instanceSpec{TS: ts, Study: study, InstanceNumber: i + 1}))
	}
	dial := func(syntaxes []string) *dimse.Client {
		cl, err := dimse.Dial(testCtx(t), s.TLSAddr, &dimse.DialOptions{CallingAE: b.AE, CalledAE: archiveAE, TLS: b.TLS(t),
			Contexts: proposals([]string{scImage}, syntaxes)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Release() })
		return cl
	}
	mustStore(t, dial(stored), insts...)
	got, sub, err := get(t, dial([]string{dicom.ImplicitVRLittleEndianUID}), identifier("STUDY", dicom.TagStudyInstanceUID, study))
	if err != nil || sub.Completed != 3 || sub.Failed != 1 {
		t.Errorf("C-GET: %+v, %v; want 3 completed, 1 failed", sub, err)
	}
	for _, in := range insts {
		g, ok := got[in.UID]
		switch {
		case in.TS == jpegBaseline:
			if ok {
				t.Errorf("the JPEG instance arrived, as %s", g.TS)
			}
		case !ok:
			t.Errorf("%s instance did not arrive", in.TS)
		case g.TS != dicom.ImplicitVRLittleEndianUID:
			t.Errorf("%s instance arrived as %s", in.TS, g.TS)
		default:
			sameElements(t, in, g.TS, g.Data)
		}
	}
}

// sameElements requires the data set that arrived in ts to hold exactly
// the elements in.DS holds, with equal values (ts is little endian, as
// in.DS is).
func sameElements(t *testing.T, in *instance, ts string, data []byte) {
	t.Helper()
	ds, err := dicom.Parse(data, dicom.LookupTransferSyntax(ts), nil)
	if err != nil {
		t.Errorf("%s instance as received does not decode: %v", in.TS, err)
		return
	}
	if ds.Len() != in.DS.Len() {
		t.Errorf("%s instance: %d elements arrived, %d were stored", in.TS, ds.Len(), in.DS.Len())
	}
	for _, want := range in.DS.Elements {
		e := ds.Get(want.Tag)
		switch {
		case e == nil:
			t.Errorf("%s instance: %s did not arrive", in.TS, want.Tag)
		case !bytes.Equal(e.Value, want.Value):
			t.Errorf("%s instance: %s arrived as % x, stored % x", in.TS, want.Tag, head(e.Value), head(want.Value))
		}
	}
}

func head(b []byte) []byte { return b[:min(len(b), 16)] }

// fileOf returns the path of the file in dir that holds the SOP instance uid.
func fileOf(t *testing.T, dir, uid string) string {
	t.Helper()
	for _, p := range dicomtest.ListFiles(t, dir) {
		meta, _ := splitMeta(t, readFile(t, p))
		if meta.String(dicom.TagMediaStorageSOPInst) == uid {
			return p
		}
	}
	t.Fatalf("no file of %s in %s", uid, dir)
	return ""
}
