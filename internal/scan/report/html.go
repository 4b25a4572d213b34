package report

import (
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dicomshield/dicomshield/internal/scan"
)

//go:embed report.css
var reportCSS string

//go:embed report.html.tmpl
var reportTmpl string

// CSP is the page's Content-Security-Policy: nothing may be fetched or
// run; the one inline style sheet is allowed by its hash. SVG charts use
// presentation attributes, which CSP does not govern.
var CSP = "default-src 'none'; style-src '" + cssHash() + "'; img-src 'none'; script-src 'none'; connect-src 'none'; base-uri 'none'; form-action 'none'"

func cssHash() string {
	sum := sha256.Sum256([]byte(reportCSS))
	return "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
}

var pageTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"num":   thousands,
	"pct":   percent,
	"share": share,
	"lower": strings.ToLower,
	"date":  func(t time.Time) string { return t.UTC().Format("2006-01-02") },
}).Parse(reportTmpl))

// Meta describes the run a report is made from.
type Meta struct {
	Title     string    // heading; "" means "DICOM exposure report"
	Generated time.Time // zero means now
	Sources   []string  // the result files, shown as given
	Version   string    // dicomshield's version
}

type page struct {
	Title, Generated, Version string
	Sources                   []string
	CSP                       string
	CSS                       template.CSS
	F                         Figures
	RecordLevels              []Count
	AuthChart, TLSChart       donut
	ExposureChart             bars
	ProductChart              bars
	Services, Decoys, Others  []serviceView
}

type serviceView struct {
	R        *scan.Result
	Key, ID  string
	Class    string
	Worst    string
	Decoy    bool
	Accepted []string
	Records  []Count
	Fields   []string
	Findings []scan.Finding
}

// WriteHTML writes one self-contained HTML page for results: the figures
// of Summarize, charts, then every service with its findings, worst first.
// It marks nothing: call MarkDecoys first to set decoys apart.
func WriteHTML(w io.Writer, results []scan.Result, meta Meta) error {
	p := page{
		Title:   meta.Title,
		Sources: meta.Sources,
		Version: meta.Version,
		CSP:     CSP,
		CSS:     template.CSS(reportCSS),
		F:       Summarize(results),
	}
	if p.Title == "" {
		p.Title = "DICOM exposure report"
	}
	if p.Version == "" {
		p.Version = "(development build)"
	}
	gen := meta.Generated
	if gen.IsZero() {
		gen = time.Now()
	}
	p.Generated = gen.UTC().Format("2006-01-02 15:04 UTC")
	p.RecordLevels = levels(p.F.Records)

	f := p.F
	p.AuthChart = newDonut("authorization classes", []segment{
		{Name: "none", Class: "none", Color: "#a4161a", Value: f.Auth.None},
		{Name: "weak", Class: "weak", Color: "#e8590c", Value: f.Auth.Weak},
		{Name: "strong", Class: "strong", Color: "#2b8a3e", Value: f.Auth.Strong},
		{Name: "unknown", Class: "unknown", Color: "#adb5bd", Value: f.Auth.Unknown},
	}, thousands(f.Services))
	p.TLSChart = newDonut("TLS share", []segment{
		{Name: "TLS", Class: "tls", Color: "#2b8a3e", Value: f.TLS},
		{Name: "plain", Class: "plain", Color: "#a4161a", Value: f.Services - f.TLS},
	}, percent(f.TLSPercent))
	p.ExposureChart = newBars("exposure classes", []Count{
		{"query/retrieve", f.Exposure.QueryExposed},
		{"query unproven", f.Exposure.QueryUnproven},
		{"storage only", f.Exposure.StorageOnly},
		{"closed", f.Exposure.Closed},
	}, []string{"#a4161a", "#e8590c", "#e8a200", "#2b8a3e"})
	top := f.Products
	if len(top) > maxProductBars {
		top = top[:maxProductBars]
	}
	p.ProductChart = newBars("products", top, []string{"#2b7bb9"})

	for i := range results {
		r := &results[i]
		v := view(r)
		switch {
		case IsDecoy(r):
			p.Decoys = append(p.Decoys, v)
		case !IsService(r):
			p.Others = append(p.Others, v)
		default:
			p.Services = append(p.Services, v)
		}
	}
	sortViews(p.Services)
	sortViews(p.Decoys)
	sortViews(p.Others)
	return pageTmpl.Execute(w, p)
}

// maxProductBars bounds the product chart; the table lists every one.
const maxProductBars = 10

func view(r *scan.Result) serviceView {
	v := serviceView{R: r, Key: r.Key(), ID: anchor(r.Key()), Class: Class(r), Decoy: IsDecoy(r), Findings: sortFindings(r.Findings)}
	if len(v.Findings) > 0 {
		v.Worst = v.Findings[0].Severity
	}
	for name, s := range r.Services {
		if s.Accepted {
			v.Accepted = append(v.Accepted, name)
		}
	}
	sort.Strings(v.Accepted)
	if r.Proof != nil {
		m := map[string]int{}
		for l, n := range r.Proof.Records {
			if n >= 0 {
				m[strings.ToUpper(l)] = n
			}
		}
		v.Records = levels(m)
		for name, present := range r.Proof.Fields {
			if present {
				v.Fields = append(v.Fields, name)
			}
		}
		sort.Strings(v.Fields)
	}
	return v
}

func sortViews(vs []serviceView) {
	sort.SliceStable(vs, func(i, j int) bool {
		if a, b := worst(vs[i].R), worst(vs[j].R); a != b {
			return a < b
		}
		if vs[i].R.Host != vs[j].R.Host {
			return vs[i].R.Host < vs[j].R.Host
		}
		return vs[i].R.Port < vs[j].R.Port
	})
}

// levelOrder is the query levels from the widest down.
var levelOrder = map[string]int{"PATIENT": 0, "STUDY": 1, "SERIES": 2, "IMAGE": 3}

// levels lists a records map in query-level order (unknown levels after,
// by name).
func levels(m map[string]int) []Count {
	out := make([]Count, 0, len(m))
	for k, v := range m {
		out = append(out, Count{k, v})
	}
	sort.Slice(out, func(i, j int) bool {
		a, oka := levelOrder[out[i].Name]
		b, okb := levelOrder[out[j].Name]
		switch {
		case oka && okb:
			return a < b
		case oka != okb:
			return oka
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// anchor makes an element id from a service key ("10.0.0.1:104" ->
// "svc-10-0-0-1-104").
func anchor(key string) string {
	var b strings.Builder
	b.WriteString("svc-")
	for _, c := range key {
		if (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') {
			b.WriteRune(c)
		} else {
			b.WriteByte('-')
		}
	}
	return b.String()
}

// thousands formats n with comma separators: 16100000 -> "16,100,000".
func thousands(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// share formats n of total as a percentage: "30.5 %" ("0.0 %" of nothing).
func share(n, total int) string {
	if total == 0 {
		return percent(0)
	}
	return percent(float64(n) * 100 / float64(total))
}

// percent formats a share with one decimal: "8.3 %".
func percent(p float64) string { return fmt.Sprintf("%.1f %%", p) }

// Charts, drawn as inline SVG with presentation attributes only.

type segment struct {
	Name, Class, Color string
	Value              int
	Dash, Offset       string
}

type donut struct {
	Label, Center string
	Segments      []segment
}

// newDonut lays segments around a circle of circumference 100 (r =
// 100/2π), starting at twelve o'clock.
func newDonut(label string, segs []segment, center string) donut {
	total := 0
	for _, s := range segs {
		total += s.Value
	}
	at := 0.0
	for i := range segs {
		share := 0.0
		if total > 0 {
			share = float64(segs[i].Value) * 100 / float64(total)
		}
		segs[i].Dash = fmt.Sprintf("%.3f %.3f", share, 100-share)
		segs[i].Offset = fmt.Sprintf("%.3f", 25-at)
		at += share
	}
	return donut{Label: label, Center: center, Segments: segs}
}

type bar struct {
	Name                    string
	Value                   int
	Color                   string
	Y, TextY, Width, ValueX int
}

type bars struct {
	Label  string
	Height int
	Rows   []bar
}

// Bar chart geometry: labels left of x=150, bars up to barMax wide.
const (
	barRow = 24
	barMax = 200
)

func newBars(label string, cs []Count, colors []string) bars {
	maxV := 0
	for _, c := range cs {
		maxV = max(maxV, c.Count)
	}
	b := bars{Label: label, Height: max(barRow, len(cs)*barRow)}
	for i, c := range cs {
		w := 0
		if maxV > 0 {
			w = c.Count * barMax / maxV
		}
		name := c.Name
		if rs := []rune(name); len(rs) > 24 {
			name = string(rs[:23]) + "…"
		}
		b.Rows = append(b.Rows, bar{Name: name, Value: c.Count, Color: colors[i%len(colors)],
			Y: i*barRow + 4, TextY: i*barRow + 16, Width: w, ValueX: 150 + w + 6})
	}
	return b
}
