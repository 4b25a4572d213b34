package report

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"html"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// renderFixture writes the fixture's report, decoys marked.
func renderFixture(t testing.TB) []byte {
	t.Helper()
	rs := fixture()
	MarkDecoys(rs)
	var buf bytes.Buffer
	err := WriteHTML(&buf, rs, Meta{Generated: t0.Add(time.Hour), Sources: []string{"scan <1>.jsonl"}, Version: "v0.0.0-test"})
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var figuresBlock = regexp.MustCompile(`(?s)<script type="application/json" id="figures">(.*?)</script>`)

func TestHTMLSelfContained(t *testing.T) {
	page := renderFixture(t)
	s := string(page)
	// No markup that loads anything. (The fixture's hostile finding holds
	// URLs, shown as escaped text: TestHTMLEscapes checks that.)
	lower := strings.ToLower(s)
	for _, bad := range []string{"@import", "url(", "<link", "<iframe", "<object", "<embed", "<img", "<video", "<audio", "<source", "<base", "<form", "<a "} {
		if i := strings.Index(lower, bad); i >= 0 {
			t.Errorf("page contains %q: ...%s...", bad, s[max(0, i-80):min(len(s), i+80)])
		}
	}
	if m := regexp.MustCompile(`<[^>]*\s(src|href|xlink:href|action|formaction|poster|srcset|background|data|ping)\s*=`).FindString(lower); m != "" {
		t.Errorf("page has an attribute that fetches: %s", m)
	}
	if n := strings.Count(lower, "<script"); n != 1 || !strings.Contains(s, `<script type="application/json" id="figures">`) {
		t.Errorf("page has %d script elements, want only the JSON data block", n)
	}
	// The policy forbids everything but the one style sheet, named by its hash.
	m := regexp.MustCompile(`<meta http-equiv="Content-Security-Policy" content="([^"]+)">`).FindStringSubmatch(s)
	if m == nil {
		t.Fatal("no Content-Security-Policy meta")
	}
	csp := html.UnescapeString(m[1])
	for _, d := range []string{"default-src 'none'", "script-src 'none'", "connect-src 'none'", "img-src 'none'", "base-uri 'none'", "form-action 'none'"} {
		if !strings.Contains(csp, d) {
			t.Errorf("CSP %q lacks %q", csp, d)
		}
	}
	style := regexp.MustCompile(`(?s)<style>(.*?)</style>`).FindStringSubmatch(s)
	if style == nil {
		t.Fatal("no style sheet")
	}
	sum := sha256.Sum256([]byte(style[1]))
	if h := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(csp, "style-src "+h) {
		t.Errorf("CSP %q does not allow the style sheet by its hash %s", csp, h)
	}
	if strings.Contains(s, "style=") {
		t.Error("an inline style attribute would be blocked by the CSP")
	}
}

func TestHTMLEscapes(t *testing.T) {
	s := string(renderFixture(t))
	if strings.Contains(s, `<script>alert`) || strings.Contains(s, `</table><a`) {
		t.Fatal("a hostile finding title reached the page unescaped")
	}
	if !strings.Contains(s, `&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;`) {
		t.Fatal("the hostile finding title is not shown escaped")
	}
	if !strings.Contains(s, "scan &lt;1&gt;.jsonl") {
		t.Fatal("the source name is not shown escaped")
	}
}

func TestHTMLFiguresBlock(t *testing.T) {
	m := figuresBlock.FindSubmatch(renderFixture(t))
	if m == nil {
		t.Fatal("no figures data block")
	}
	var f Figures
	if err := json.Unmarshal(m[1], &f); err != nil {
		t.Fatalf("figures block: %v\n%s", err, m[1])
	}
	if !reflect.DeepEqual(f, fixtureFigures) {
		t.Fatalf("figures block:\n got %+v\nwant %+v", f, fixtureFigures)
	}
}

func TestHTMLServiceOrder(t *testing.T) {
	s := string(renderFixture(t))
	// Worst first: criticals (by address), then the timeout without findings last.
	var order []string
	for _, m := range regexp.MustCompile(`<section class="svc[^"]*" id="(svc-[^"]+)">`).FindAllStringSubmatch(s, -1) {
		order = append(order, m[1])
	}
	want := []string{"svc-10-1-0-1-4242", "svc-10-1-0-2-104", "svc-10-1-0-3-11112", "svc-10-1-0-7-11112", "svc-10-1-0-8-104", "svc-10-1-0-4-2762", "svc-10-1-0-5-104",
		// decoys
		"svc-10-2-0-1-11112", "svc-10-2-0-2-11112", "svc-10-3-0-1-104", "svc-10-3-0-2-104", "svc-10-3-0-3-104", "svc-10-3-0-4-104", "svc-10-3-0-5-104"}
	if !reflect.DeepEqual(order, want) {
		t.Fatalf("service order\n got %v\nwant %v", order, want)
	}
	// Within a service, findings run from critical down.
	sec := s[strings.Index(s, `id="svc-10-1-0-1-4242"`):]
	sec = sec[:strings.Index(sec, "</section>")]
	crit, high, low := strings.Index(sec, "DS-AUTH-NONE"), strings.Index(sec, "DS-STORE-OPEN"), strings.Index(sec, "DS-TLS-NONE")
	if !(crit < high && high < low) {
		t.Fatalf("findings not by severity: critical at %d, high at %d, low at %d", crit, high, low)
	}
}

func TestHTMLWithoutProof(t *testing.T) {
	rs := fixture()[:1] // the default Orthanc: no proof
	var buf bytes.Buffer
	if err := WriteHTML(&buf, rs, Meta{}); err != nil {
		t.Fatal(err)
	}
	s := buf.String()
	if !strings.Contains(s, `id="fig-records-none">not counted<`) || strings.Contains(s, `id="fig-records-patient"`) {
		t.Fatal("records without a proof are not shown as not counted")
	}
	if !strings.Contains(s, "(0.0 %) answered query/retrieve") || !strings.Contains(s, "(100.0 %) exposed storage only") {
		t.Fatal("lead sentence shares wrong for one storage-only service")
	}
}
