package archive_test

// End-to-end tests of the archive: a real server on 127.0.0.1:0 over a data
// directory in t.TempDir(), peers registered with the command line (as an
// administrator would), DCMTK tools and our own client as the peers.

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dicomshield/dicomshield/internal/archive"
	"github.com/dicomshield/dicomshield/internal/cli"
	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/dicomtest"
	"github.com/dicomshield/dicomshield/internal/dimse"
	"github.com/dicomshield/dicomshield/internal/pki"
	"github.com/dicomshield/dicomshield/internal/store"
	"github.com/dicomshield/dicomshield/internal/ul"
)

// archiveAE is the archive's AE title in a fresh data directory.
const archiveAE = "DICOMSHIELD"

// Storage classes and syntaxes of the generated instances.
const (
	scImage       = "1.2.840.10008.5.1.4.1.1.7" // Secondary Capture Image Storage
	ctImage       = "1.2.840.10008.5.1.4.1.1.2" // CT Image Storage
	jpegBaseline  = "1.2.840.10008.1.2.4.50"
	tagQueryLevel = dicom.Tag(0x00080052)
	tagStudyDate  = dicom.Tag(0x00080020)
	tagModality   = dicom.Tag(0x00080060)
)

// ---------------------------------------------------------------------
// The server under test.

// logBuffer collects the server's log, shown when a test fails.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// serveGrace is the shutdown grace period of the test servers: long
// enough for the in-flight store of TestGracefulShutdown on a slow,
// race-instrumented run. Tests release their associations before the
// server stops, so it is not waited for otherwise.
const serveGrace = 30 * time.Second

// testServer is an archive serving on loopback: TLS and plain listeners.
type testServer struct {
	Dir       string
	A         *archive.Archive
	TLSAddr   string
	PlainAddr string
	Logs      *logBuffer

	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// metricsAddr is where startServer's archives expose metrics: off unless a
// test sets it.
var metricsAddr = ""

// startServer opens the archive in dir (created if needed) and serves it
// on 127.0.0.1 ports chosen by the system, TLS and plain. It is stopped and
// closed when the test ends; its log is shown if the test failed.
func startServer(t *testing.T, dir string) *testServer {
	t.Helper()
	return startServerWith(t, dir, nil)
}

// startServerWith is startServer with setup applied to the opened archive
// before it serves (nil: none).
func startServerWith(t *testing.T, dir string, setup func(*archive.Archive)) *testServer {
	t.Helper()
	logs := &logBuffer{}
	a, _, err := archive.Open(dir, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatalf("archive.Open(%s): %v", dir, err)
	}
	if setup != nil {
		setup(a)
	}
	a.Config.ListenTLS = "127.0.0.1:0"
	a.Config.Listen = "127.0.0.1:0"
	a.Config.Metrics = metricsAddr
	tlsL, plainL, err := a.Listeners()
	if err != nil {
		a.Close()
		t.Fatalf("Listeners: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &testServer{Dir: dir, A: a, TLSAddr: tlsL.Addr().String(), PlainAddr: plainL.Addr().String(),
		Logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- a.Serve(ctx, tlsL, plainL, serveGrace) }()
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
		a.Close()
		if t.Failed() {
			t.Logf("archive log:\n%s", logs.String())
		}
	})
	return s
}

// Stop ends Serve (gracefully) and returns its error. It may be called
// more than once.
func (s *testServer) Stop() error {
	s.once.Do(func() {
		s.cancel()
		select {
		case s.err = <-s.done:
		case <-time.After(serveGrace + 10*time.Second):
			s.err = errors.New("Serve did not return within the grace period after its context's end")
		}
	})
	return s.err
}

// port returns the port of a host:port address.
func port(t testing.TB, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// ---------------------------------------------------------------------
// Peers, registered with `dicomshield peer add`.

// bundle is a peer's certificate bundle as `peer add --bundle` writes it.
type bundle struct {
	AE, Dir         string
	Key, Cert, CA   string // file names inside Dir
	KeyPath, CAPath string
	CertPath        string
}

// runCLI runs the dicomshield command line and fails the test unless it
// exits 0.
func runCLI(t testing.TB, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := cli.Main(args, &out, &errb); code != 0 {
		t.Fatalf("dicomshield %s: exit status %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out.String(), errb.String())
	}
	return out.String()
}

// addPeer registers ae in the data directory with `peer add`, its bundle
// written to a new directory; extra are more flags (--allow, --host...).
// --host defaults to 127.0.0.1.
func addPeer(t testing.TB, dataDir, ae string, extra ...string) bundle {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bundle-"+pki.PeerFileBase(ae))
	args := []string{"peer", "add", ae, "--data", dataDir, "--bundle", dir}
	if !hasFlag(extra, "--host") {
		args = append(args, "--host", "127.0.0.1")
	}
	runCLI(t, append(args, extra...)...)
	base := pki.PeerFileBase(ae)
	b := bundle{AE: ae, Dir: dir, Key: base + ".key", Cert: base + ".crt", CA: "ca.pem"}
	b.KeyPath, b.CertPath, b.CAPath = filepath.Join(dir, b.Key), filepath.Join(dir, b.Cert), filepath.Join(dir, b.CA)
	return b
}

func hasFlag(args []string, flag string) bool {
	for _, a := range args {
		if a == flag || strings.HasPrefix(a, flag+"=") {
			return true
		}
	}
	return false
}

// TLS returns the client TLS configuration of the bundle: its certificate,
// and trust in the archive's CA only.
func (b bundle) TLS(t testing.TB) *tls.Config {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(b.CertPath, b.KeyPath)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(b.CAPath)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s holds no certificate", b.CAPath)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

// DCMTKTLS returns DCMTK's TLS options for the bundle, as the bundle's
// README tells a user: relative file names, run in the bundle directory.
func (b bundle) DCMTKTLS() []string {
	return []string{"+tls", b.Key, b.Cert, "+cf", b.CA}
}

// ---------------------------------------------------------------------
// Our client.

// proposals returns presentation contexts for everything: verification,
// the Study Root models, and each storage class in each of syntaxes as a
// context of its own (with the SCP role, for C-GET).
func proposals(classes []string, syntaxes []string) []dimse.Proposal {
	uncompressed := []string{dicom.ExplicitVRLittleEndianUID, dicom.ImplicitVRLittleEndianUID}
	ps := []dimse.Proposal{
		{AbstractSyntax: dimse.VerificationSOPClass, TransferSyntaxes: uncompressed},
		{AbstractSyntax: dimse.StudyRootFind, TransferSyntaxes: uncompressed},
		{AbstractSyntax: dimse.StudyRootGet, TransferSyntaxes: uncompressed},
		{AbstractSyntax: dimse.StudyRootMove, TransferSyntaxes: uncompressed},
	}
	for _, c := range classes {
		for _, ts := range syntaxes {
			ps = append(ps, dimse.Proposal{AbstractSyntax: c, TransferSyntaxes: []string{ts}, SCPRole: true})
		}
	}
	return ps
}

var allSyntaxes = []string{dicom.ExplicitVRLittleEndianUID, dicom.ImplicitVRLittleEndianUID,
	dicom.DeflatedExplicitVRLittleEndianUID, jpegBaseline}

// dialOpts dials addr as ae (TLS when tc is set) with the default
// proposals.
func dialAs(ctx context.Context, addr, ae string, tc *tls.Config) (*dimse.Client, error) {
	return dimse.Dial(ctx, addr, &dimse.DialOptions{CallingAE: ae, CalledAE: archiveAE, TLS: tc,
		Contexts: proposals([]string{scImage, ctImage}, allSyntaxes)})
}

// mustDial is dialAs that fails the test on error and releases the
// association when the test ends.
func mustDial(t testing.TB, addr, ae string, tc *tls.Config) *dimse.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := dialAs(ctx, addr, ae, tc)
	if err != nil {
		t.Fatalf("association as %s with %s: %v", ae, addr, err)
	}
	t.Cleanup(func() { cl.Release() })
	return cl
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// storeInst sends one instance and returns the status and error.
func storeInst(t testing.TB, cl *dimse.Client, in *instance) (uint16, error) {
	t.Helper()
	return cl.Store(testCtx(t), in.Class, in.UID, in.TS, bytes.NewReader(in.Data))
}

func mustStore(t testing.TB, cl *dimse.Client, insts ...*instance) {
	t.Helper()
	for _, in := range insts {
		if st, err := storeInst(t, cl, in); err != nil || st != dimse.StatusSuccess {
			t.Fatalf("C-STORE of %s (%s): status 0x%04X, %v", in.UID, in.TS, st, err)
		}
	}
}

// received is an instance that arrived by C-GET.
type received struct {
	Class, TS string
	Data      []byte
}

// get runs a C-GET with the identifier and returns what arrived, by SOP
// Instance UID.
func get(t testing.TB, cl *dimse.Client, id *dicom.DataSet) (map[string]received, dimse.SubOps, error) {
	t.Helper()
	var mu sync.Mutex
	got := map[string]received{}
	sub, err := cl.Get(testCtx(t), dimse.StudyRootGet, id, func(r *dimse.Request, data io.Reader) dimse.Status {
		b, err := io.ReadAll(data)
		if err != nil {
			return dimse.Status{Code: dimse.StatusProcessingFailure}
		}
		mu.Lock()
		got[r.Command.AffectedSOPInstance] = received{Class: r.AbstractSyntax, TS: r.TransferSyntax, Data: b}
		mu.Unlock()
		return dimse.Status{Code: dimse.StatusSuccess}
	})
	return got, sub, err
}

// identifier builds a query identifier from level and tag/value pairs.
func identifier(level string, kv ...any) *dicom.DataSet {
	var ds dicom.DataSet
	ds.Set(dicom.NewText(tagQueryLevel, dicom.CS, level))
	for i := 0; i < len(kv); i += 2 {
		tag := kv[i].(dicom.Tag)
		v := kv[i+1].(string)
		vr := dicom.LO
		if a, ok := store.AttrByTag(tag); ok {
			vr = a.VR
		}
		ds.Set(dicom.NewText(tag, vr, v))
	}
	return &ds
}

// find runs a Study Root C-FIND and returns the matches.
func find(t testing.TB, cl *dimse.Client, id *dicom.DataSet) ([]*dicom.DataSet, error) {
	t.Helper()
	var out []*dicom.DataSet
	_, err := cl.Find(testCtx(t), dimse.StudyRootFind, id, func(m *dicom.DataSet) error {
		out = append(out, m)
		return nil
	})
	return out, err
}

// ---------------------------------------------------------------------
// Generated instances.

// instance is a generated SOP instance: its data set encoded in TS.
type instance struct {
	Class, UID, Study, Series, TS string
	Patient                       string
	Data                          []byte // the data set, without meta header
	DS                            *dicom.DataSet
}

// uidRoot is a UID root for the tests' instances (2.25 plus a fixed
// number, then counters).
const uidRoot = "2.25.2718281828459045235360287"

var uidSeq struct {
	sync.Mutex
	n int
}

// newUID returns a UID unique within the test binary's run.
func newUID() string {
	uidSeq.Lock()
	defer uidSeq.Unlock()
	uidSeq.n++
	return fmt.Sprintf("%s.%d.%d", uidRoot, time.Now().UnixNano()%1e12, uidSeq.n)
}

// instanceSpec describes an instance to generate.
type instanceSpec struct {
	Class, TS      string
	Study, Series  string // "" : new
	Patient        string // "" : "PAT001"
	PatientName    string // "" : "Test^Patient"
	PixelBytes     int    // native pixel data length (0: 8x8)
	InstanceNumber int
	Description    string
	UID            string // "" : new
}

// makeInstance generates an 8-bit monochrome image. Native syntaxes get
// Rows*Columns bytes of pixel data; JPEG Baseline a real 8x8 JPEG in
// one fragment.
func makeInstance(t testing.TB, sp instanceSpec) *instance {
	t.Helper()
	in := &instance{Class: sp.Class, TS: sp.TS, Study: sp.Study, Series: sp.Series, UID: sp.UID, Patient: sp.Patient}
	if in.Class == "" {
		in.Class = scImage
	}
	if in.TS == "" {
		in.TS = dicom.ExplicitVRLittleEndianUID
	}
	if in.Study == "" {
		in.Study = newUID()
	}
	if in.Series == "" {
		in.Series = newUID()
	}
	if in.UID == "" {
		in.UID = newUID()
	}
	if in.Patient == "" {
		in.Patient = "PAT001"
	}
	name := sp.PatientName
	if name == "" {
		name = "Test^Patient"
	}
	rows, cols := 8, 8
	if sp.PixelBytes > 0 {
		cols = 256
		for rows = (sp.PixelBytes + cols - 1) / cols; rows > 0xFFFF; rows = (sp.PixelBytes + cols - 1) / cols {
			cols *= 2
		}
	}
	var ds dicom.DataSet
	ds.Set(dicom.NewText(dicom.TagSOPClassUID, dicom.UI, in.Class))
	ds.Set(dicom.NewText(dicom.TagSOPInstanceUID, dicom.UI, in.UID))
	ds.Set(dicom.NewText(tagStudyDate, dicom.DA, "20240131"))
	ds.Set(dicom.NewText(dicom.Tag(0x00080030), dicom.TM, "083000"))
	ds.Set(dicom.NewText(dicom.Tag(0x00080050), dicom.SH, "ACC"+strconv.Itoa(sp.InstanceNumber)))
	ds.Set(dicom.NewText(tagModality, dicom.CS, "OT"))
	ds.Set(dicom.NewText(dicom.Tag(0x00080064), dicom.CS, "WSD"))
	ds.Set(dicom.NewText(dicom.Tag(0x00081030), dicom.LO, "Study "+sp.Description))
	ds.Set(dicom.NewText(dicom.TagPatientName, dicom.PN, name))
	ds.Set(dicom.NewText(dicom.TagPatientID, dicom.LO, in.Patient))
	ds.Set(dicom.NewText(dicom.TagStudyInstanceUID, dicom.UI, in.Study))
	ds.Set(dicom.NewText(dicom.TagSeriesInstanceUID, dicom.UI, in.Series))
	ds.Set(dicom.NewText(dicom.Tag(0x00200010), dicom.SH, "1"))
	ds.Set(dicom.NewText(dicom.Tag(0x00200011), dicom.IS, "1"))
	ds.Set(dicom.NewText(dicom.Tag(0x00200013), dicom.IS, strconv.Itoa(sp.InstanceNumber)))
	ds.Set(dicom.NewUint16s(dicom.Tag(0x00280002), dicom.US, 1))
	ds.Set(dicom.NewText(dicom.Tag(0x00280004), dicom.CS, "MONOCHROME2"))
	ds.Set(dicom.NewUint16s(dicom.Tag(0x00280010), dicom.US, uint16(rows)))
	ds.Set(dicom.NewUint16s(dicom.Tag(0x00280011), dicom.US, uint16(cols)))
	ds.Set(dicom.NewUint16s(dicom.Tag(0x00280100), dicom.US, 8))
	ds.Set(dicom.NewUint16s(dicom.Tag(0x00280101), dicom.US, 8))
	ds.Set(dicom.NewUint16s(dicom.Tag(0x00280102), dicom.US, 7))
	ds.Set(dicom.NewUint16s(dicom.Tag(0x00280103), dicom.US, 0))
	if in.TS == jpegBaseline {
		img := image.NewGray(image.Rect(0, 0, cols, rows))
		for i := range img.Pix {
			img.Pix[i] = byte(i * 7)
		}
		var jb bytes.Buffer
		if err := jpeg.Encode(&jb, img, &jpeg.Options{Quality: 90}); err != nil {
			t.Fatal(err)
		}
		frag := jb.Bytes()
		if len(frag)%2 == 1 {
			frag = append(frag, 0)
		}
		ds.Set(dicom.NewText(dicom.Tag(0x00282110), dicom.CS, "01"))
		ds.Set(dicom.Element{Tag: dicom.TagPixelData, VR: dicom.OB, UndefinedLength: true, Fragments: [][]byte{{}, frag}})
	} else {
		px := make([]byte, rows*cols)
		for i := range px {
			px[i] = byte(i*31 + sp.InstanceNumber)
		}
		ds.Set(dicom.NewBytes(dicom.TagPixelData, dicom.OB, px))
	}
	data, err := dicom.MarshalDataSet(&ds, dicom.LookupTransferSyntax(in.TS))
	if err != nil {
		t.Fatal(err)
	}
	if len(data)%2 == 1 {
		// A deflated data set of odd length is padded with a NUL byte
		// (PS3.5 A.5): DCMTK refuses odd-length PDV fragments.
		data = append(data, 0)
	}
	in.Data, in.DS = data, &ds
	return in
}

// writeFile writes the instance as a Part 10 file into dir and returns its
// path.
func (in *instance) writeFile(t testing.TB, dir string) string {
	t.Helper()
	var b bytes.Buffer
	// The meta header alone: an empty data set, not deflated even for the
	// deflated syntax (a deflated empty data set is a few bytes of its own).
	ts := dicom.LookupTransferSyntax(in.TS)
	ts.Deflated = false
	f := dicom.NewFile(&dicom.DataSet{}, ts)
	f.Meta.Set(dicom.NewText(dicom.TagMediaStorageSOPClass, dicom.UI, in.Class))
	f.Meta.Set(dicom.NewText(dicom.TagMediaStorageSOPInst, dicom.UI, in.UID))
	if err := dicom.WriteFile(&b, f); err != nil {
		t.Fatal(err)
	}
	b.Write(in.Data)
	p := filepath.Join(dir, in.UID+".dcm")
	if err := os.WriteFile(p, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// splitPart10 splits a Part 10 file into its meta header's transfer
// syntax and the data set bytes that follow the meta group.
func splitPart10(t testing.TB, b []byte) (ts string, data []byte) {
	t.Helper()
	meta, data := splitMeta(t, b)
	return meta.String(dicom.TagTransferSyntaxUID), data
}

// splitMeta splits a Part 10 file into its meta group and the data set
// bytes that follow it.
func splitMeta(t testing.TB, b []byte) (*dicom.DataSet, []byte) {
	t.Helper()
	if len(b) < 144 || string(b[128:132]) != "DICM" || binary.LittleEndian.Uint32(b[132:]) != 0x00000002 {
		t.Fatalf("not a Part 10 file with a meta group length (%d bytes)", len(b))
	}
	n := int(binary.LittleEndian.Uint32(b[140:]))
	end := 144 + n
	if end > len(b) {
		t.Fatalf("meta group of %d bytes in a file of %d", n, len(b))
	}
	meta, err := dicom.Parse(b[132:end], dicom.ExplicitVRLittleEndian, nil)
	if err != nil {
		t.Fatalf("meta header: %v", err)
	}
	return meta, b[end:]
}

// inflate returns the inflated bytes of a deflated data set.
func inflate(t testing.TB, b []byte) []byte {
	t.Helper()
	out, err := io.ReadAll(flate.NewReader(bytes.NewReader(b)))
	if err != nil {
		t.Fatalf("inflating: %v", err)
	}
	return out
}

// storedData returns the data set bytes the archive keeps for the SOP
// instance, and its transfer syntax, from the index and the blob.
func storedData(t testing.TB, a *archive.Archive, uid string) (string, []byte) {
	t.Helper()
	inst, err := a.Index.Get(context.Background(), uid)
	if err != nil {
		t.Fatalf("index: %s: %v", uid, err)
	}
	rc, err := a.Blobs.Open(inst.BlobKey)
	if err != nil {
		t.Fatalf("blob of %s: %v", uid, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	ts, data := splitPart10(t, b)
	if ts != inst.TransferSyntaxUID {
		t.Errorf("%s: blob meta says %s, index %s", uid, ts, inst.TransferSyntaxUID)
	}
	return inst.TransferSyntaxUID, data
}

// blobFiles lists the committed blobs (not the scratch directory).
func blobFiles(t testing.TB, dataDir string) []string {
	t.Helper()
	root := filepath.Join(dataDir, archive.BlobsDir)
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != root && d.Name() == "tmp" {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// ---------------------------------------------------------------------
// Rejections.

// rejection returns the A-ASSOCIATE-RJ in err, or fails the test.
func rejection(t testing.TB, err error) ul.AssociateRJ {
	t.Helper()
	var rj *ul.RejectedError
	if !errors.As(err, &rj) {
		t.Fatalf("want an association rejection, got %v", err)
	}
	return rj.RJ
}

// ---------------------------------------------------------------------
// 1. First start, restart.

// TestFirstStartAndRestart: the first Open creates the data directory
// (0700), the commented config file and the CA (key 0600); a restart
// reuses all of it: the same CA, server certificate, peers and index.
func TestFirstStartAndRestart(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	dir := filepath.Join(t.TempDir(), "pacs")
	a, setup, err := archive.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !setup.CreatedDir || !setup.CreatedConfig || !setup.CreatedCA {
		t.Errorf("first Open: setup %+v, want the directory, config and CA created", setup)
	}
	if setup.CAFingerprint == "" || setup.CAFingerprint != a.CA.Fingerprint() {
		t.Errorf("setup fingerprint %q, CA's %q", setup.CAFingerprint, a.CA.Fingerprint())
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		dir  bool
		mode fs.FileMode
	}{
		{dir, true, 0o700},
		{filepath.Join(dir, "dicomshield.toml"), false, 0o600},
		{filepath.Join(dir, archive.PKIDir, "ca.key"), false, 0o600},
		{filepath.Join(dir, archive.PKIDir, "ca.pem"), false, 0},
		{filepath.Join(dir, archive.IndexFile), false, 0o600},
		{filepath.Join(dir, archive.BlobsDir, "tmp"), true, 0o700},
	} {
		st, err := os.Stat(c.path)
		if err != nil {
			t.Errorf("after the first start: %v", err)
			continue
		}
		if st.IsDir() != c.dir {
			t.Errorf("%s: directory %v, want %v", c.path, st.IsDir(), c.dir)
		}
		if c.mode != 0 && st.Mode().Perm() != c.mode {
			t.Errorf("%s: mode %v, want %v", c.path, st.Mode().Perm(), c.mode)
		}
	}
	conf, err := os.ReadFile(filepath.Join(dir, "dicomshield.toml"))
	if err != nil || !bytes.Contains(conf, []byte("#")) || !bytes.Contains(conf, []byte("version = 1")) {
		t.Errorf("dicomshield.toml is not the commented default (%v):\n%s", err, conf)
	}
	caPEM := readFile(t, filepath.Join(dir, archive.PKIDir, "ca.pem"))

	// Second start: serve, register a peer, store an instance.
	s := startServer(t, dir)
	if got := s.A.CA.Fingerprint(); got != setup.CAFingerprint {
		t.Fatalf("second start: CA fingerprint %s, first start %s", got, setup.CAFingerprint)
	}
	m := addPeer(t, dir, "MODALITY1", "--allow", "echo,store,find,get")
	cl := mustDial(t, s.TLSAddr, "MODALITY1", m.TLS(t))
	in := makeInstance(t, instanceSpec{})
	mustStore(t, cl, in)
	cl.Release()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	s.A.Close()
	serverPEM := readFile(t, filepath.Join(dir, archive.PKIDir, "server.pem"))
	conf2 := readFile(t, filepath.Join(dir, "dicomshield.toml"))

	// Third start: everything is reused, nothing created.
	a, setup, err = archive.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if setup.CreatedDir || setup.CreatedConfig || setup.CreatedCA {
		t.Errorf("restart: setup %+v, want nothing created", setup)
	}
	if setup.CAFingerprint != a.CA.Fingerprint() || a.CA.Fingerprint() != s.A.CA.Fingerprint() {
		t.Errorf("restart: CA fingerprint %s, before %s", a.CA.Fingerprint(), s.A.CA.Fingerprint())
	}
	if !bytes.Equal(readFile(t, filepath.Join(dir, archive.PKIDir, "ca.pem")), caPEM) {
		t.Error("restart: ca.pem changed")
	}
	if !bytes.Equal(readFile(t, filepath.Join(dir, "dicomshield.toml")), conf2) || !bytes.Equal(conf, conf2) {
		t.Error("restart: dicomshield.toml changed")
	}
	if _, err := a.Registry.Get(context.Background(), "MODALITY1"); err != nil {
		t.Errorf("restart: peer MODALITY1: %v", err)
	}
	if _, err := a.Index.Get(context.Background(), in.UID); err != nil {
		t.Errorf("restart: stored instance: %v", err)
	}
	if ts, data := storedData(t, a, in.UID); ts != in.TS || !bytes.Equal(data, in.Data) {
		t.Errorf("restart: stored instance changed (%s)", ts)
	}
	// The server certificate is reused too, and the old bundle still works.
	tlsL, plainL, err := listenersOf(t, a)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, tlsL, plainL, 5*time.Second) }()
	cl2, err := dialAs(testCtx(t), tlsL.Addr().String(), "MODALITY1", m.TLS(t))
	if err != nil {
		t.Errorf("restart: the bundle issued before the restart: %v", err)
	} else {
		if err := cl2.Echo(testCtx(t)); err != nil {
			t.Errorf("restart: echo: %v", err)
		}
		cl2.Release()
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if !bytes.Equal(readFile(t, filepath.Join(dir, archive.PKIDir, "server.pem")), serverPEM) {
		t.Error("restart: server certificate re-issued")
	}
}

func readFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// listenersOf opens the archive's listeners on loopback ports.
func listenersOf(t testing.TB, a *archive.Archive) (net.Listener, net.Listener, error) {
	t.Helper()
	a.Config.ListenTLS, a.Config.Listen = "127.0.0.1:0", "127.0.0.1:0"
	return a.Listeners()
}

// ---------------------------------------------------------------------
// 2. DCMTK, as a user runs it.

// dcmtkStoreOption makes storescu send a file in its own transfer syntax
// (storescu otherwise converts to what it proposes first).
var dcmtkStoreOption = map[string]string{
	dicom.ExplicitVRLittleEndianUID:         "-xe",
	dicom.ImplicitVRLittleEndianUID:         "-xi",
	dicom.DeflatedExplicitVRLittleEndianUID: "-xd",
	jpegBaseline:                            "-xy",
}

// TestDCMTK: echoscu, storescu and findscu over TLS with the bundle that
// `peer add` wrote, run in the bundle directory with the options the
// bundle's instructions give; getscu and movescu (DCMTK 3.6.7 has no TLS
// in them) on the plain listener as a peer registered --plaintext.
// Instances go in Explicit and Implicit VR Little Endian, deflated, and
// JPEG Baseline, and come back byte for byte.
func TestDCMTK(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	dicomtest.RequireDCMTK(t, "echoscu", "storescu", "findscu", "getscu", "movescu", "storescp")
	dir := filepath.Join(t.TempDir(), "data")
	s := startServer(t, dir)
	tlsPort, plainPort := port(t, s.TLSAddr), port(t, s.PlainAddr)
	m := addPeer(t, dir, "MODALITY1", "--allow", "echo,store,find")
	addPeer(t, dir, "VIEWER", "--allow", "echo,find,get,move", "--plaintext")
	scp := dicomtest.StartStoreSCP(t, dicomtest.StoreSCPConfig{AETitle: "WORKSTATION", Extra: []string{"+xa"}})
	addPeer(t, dir, "WORKSTATION", "--allow=", "--port", strconv.Itoa(scp.Port), "--plaintext")
	asModality := []string{"-aet", "MODALITY1", "-aec", archiveAE}

	r := dicomtest.MustRunSCUIn(t, m.Dir, "echoscu", append(append([]string{"-v"}, asModality...), append(m.DCMTKTLS(), "127.0.0.1", tlsPort)...)...)
	if out := string(r.Stderr) + string(r.Stdout); !strings.Contains(out, "Received Echo Response (Success)") {
		t.Errorf("echoscu did not report success:\n%s", r.Describe())
	}

	study := newUID()
	files := t.TempDir()
	var insts []*instance
	for i, ts := range allSyntaxes {
		in := makeInstance(t, instanceSpec{TS: ts, Study: study, Patient: "PAT-DCMTK", InstanceNumber: i + 1})
		insts = append(insts, in)
		p := in.writeFile(t, files)
		dicomtest.MustRunSCUIn(t, m.Dir, "storescu", append(append([]string{"-v", dcmtkStoreOption[ts]}, asModality...), append(m.DCMTKTLS(), "127.0.0.1", tlsPort, p)...)...)
	}
	// What the archive keeps is what storescu sent, in its syntax. DCMTK
	// deflates with its own zlib, so the deflated one is compared
	// inflated.
	stored := map[string][]byte{}
	for _, in := range insts {
		ts, data := storedData(t, s.A, in.UID)
		stored[in.UID] = data
		switch {
		case ts != in.TS:
			t.Errorf("%s stored in %s, sent in %s", in.UID, ts, in.TS)
		case ts == dicom.DeflatedExplicitVRLittleEndianUID:
			if !bytes.Equal(inflate(t, data), inflate(t, in.Data)) {
				t.Errorf("deflated instance: stored data set differs from the file's once inflated")
			}
		case !bytes.Equal(data, in.Data):
			t.Errorf("%s instance: stored data set differs from the file's", ts)
		}
	}

	r = dicomtest.MustRunSCUIn(t, m.Dir, "findscu", append(append([]string{"-v", "-S"}, asModality...), append(m.DCMTKTLS(),
		"-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID", "-k", "PatientID=PAT-DCMTK", "-k", "NumberOfStudyRelatedInstances",
		"127.0.0.1", tlsPort)...)...)
	out := string(r.Stderr) + string(r.Stdout)
	if strings.Count(out, "Find Response:") != 1 || !strings.Contains(out, study) ||
		!strings.Contains(out, "Received Final Find Response (Success)") || !strings.Contains(out, "[4 ]") {
		t.Errorf("findscu: want one study of 4 instances, %s:\n%s", study, r.Describe())
	}

	// getscu proposes each storage class in one context with all the
	// uncompressed syntaxes; the archive answers Explicit VR Little Endian,
	// sends that instance as it is stored and re-encodes the implicit and
	// deflated ones into it (transcode_test.go checks their values). The
	// JPEG one cannot be decompressed: it alone fails. Instances in their
	// own syntaxes are retrieved below by movescu and by our client (one
	// context per syntax).
	getDir := t.TempDir()
	r = dicomtest.RunSCUIn(t, getDir, "getscu", "-v", "-S", "-aet", "VIEWER", "-aec", archiveAE, "-od", getDir, "+B",
		"-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID="+study, "127.0.0.1", plainPort)
	if r.ExitCode != 0 {
		t.Errorf("getscu failed:\n%s", r.Describe())
	}
	got := readPart10Dir(t, getDir)
	for _, in := range insts {
		g, ok := got[in.UID]
		switch {
		case in.TS == jpegBaseline:
			if ok {
				t.Errorf("getscu: the JPEG instance arrived, as %s", g.TS)
			}
		case !ok:
			t.Errorf("getscu: %s instance did not arrive:\n%s", in.TS, r.Describe())
		case g.TS != dicom.ExplicitVRLittleEndianUID:
			t.Errorf("getscu: %s instance arrived as %s, want explicit VR little endian", in.TS, g.TS)
		case in.TS == dicom.ExplicitVRLittleEndianUID && !bytes.Equal(g.Data, in.Data):
			t.Errorf("getscu: explicit VR little endian instance arrived altered")
		}
	}

	// movescu has the archive send the study to the registered storescp,
	// which keeps what it receives bit for bit.
	r = dicomtest.RunSCU(t, "movescu", "-v", "-S", "-aet", "VIEWER", "-aec", archiveAE, "-aem", "WORKSTATION",
		"-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID="+study, "127.0.0.1", plainPort)
	if out := string(r.Stderr) + string(r.Stdout); r.ExitCode != 0 || !strings.Contains(out, "Received Final Move Response (Success)") {
		t.Errorf("movescu failed:\n%s\nstorescp:\n%s", r.Describe(), scp.Output())
	}
	moved := readPart10Dir(t, scp.Dir)
	for _, in := range insts {
		g, ok := moved[in.UID]
		switch {
		case !ok:
			t.Errorf("C-MOVE: %s instance did not arrive at storescp:\n%s", in.TS, scp.Output())
		case g.TS != in.TS || !bytes.Equal(g.Data, stored[in.UID]):
			t.Errorf("C-MOVE: %s instance arrived as %s, data set equal: %v", in.TS, g.TS, bytes.Equal(g.Data, stored[in.UID]))
		}
	}
	if len(moved) != len(insts) {
		t.Errorf("storescp received %d instances, want %d", len(moved), len(insts))
	}
}

// readPart10Dir reads the Part 10 files in dir, by SOP Instance UID.
func readPart10Dir(t testing.TB, dir string) map[string]received {
	t.Helper()
	out := map[string]received{}
	for _, p := range dicomtest.ListFiles(t, dir) {
		meta, data := splitMeta(t, readFile(t, p))
		out[meta.String(dicom.TagMediaStorageSOPInst)] = received{Class: meta.String(dicom.TagMediaStorageSOPClass),
			TS: meta.String(dicom.TagTransferSyntaxUID), Data: data}
	}
	return out
}

// TestClientRoundTrip: our client stores an instance in each syntax over
// TLS, finds them at every level, and gets them back byte for byte with
// C-GET over TLS (one context per syntax, so nothing needs transcoding).
func TestClientRoundTrip(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	dir := filepath.Join(t.TempDir(), "data")
	s := startServer(t, dir)
	b := addPeer(t, dir, "VIEWER", "--allow", "echo,store,find,get")
	cl := mustDial(t, s.TLSAddr, "VIEWER", b.TLS(t))
	if err := cl.Echo(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	study, series := newUID(), newUID()
	var insts []*instance
	for _, ts := range allSyntaxes {
		for _, class := range []string{scImage, ctImage} {
			in := makeInstance(t, instanceSpec{Class: class, TS: ts, Study: study, Series: series, InstanceNumber: len(insts) + 1, Patient: "PAT-RT"})
			insts = append(insts, in)
		}
	}
	mustStore(t, cl, insts...)
	for _, c := range []struct {
		level string
		want  int
	}{{"STUDY", 1}, {"SERIES", 1}, {"IMAGE", len(insts)}} {
		ms, err := find(t, cl, identifier(c.level, dicom.TagStudyInstanceUID, study, dicom.TagSOPInstanceUID, ""))
		if err != nil || len(ms) != c.want {
			t.Errorf("C-FIND %s: %d matches, %v; want %d", c.level, len(ms), err, c.want)
		}
	}
	got, sub, err := get(t, cl, identifier("STUDY", dicom.TagStudyInstanceUID, study))
	if err != nil || int(sub.Completed) != len(insts) || sub.Failed != 0 {
		t.Fatalf("C-GET: %+v, %v", sub, err)
	}
	for _, in := range insts {
		g, ok := got[in.UID]
		if !ok || g.TS != in.TS || g.Class != in.Class || !bytes.Equal(g.Data, in.Data) {
			t.Errorf("C-GET: %s (%s): arrived %v in %s, data set equal: %v", in.UID, in.TS, ok, g.TS, bytes.Equal(g.Data, in.Data))
		}
		if ts, data := storedData(t, s.A, in.UID); ts != in.TS || !bytes.Equal(data, in.Data) {
			t.Errorf("%s: stored in %s, data set equal: %v", in.UID, ts, bytes.Equal(data, in.Data))
		}
	}
}

// ---------------------------------------------------------------------
// 3. Refusals.

// TestAssociationRefused: who may not associate, and how they learn it.
// Every refusal of the calling side is an A-ASSOCIATE-RJ, permanent, from
// the service user, "calling AE title not recognized", whatever check
// failed; a client without a certificate, or without TLS on the TLS port,
// does not get as far as the association.
func TestAssociationRefused(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	dir := filepath.Join(t.TempDir(), "data")
	s := startServer(t, dir)
	a := addPeer(t, dir, "MODALITY_A", "--allow", "echo,store")
	b := addPeer(t, dir, "MODALITY_B", "--allow", "echo,store")
	far := addPeer(t, dir, "FARAWAY", "--host", "127.0.0.2/32", "--allow", "echo")
	legacy := addPeer(t, dir, "LEGACY", "--allow", "echo", "--plaintext")
	noCert := a.TLS(t)
	noCert.Certificates = nil
	callingRJ := ul.AssociateRJ{Result: ul.RejectPermanent, Source: ul.SourceServiceUser, Reason: ul.ReasonCallingAENotRecognized}

	tests := []struct {
		name     string
		addr     string
		ae       string
		called   string
		tls      *tls.Config
		wantRJ   *ul.AssociateRJ // nil with ok false: refused before the association
		ok       bool
		wantText string
	}{
		{name: "registered peer over TLS", addr: s.TLSAddr, ae: a.AE, tls: a.TLS(t), ok: true},
		{name: "unknown calling AE", addr: s.TLSAddr, ae: "STRANGER", tls: a.TLS(t), wantRJ: &callingRJ, wantText: "calling AE title not recognized"},
		{name: "A's certificate under B's AE title", addr: s.TLSAddr, ae: b.AE, tls: a.TLS(t), wantRJ: &callingRJ},
		{name: "B's certificate under A's AE title", addr: s.TLSAddr, ae: a.AE, tls: b.TLS(t), wantRJ: &callingRJ},
		{name: "unregistered address", addr: s.TLSAddr, ae: far.AE, tls: far.TLS(t), wantRJ: &callingRJ},
		{name: "wrong called AE", addr: s.TLSAddr, ae: a.AE, called: "NOT-THE-ARCHIVE", tls: a.TLS(t),
			wantRJ: &ul.AssociateRJ{Result: ul.RejectPermanent, Source: ul.SourceServiceUser, Reason: ul.ReasonCalledAENotRecognized}},
		{name: "no client certificate", addr: s.TLSAddr, ae: a.AE, tls: noCert, wantText: "TLS"},
		{name: "plain TCP to the TLS port", addr: s.TLSAddr, ae: a.AE},
		{name: "TLS-only peer on the plain listener", addr: s.PlainAddr, ae: a.AE, wantRJ: &callingRJ},
		{name: "plaintext peer on the plain listener", addr: s.PlainAddr, ae: legacy.AE, ok: true},
		{name: "plaintext peer over TLS", addr: s.TLSAddr, ae: legacy.AE, tls: legacy.TLS(t), ok: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			called := tc.called
			if called == "" {
				called = archiveAE
			}
			cl, err := dimse.Dial(ctx, tc.addr, &dimse.DialOptions{CallingAE: tc.ae, CalledAE: called, TLS: tc.tls,
				Contexts: proposals(nil, nil), ConnectTimeout: 5 * time.Second})
			if tc.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				defer cl.Release()
				if err := cl.Echo(ctx); err != nil {
					t.Fatalf("echo: %v", err)
				}
				return
			}
			if err == nil {
				cl.Abort()
				t.Fatal("association accepted")
			}
			var rj *ul.RejectedError
			isRJ := errors.As(err, &rj)
			switch {
			case tc.wantRJ != nil && !isRJ:
				t.Fatalf("want A-ASSOCIATE-RJ %+v, got %v", *tc.wantRJ, err)
			case tc.wantRJ != nil && rj.RJ != *tc.wantRJ:
				t.Fatalf("A-ASSOCIATE-RJ %+v (%v), want %+v", rj.RJ, err, *tc.wantRJ)
			case tc.wantRJ == nil && isRJ:
				t.Fatalf("want a refusal before the association, got %v", err)
			}
			if tc.wantText != "" && !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("error %q does not say %q", err, tc.wantText)
			}
		})
	}

	// DCMTK sees the same.
	t.Run("echoscu", func(t *testing.T) {
		dicomtest.RequireDCMTK(t, "echoscu")
		tlsPort := port(t, s.TLSAddr)
		for _, c := range []struct {
			name string
			args []string
			want string
		}{
			{"unknown calling AE", append([]string{"-aet", "STRANGER", "-aec", archiveAE}, a.DCMTKTLS()...), "calling ae title not recognized"},
			{"A's certificate under B's AE title", append([]string{"-aet", b.AE, "-aec", archiveAE}, a.DCMTKTLS()...), "calling ae title not recognized"},
			{"plain TCP to the TLS port", []string{"-aet", a.AE, "-aec", archiveAE, "-to", "5", "-ta", "5"}, ""},
			{"no client certificate", []string{"-aet", a.AE, "-aec", archiveAE, "+tla", "+cf", a.CA}, ""},
		} {
			r := dicomtest.RunSCUIn(t, a.Dir, "echoscu", append(append([]string{"-v"}, c.args...), "127.0.0.1", tlsPort)...)
			out := strings.ToLower(string(r.Stderr) + string(r.Stdout))
			if r.ExitCode == 0 || strings.Contains(out, "received echo response") {
				t.Errorf("%s: echoscu succeeded:\n%s", c.name, r.Describe())
			}
			if c.want != "" && (!strings.Contains(out, "association rejected") || !strings.Contains(out, c.want) ||
				!strings.Contains(out, "rejected permanent")) {
				t.Errorf("%s: echoscu does not report a permanent rejection, %q:\n%s", c.name, c.want, r.Describe())
			}
		}
	})
}

// TestRights: a peer gets only the services it was allowed. A service it
// may not use is not even negotiated (its presentation context is
// rejected), so the client cannot send the request.
func TestRights(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	dir := filepath.Join(t.TempDir(), "data")
	s := startServer(t, dir)
	loader := addPeer(t, dir, "LOADER", "--allow", "echo,store,get,find")
	m := addPeer(t, dir, "MODALITY1", "--allow", "echo,store")
	cl := mustDial(t, s.TLSAddr, loader.AE, loader.TLS(t))
	in := makeInstance(t, instanceSpec{})
	mustStore(t, cl, in)

	cm := mustDial(t, s.TLSAddr, m.AE, m.TLS(t))
	if err := cm.Echo(testCtx(t)); err != nil {
		t.Fatalf("echo: %v", err)
	}
	_, err := find(t, cm, identifier("STUDY", dicom.TagStudyInstanceUID, ""))
	if !errors.Is(err, dimse.ErrNoContext) || !strings.Contains(err.Error(), "no accepted presentation context") {
		t.Errorf("C-FIND without the find right: %v, want no accepted presentation context", err)
	}
	_, _, err = get(t, cm, identifier("STUDY", dicom.TagStudyInstanceUID, in.Study))
	if !errors.Is(err, dimse.ErrNoContext) {
		t.Errorf("C-GET without the get right: %v, want no accepted presentation context", err)
	}
	_, err = cm.Move(testCtx(t), dimse.StudyRootMove, loader.AE, identifier("STUDY", dicom.TagStudyInstanceUID, in.Study))
	if !errors.Is(err, dimse.ErrNoContext) {
		t.Errorf("C-MOVE without the move right: %v, want no accepted presentation context", err)
	}

	// A peer with find but not store cannot store.
	reader := addPeer(t, dir, "READER", "--allow", "find")
	cr := mustDial(t, s.TLSAddr, reader.AE, reader.TLS(t))
	if ms, err := find(t, cr, identifier("STUDY", dicom.TagStudyInstanceUID, "")); err != nil || len(ms) != 1 {
		t.Errorf("C-FIND with the find right: %d matches, %v", len(ms), err)
	}
	if err := cr.Echo(testCtx(t)); !errors.Is(err, dimse.ErrNoContext) {
		t.Errorf("C-ECHO without the echo right: %v", err)
	}
	if st, err := storeInst(t, cr, makeInstance(t, instanceSpec{})); !errors.Is(err, dimse.ErrNoContext) && st != dimse.StatusNotAuthorized {
		t.Errorf("C-STORE without the store right: status 0x%04X, %v", st, err)
	}
}

// TestMoveDestinations: C-MOVE goes only to a registered peer with a
// port, registered for plain DICOM (C-MOVE over TLS is not supported
// yet); anything else is "move destination unknown" (A801).
func TestMoveDestinations(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	dir := filepath.Join(t.TempDir(), "data")
	s := startServer(t, dir)
	v := addPeer(t, dir, "VIEWER", "--allow", "store,move")
	addPeer(t, dir, "NOPORT", "--allow=", "--plaintext")
	addPeer(t, dir, "TLSDEST", "--allow=", "--port", "11112")
	cl := mustDial(t, s.TLSAddr, v.AE, v.TLS(t))
	in := makeInstance(t, instanceSpec{})
	mustStore(t, cl, in)
	for _, dest := range []string{"NOBODY", "NOPORT", "STORESCP' OR '1'='1"} {
		_, err := cl.Move(testCtx(t), dimse.StudyRootMove, dest, identifier("STUDY", dicom.TagStudyInstanceUID, in.Study))
		if !dimse.IsStatus(err, dimse.StatusMoveDestinationUnknown) {
			t.Errorf("C-MOVE to %q: %v, want status A801", dest, err)
		}
	}
}

// TestPeerChangesWithoutRestart: `peer add` and `peer remove` on the data
// directory of a running server take effect from the next association, and
// end open associations that they retire.
func TestPeerChangesWithoutRestart(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	dir := filepath.Join(t.TempDir(), "data")
	s := startServer(t, dir)
	old := addPeer(t, dir, "MODALITY1", "--allow", "echo")
	echo := func(b bundle) error {
		cl, err := dialAs(testCtx(t), s.TLSAddr, b.AE, b.TLS(t))
		if err != nil {
			return err
		}
		defer cl.Release()
		return cl.Echo(testCtx(t))
	}
	if err := echo(old); err != nil {
		t.Fatalf("registered peer: %v", err)
	}
	// An association open on the old certificate is aborted when it is
	// re-issued (revoke_test.go covers that in detail); the next is
	// refused.
	open := mustDial(t, s.TLSAddr, old.AE, old.TLS(t))
	// Re-issuing the certificate retires the old one.
	renewed := addPeer(t, dir, "MODALITY1", "--allow", "echo")
	if err := echo(old); rejection(t, err).Reason != ul.ReasonCallingAENotRecognized {
		t.Errorf("old certificate after re-issue: %v", err)
	}
	if err := echo(renewed); err != nil {
		t.Fatalf("re-issued certificate: %v", err)
	}
	out := runCLI(t, "peer", "remove", "MODALITY1", "--data", dir)
	if !strings.Contains(out, "removed MODALITY1") {
		t.Errorf("peer remove said %q", out)
	}
	if err := echo(renewed); rejection(t, err).Reason != ul.ReasonCallingAENotRecognized {
		t.Errorf("removed peer: %v", err)
	}
	deadline := time.Now().Add(abortWithin)
	for open.Echo(testCtx(t)) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("the association on the re-issued certificate still answers %v later", abortWithin)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestQueryInjection: SQL and wildcard syntax in every query key is a
// value like any other: no match, no error, nothing else returned.
func TestQueryInjection(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	dir := filepath.Join(t.TempDir(), "data")
	s := startServer(t, dir)
	b := addPeer(t, dir, "VIEWER", "--allow", "store,find")
	cl := mustDial(t, s.TLSAddr, b.AE, b.TLS(t))
	study := newUID()
	for i := 1; i <= 3; i++ {
		mustStore(t, cl, makeInstance(t, instanceSpec{Study: study, InstanceNumber: i, Patient: "PAT-INJ", PatientName: "Doe^Jane"}))
	}
	if ms, err := find(t, cl, identifier("IMAGE", dicom.TagSOPInstanceUID, "")); err != nil || len(ms) != 3 {
		t.Fatalf("C-FIND of everything: %d matches, %v", len(ms), err)
	}
	injections := []string{`1234' and 1=1--`, `%`, `_`, `*' OR '1'='1`, `\`, `' OR 1=1; DROP TABLE instance; --`, `"`, `?%`, `[a-z]*`}
	for _, level := range []string{"STUDY", "SERIES", "IMAGE"} {
		lv, err := store.ParseLevel(level)
		if err != nil {
			t.Fatal(err)
		}
		// Every key the index matches at this level: those of the level
		// and above (keys below it are only returned, never matched).
		for _, attr := range store.Attrs {
			if attr.Count || attr.Level > lv {
				continue
			}
			for _, inj := range injections {
				name := fmt.Sprintf("%s level, %s=%s", level, attr.Keyword, inj)
				ms, err := find(t, cl, identifier(level, attr.Tag, inj))
				switch {
				case (attr.VR == dicom.DA || attr.VR == dicom.TM) && strings.Contains(inj, "-"),
					inj == `\` && (attr.VR == dicom.UI || attr.Aggregate):
					// A date or time with '-' is a range, and this one's
					// bounds are not dates; '\' is DICOM's value separator,
					// and in a list-valued key (UIDs, ModalitiesInStudy) it
					// is a list of empty values (PS3.4 C.2.2.2.2), not
					// universal matching: the identifier is refused.
					if !dimse.IsStatus(err, dimse.StatusIdentifierDoesNotMatch) || len(ms) != 0 {
						t.Errorf("%s: %d matches, %v; want status A900", name, len(ms), err)
					}
				case err != nil:
					t.Errorf("%s: %v", name, err)
				case len(ms) != 0:
					t.Errorf("%s: %d matches", name, len(ms))
				}
			}
		}
	}
	// The archive is intact.
	if ms, err := find(t, cl, identifier("IMAGE", dicom.TagSOPInstanceUID, "")); err != nil || len(ms) != 3 {
		t.Fatalf("C-FIND of everything afterwards: %d matches, %v", len(ms), err)
	}
}

// ---------------------------------------------------------------------
// 4. Store semantics.

// TestStoreSemantics: storing the same content again succeeds and keeps
// one blob; the same SOP Instance UID with other content is refused
// (0111, duplicate SOP instance) and the original is kept byte for byte.
func TestStoreSemantics(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	dir := filepath.Join(t.TempDir(), "data")
	s := startServer(t, dir)
	b := addPeer(t, dir, "MODALITY1", "--allow", "store,get,find")
	cl := mustDial(t, s.TLSAddr, b.AE, b.TLS(t))
	orig := makeInstance(t, instanceSpec{InstanceNumber: 1})
	mustStore(t, cl, orig)
	blobs := blobFiles(t, dir)
	if len(blobs) != 1 {
		t.Fatalf("%d blobs after one store", len(blobs))
	}

	// The same again, on this association and on another: a no-op.
	mustStore(t, cl, orig)
	cl2 := mustDial(t, s.TLSAddr, b.AE, b.TLS(t))
	mustStore(t, cl2, orig)
	if got := blobFiles(t, dir); len(got) != 1 || got[0] != blobs[0] {
		t.Errorf("blobs after storing the same content again: %v, want %v", got, blobs)
	}

	// Other content under the same UID.
	for _, c := range []struct {
		name string
		in   *instance
	}{
		{"other pixel data", makeInstance(t, instanceSpec{UID: orig.UID, Study: orig.Study, Series: orig.Series, InstanceNumber: 2})},
		{"other syntax", makeInstance(t, instanceSpec{UID: orig.UID, Study: orig.Study, Series: orig.Series, InstanceNumber: 1, TS: dicom.ImplicitVRLittleEndianUID})},
		{"other study", makeInstance(t, instanceSpec{UID: orig.UID, InstanceNumber: 1})},
	} {
		st, err := storeInst(t, cl, c.in)
		if st != dimse.StatusDuplicateInstance || !dimse.IsStatus(err, dimse.StatusDuplicateInstance) {
			t.Errorf("%s: status 0x%04X, %v; want 0x0111", c.name, st, err)
		}
	}
	if got := blobFiles(t, dir); len(got) != 1 || got[0] != blobs[0] {
		t.Errorf("blobs after refused stores: %v, want %v", got, blobs)
	}
	if ents, err := os.ReadDir(filepath.Join(dir, archive.BlobsDir, "tmp")); err != nil || len(ents) != 0 {
		t.Errorf("blobs/tmp after refused stores: %d entries, %v", len(ents), err)
	}
	got, sub, err := get(t, cl, identifier("IMAGE", dicom.TagStudyInstanceUID, orig.Study, dicom.TagSeriesInstanceUID, orig.Series, dicom.TagSOPInstanceUID, orig.UID))
	if err != nil || sub.Completed != 1 {
		t.Fatalf("C-GET of the original: %+v, %v", sub, err)
	}
	if g := got[orig.UID]; g.TS != orig.TS || !bytes.Equal(g.Data, orig.Data) {
		t.Errorf("the original came back in %s, data set equal: %v", g.TS, bytes.Equal(g.Data, orig.Data))
	}
	if ms, err := find(t, cl, identifier("IMAGE", dicom.TagSOPInstanceUID, "")); err != nil || len(ms) != 1 {
		t.Errorf("C-FIND: %d instances, %v; want 1", len(ms), err)
	}
}

// ---------------------------------------------------------------------
// 6. Graceful shutdown.

// signalReader reads r and closes reached once n bytes were read.
type signalReader struct {
	r       io.Reader
	n       int64
	read    int64
	reached chan struct{}
	once    sync.Once
}

func (s *signalReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.read += int64(n)
	if s.read >= s.n {
		s.once.Do(func() { close(s.reached) })
	}
	return n, err
}

// TestGracefulShutdown: when Serve's context ends during a C-STORE of a
// large instance, the store completes with success, Serve returns once
// the association is released, and new connections are refused.
func TestGracefulShutdown(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	dir := filepath.Join(t.TempDir(), "data")
	s := startServer(t, dir)
	b := addPeer(t, dir, "MODALITY1", "--allow", "echo,store")
	cl := mustDial(t, s.TLSAddr, b.AE, b.TLS(t))
	big := makeInstance(t, instanceSpec{PixelBytes: 20 << 20})
	sr := &signalReader{r: bytes.NewReader(big.Data), n: 2 << 20, reached: make(chan struct{})}

	type result struct {
		st  uint16
		err error
		at  time.Time
	}
	stored := make(chan result, 1)
	go func() {
		st, err := cl.Store(testCtx(t), big.Class, big.UID, big.TS, sr)
		stored <- result{st, err, time.Now()}
	}()
	select {
	case <-sr.reached:
	case r := <-stored:
		t.Fatalf("the store ended before 2 MiB were sent: 0x%04X, %v", r.st, r.err)
	}
	s.cancel() // what SIGTERM does in `dicomshield serve`
	served := make(chan time.Time, 1)
	go func() {
		s.Stop()
		served <- time.Now()
	}()

	// The listeners close at once: a new connection is refused while the
	// store goes on.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.TLSAddr, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the TLS listener still accepts 5 s after shutdown began")
		}
		time.Sleep(10 * time.Millisecond)
	}

	var r result
	select {
	case r = <-stored:
	case <-time.After(60 * time.Second):
		t.Fatal("the in-flight store did not finish")
	}
	if r.err != nil || r.st != dimse.StatusSuccess {
		t.Fatalf("in-flight C-STORE during shutdown: status 0x%04X, %v", r.st, r.err)
	}
	select {
	case at := <-served:
		t.Fatalf("Serve returned before the association ended (%v before the store's answer)", r.at.Sub(at))
	case <-time.After(100 * time.Millisecond):
	}
	if err := cl.Release(); err != nil {
		t.Errorf("release after the store: %v", err)
	}
	select {
	case at := <-served:
		if at.Before(r.at) {
			t.Errorf("Serve returned before the store completed")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return after the last association was released")
	}
	if err := s.Stop(); err != nil {
		t.Errorf("Serve: %v", err)
	}
	for _, addr := range []string{s.TLSAddr, s.PlainAddr} {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after Serve returned", addr)
		}
	}
	if ts, data := storedData(t, s.A, big.UID); ts != big.TS || !bytes.Equal(data, big.Data) {
		t.Errorf("the instance stored during shutdown: %s, data set equal: %v", ts, bytes.Equal(data, big.Data))
	}
}
