//go:build unix

package archive_test

// Interoperability with Orthanc (the Debian package orthanc): Orthanc as a
// storage SCU, as a C-MOVE destination and as a C-MOVE requester of the
// archive, and refused when it is not a registered peer.

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/dicomtest"
	"github.com/dicomshield/dicomshield/internal/dimse"
)

// orthancAE is Orthanc's AE title, registered as a peer of the archive.
const orthancAE = "ORTHANC"

// orthancPair is an archive and an Orthanc that know each other.
type orthancPair struct {
	s   *testServer
	o   *dicomtest.Orthanc
	b   bundle // Orthanc's peer bundle
	dir string
}

// startOrthancPair starts an archive and an Orthanc registered as its peer
// ORTHANC (allowed echo, store, find and move; a C-MOVE destination on its
// DICOM port over plain TCP). Orthanc's modality DS is the archive: over
// DICOM TLS with the peer's bundle when useTLS, on the plain listener
// otherwise.
func startOrthancPair(t *testing.T, useTLS bool) *orthancPair {
	t.Helper()
	dicomtest.OrthancBinary(t)
	dir := filepath.Join(t.TempDir(), "data")
	s := startServer(t, dir)
	oport := dicomtest.FreePort(t)
	b := addPeer(t, dir, orthancAE, "--allow", "echo,store,find,move", "--port", strconv.Itoa(oport), "--plaintext")
	addr := s.PlainAddr
	if useTLS {
		addr = s.TLSAddr
	}
	pn, _ := strconv.Atoi(port(t, addr))
	cfg := dicomtest.OrthancConfig{AET: orthancAE, DicomPort: oport,
		Modalities: map[string]dicomtest.OrthancModality{"DS": {AET: archiveAE, Port: pn, UseTLS: useTLS}}}
	if useTLS {
		cfg.TLSCertificate, cfg.TLSPrivateKey, cfg.TLSTrusted = b.CertPath, b.KeyPath, b.CAPath
	}
	o := dicomtest.StartOrthanc(t, cfg)
	return &orthancPair{s: s, o: o, b: b, dir: dir}
}

// orthancInstances generates instances of one study in syntaxes the
// archive and Orthanc both keep as they are.
func orthancInstances(t *testing.T) []*instance {
	t.Helper()
	first := makeInstance(t, instanceSpec{InstanceNumber: 1, Description: "orthanc"})
	return []*instance{
		first,
		makeInstance(t, instanceSpec{InstanceNumber: 2, Study: first.Study, Series: first.Series, Description: "orthanc"}),
		makeInstance(t, instanceSpec{InstanceNumber: 3, Study: first.Study, TS: dicom.ImplicitVRLittleEndianUID, Description: "orthanc"}),
	}
}

// checkArchived checks that the archive keeps each instance with its data
// set byte for byte.
func checkArchived(t *testing.T, s *testServer, insts []*instance) {
	t.Helper()
	for _, in := range insts {
		ts, data := storedData(t, s.A, in.UID)
		if ts != in.TS {
			t.Errorf("%s: archived in %s, sent in %s", in.UID, ts, in.TS)
			continue
		}
		if !bytes.Equal(data, in.Data) {
			t.Errorf("%s: archived data set (%d bytes) differs from the original (%d bytes)", in.UID, len(data), len(in.Data))
		}
	}
}

// checkInOrthanc checks that Orthanc holds each instance with its data set
// byte for byte.
func checkInOrthanc(t *testing.T, o *dicomtest.Orthanc, insts []*instance) {
	t.Helper()
	for _, in := range insts {
		id := o.InstanceByUID(t, in.UID)
		if id == "" {
			t.Errorf("Orthanc does not hold %s", in.UID)
			continue
		}
		ts, data := splitPart10(t, o.File(t, id))
		if ts != in.TS {
			t.Errorf("%s: Orthanc keeps it in %s, sent in %s", in.UID, ts, in.TS)
			continue
		}
		if !bytes.Equal(data, in.Data) {
			t.Errorf("%s: Orthanc's data set (%d bytes) differs from the original (%d bytes)", in.UID, len(data), len(in.Data))
		}
	}
}

// checkOrthancOverTLS checks that Orthanc's associations with the archive
// used DICOM TLS, never the plain listener.
func checkOrthancOverTLS(t *testing.T, s *testServer) {
	t.Helper()
	logs := s.Logs.String()
	if !strings.Contains(logs, `peer \"ORTHANC\" from 127.0.0.1 over TLS`) {
		t.Errorf("no association of Orthanc over TLS in the archive's log")
	}
	if strings.Contains(logs, `peer \"ORTHANC\" from 127.0.0.1 over plain TCP`) {
		t.Errorf("Orthanc used the plain listener")
	}
}

// orthancMove asks Orthanc for a study-level C-MOVE of study from the
// modality DS to target.
func orthancMove(p *orthancPair, study, target string) ([]byte, error) {
	body, _ := json.Marshal(map[string]any{"Level": "Study",
		"Resources": []map[string]string{{"StudyInstanceUID": study}}, "TargetAet": target})
	return p.o.Post("/modalities/DS/move", body)
}

// TestOrthancStoreSCU: instances uploaded to Orthanc and sent to the
// archive with C-STORE, over DICOM TLS with the peer's bundle, arrive with
// their data sets unchanged.
func TestOrthancStoreSCU(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	p := startOrthancPair(t, true)
	insts := orthancInstances(t)
	var ids []string
	tmp := t.TempDir()
	for _, in := range insts {
		ids = append(ids, p.o.Upload(t, in.writeFile(t, tmp)))
	}
	body, _ := json.Marshal(ids)
	if ans, err := p.o.Post("/modalities/DS/store", body); err != nil {
		t.Fatalf("Orthanc C-STORE to the archive: %v", err)
	} else if !strings.Contains(string(ans), `"InstancesCount" : 3`) || !strings.Contains(string(ans), `"FailedInstancesCount" : 0`) {
		t.Errorf("Orthanc answered %s", ans)
	}
	checkArchived(t, p.s, insts)
	checkOrthancOverTLS(t, p.s)
}

// TestOrthancMoveDestination: the archive's C-MOVE, asked by another peer,
// delivers a study to Orthanc with its data sets unchanged.
func TestOrthancMoveDestination(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	p := startOrthancPair(t, true)
	insts := orthancInstances(t)
	v := addPeer(t, p.dir, "VIEWER", "--allow", "store,move")
	cl := mustDial(t, p.s.TLSAddr, v.AE, v.TLS(t))
	mustStore(t, cl, insts...)
	sub, err := cl.Move(testCtx(t), dimse.StudyRootMove, orthancAE, identifier("STUDY", dicom.TagStudyInstanceUID, insts[0].Study))
	if err != nil {
		t.Fatalf("C-MOVE to Orthanc: %v (sub-operations %+v)", err, sub)
	}
	if int(sub.Completed) != len(insts) || sub.Failed != 0 || sub.Warning != 0 {
		t.Errorf("C-MOVE sub-operations %+v, want %d completed", sub, len(insts))
	}
	checkInOrthanc(t, p.o, insts)
}

// TestOrthancMoveSCU: Orthanc asks the archive (over DICOM TLS) to move a
// study to Orthanc itself; the archive sends it over plain DICOM to
// Orthanc's registered port.
func TestOrthancMoveSCU(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	p := startOrthancPair(t, true)
	insts := orthancInstances(t)
	v := addPeer(t, p.dir, "MODALITY", "--allow", "store")
	mustStore(t, mustDial(t, p.s.TLSAddr, v.AE, v.TLS(t)), insts...)
	if _, err := orthancMove(p, insts[0].Study, orthancAE); err != nil {
		t.Fatalf("Orthanc C-MOVE from the archive: %v", err)
	}
	checkInOrthanc(t, p.o, insts)
	checkOrthancOverTLS(t, p.s)
	// A destination the archive does not know gets nothing.
	if _, err := orthancMove(p, insts[0].Study, "NOBODY"); err == nil {
		t.Errorf("Orthanc C-MOVE to an unknown destination succeeded")
	}
}

// TestOrthancUnregistered: an Orthanc whose AE title the archive does not
// know cannot store into it (plain listener; the TLS refusals follow).
func TestOrthancUnregistered(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	dir := filepath.Join(t.TempDir(), "data")
	s := startServer(t, dir)
	plain, _ := strconv.Atoi(port(t, s.PlainAddr))
	o := dicomtest.StartOrthanc(t, dicomtest.OrthancConfig{AET: "STRANGER",
		Modalities: map[string]dicomtest.OrthancModality{"DS": {AET: archiveAE, Port: plain}}})
	in := makeInstance(t, instanceSpec{Description: "stranger"})
	id := o.Upload(t, in.writeFile(t, t.TempDir()))
	if ans, err := o.Post("/modalities/DS/store", []byte(strconv.Quote(id))); err == nil {
		t.Errorf("an unregistered Orthanc stored into the archive: %s", ans)
	} else if !strings.Contains(err.Error(), "Association Rejected") {
		t.Errorf("Orthanc's error %v, want an association rejection", err)
	}
	if _, err := s.A.Index.Get(testCtx(t), in.UID); err == nil {
		t.Errorf("the archive indexed %s from an unregistered Orthanc", in.UID)
	}
	if files := blobFiles(t, dir); len(files) != 0 {
		t.Errorf("the archive kept blobs from an unregistered Orthanc: %v", files)
	}
}

// TestOrthancTLSRefusals: DICOM TLS between Orthanc and the archive fails,
// and nothing is stored, when Orthanc does not trust the archive's CA, when
// its certificate is not from the archive's CA, and when it presents the
// certificate of another peer.
func TestOrthancTLSRefusals(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	dicomtest.OrthancBinary(t)
	dir := filepath.Join(t.TempDir(), "data")
	s := startServer(t, dir)
	tlsPort, _ := strconv.Atoi(port(t, s.TLSAddr))
	own := addPeer(t, dir, orthancAE, "--allow", "echo,store")
	other := addPeer(t, dir, "OTHER", "--allow", "echo,store")
	foreign := dicomtest.NewPKI(t, orthancAE)
	for _, c := range []struct {
		name               string
		cert, key, trusted string
		want               string // in Orthanc's error
		wantLog            string // in the archive's log
	}{
		// Orthanc refuses the archive's server certificate.
		{"foreign CA trusted", own.CertPath, own.KeyPath, foreign.CAFile, "certificate verify failed", ""},
		// The archive refuses the handshake.
		{"certificate from a foreign CA", foreign.ClientCert, foreign.ClientKey, own.CAPath, "Peer aborted Association", ""},
		// The archive rejects the association: the certificate is OTHER's.
		{"another peer's certificate", other.CertPath, other.KeyPath, own.CAPath, "Association Rejected",
			`presented the certificate of \"OTHER\"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := dicomtest.StartOrthanc(t, dicomtest.OrthancConfig{AET: orthancAE,
				TLSCertificate: c.cert, TLSPrivateKey: c.key, TLSTrusted: c.trusted,
				Modalities: map[string]dicomtest.OrthancModality{"DS": {AET: archiveAE, Port: tlsPort, UseTLS: true}}})
			in := makeInstance(t, instanceSpec{Description: "refused"})
			id := o.Upload(t, in.writeFile(t, t.TempDir()))
			if ans, err := o.Post("/modalities/DS/store", []byte(strconv.Quote(id))); err == nil {
				t.Errorf("Orthanc stored into the archive: %s", ans)
			} else if !strings.Contains(err.Error(), c.want) {
				t.Errorf("Orthanc's error %v, want one with %q", err, c.want)
			}
			if c.wantLog != "" && !strings.Contains(s.Logs.String(), c.wantLog) {
				t.Errorf("the archive's log has no %q", c.wantLog)
			}
			if _, err := s.A.Index.Get(testCtx(t), in.UID); err == nil {
				t.Errorf("the archive indexed %s", in.UID)
			}
		})
	}
	if files := blobFiles(t, dir); len(files) != 0 {
		t.Errorf("the archive kept blobs: %v", files)
	}
}
