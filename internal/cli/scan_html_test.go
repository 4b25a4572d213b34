//go:build unix

package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/dicomshield/dicomshield/internal/dicomtest"
	"github.com/dicomshield/dicomshield/internal/scan"
	"github.com/dicomshield/dicomshield/internal/scan/report"
)

// TestScanHTMLAndDiff scans a real storescp with --json and --html: the
// page's figures are those of the JSON Lines results, and `scan diff`
// through the root command reports the service as newly exposed against
// an empty earlier scan, and nothing against itself.
func TestScanHTMLAndDiff(t *testing.T) {
	scp := dicomtest.StartStoreSCP(t, dicomtest.StoreSCPConfig{})
	dir := t.TempDir()
	jsonl, page := filepath.Join(dir, "r.jsonl"), filepath.Join(dir, "r.html")
	target := fmt.Sprintf("127.0.0.1:%d", scp.Port)
	if code, _, stderr := runCLI("scan", "-q", "--json", jsonl, "--html", page, "--http-ports", "", target); code != 0 {
		t.Fatalf("scan: exit %d: %s", code, stderr)
	}
	b, _ := os.ReadFile(jsonl)
	rs, err := scan.ReadJSONL(bytes.NewReader(b))
	if err != nil || len(rs) != 1 {
		t.Fatalf("JSON Lines: %v, %d results", err, len(rs))
	}
	report.MarkDecoys(rs)
	want := report.Summarize(rs)
	if want.Services != 1 || want.Auth.None != 1 {
		t.Fatalf("storescp not counted as one open service: %+v", want)
	}
	hb, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)<script type="application/json" id="figures">(.*?)</script>`).FindSubmatch(hb)
	if m == nil {
		t.Fatal("the page has no figures block")
	}
	var got report.Figures
	if err := json.Unmarshal([]byte(html.UnescapeString(string(m[1]))), &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("page figures %+v\nJSON results' figures %+v", got, want)
	}
	if !strings.Contains(string(hb), target) {
		t.Errorf("the page does not list %s", target)
	}

	empty := filepath.Join(dir, "empty.jsonl")
	os.WriteFile(empty, nil, 0o600)
	for _, tc := range []struct {
		old, new string
		code     int
		out      string
	}{
		{jsonl, jsonl, 0, "0 worse, 0 better, 0 other"},
		{empty, jsonl, 1, target + "  new service: authorization none"},
		{jsonl, empty, 0, "gone (was authorization none"},
	} {
		code, stdout, stderr := runCLI("scan", "diff", tc.old, tc.new)
		if code != tc.code || !strings.Contains(stdout, tc.out) {
			t.Errorf("scan diff %s %s: exit %d, want %d; output lacks %q?\n%s%s", filepath.Base(tc.old), filepath.Base(tc.new), code, tc.code, tc.out, stdout, stderr)
		}
	}
}
