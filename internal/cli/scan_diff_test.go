package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dicomshield/dicomshield/internal/scan"
	"github.com/dicomshield/dicomshield/internal/scan/report"
)

// runScanDiff runs the diff command as Main would and returns its exit
// status and output.
func runScanDiff(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := newScanDiffCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.Execute()
	if err == nil {
		return 0, out.String()
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code, out.String()
	}
	return 1, out.String() + err.Error()
}

func writeResults(t *testing.T, dir, name string, rs ...scan.Result) string {
	t.Helper()
	var buf bytes.Buffer
	for i := range rs {
		if err := scan.WriteJSONL(&buf, &rs[i]); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestScanDiff(t *testing.T) {
	dir := t.TempDir()
	closed := scan.Result{Host: "10.0.0.1", Port: 104, DICOM: true, Auth: scan.AuthStrong,
		Exposure: scan.Exposure{Query: scan.ExposureClosed, Retrieve: scan.ExposureClosed, Store: scan.ExposureClosed}}
	open := closed
	open.Auth = scan.AuthNone
	open.Exposure.Query = scan.ExposureOpen
	open.Findings = []scan.Finding{{ID: "DS-QUERY-OPEN", Severity: scan.SeverityCritical, Title: "A stranger can query patient records"}}
	closedF := writeResults(t, dir, "closed.jsonl", closed)
	openF := writeResults(t, dir, "open.jsonl", open)
	emptyF := writeResults(t, dir, "empty.jsonl")
	badF := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(badF, []byte("not json\n"), 0o644)

	for _, tc := range []struct {
		name string
		args []string
		code int
		out  []string
	}{
		{"same", []string{closedF, closedF}, 0, []string{"0 worse, 0 better, 0 other"}},
		{"query opened", []string{closedF, openF}, 1, []string{"became worse:", "query: closed -> open", "authorization: strong -> none", "new finding [critical] DS-QUERY-OPEN"}},
		{"fixed", []string{openF, closedF}, 0, []string{"became better:", "query: open -> closed", "fixed [critical] DS-QUERY-OPEN"}},
		{"new exposed service", []string{emptyF, openF}, 1, []string{"new service: authorization none, query-exposed"}},
		{"json", []string{"--json", closedF, openF}, 1, []string{`"direction": "worse"`, `"kind": "exposure"`}},
		{"unreadable", []string{closedF, filepath.Join(dir, "missing.jsonl")}, 2, nil},
		{"not results", []string{badF, closedF}, 2, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := runScanDiff(t, tc.args...)
			if code != tc.code {
				t.Fatalf("exit status %d, want %d\n%s", code, tc.code, out)
			}
			for _, s := range tc.out {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
		})
	}

	_, out := runScanDiff(t, "--json", closedF, openF)
	var d report.Delta
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("--json output is not one JSON object: %v\n%s", err, out)
	}
	if !d.Worse() || d.OldServices != 1 || d.NewServices != 1 {
		t.Fatalf("--json delta = %+v", d)
	}
}

func TestWriteScanHTML(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "report.html")
	rs := []scan.Result{{Host: "10.0.0.1", Port: 104, DICOM: true, Auth: scan.AuthNone,
		Exposure: scan.Exposure{Query: scan.ExposureOpen, Retrieve: scan.ExposureClosed, Store: scan.ExposureOpen}}}
	for range 2 { // the second run replaces the first
		if err := writeScanHTML(path, rs, []string{"10.0.0.0/24"}); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `<span class="n" id="fig-query-exposed">1</span>`) || !strings.Contains(string(b), "10.0.0.0/24") {
		t.Fatalf("report lacks the figures or the source:\n%s", b)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("report mode %v, want 0600", fi.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".dicomshield-report-*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	if err := writeScanHTML(filepath.Join(dir, "no", "such", "dir", "r.html"), rs, nil); err == nil {
		t.Error("writing into a missing directory succeeded")
	}
}
