//go:build unix

package cli

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dicomshield/dicomshield/internal/dicomtest"
	"github.com/dicomshield/dicomshield/internal/scan"
)

// TestScanCommand scans a real storescp through the command line, with
// targets from a masscan list file, into every output format.
func TestScanCommand(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	scp := dicomtest.StartStoreSCP(t, dicomtest.StoreSCPConfig{})
	dir := t.TempDir()
	list := filepath.Join(dir, "masscan.txt")
	closed := closedPort(t)
	_, closedP, _ := strings.Cut(closed, ":")
	os.WriteFile(list, []byte(fmt.Sprintf("#masscan\nopen tcp %d 127.0.0.1 1700000000\nopen tcp %s 127.0.0.1 1700000000\n# end\n", scp.Port, closedP)), 0o600)
	jsonl, csvf, sarif := filepath.Join(dir, "r.jsonl"), filepath.Join(dir, "r.csv"), filepath.Join(dir, "r.sarif")

	code, stdout, stderr := runCLI("scan", "-iL", list, "--json", jsonl, "--csv", csvf, "--sarif", sarif, "--http-ports", "")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, fmt.Sprintf("127.0.0.1:%d", scp.Port)) || !strings.Contains(stdout, "1 DICOM service(s)") || !strings.Contains(stdout, "none") {
		t.Errorf("table:\n%s", stdout)
	}
	b, _ := os.ReadFile(jsonl)
	rs, err := scan.ReadJSONL(bytes.NewReader(b))
	if err != nil || len(rs) != 1 {
		t.Fatalf("JSON Lines: %v, %d results:\n%s", err, len(rs), b)
	}
	var raw map[string]any
	json.Unmarshal(bytes.TrimSpace(b), &raw)
	for _, k := range []string{"host", "port", "dicom", "tls", "auth", "auth_detail", "implementation", "product", "services", "exposure", "findings"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("JSON result without %q", k)
		}
	}
	if rs[0].Auth != scan.AuthNone || rs[0].Exposure.Store != scan.ExposureUnproven || !rs[0].Services["verification"].Accepted {
		t.Errorf("result %+v", rs[0])
	}
	cf, _ := os.Open(csvf)
	rows, err := csv.NewReader(cf).ReadAll()
	cf.Close()
	if err != nil || len(rows) != 2 || rows[0][0] != "host" || rows[1][6] != scan.AuthNone {
		t.Errorf("CSV %v: %v", err, rows)
	}
	var log struct {
		Version string
		Runs    []struct {
			Results []struct{ RuleID string }
		}
	}
	sb, _ := os.ReadFile(sarif)
	if err := json.Unmarshal(sb, &log); err != nil || log.Version != "2.1.0" || len(log.Runs) != 1 || len(log.Runs[0].Results) == 0 {
		t.Errorf("SARIF %v: %s", err, sb)
	}
}

func TestScanRefusals(t *testing.T) {
	dir := t.TempDir()
	saltFile, emptyFile := filepath.Join(dir, "salt"), filepath.Join(dir, "empty")
	os.WriteFile(saltFile, []byte("s\n"), 0o600)
	os.WriteFile(emptyFile, []byte("\n"), 0o600)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"public target", []string{"scan", "192.0.2.10"}, "--accept-risk=public-targets"},
		{"public range", []string{"scan", "10.0.0.250-11.0.0.5"}, "outside loopback"},
		{"no targets", []string{"scan"}, "no targets"},
		{"bad target", []string{"scan", "not a target!"}, "not a target"},
		{"unknown risk", []string{"scan", "--accept-risk=everything", "127.0.0.1"}, "unknown risk"},
		{"bad ports", []string{"scan", "-p", "0", "127.0.0.1"}, "-p"},
		{"bad exclude", []string{"scan", "--exclude", "pacs.example", "127.0.0.1"}, "--exclude"},
		{"two salts", []string{"scan", "--prove", "--hash-ids", "s", "--hash-ids-file", saltFile, "127.0.0.1"}, "give one"},
		{"empty salt file", []string{"scan", "--prove", "--hash-ids-file", emptyFile, "127.0.0.1"}, "no salt"},
		{"salt file without --prove", []string{"scan", "--hash-ids-file", saltFile, "127.0.0.1"}, "go with --prove"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(tc.args...)
			if code == 0 || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q, want it to mention %q", code, stderr, tc.want)
			}
		})
	}
}
