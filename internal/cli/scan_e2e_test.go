//go:build unix

package cli

// The scanner's evidence end to end, through the real command line: a lab
// of real servers loaded with made-up patients, one `scan --prove
// --test-write` into every output, and each claim checked against what the
// servers really hold.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dicomshield/dicomshield/internal/archive"
	"github.com/dicomshield/dicomshield/internal/archive/archivetest"
	"github.com/dicomshield/dicomshield/internal/dicomtest"
	"github.com/dicomshield/dicomshield/internal/scan"
	"github.com/dicomshield/dicomshield/internal/scan/prove"
	"github.com/dicomshield/dicomshield/internal/scan/report"
)

// startDefaultServe runs dicomshield serve's archive on a fresh data
// directory as installed: DICOM over TLS only, no peer registered. It
// returns the archive, to read its index afterwards, and the TLS port.
func startDefaultServe(t *testing.T) (*archive.Archive, int) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	a, _, err := archive.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	listen := a.Config.Listen
	a.Close()
	if listen != "" {
		t.Fatalf("serve's default configuration listens for plain DICOM on %q", listen)
	}
	a, tlsAddr, _ := archivetest.Start(t, dir, false)
	_, port, _ := net.SplitHostPort(tlsAddr)
	n, _ := strconv.Atoi(port)
	return a, n
}

// figureIDs maps the report's figure elements to the figures they show.
func figureIDs(f report.Figures) map[string]int {
	m := map[string]int{
		"fig-services": f.Services, "lead-services": f.Services, "fig-results": f.Results,
		"fig-decoys": f.Decoys, "fig-not-dicom": f.NotDICOM,
		"fig-auth-none": f.Auth.None, "lead-auth-none": f.Auth.None, "fig-auth-weak": f.Auth.Weak,
		"fig-auth-strong": f.Auth.Strong, "fig-auth-unknown": f.Auth.Unknown,
		"fig-query-exposed": f.Exposure.QueryExposed, "lead-query": f.Exposure.QueryExposed,
		"fig-query-unproven": f.Exposure.QueryUnproven, "fig-storage-only": f.Exposure.StorageOnly,
		"lead-storage": f.Exposure.StorageOnly, "fig-closed": f.Exposure.Closed,
		"fig-proved": f.Proved, "fig-truncated": f.Truncated, "fig-tls": f.TLS, "fig-client-cert": f.ClientCert,
	}
	for level, n := range f.Records {
		m["fig-records-"+strings.ToLower(level)] = n
	}
	return m
}

// TestScanEndToEnd is issue 7's evidence: Orthanc with queries opened and
// made-up patients loaded, Orthanc as installed, and dicomshield serve as
// installed, scanned by `dicomshield scan --prove --test-write` into the
// table, JSON Lines, CSV, SARIF and HTML. The counts are what was loaded;
// no loaded name, name component, ID, birth date or address is in any
// output; the default Orthanc is storage-only with the append and
// overwrite outcomes its REST API shows; serve shows nothing and stores
// nothing; the report rendered by Chromium shows the JSON's figures.
func TestScanEndToEnd(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	defaults := dicomtest.OrthancDefaults(t)
	openQR := map[string]any{}
	for k, v := range defaults {
		openQR[k] = v
	}
	openQR["DicomAlwaysAllowFind"], openQR["DicomAlwaysAllowGet"], openQR["DicomAlwaysAllowMove"] = true, true, true
	open := dicomtest.StartOrthanc(t, dicomtest.OrthancConfig{Extra: openQR})
	openPatients := dicomtest.Patients(t, 5)
	openStudies := open.LoadPatients(t, openPatients)
	deflt := dicomtest.StartOrthanc(t, dicomtest.OrthancConfig{Extra: defaults})
	defltPatients := dicomtest.Patients(t, 2)
	defltStudies := deflt.LoadPatients(t, defltPatients)
	serve, servePort := startDefaultServe(t)
	secrets := dicomtest.Secrets(append(slices.Clone(openPatients), defltPatients...))

	dir := t.TempDir()
	out := func(name string) string { return filepath.Join(dir, name) }
	const salt = "e2e-salt from a file"
	if err := os.WriteFile(out("salt"), []byte(salt+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	target := func(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }
	var stdout, stderr bytes.Buffer
	start := time.Now()
	code := Main([]string{"scan", "--prove", "--test-write", "--hash-ids-file", out("salt"),
		"--json", out("r.jsonl"), "--csv", out("r.csv"), "--sarif", out("r.sarif"), "--html", out("r.html"),
		"--http-ports", fmt.Sprintf("%d,%d", open.HTTPPort, deflt.HTTPPort),
		target(open.DicomPort), target(deflt.DicomPort), target(servePort)}, &stdout, &stderr)
	t.Logf("scan of 3 services with --prove --test-write: exit %d in %v", code, time.Since(start).Round(time.Millisecond))
	if code != 0 {
		t.Fatalf("scan: exit %d: %s", code, stderr.String())
	}

	// Nothing loaded appears anywhere the scanner wrote.
	outputs := map[string][]byte{"stdout": stdout.Bytes(), "stderr": stderr.Bytes()}
	for _, name := range []string{"r.jsonl", "r.csv", "r.sarif", "r.html"} {
		b, err := os.ReadFile(out(name))
		if err != nil {
			t.Fatal(err)
		}
		outputs[name] = b
	}
	for what, b := range outputs {
		dicomtest.NoPatientData(t, what, b, secrets)
	}
	if !t.Failed() {
		t.Logf("the table (UIDs are the scanner's own; no patient data, as checked above):\n%s", stdout.String())
	}

	rs, err := scan.ReadJSONL(bytes.NewReader(outputs["r.jsonl"]))
	if err != nil || len(rs) != 3 {
		t.Fatalf("JSON Lines: %v, %d results, want 3", err, len(rs))
	}
	byPort := map[int]*scan.Result{}
	for i := range rs {
		byPort[rs[i].Port] = &rs[i]
	}

	// checkWrite compares the write test's claims with what Orthanc holds
	// and returns the Instance Number it kept for the first instance.
	checkWrite := func(t *testing.T, o *dicomtest.Orthanc, w *scan.WriteTest, loaded int) string {
		t.Helper()
		if w == nil || !w.Stored || len(w.Created) != 4 {
			t.Fatalf("write test %+v: want stored, with study, series and two instances created", w)
		}
		for _, uid := range w.Created {
			if !strings.HasPrefix(uid, prove.ScannerUIDRoot+".") {
				t.Errorf("created UID %s is not under the scanner's root", uid)
			}
			if !strings.Contains(stdout.String(), uid) {
				t.Errorf("the table does not list created UID %s", uid)
			}
		}
		if n := len(o.Instances(t)); n != loaded+2 {
			t.Errorf("Orthanc holds %d instances, want the %d loaded and the scanner's 2", n, loaded)
		}
		first := o.InstanceByUID(t, w.Created[2])
		appended := o.InstanceByUID(t, w.Created[3])
		if first == "" {
			t.Fatal("Orthanc does not hold the first synthetic instance")
		}
		var tags map[string]string
		if appended != "" {
			o.GetJSON(t, "/instances/"+appended+"/simplified-tags", &tags)
		}
		reallyAppended := appended != "" && tags["SeriesInstanceUID"] == w.Created[1]
		if (w.Append == scan.WriteAccepted) != reallyAppended {
			t.Errorf("append %s, but Orthanc holds the appended instance in the series: %v", w.Append, reallyAppended)
		}
		if w.Append == scan.WriteAccepted && !strings.Contains(w.Detail, "created moments earlier") {
			t.Errorf("detail %q does not say the appended series was fresh", w.Detail)
		}
		o.GetJSON(t, "/instances/"+first+"/simplified-tags", &tags)
		return tags["InstanceNumber"]
	}

	t.Run("orthanc with queries opened", func(t *testing.T) {
		r := byPort[open.DicomPort]
		if r == nil || r.Proof == nil {
			t.Fatalf("result %+v: want one with a proof", r)
		}
		p := r.Proof
		if p.Records[prove.LevelPatient] != len(openPatients) || p.Records[prove.LevelStudy] != openStudies || p.Truncated {
			t.Errorf("records %v (truncated %v), want %d patients and %d studies", p.Records, p.Truncated, len(openPatients), openStudies)
		}
		var hashes []string
		for _, pt := range openPatients {
			h := sha256.Sum256([]byte(salt + "\x00" + pt.ID))
			hashes = append(hashes, hex.EncodeToString(h[:]))
		}
		slices.Sort(hashes)
		if !slices.Equal(p.PatientIDHashes, hashes) {
			t.Errorf("%d patient ID hashes, not those of the loaded IDs salted from --hash-ids-file", len(p.PatientIDHashes))
		}
		if r.Auth != scan.AuthNone || r.Exposure.Query != scan.ExposureOpen || r.Exposure.Retrieve != scan.ExposureOpen ||
			r.Exposure.Store != scan.ExposureOpen || report.Class(r) != report.ClassQuery {
			t.Errorf("auth %s exposure %+v, want none, everything open", r.Auth, r.Exposure)
		}
		// Orthanc answers success to an overwrite and keeps the original
		// (OverwriteInstances is false by default); the scanner's C-FIND
		// read-back must say "ignored".
		kept := checkWrite(t, open, r.WriteTest, openStudies)
		if kept != "1" || r.WriteTest.Overwrite != scan.WriteIgnored {
			t.Errorf("overwrite %s, Orthanc kept instance number %q: want ignored and 1", r.WriteTest.Overwrite, kept)
		}
	})

	t.Run("orthanc as installed", func(t *testing.T) {
		r := byPort[deflt.DicomPort]
		if r == nil || r.Proof == nil {
			t.Fatalf("result %+v: want one with a proof", r)
		}
		if r.Proof.Records[prove.LevelPatient] != -1 || r.Proof.Records[prove.LevelStudy] != -1 || len(r.Proof.PatientIDHashes) != 0 {
			t.Errorf("proof %+v, want every query refused", r.Proof)
		}
		if r.Auth != scan.AuthNone || r.Exposure.Query != scan.ExposureClosed || r.Exposure.Retrieve != scan.ExposureClosed ||
			r.Exposure.Store != scan.ExposureOpen || report.Class(r) != report.ClassStorageOnly {
			t.Errorf("auth %s exposure %+v (%s), want storage only", r.Auth, r.Exposure, report.Class(r))
		}
		// The original is kept, but with query and retrieve closed the
		// scanner cannot read it back: "unverified", never a guess.
		kept := checkWrite(t, deflt, r.WriteTest, defltStudies)
		if kept != "1" || r.WriteTest.Overwrite != scan.WriteUnverified {
			t.Errorf("overwrite %s, Orthanc kept instance number %q: want unverified and 1", r.WriteTest.Overwrite, kept)
		}
		for _, id := range []string{scan.FindingStoreOpen, scan.FindingWriteAppend} {
			if !slices.ContainsFunc(r.Findings, func(f scan.Finding) bool { return f.ID == id }) {
				t.Errorf("no finding %s in %+v", id, r.Findings)
			}
		}
	})

	t.Run("dicomshield serve as installed", func(t *testing.T) {
		r := byPort[servePort]
		if r == nil {
			t.Fatal("no result")
		}
		if r.Auth != scan.AuthStrong || !r.TLS.Enabled || !r.TLS.ClientCertRequired || len(r.Findings) != 0 {
			t.Errorf("auth %s tls %+v findings %+v, want strong, TLS with client certificates, no findings", r.Auth, r.TLS, r.Findings)
		}
		for what, v := range map[string]string{"query": r.Exposure.Query, "retrieve": r.Exposure.Retrieve, "store": r.Exposure.Store} {
			if v == scan.ExposureOpen || v == scan.ExposureUnproven {
				t.Errorf("%s %s", what, v)
			}
		}
		if r.Proof != nil || r.WriteTest != nil || report.Class(r) != report.ClassClosed {
			t.Errorf("proof %+v write test %+v class %s: a stranger got in", r.Proof, r.WriteTest, report.Class(r))
		}
		n := 0
		serve.Index.BlobKeys(context.Background(), func(string) error { n++; return nil })
		serve.Blobs.List(func(string) error { n++; return nil })
		if n != 0 {
			t.Errorf("serve's index and blob store hold %d entries after the scan", n)
		}
	})

	t.Run("table", func(t *testing.T) {
		s := stdout.String()
		for _, port := range []int{open.DicomPort, deflt.DicomPort, servePort} {
			if !strings.Contains(s, target(port)) {
				t.Errorf("the table does not list %s", target(port))
			}
		}
		if !strings.Contains(s, "3 DICOM service(s)") || !strings.Contains(s, "Stored by --test-write; delete them:") {
			t.Errorf("table:\n%s", s)
		}
	})

	t.Run("html in chromium", func(t *testing.T) {
		report.MarkDecoys(rs)
		want := report.Summarize(rs)
		if want.Services != 3 || want.Decoys != 0 || want.Records[prove.LevelPatient] != len(openPatients) ||
			want.Records[prove.LevelStudy] != openStudies || want.Exposure.StorageOnly != 1 || want.Auth.Strong != 1 {
			t.Errorf("figures of the JSON results %+v", want)
		}
		net := dicomtest.StartNetRecorder(t)
		dom := dicomtest.ChromiumDOM(t, out("r.html"), net)
		dicomtest.NoPatientData(t, "the rendered report", []byte(dom), secrets)
		for id, n := range figureIDs(want) {
			got := strings.ReplaceAll(dicomtest.DOMText(t, dom, id), ",", "")
			if got != strconv.Itoa(n) {
				t.Errorf("#%s shows %q, the JSON results' figures say %d", id, got, n)
			}
		}
		m := regexp.MustCompile(`(?s)<script type="application/json" id="figures">(.*?)</script>`).FindStringSubmatch(dom)
		if m == nil {
			t.Fatal("the rendered page has no figures block")
		}
		var got report.Figures
		if err := json.Unmarshal([]byte(html.UnescapeString(m[1])), &got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("the page's figures %+v\nthe JSON results' %+v", got, want)
		}
		if r := net.PageRequests(); len(r) != 0 {
			t.Errorf("opening the report made network requests: %q", r)
		}
	})
}
