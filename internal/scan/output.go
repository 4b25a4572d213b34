package scan

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Sink receives results as the scan finds them and writes them out when
// closed (or as they come, for streaming formats). Nothing a sink writes
// comes from patient data: the scanner never reads any.
type Sink interface {
	Write(r *Result) error
	Close() error
}

// JSONLSink streams one JSON object per line.
type JSONLSink struct{ W io.Writer }

func (s *JSONLSink) Write(r *Result) error { return WriteJSONL(s.W, r) }
func (s *JSONLSink) Close() error          { return nil }

// TableSink writes the readable table, sorted by host and port, on Close.
type TableSink struct {
	W       io.Writer
	results []*Result
}

func (s *TableSink) Write(r *Result) error { s.results = append(s.results, r); return nil }

// Close writes the table.
func (s *TableSink) Close() error {
	sortResults(s.results)
	// tabwriter writes cell by cell: buffered, the table of a large scan
	// is a few writes rather than one per cell.
	bw := bufio.NewWriterSize(s.W, 64<<10)
	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tTRANSPORT\tAUTH\tQUERY\tRETRIEVE\tSTORE\tPRODUCT\tFINDINGS")
	for _, r := range s.results {
		transport := r.Transport
		if r.TLS.Enabled {
			transport = r.TLS.Version
			if r.TLS.ClientCertRequired {
				transport += " +client cert"
			}
		}
		auth := r.Auth
		if r.StoppedBy != "" {
			auth += " (" + r.StoppedBy + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Key(), transport, auth, r.Exposure.Query, r.Exposure.Retrieve, r.Exposure.Store, productText(r.Product), findingsSummary(r.Findings))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(bw, "%d DICOM service(s)\n", len(s.results))
	if err := writeCreated(bw, s.results); err != nil {
		return err
	}
	return bw.Flush()
}

// writeCreated lists, after the table, every UID --test-write stored, so
// that the owner can delete them (study, series, then instances). UIDs
// only: the scanner's synthetic instances carry no patient data.
func writeCreated(w io.Writer, rs []*Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	header := false
	for _, r := range rs {
		if r.WriteTest == nil || len(r.WriteTest.Created) == 0 {
			continue
		}
		if !header {
			header = true
			fmt.Fprintln(tw, "\nStored by --test-write; delete them:")
			fmt.Fprintln(tw, "SERVICE\tLEVEL\tUID")
		}
		for i, uid := range r.WriteTest.Created {
			level := "instance"
			switch i {
			case 0:
				level = "study"
			case 1:
				level = "series"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Key(), level, uid)
		}
	}
	return tw.Flush()
}

func productText(p *Product) string {
	if p == nil {
		return "-"
	}
	if p.Version == "" {
		return p.Name
	}
	return p.Name + " " + p.Version
}

// findingsSummary counts findings by severity, highest first: "1 critical, 2 high".
func findingsSummary(fs []Finding) string {
	n := map[string]int{}
	for _, f := range fs {
		n[f.Severity]++
	}
	var parts []string
	for _, sev := range []string{SeverityCritical, SeverityHigh, SeverityMedium, SeverityLow, SeverityInfo} {
		if n[sev] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n[sev], sev))
		}
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

func sortResults(rs []*Result) {
	sort.SliceStable(rs, func(i, j int) bool {
		if rs[i].Host != rs[j].Host {
			return rs[i].Host < rs[j].Host
		}
		return rs[i].Port < rs[j].Port
	})
}

// CSVHeader is the first row of the CSV output.
var CSVHeader = []string{"host", "port", "dicom", "transport", "tls_version", "client_cert_required", "auth", "stopped_by",
	"query", "retrieve", "store", "product", "version", "class_uid", "version_name", "findings"}

// CSVSink streams one row per service.
type CSVSink struct {
	w      *csv.Writer
	header bool
}

// NewCSVSink writes CSV to w.
func NewCSVSink(w io.Writer) *CSVSink { return &CSVSink{w: csv.NewWriter(w)} }

func (s *CSVSink) Write(r *Result) error {
	if !s.header {
		s.header = true
		if err := s.w.Write(CSVHeader); err != nil {
			return err
		}
	}
	var product, version string
	if r.Product != nil {
		product, version = r.Product.Name, r.Product.Version
	}
	var ids []string
	for _, f := range r.Findings {
		ids = append(ids, f.ID)
	}
	err := s.w.Write([]string{r.Host, strconv.Itoa(r.Port), strconv.FormatBool(r.DICOM), r.Transport, r.TLS.Version,
		strconv.FormatBool(r.TLS.ClientCertRequired), r.Auth, r.StoppedBy, r.Exposure.Query, r.Exposure.Retrieve, r.Exposure.Store,
		csvSafe(product), csvSafe(version), csvSafe(r.Implementation.ClassUID), csvSafe(r.Implementation.VersionName), strings.Join(ids, ";")})
	s.w.Flush()
	return err
}

func (s *CSVSink) Close() error { s.w.Flush(); return s.w.Error() }

// csvSafe keeps a peer-supplied value from being read as a formula by a
// spreadsheet (CSV injection).
func csvSafe(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}

// SARIFSink writes a SARIF 2.1.0 log on Close: one rule per finding ID,
// one result per finding, located at dicom://host:port.
type SARIFSink struct {
	W       io.Writer
	Version string // the tool's version
	results []*Result
}

func (s *SARIFSink) Write(r *Result) error { s.results = append(s.results, r); return nil }

// Close writes the log.
func (s *SARIFSink) Close() error {
	sortResults(s.results)
	type msg struct {
		Text string `json:"text"`
	}
	type rule struct {
		ID               string         `json:"id"`
		ShortDescription msg            `json:"shortDescription"`
		Help             msg            `json:"help"`
		Properties       map[string]any `json:"properties"`
	}
	type location struct {
		PhysicalLocation struct {
			ArtifactLocation struct {
				URI string `json:"uri"`
			} `json:"artifactLocation"`
		} `json:"physicalLocation"`
	}
	type result struct {
		RuleID    string     `json:"ruleId"`
		Level     string     `json:"level"`
		Message   msg        `json:"message"`
		Locations []location `json:"locations"`
	}
	var rules []rule
	seen := map[string]bool{}
	var out []result
	for _, r := range s.results {
		for _, f := range r.Findings {
			if !seen[f.ID] {
				seen[f.ID] = true
				rules = append(rules, rule{ID: f.ID, ShortDescription: msg{f.Title}, Help: msg{f.Remediation}, Properties: map[string]any{"severity": f.Severity}})
			}
			var loc location
			loc.PhysicalLocation.ArtifactLocation.URI = "dicom://" + r.Key()
			out = append(out, result{RuleID: f.ID, Level: sarifLevel(f.Severity), Message: msg{r.Key() + ": " + f.Title}, Locations: []location{loc}})
		}
	}
	if rules == nil {
		rules = []rule{}
	}
	if out == nil {
		out = []result{}
	}
	log := map[string]any{
		"$schema": "https://json.schemastore.org/sarif-2.1.0.json",
		"version": "2.1.0",
		"runs": []any{map[string]any{
			"tool":    map[string]any{"driver": map[string]any{"name": "dicomshield scan", "version": s.Version, "informationUri": "https://github.com/dicomshield/dicomshield", "rules": rules}},
			"results": out,
		}},
	}
	enc := json.NewEncoder(s.W)
	enc.SetIndent("", "  ")
	return enc.Encode(log)
}

func sarifLevel(sev string) string {
	switch sev {
	case SeverityCritical, SeverityHigh:
		return "error"
	case SeverityMedium:
		return "warning"
	}
	return "note"
}
