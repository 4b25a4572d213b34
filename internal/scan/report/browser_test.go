package report

import (
	"bytes"
	"encoding/json"
	"html"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/dicomshield/dicomshield/internal/dicomtest"
)

func number(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.ReplaceAll(s, ",", ""))
	if err != nil {
		t.Fatalf("%q is not a number", s)
	}
	return n
}

// TestHTMLInChromium opens the fixture's report from disk in headless
// Chromium, checks that the rendered figures are the hand-counted ones and
// Summarize's, and that the page fetched nothing. Two control pages prove
// the check can fail: the same page with an image from the network and no
// policy makes a request the proxy sees; with the policy it does not.
func TestHTMLInChromium(t *testing.T) {
	rs := fixture()
	MarkDecoys(rs)
	want := Summarize(rs)
	var buf bytes.Buffer
	if err := WriteHTML(&buf, rs, Meta{Generated: t0, Sources: []string{"fixture.jsonl"}}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	report := filepath.Join(dir, "report.html")
	if err := os.WriteFile(report, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	p := dicomtest.StartNetRecorder(t)
	dom := dicomtest.ChromiumDOM(t, report, p)

	for _, tc := range []struct {
		id   string
		text string // by hand, from the fixture's comments
		got  int    // from Summarize
	}{
		{"fig-services", "7", want.Services},
		{"lead-services", "7", want.Services},
		{"fig-decoys", "7", want.Decoys},
		{"fig-not-dicom", "1", want.NotDICOM},
		{"fig-results", "15", want.Results},
		{"fig-auth-none", "4", want.Auth.None},
		{"lead-auth-none", "4", want.Auth.None},
		{"fig-auth-weak", "1", want.Auth.Weak},
		{"fig-auth-strong", "1", want.Auth.Strong},
		{"fig-auth-unknown", "1", want.Auth.Unknown},
		{"fig-query-exposed", "3", want.Exposure.QueryExposed},
		{"lead-query", "3", want.Exposure.QueryExposed},
		{"fig-query-unproven", "1", want.Exposure.QueryUnproven},
		{"fig-storage-only", "1", want.Exposure.StorageOnly},
		{"lead-storage", "1", want.Exposure.StorageOnly},
		{"fig-closed", "2", want.Exposure.Closed},
		{"fig-records-patient", "1,260", want.Records["PATIENT"]},
		{"fig-records-study", "3,475", want.Records["STUDY"]},
		{"fig-proved", "3", want.Proved},
		{"fig-truncated", "1", want.Truncated},
		{"fig-tls", "2", want.TLS},
		{"fig-client-cert", "1", want.ClientCert},
	} {
		got := dicomtest.DOMText(t, dom, tc.id)
		if got != tc.text {
			t.Errorf("#%s shows %q, want %q", tc.id, got, tc.text)
		}
		if n := number(t, got); n != tc.got {
			t.Errorf("#%s shows %d, Summarize says %d", tc.id, n, tc.got)
		}
	}
	if strings.Contains(dom, `id="fig-records-none"`) {
		t.Error("records shown as not counted although three services were proved")
	}
	if !strings.Contains(dom, "</span> (42.9 %) answered query/retrieve") {
		t.Error("the lead sentence lacks the query-exposed share (3 of 7)")
	}
	if got := dicomtest.DOMText(t, dom, "fig-tls-percent"); got != "28.6 %" {
		t.Errorf("#fig-tls-percent shows %q, want 28.6 %% (2 of 7)", got)
	}
	for i, c := range want.Versions {
		if n, v := dicomtest.DOMText(t, dom, "ver-"+strconv.Itoa(i)+"-name"), dicomtest.DOMText(t, dom, "ver-"+strconv.Itoa(i)+"-count"); n != c.Name || number(t, v) != c.Count {
			t.Errorf("versions row %d shows %q %q, want %q %d", i, n, v, c.Name, c.Count)
		}
	}
	// The data block as the browser holds it is Summarize's figures.
	m := figuresBlock.FindStringSubmatch(dom)
	if m == nil {
		t.Fatal("the rendered page lost its figures data block")
	}
	var f Figures
	if err := json.Unmarshal([]byte(html.UnescapeString(m[1])), &f); err != nil {
		t.Fatalf("figures block in the DOM: %v", err)
	}
	if !reflect.DeepEqual(f, want) {
		t.Errorf("figures block in the DOM:\n got %+v\nwant %+v", f, want)
	}
	// Every service section rendered, decoys apart and marked.
	if n := strings.Count(dom, `<section class="svc`); n != 14 {
		t.Errorf("%d service sections rendered, want 14 (7 services, 7 decoys)", n)
	}
	if n := strings.Count(dom, `<section class="svc decoy"`); n != 7 {
		t.Errorf("%d decoy sections rendered, want 7", n)
	}
	if strings.Contains(dom, "<script>alert") {
		t.Error("the hostile finding title became markup in the browser")
	}
	if r := p.PageRequests(); len(r) != 0 {
		t.Errorf("opening the report made network requests: %q", r)
	}

	// Controls: an image from the network, without and with the report's policy.
	const canary = `<img src="http://canary.invalid/pixel.png" alt="">`
	page := buf.String()
	noCSP := regexp.MustCompile(`<meta http-equiv="Content-Security-Policy"[^>]*>`).ReplaceAllString(page, "")
	for _, c := range []struct {
		name, page string
		fetched    bool
	}{
		{"without the policy", strings.Replace(noCSP, "<body>", "<body>"+canary, 1), true},
		{"with the policy", strings.Replace(page, "<body>", "<body>"+canary, 1), false},
	} {
		file := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".html")
		if err := os.WriteFile(file, []byte(c.page), 0o644); err != nil {
			t.Fatal(err)
		}
		cp := dicomtest.StartNetRecorder(t)
		dicomtest.ChromiumDOM(t, file, cp)
		fetched := strings.Contains(strings.Join(cp.PageRequests(), "\n"), "canary.invalid")
		if fetched != c.fetched {
			t.Errorf("control %s: canary fetched = %v, want %v (requests %q)", c.name, fetched, c.fetched, cp.Requests())
		}
	}
}
