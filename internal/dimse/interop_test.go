//go:build unix

package dimse_test

// Interoperability with DCMTK 3.6.7 (Debian package dcmtk), over plain TCP
// and mutual TLS with a throw-away PKI wherever the DCMTK tool supports TLS:
//
//	A. DCMTK SCUs (echoscu, storescu, findscu, getscu, movescu) against
//	   a dimse.Server holding an in-memory archive that accepts
//	   everything: this is a protocol test, not a policy test.
//	B. Our Client against DCMTK SCPs (storescp, dcmqrscp).
//
// Every data set is compared byte for byte with what was sent. Missing
// DCMTK tools fail the tests (install the Debian package dcmtk); they are
// never skipped.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/dicomtest"
	"github.com/dicomshield/dicomshield/internal/dimse"
	"github.com/dicomshield/dicomshield/internal/ul"
)

const (
	ctImageStorage = "1.2.840.10008.5.1.4.1.1.2"
	mrImageStorage = "1.2.840.10008.5.1.4.1.1.4"
	interopAE      = "INTEROP"
	interopPatient = "PID-INTEROP"
	uidRoot        = "2.25.31415926535897932384626433832795"
)

var (
	tagQueryLevel    = dicom.NewTag(0x0008, 0x0052)
	tagStudyDate     = dicom.NewTag(0x0008, 0x0020)
	tagInstanceNum   = dicom.NewTag(0x0020, 0x0013)
	tagProcedureCode = dicom.NewTag(0x0008, 0x1032)
)

// transport is one way to carry the associations of a test: plain TCP,
// or mutual TLS with the test PKI in one protocol version (our side pins
// it; DCMTK offers both).
type transport struct {
	name    string
	version uint16 // 0: plain TCP
}

var transports = []transport{{"plain", 0}, {"tls1.3", tls.VersionTLS13}, {"tls1.2", tls.VersionTLS12}}

func pinTLS(c *tls.Config, version uint16) *tls.Config {
	c = c.Clone()
	c.MinVersion, c.MaxVersion = version, version
	return c
}

// ---------------------------------------------------------------------
// Test data: CT- and MR-like instances written by our codec.

// testInstance is one generated SOP instance.
type testInstance struct {
	Class, UID    string
	Study, Series string
	TS            dicom.TransferSyntax
	DS            *dicom.DataSet
	Data          []byte // DS encoded in TS: what follows the meta header
	File          string // the Part 10 file, once written
}

type instSpec struct {
	kind          string // "CT" or "MR"
	ts            dicom.TransferSyntax
	study, series string
	number        int
	rows, cols    int
}

func uid(parts ...any) string {
	s := uidRoot
	for _, p := range parts {
		s += "." + fmt.Sprint(p)
	}
	return s
}

// newInstance builds a CT or MR image with a header much like a
// modality's (a sequence included) and 16-bit pixel data.
func newInstance(t testing.TB, sp instSpec) *testInstance {
	t.Helper()
	class, modality := ctImageStorage, "CT"
	if sp.kind == "MR" {
		class, modality = mrImageStorage, "MR"
	}
	in := &testInstance{Class: class, UID: fmt.Sprintf("%s.%d", sp.series, sp.number), Study: sp.study, Series: sp.series, TS: sp.ts}
	ds := &dicom.DataSet{}
	text := func(g, e uint16, v dicom.VR, s ...string) { ds.Set(dicom.NewText(dicom.NewTag(g, e), v, s...)) }
	us := func(g, e uint16, v uint16) { ds.Set(dicom.NewUint16s(dicom.NewTag(g, e), dicom.US, v)) }
	text(0x0008, 0x0008, dicom.CS, "ORIGINAL", "PRIMARY", "AXIAL")
	text(0x0008, 0x0016, dicom.UI, class)
	text(0x0008, 0x0018, dicom.UI, in.UID)
	text(0x0008, 0x0020, dicom.DA, "20240102")
	text(0x0008, 0x0030, dicom.TM, "101010")
	text(0x0008, 0x0050, dicom.SH, "ACC"+strconv.Itoa(sp.number))
	text(0x0008, 0x0060, dicom.CS, modality)
	text(0x0008, 0x0070, dicom.LO, "dicomshield interop")
	text(0x0008, 0x0090, dicom.PN)
	code := &dicom.DataSet{}
	code.Set(dicom.NewText(dicom.NewTag(0x0008, 0x0100), dicom.SH, "IMG"+modality))
	code.Set(dicom.NewText(dicom.NewTag(0x0008, 0x0102), dicom.SH, "99DSH"))
	code.Set(dicom.NewText(dicom.NewTag(0x0008, 0x0104), dicom.LO, modality+" of the head"))
	// Explicit lengths: DCMTK's SCUs re-encode what they send from their
	// parsed copy, and write sequences and items with explicit lengths.
	seq := dicom.NewSequence(tagProcedureCode, code)
	seq.UndefinedLength = false
	ds.Set(seq)
	text(0x0010, 0x0010, dicom.PN, "Interop^Jane")
	text(0x0010, 0x0020, dicom.LO, interopPatient)
	text(0x0010, 0x0030, dicom.DA, "19700101")
	text(0x0010, 0x0040, dicom.CS, "F")
	if sp.kind == "MR" {
		text(0x0018, 0x0080, dicom.DS, "500")
		text(0x0018, 0x0081, dicom.DS, "12.5")
		text(0x0018, 0x0087, dicom.DS, "3")
	} else {
		text(0x0018, 0x0050, dicom.DS, "1.25")
		text(0x0018, 0x0060, dicom.DS, "120")
	}
	text(0x0020, 0x000D, dicom.UI, sp.study)
	text(0x0020, 0x000E, dicom.UI, sp.series)
	text(0x0020, 0x0010, dicom.SH, "S"+sp.study[len(sp.study)-1:])
	text(0x0020, 0x0011, dicom.IS, "1")
	text(0x0020, 0x0013, dicom.IS, strconv.Itoa(sp.number))
	us(0x0028, 0x0002, 1)
	text(0x0028, 0x0004, dicom.CS, "MONOCHROME2")
	us(0x0028, 0x0010, uint16(sp.rows))
	us(0x0028, 0x0011, uint16(sp.cols))
	us(0x0028, 0x0100, 16)
	us(0x0028, 0x0101, 12)
	us(0x0028, 0x0102, 11)
	us(0x0028, 0x0103, 0)
	// Pixels from a per-instance generator, so that a shifted or mixed-up
	// transfer does not compare equal.
	px := make([]byte, 2*sp.rows*sp.cols)
	x := uint32(2166136261 ^ uint32(sp.number*7919+len(in.UID)))
	for i := 0; i < len(px); i += 2 {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		binary.LittleEndian.PutUint16(px[i:], uint16(x)&0x0FFF)
	}
	ds.Set(dicom.NewBytes(dicom.TagPixelData, dicom.OW, px))
	in.DS = ds
	var err error
	if in.Data, err = dicom.MarshalDataSet(ds, sp.ts); err != nil {
		t.Fatalf("encoding %s: %v", in.UID, err)
	}
	return in
}

// writeFile writes in as a Part 10 file into dir and checks that the file
// ends with in.Data.
func (in *testInstance) writeFile(t testing.TB, dir string) {
	t.Helper()
	b, err := dicom.MarshalFile(dicom.NewFile(in.DS, in.TS))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(b, in.Data) {
		t.Fatalf("the file of %s does not end with its data set", in.UID)
	}
	in.File = filepath.Join(dir, in.UID+".dcm")
	if err := os.WriteFile(in.File, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// encodedIn returns in's data set encoded in the transfer syntax uid.
func (in *testInstance) encodedIn(t testing.TB, tsUID string) []byte {
	t.Helper()
	if tsUID == in.TS.UID {
		return in.Data
	}
	b, err := dicom.MarshalDataSet(in.DS, dicom.LookupTransferSyntax(tsUID))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (in *testInstance) instance() dimse.Instance {
	data := in.Data
	return dimse.Instance{SOPClassUID: in.Class, SOPInstanceUID: in.UID, TransferSyntax: in.TS.UID,
		Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }}
}

// storeSet is the set of instances the storage tests send: CT and MR in
// both little-endian uncompressed syntaxes, and a 20 MiB CT that crosses
// many PDVs whatever the PDU size.
func storeSet(t testing.TB) []*testInstance {
	study := uid(1)
	var out []*testInstance
	for i, sp := range []instSpec{
		{kind: "CT", ts: dicom.ExplicitVRLittleEndian, rows: 512, cols: 512},
		{kind: "CT", ts: dicom.ImplicitVRLittleEndian, rows: 512, cols: 512},
		{kind: "MR", ts: dicom.ExplicitVRLittleEndian, rows: 256, cols: 256},
		{kind: "MR", ts: dicom.ImplicitVRLittleEndian, rows: 256, cols: 256},
		{kind: "CT", ts: dicom.ExplicitVRLittleEndian, rows: 2560, cols: 4096},
	} {
		sp.study, sp.series, sp.number = study, uid(1, 1+i/4), i+1
		if sp.kind == "MR" {
			sp.series = uid(1, 3)
		}
		out = append(out, newInstance(t, sp))
	}
	return out
}

// ---------------------------------------------------------------------
// Part 10 files written by DCMTK.

// receivedFile is a file a DCMTK tool wrote.
type receivedFile struct {
	Path        string
	TS          string // (0002,0010)
	SOPInstance string // (0002,0003)
	SOPClass    string // (0002,0002)
	Data        []byte // everything after the meta information group
}

// readReceived splits a Part 10 file into its meta information (walked
// element by element in explicit VR little endian) and the bytes of the
// data set after it.
func readReceived(t testing.TB, path string) receivedFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 132 || string(b[128:132]) != "DICM" {
		t.Fatalf("%s: not a Part 10 file (no DICM at offset 128)", path)
	}
	rf := receivedFile{Path: path}
	off := 132
	for off+8 <= len(b) && binary.LittleEndian.Uint16(b[off:]) == 0x0002 {
		elem := binary.LittleEndian.Uint16(b[off+2:])
		vr := string(b[off+4 : off+6])
		var n, hdr int
		switch vr {
		case "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV":
			if off+12 > len(b) {
				t.Fatalf("%s: truncated meta header", path)
			}
			n, hdr = int(binary.LittleEndian.Uint32(b[off+8:])), 12
		default:
			n, hdr = int(binary.LittleEndian.Uint16(b[off+6:])), 8
		}
		if off+hdr+n > len(b) {
			t.Fatalf("%s: meta element (0002,%04X) runs past the end", path, elem)
		}
		val := strings.TrimRight(string(b[off+hdr:off+hdr+n]), "\x00 ")
		switch elem {
		case 0x0002:
			rf.SOPClass = val
		case 0x0003:
			rf.SOPInstance = val
		case 0x0010:
			rf.TS = val
		}
		off += hdr + n
	}
	rf.Data = b[off:]
	return rf
}

// receivedFiles reads every file in dir, by SOP instance UID.
func receivedFiles(t testing.TB, dir string) map[string]receivedFile {
	t.Helper()
	out := map[string]receivedFile{}
	for _, p := range dicomtest.ListFiles(t, dir) {
		rf := readReceived(t, p)
		if _, dup := out[rf.SOPInstance]; dup {
			t.Fatalf("two files in %s hold %s", dir, rf.SOPInstance)
		}
		out[rf.SOPInstance] = rf
	}
	return out
}

// sameBytes fails the test when got differs from want, saying where.
func sameBytes(t testing.TB, what string, got, want []byte) {
	t.Helper()
	if bytes.Equal(got, want) {
		return
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	ctx := func(b []byte) []byte {
		lo, hi := max(i-8, 0), min(i+16, len(b))
		if lo > hi {
			return nil
		}
		return b[lo:hi]
	}
	t.Errorf("%s: %d bytes, want %d; first difference at offset %d: got % x, want % x",
		what, len(got), len(want), i, ctx(got), ctx(want))
}

// checkReceived checks that dir holds exactly the instances want, each
// data set byte for byte (re-encoded when the receiver chose another
// transfer syntax than the instance's own, which is then reported when
// sameTS is set).
func checkReceived(t testing.TB, dir string, want []*testInstance, sameTS bool) {
	t.Helper()
	got := receivedFiles(t, dir)
	if len(got) != len(want) {
		var names []string
		for k := range got {
			names = append(names, k)
		}
		sort.Strings(names)
		t.Fatalf("%s holds %d instances %v, want %d", dir, len(got), names, len(want))
	}
	for _, in := range want {
		rf, ok := got[in.UID]
		if !ok {
			t.Errorf("%s missing from %s", in.UID, dir)
			continue
		}
		if rf.SOPClass != in.Class {
			t.Errorf("%s: media storage SOP class %s, want %s", in.UID, rf.SOPClass, in.Class)
		}
		if sameTS && rf.TS != in.TS.UID {
			t.Errorf("%s: written in %s, want %s", in.UID, rf.TS, in.TS.UID)
		}
		sameBytes(t, fmt.Sprintf("%s (%s)", in.UID, rf.TS), rf.Data, in.encodedIn(t, rf.TS))
	}
}

// ---------------------------------------------------------------------
// The SCP side of the A tests: a dimse.Server over an in-memory archive.

type storedObject struct {
	TS        string
	CallingAE string
	Data      []byte
}

// interopSCP accepts every association, and every abstract syntax in
// explicit or implicit VR little endian, and records what it is asked.
type interopSCP struct {
	// Set before the server starts.
	respondIdentity bool              // grant a requested identity response
	prefer          []string          // transfer syntaxes by preference; nil: explicit, then implicit VR LE
	matches         []*dicom.DataSet  // what Find emits
	serve           []*testInstance   // what Retrieve returns
	dests           map[string]string // C-MOVE destinations: AE -> address

	mu          sync.Mutex
	rqs         []*ul.AssociateRQ // every association request
	stored      map[string]storedObject
	findIDs     []*dicom.DataSet
	retrieveIDs []*dicom.DataSet
	moveAEs     []string
}

func (a *interopSCP) server(tlsConf *tls.Config) *dimse.Server {
	a.stored = map[string]storedObject{}
	return &dimse.Server{
		TLS: tlsConf,
		UL:  ul.Config{CloseTimeout: time.Second},
		Accept: func(r *dimse.AssocRequest) (*ul.AssociateAC, any, *ul.AssociateRJ) {
			a.mu.Lock()
			a.rqs = append(a.rqs, r.RQ)
			a.mu.Unlock()
			prefer := a.prefer
			if prefer == nil {
				prefer = []string{dicom.ExplicitVRLittleEndianUID, dicom.ImplicitVRLittleEndianUID}
			}
			ac := dimse.Negotiate(r.RQ, func(string) []string { return prefer })
			if id := r.RQ.User.Identity; id != nil && id.PositiveResponseRequested && a.respondIdentity {
				// Types 1 and 2 answer with an empty server response
				// (PS3.7 D.3.3.7.2).
				ac.User.HasIdentityResp = true
			}
			return ac, nil, nil
		},
		Store: func(ctx context.Context, r *dimse.Request, data io.Reader) dimse.Status {
			b, err := io.ReadAll(data)
			if err != nil {
				return dimse.Status{Code: dimse.StatusProcessingFailure}
			}
			a.mu.Lock()
			defer a.mu.Unlock()
			a.stored[r.Command.AffectedSOPInstance] = storedObject{TS: r.TransferSyntax, CallingAE: r.Assoc.CallingAE, Data: b}
			return dimse.Status{Code: dimse.StatusSuccess}
		},
		Find: func(ctx context.Context, r *dimse.Request, id *dicom.DataSet, emit func(*dicom.DataSet) error) dimse.Status {
			a.mu.Lock()
			a.findIDs = append(a.findIDs, id)
			a.mu.Unlock()
			for _, m := range a.matches {
				if err := emit(m); err != nil {
					return dimse.Status{Code: dimse.StatusCancel}
				}
			}
			return dimse.Status{Code: dimse.StatusSuccess}
		},
		Retrieve: func(ctx context.Context, r *dimse.Request, id *dicom.DataSet) ([]dimse.Instance, dimse.Status) {
			a.mu.Lock()
			a.retrieveIDs = append(a.retrieveIDs, id)
			a.mu.Unlock()
			var out []dimse.Instance
			for _, in := range a.serve {
				out = append(out, in.instance())
			}
			return out, dimse.Status{Code: dimse.StatusSuccess}
		},
		MoveDestination: func(ctx context.Context, r *dimse.Request, ae string) (*dimse.Destination, error) {
			a.mu.Lock()
			defer a.mu.Unlock()
			a.moveAEs = append(a.moveAEs, ae)
			addr, ok := a.dests[ae]
			if !ok {
				return nil, errors.New("unknown destination")
			}
			return &dimse.Destination{Addr: addr, Options: dimse.DialOptions{CallingAE: interopAE, CalledAE: ae}}, nil
		},
	}
}

// start serves on a loopback port until the test ends; it returns the
// port.
func (a *interopSCP) start(t *testing.T, tlsConf *tls.Config) string {
	t.Helper()
	s := a.server(tlsConf)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("server shutdown: %v (associations were still open)", err)
		}
		if err := <-done; err != dimse.ErrServerClosed {
			t.Errorf("Serve returned %v", err)
		}
	})
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

func (a *interopSCP) lastRQ(t testing.TB) *ul.AssociateRQ {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.rqs) == 0 {
		t.Fatal("the server saw no association request")
	}
	return a.rqs[len(a.rqs)-1]
}

// scuTLS returns the DCMTK client options of tr.
func scuTLS(pki *dicomtest.PKI, tr transport) []string {
	if tr.version == 0 {
		return nil
	}
	return pki.DCMTKTLSArgs(false)
}

// serverTLS returns our server's configuration for tr.
func serverTLS(pki *dicomtest.PKI, tr transport) *tls.Config {
	if tr.version == 0 {
		return nil
	}
	return pinTLS(pki.Server, tr.version)
}

// ---------------------------------------------------------------------
// A. DCMTK SCUs against dimse.Server.

// TestInteropEchoSCU: echoscu's C-ECHO is answered with success.
func TestInteropEchoSCU(t *testing.T) {
	dicomtest.RequireDCMTK(t, "echoscu")
	pki := dicomtest.NewPKI(t, "ECHOSCU")
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			scp := &interopSCP{}
			port := scp.start(t, serverTLS(pki, tr))
			args := append([]string{"-v", "-aet", "ECHOSCU", "-aec", interopAE}, scuTLS(pki, tr)...)
			r := dicomtest.MustRunSCU(t, "echoscu", append(args, "127.0.0.1", port)...)
			rq := scp.lastRQ(t)
			if rq.CallingAE != "ECHOSCU" || rq.CalledAE != interopAE {
				t.Errorf("AE titles seen: calling %q called %q", rq.CallingAE, rq.CalledAE)
			}
			if !strings.Contains(string(r.Stderr)+string(r.Stdout), "Received Echo Response (Success)") {
				t.Errorf("echoscu did not report success:\n%s", r.Describe())
			}
		})
	}
}

// TestInteropStoreSCU: storescu sends CT and MR files in explicit and
// implicit VR little endian, one of 20 MiB; every data set arrives byte
// for byte as it follows the meta header in its file. User identity
// (username and passcode) reaches the acceptor hook, and storescu accepts
// the positive identity response when it asks for one.
func TestInteropStoreSCU(t *testing.T) {
	dicomtest.RequireDCMTK(t, "storescu")
	pki := dicomtest.NewPKI(t, "STORESCU")
	insts := storeSet(t)
	dir := t.TempDir()
	var files []string
	for _, in := range insts {
		in.writeFile(t, dir)
		files = append(files, in.File)
	}
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			t.Run("files", func(t *testing.T) {
				scp := &interopSCP{}
				port := scp.start(t, serverTLS(pki, tr))
				args := append([]string{"-v", "-aet", "STORESCU", "-aec", interopAE}, scuTLS(pki, tr)...)
				args = append(append(args, "127.0.0.1", port), files...)
				dicomtest.MustRunSCU(t, "storescu", args...)
				scp.mu.Lock()
				defer scp.mu.Unlock()
				if len(scp.stored) != len(insts) {
					t.Fatalf("received %d instances, want %d", len(scp.stored), len(insts))
				}
				for _, in := range insts {
					got, ok := scp.stored[in.UID]
					if !ok {
						t.Errorf("%s not received", in.UID)
						continue
					}
					if got.TS != in.TS.UID {
						t.Errorf("%s arrived in %s, its file is in %s", in.UID, got.TS, in.TS.UID)
					}
					if got.CallingAE != "STORESCU" {
						t.Errorf("%s: calling AE %q", in.UID, got.CallingAE)
					}
					sameBytes(t, in.UID, got.Data, in.encodedIn(t, got.TS))
				}
			})
			for _, c := range []struct {
				name    string
				respond bool // the SCP grants the identity response
				rsp     bool // storescu asks for it (-rsp)
				ok      bool
			}{
				{"identity", false, false, true},
				{"identity-positive-response", true, true, true},
				// Proves storescu checks the response it asked for.
				{"identity-response-withheld", false, true, false},
			} {
				t.Run(c.name, func(t *testing.T) {
					scp := &interopSCP{respondIdentity: c.respond}
					port := scp.start(t, serverTLS(pki, tr))
					args := append([]string{"-v", "-aet", "STORESCU", "-aec", interopAE, "-usr", "alice", "-pwd", "secret"}, scuTLS(pki, tr)...)
					if c.rsp {
						args = append(args, "-rsp")
					}
					r := dicomtest.RunSCU(t, "storescu", append(args, "127.0.0.1", port, insts[2].File)...)
					if (r.ExitCode == 0) != c.ok {
						t.Fatalf("storescu exit status %d, want success %v:\n%s", r.ExitCode, c.ok, r.Describe())
					}
					id := scp.lastRQ(t).User.Identity
					switch {
					case id == nil:
						t.Fatal("no user identity in the A-ASSOCIATE-RQ")
					case id.Type != ul.IdentityUsernamePasscode || string(id.Primary) != "alice" || string(id.Secondary) != "secret":
						t.Errorf("identity: type %d primary %q secondary %q", id.Type, id.Primary, id.Secondary)
					case id.PositiveResponseRequested != c.rsp:
						t.Errorf("positive response requested %v, want %v", id.PositiveResponseRequested, c.rsp)
					}
					scp.mu.Lock()
					_, stored := scp.stored[insts[2].UID]
					scp.mu.Unlock()
					if stored != c.ok {
						t.Errorf("instance stored: %v, want %v", stored, c.ok)
					}
				})
			}
		})
	}
}

// studyMatch is a study-level C-FIND match.
func studyMatch(study, date, name string) *dicom.DataSet {
	ds := &dicom.DataSet{}
	ds.Set(dicom.NewText(tagStudyDate, dicom.DA, date))
	ds.Set(dicom.NewText(tagQueryLevel, dicom.CS, "STUDY"))
	ds.Set(dicom.NewText(dicom.TagPatientName, dicom.PN, name))
	ds.Set(dicom.NewText(dicom.TagPatientID, dicom.LO, interopPatient))
	ds.Set(dicom.NewText(dicom.TagStudyInstanceUID, dicom.UI, study))
	return ds
}

// TestInteropFindSCU: findscu's study-root query reaches the Find handler
// with its keys, and findscu receives the matches emitted.
func TestInteropFindSCU(t *testing.T) {
	dicomtest.RequireDCMTK(t, "findscu")
	pki := dicomtest.NewPKI(t, "FINDSCU")
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			scp := &interopSCP{matches: []*dicom.DataSet{
				studyMatch(uid(7, 1), "20240101", "Interop^Jane"),
				studyMatch(uid(7, 2), "20240202", "Interop^Jane"),
			}}
			port := scp.start(t, serverTLS(pki, tr))
			out := t.TempDir()
			args := append([]string{"-v", "-S", "-aet", "FINDSCU", "-aec", interopAE,
				"-k", "QueryRetrieveLevel=STUDY", "-k", "PatientID=" + interopPatient,
				"-k", "StudyInstanceUID", "-k", "StudyDate", "-k", "PatientName",
				"-X", "-od", out}, scuTLS(pki, tr)...)
			r := dicomtest.MustRunSCU(t, "findscu", append(args, "127.0.0.1", port)...)

			scp.mu.Lock()
			ids := scp.findIDs
			scp.mu.Unlock()
			if len(ids) != 1 {
				t.Fatalf("Find called %d times", len(ids))
			}
			id := ids[0]
			for tag, want := range map[dicom.Tag]string{tagQueryLevel: "STUDY", dicom.TagPatientID: interopPatient,
				dicom.TagStudyInstanceUID: "", tagStudyDate: "", dicom.TagPatientName: ""} {
				e := id.Get(tag)
				if e == nil {
					t.Errorf("identifier lacks %v", tag)
				} else if e.String() != want {
					t.Errorf("identifier %v = %q, want %q", tag, e.String(), want)
				}
			}
			files := dicomtest.ListFiles(t, out)
			if len(files) != len(scp.matches) {
				t.Fatalf("findscu extracted %d responses %v, want %d:\n%s", len(files), files, len(scp.matches), r.Describe())
			}
			for i, f := range files {
				got, err := dicom.ReadFile(f, nil)
				if err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				want := scp.matches[i]
				for _, e := range want.Elements {
					if g := got.DataSet.String(e.Tag); g != e.String() {
						t.Errorf("response %d: %v = %q, want %q", i+1, e.Tag, g, e.String())
					}
				}
			}
		})
	}
}

// retrieveSet is a study of three instances in one transfer syntax.
func retrieveSet(t testing.TB, ts dicom.TransferSyntax, studyNo int) []*testInstance {
	study := uid(8, studyNo)
	return []*testInstance{
		newInstance(t, instSpec{kind: "CT", ts: ts, study: study, series: study + ".1", number: 1, rows: 256, cols: 256}),
		newInstance(t, instSpec{kind: "CT", ts: ts, study: study, series: study + ".1", number: 2, rows: 300, cols: 200}),
		newInstance(t, instSpec{kind: "MR", ts: ts, study: study, series: study + ".2", number: 3, rows: 128, cols: 128}),
	}
}

func checkRetrieveID(t testing.TB, scp *interopSCP, study string) {
	t.Helper()
	scp.mu.Lock()
	defer scp.mu.Unlock()
	if len(scp.retrieveIDs) != 1 {
		t.Fatalf("Retrieve called %d times", len(scp.retrieveIDs))
	}
	id := scp.retrieveIDs[0]
	if id.String(tagQueryLevel) != "STUDY" || id.String(dicom.TagStudyInstanceUID) != study {
		t.Errorf("retrieve identifier: level %q study %q", id.String(tagQueryLevel), id.String(dicom.TagStudyInstanceUID))
	}
}

// TestInteropGetSCU: getscu retrieves a study with C-GET; the instances
// come back on its association and it writes them byte for byte. getscu
// has no TLS support.
func TestInteropGetSCU(t *testing.T) {
	dicomtest.RequireDCMTK(t, "getscu")
	// getscu proposes each storage class with explicit VR LE, big endian
	// and implicit VR LE in one context (its +xi option, in 3.6.7, makes
	// it propose explicit VR LE only); the SCP's preference picks the
	// syntax the instances are held in, so none needs re-encoding.
	for i, ts := range []dicom.TransferSyntax{dicom.ExplicitVRLittleEndian, dicom.ImplicitVRLittleEndian} {
		t.Run(ts.Name, func(t *testing.T) {
			insts := retrieveSet(t, ts, i+1)
			scp := &interopSCP{serve: insts, prefer: []string{ts.UID}}
			port := scp.start(t, nil)
			out := t.TempDir()
			args := []string{"-v", "-S", "-aet", "GETSCU", "-aec", interopAE, "-od", out, "+B",
				"-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID=" + insts[0].Study}
			r := dicomtest.MustRunSCU(t, "getscu", append(args, "127.0.0.1", port)...)
			checkRetrieveID(t, scp, insts[0].Study)
			if !strings.Contains(string(r.Stderr)+string(r.Stdout), "Number of Completed Suboperations : 3") {
				t.Errorf("getscu did not report 3 completed sub-operations:\n%s", r.Describe())
			}
			checkReceived(t, out, insts, true)
		})
	}
}

// TestInteropMoveSCU: movescu moves a study to itself (its own storage
// SCP on --port); MoveDestination resolves its AE title to that port and
// the instances arrive byte for byte. movescu has no TLS support.
func TestInteropMoveSCU(t *testing.T) {
	dicomtest.RequireDCMTK(t, "movescu")
	for i, ts := range []dicom.TransferSyntax{dicom.ExplicitVRLittleEndian, dicom.ImplicitVRLittleEndian} {
		t.Run(ts.Name, func(t *testing.T) {
			insts := retrieveSet(t, ts, 10+i)
			movePort := dicomtest.FreePort(t)
			scp := &interopSCP{serve: insts, dests: map[string]string{"MOVESCU": net.JoinHostPort("127.0.0.1", strconv.Itoa(movePort))}}
			port := scp.start(t, nil)
			out := t.TempDir()
			args := []string{"-v", "-S", "-aet", "MOVESCU", "-aec", interopAE, "-aem", "MOVESCU",
				"+P", strconv.Itoa(movePort), "-od", out, "+B",
				"-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID=" + insts[0].Study}
			// In bit-preserving mode movescu 3.6.7 writes into its working
			// directory, not into --output-directory.
			r := dicomtest.MustRunSCUIn(t, out, "movescu", append(args, "127.0.0.1", port)...)
			checkRetrieveID(t, scp, insts[0].Study)
			scp.mu.Lock()
			aes := scp.moveAEs
			scp.mu.Unlock()
			if len(aes) != 1 || aes[0] != "MOVESCU" {
				t.Errorf("MoveDestination asked for %q", aes)
			}
			if out := string(r.Stderr) + string(r.Stdout); strings.Count(out, "Received Store Request") != 3 ||
				!strings.Contains(out, "Received Final Move Response (Success)") {
				t.Errorf("movescu did not report 3 stores and a successful move:\n%s", r.Describe())
			}
			checkReceived(t, out, insts, true)
		})
	}
}

// ---------------------------------------------------------------------
// B. Our Client against DCMTK SCPs.

// storageProposals proposes Verification and each storage class in
// explicit and in implicit VR little endian, as separate contexts so that
// each instance goes in its own syntax.
func storageProposals(classes ...string) []dimse.Proposal {
	ps := []dimse.Proposal{{AbstractSyntax: dimse.VerificationSOPClass, TransferSyntaxes: []string{dicom.ExplicitVRLittleEndianUID, dicom.ImplicitVRLittleEndianUID}}}
	for _, c := range classes {
		ps = append(ps,
			dimse.Proposal{AbstractSyntax: c, TransferSyntaxes: []string{dicom.ExplicitVRLittleEndianUID}},
			dimse.Proposal{AbstractSyntax: c, TransferSyntaxes: []string{dicom.ImplicitVRLittleEndianUID}})
	}
	return ps
}

func dial(t testing.TB, addr string, o *dimse.DialOptions, peer *dicomtest.Peer) *dimse.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := dimse.Dial(ctx, addr, o)
	if err != nil {
		t.Fatalf("association with %s: %v\nDCMTK %s output:\n%s", peer.Name, err, peer.Name, peer.Output())
	}
	return cl
}

func storeAll(t testing.TB, cl *dimse.Client, insts []*testInstance, peer *dicomtest.Peer) {
	t.Helper()
	for _, in := range insts {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		st, err := cl.Store(ctx, in.Class, in.UID, in.TS.UID, bytes.NewReader(in.Data))
		cancel()
		if err != nil || st != dimse.StatusSuccess {
			t.Fatalf("C-STORE of %s (%s): status 0x%04X, %v\nDCMTK %s output:\n%s", in.UID, in.TS.Name, st, err, peer.Name, peer.Output())
		}
	}
}

// TestInteropStoreSCP: our Echo and Store into storescp (bit-preserving);
// the files it writes hold our data sets byte for byte, in the syntax we
// sent.
func TestInteropStoreSCP(t *testing.T) {
	dicomtest.RequireDCMTK(t, "storescp")
	pki := dicomtest.NewPKI(t, "DSCLIENT")
	insts := storeSet(t)
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			cfg := dicomtest.StoreSCPConfig{}
			var ctls *tls.Config
			if tr.version != 0 {
				cfg.TLS, ctls = pki, pinTLS(pki.Client, tr.version)
			}
			scp := dicomtest.StartStoreSCP(t, cfg)
			cl := dial(t, scp.Addr, &dimse.DialOptions{CallingAE: "DSCLIENT", CalledAE: scp.AETitle, TLS: ctls,
				Contexts: storageProposals(ctImageStorage, mrImageStorage)}, scp.Peer)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := cl.Echo(ctx); err != nil {
				t.Fatalf("C-ECHO: %v\n%s", err, scp.Output())
			}
			storeAll(t, cl, insts, scp.Peer)
			if err := cl.Release(); err != nil {
				t.Errorf("release: %v\n%s", err, scp.Output())
			}
			scp.Check(t)
			checkReceived(t, scp.Dir, insts, true)
		})
	}
}

// TestInteropQRSCP: our Client stores into dcmqrscp, finds at study and
// image level, gets the instances back byte for byte, and moves them to a
// storescp registered in dcmqrscp's host table. dcmqrscp has no TLS
// support.
func TestInteropQRSCP(t *testing.T) {
	dicomtest.RequireDCMTK(t, "dcmqrscp", "storescp")
	dest := dicomtest.StartStoreSCP(t, dicomtest.StoreSCPConfig{AETitle: "MOVEDEST"})
	qr := dicomtest.StartQRSCP(t, dicomtest.QRSCPConfig{Hosts: []dicomtest.QRHost{
		{AETitle: "DSCLIENT", Port: 11112}, // our client: never a destination here
		{AETitle: "MOVEDEST", Port: dest.Port},
	}})
	studyA, studyB := uid(9, 1), uid(9, 2)
	insts := []*testInstance{
		newInstance(t, instSpec{kind: "CT", ts: dicom.ExplicitVRLittleEndian, study: studyA, series: studyA + ".1", number: 1, rows: 256, cols: 256}),
		newInstance(t, instSpec{kind: "CT", ts: dicom.ImplicitVRLittleEndian, study: studyA, series: studyA + ".1", number: 2, rows: 256, cols: 256}),
		newInstance(t, instSpec{kind: "MR", ts: dicom.ExplicitVRLittleEndian, study: studyB, series: studyB + ".1", number: 3, rows: 128, cols: 128}),
	}
	bothTS := []string{dicom.ExplicitVRLittleEndianUID, dicom.ImplicitVRLittleEndianUID}
	props := storageProposals(ctImageStorage, mrImageStorage)
	props = append(props,
		dimse.Proposal{AbstractSyntax: dimse.StudyRootFind, TransferSyntaxes: bothTS},
		dimse.Proposal{AbstractSyntax: dimse.StudyRootGet, TransferSyntaxes: bothTS},
		dimse.Proposal{AbstractSyntax: dimse.StudyRootMove, TransferSyntaxes: bothTS})
	opts := &dimse.DialOptions{CallingAE: "DSCLIENT", CalledAE: qr.AETitle, Contexts: props}

	t.Run("store", func(t *testing.T) {
		cl := dial(t, qr.Addr, opts, qr.Peer)
		storeAll(t, cl, insts, qr.Peer)
		if err := cl.Release(); err != nil {
			t.Errorf("release: %v", err)
		}
	})
	// C-GET needs our SCP role for the storage classes, on contexts that
	// accept both syntaxes.
	getOpts := *opts
	getOpts.Contexts = []dimse.Proposal{
		{AbstractSyntax: dimse.StudyRootGet, TransferSyntaxes: bothTS},
		{AbstractSyntax: ctImageStorage, TransferSyntaxes: bothTS, SCPRole: true},
		{AbstractSyntax: mrImageStorage, TransferSyntaxes: bothTS, SCPRole: true},
	}
	cl := dial(t, qr.Addr, opts, qr.Peer)
	defer cl.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	find := func(t *testing.T, q *dicom.DataSet, key dicom.Tag) []string {
		t.Helper()
		var got []string
		n, err := cl.Find(ctx, dimse.StudyRootFind, q, func(ds *dicom.DataSet) error {
			got = append(got, ds.String(key))
			return nil
		})
		if err != nil || n != len(got) {
			t.Fatalf("C-FIND: %d matches, %v\n%s", n, err, qr.Output())
		}
		sort.Strings(got)
		return got
	}
	t.Run("find-study", func(t *testing.T) {
		q := &dicom.DataSet{}
		q.Set(dicom.NewText(tagQueryLevel, dicom.CS, "STUDY"))
		q.Set(dicom.NewText(dicom.TagPatientID, dicom.LO, interopPatient))
		q.Set(dicom.NewText(dicom.TagStudyInstanceUID, dicom.UI))
		got := find(t, q, dicom.TagStudyInstanceUID)
		if want := []string{studyA, studyB}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("studies %v, want %v", got, want)
		}
	})
	t.Run("find-image", func(t *testing.T) {
		q := &dicom.DataSet{}
		q.Set(dicom.NewText(tagQueryLevel, dicom.CS, "IMAGE"))
		q.Set(dicom.NewText(dicom.TagStudyInstanceUID, dicom.UI, studyA))
		q.Set(dicom.NewText(dicom.TagSeriesInstanceUID, dicom.UI, studyA+".1"))
		q.Set(dicom.NewText(dicom.TagSOPInstanceUID, dicom.UI))
		q.Set(dicom.NewText(tagInstanceNum, dicom.IS))
		got := find(t, q, dicom.TagSOPInstanceUID)
		if want := []string{insts[0].UID, insts[1].UID}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("instances %v, want %v", got, want)
		}
	})
	studyQuery := func(study string) *dicom.DataSet {
		q := &dicom.DataSet{}
		q.Set(dicom.NewText(tagQueryLevel, dicom.CS, "STUDY"))
		q.Set(dicom.NewText(dicom.TagStudyInstanceUID, dicom.UI, study))
		return q
	}
	t.Run("get", func(t *testing.T) {
		gcl := dial(t, qr.Addr, &getOpts, qr.Peer)
		defer gcl.Release()
		var mu sync.Mutex
		received := map[string]storedObject{}
		sub, err := gcl.Get(ctx, dimse.StudyRootGet, studyQuery(studyA), func(r *dimse.Request, data io.Reader) dimse.Status {
			b, err := io.ReadAll(data)
			if err != nil {
				return dimse.Status{Code: dimse.StatusProcessingFailure}
			}
			mu.Lock()
			received[r.Command.AffectedSOPInstance] = storedObject{TS: r.TransferSyntax, Data: b}
			mu.Unlock()
			return dimse.Status{Code: dimse.StatusSuccess}
		})
		if err != nil || sub.Completed != 2 || sub.Failed != 0 || sub.Warning != 0 {
			t.Fatalf("C-GET: %+v %v\n%s", sub, err, qr.Output())
		}
		if len(received) != 2 {
			t.Fatalf("received %d instances, want 2", len(received))
		}
		for _, in := range insts[:2] {
			got, ok := received[in.UID]
			if !ok {
				t.Errorf("%s not received", in.UID)
				continue
			}
			// dcmqrscp sends in the syntax it accepted for the context,
			// converting when the file is in another one.
			sameBytes(t, fmt.Sprintf("%s (%s)", in.UID, got.TS), got.Data, in.encodedIn(t, got.TS))
		}
	})
	t.Run("move", func(t *testing.T) {
		sub, err := cl.Move(ctx, dimse.StudyRootMove, "MOVEDEST", studyQuery(studyA))
		if err != nil || sub.Completed != 2 || sub.Failed != 0 || sub.Warning != 0 {
			t.Fatalf("C-MOVE: %+v %v\ndcmqrscp:\n%s\nstorescp:\n%s", sub, err, qr.Output(), dest.Output())
		}
		checkReceived(t, dest.Dir, insts[:2], false)
	})
	t.Run("calling-ae-not-in-host-table", func(t *testing.T) {
		// The configuration is in force: an AE title dcmqrscp does not
		// know is rejected.
		o := *opts
		o.CallingAE = "STRANGER"
		c, err := dimse.Dial(ctx, qr.Addr, &o)
		var rj *ul.RejectedError
		if !errors.As(err, &rj) {
			if c != nil {
				c.Release()
			}
			t.Fatalf("association as an unknown AE: %v, want a rejection\n%s", err, qr.Output())
		}
		t.Logf("rejected: %v", err)
	})
	t.Run("move-unknown-destination", func(t *testing.T) {
		_, err := cl.Move(ctx, dimse.StudyRootMove, "NOWHERE", studyQuery(studyA))
		if !dimse.IsStatus(err, dimse.StatusMoveDestinationUnknown) {
			t.Errorf("C-MOVE to an unknown AE: %v, want status 0xA801", err)
		}
	})
}

// TestInteropTLSClientCert: storescp requiring a client certificate (+tls
// with --require-peer-cert) accepts our client with the PKI's certificate
// and refuses it without one, or with one from another CA, in TLS 1.2 and
// TLS 1.3; dimse.Dial must then fail with an error that names TLS as the
// cause, not with a bare network error. In TLS 1.3 the server checks the
// client's certificate after the client has finished its handshake, so
// the refusal reaches Dial while it sends the A-ASSOCIATE-RQ, and whether
// the server's alert or a connection reset comes first is a race: each
// refusal is therefore tried several times.
func TestInteropTLSClientCert(t *testing.T) {
	dicomtest.RequireDCMTK(t, "storescp")
	pki := dicomtest.NewPKI(t, "DSCLIENT")
	rogue := dicomtest.NewPKI(t, "ROGUE")
	scp := dicomtest.StartStoreSCP(t, dicomtest.StoreSCPConfig{TLS: pki})
	caPEM, err := os.ReadFile(pki.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("CA file does not parse")
	}
	const attempts = 20
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			pin := func(c *tls.Config) *tls.Config { return pinTLS(c, version) }
			foreign := rogue.Client.Clone()
			foreign.RootCAs = pool
			for _, c := range []struct {
				name string
				conf *tls.Config
				ok   bool
			}{
				{"client-certificate", pin(pki.Client), true},
				{"no-client-certificate", pin(&tls.Config{RootCAs: pool, ServerName: "localhost"}), false},
				{"certificate-from-another-ca", pin(foreign), false},
			} {
				t.Run(c.name, func(t *testing.T) {
					n := 1
					if !c.ok {
						n = attempts
					}
					unclear := map[string]int{}
					for i := 0; i < n; i++ {
						err := tlsEcho(scp, c.conf)
						scp.Check(t)
						switch {
						case c.ok && err != nil:
							t.Fatalf("echo over %s: %v\nstorescp:\n%s", tls.VersionName(version), err, scp.Output())
						case c.ok:
						case err == nil:
							t.Fatalf("storescp accepted the association\nstorescp:\n%s", scp.Output())
						case !strings.Contains(strings.ToLower(err.Error()), "tls"):
							unclear[err.Error()]++
						case i == 0:
							t.Logf("refused: %v", err)
						}
					}
					if len(unclear) > 0 {
						t.Errorf("of %d refused associations, these errors do not say TLS refused the association (error: count): %v\nstorescp:\n%s",
							n, unclear, scp.Output())
					}
				})
			}
		})
	}
}

// tlsEcho associates with scp over TLS with conf, sends a C-ECHO and
// releases.
func tlsEcho(scp *dicomtest.StoreSCP, conf *tls.Config) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := dimse.Dial(ctx, scp.Addr, &dimse.DialOptions{CallingAE: "DSCLIENT", CalledAE: scp.AETitle, TLS: conf,
		Contexts: storageProposals()})
	if err != nil {
		return err
	}
	err = cl.Echo(ctx)
	if rerr := cl.Release(); err == nil {
		err = rerr
	}
	return err
}
