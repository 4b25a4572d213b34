package report

import (
	"sort"
	"strings"

	"github.com/dicomshield/dicomshield/internal/scan"
)

// Exposure classes of a service, as the research split them.
const (
	ClassQuery         = "query-exposed"  // a stranger queried or retrieved (C-FIND/C-GET/C-MOVE)
	ClassQueryUnproven = "query-unproven" // query/retrieve contexts accepted, nothing proved data flows
	ClassStorageOnly   = "storage-only"   // store open or unproven, query and retrieve closed
	ClassClosed        = "closed"         // nothing offered to a stranger
)

// Figures are the summary numbers of a set of results. Decoys (results
// whose Decoy.Likely is set) and non-DICOM answers are left out of every
// headline count and counted on their own.
type Figures struct {
	Results  int `json:"results"`   // results read (services probed)
	NotDICOM int `json:"not_dicom"` // answered, but not with DICOM
	Decoys   int `json:"decoys"`    // likely honeypots and fixtures, DICOM or not
	Services int `json:"services"`  // services found (IsService), decoys excluded

	Auth     AuthCounts     `json:"auth"`
	Exposure ExposureCounts `json:"exposure"`

	// Records sums Proof.Records per query level ("PATIENT", "STUDY")
	// over the services that were proved; refused levels (-1) add nothing.
	Records map[string]int `json:"records"`
	// Proved is how many services have a proof; Truncated how many of
	// those stopped counting at the configured maximum, which makes the
	// record sums lower bounds.
	Proved    int `json:"proved"`
	Truncated int `json:"truncated"`

	TLS        int     `json:"tls"`         // services with TLS
	TLSPercent float64 `json:"tls_percent"` // TLS / Services * 100 (0 when no services)
	ClientCert int     `json:"client_cert"` // TLS services requiring a client certificate

	// Products counts identified products by name, Versions by name and
	// version; both sorted by count, then name. Unidentified services
	// count under "unidentified".
	Products []Count `json:"products"`
	Versions []Count `json:"versions"`

	// Findings counts findings by severity over the headline services.
	Findings map[string]int `json:"findings"`
}

// AuthCounts counts services per authorization class.
type AuthCounts struct {
	None    int `json:"none"`
	Weak    int `json:"weak"`
	Strong  int `json:"strong"`
	Unknown int `json:"unknown"`
}

// ExposureCounts counts services per exposure class (see ClassQuery...).
type ExposureCounts struct {
	QueryExposed  int `json:"query_exposed"`
	QueryUnproven int `json:"query_unproven"`
	StorageOnly   int `json:"storage_only"`
	Closed        int `json:"closed"`
}

// Count is one row of a tally.
type Count struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
}

// Unidentified is the product name counted for services the scanner could
// not identify.
const Unidentified = "unidentified"

// Class returns the exposure class of a result (ClassQuery ... ClassClosed).
func Class(r *scan.Result) string {
	e := r.Exposure
	switch {
	case e.Query == scan.ExposureOpen || e.Retrieve == scan.ExposureOpen:
		return ClassQuery
	case e.Query == scan.ExposureUnproven || e.Retrieve == scan.ExposureUnproven:
		return ClassQueryUnproven
	case e.Store == scan.ExposureOpen || e.Store == scan.ExposureUnproven:
		return ClassStorageOnly
	}
	return ClassClosed
}

// IsDecoy reports whether a result is counted as a decoy.
func IsDecoy(r *scan.Result) bool { return r.Decoy != nil && r.Decoy.Likely }

// IsService reports whether a result is a service the scanner classified:
// one that answered in DICOM, or a TLS service that demanded a client
// certificate before a word of DICOM could be exchanged (the scanner
// keeps it, as strong, stopped by the certificate; dicomshield serve by
// default). Anything else answered without DICOM.
func IsService(r *scan.Result) bool { return r.DICOM || r.TLS.ClientCertRequired }

// Headline reports whether a result counts in the headline figures: a
// service (IsService) that is not a likely decoy.
func Headline(r *scan.Result) bool { return IsService(r) && !IsDecoy(r) }

// Summarize computes the figures of rs. It does not mark decoys: call
// MarkDecoys first to exclude them.
func Summarize(rs []scan.Result) Figures {
	f := Figures{Results: len(rs), Records: map[string]int{}, Findings: map[string]int{}}
	products := map[string]int{}
	versions := map[string]int{}
	for i := range rs {
		r := &rs[i]
		if IsDecoy(r) {
			f.Decoys++
			continue
		}
		if !IsService(r) {
			f.NotDICOM++
			continue
		}
		f.Services++
		switch r.Auth {
		case scan.AuthNone:
			f.Auth.None++
		case scan.AuthWeak:
			f.Auth.Weak++
		case scan.AuthStrong:
			f.Auth.Strong++
		default:
			f.Auth.Unknown++
		}
		switch Class(r) {
		case ClassQuery:
			f.Exposure.QueryExposed++
		case ClassQueryUnproven:
			f.Exposure.QueryUnproven++
		case ClassStorageOnly:
			f.Exposure.StorageOnly++
		default:
			f.Exposure.Closed++
		}
		if p := r.Proof; p != nil {
			f.Proved++
			if p.Truncated {
				f.Truncated++
			}
			for level, n := range p.Records {
				if n > 0 {
					f.Records[strings.ToUpper(level)] += n
				}
			}
		}
		if r.TLS.Enabled {
			f.TLS++
			if r.TLS.ClientCertRequired {
				f.ClientCert++
			}
		}
		name, ver := Unidentified, ""
		if r.Product != nil && r.Product.Name != "" {
			name, ver = r.Product.Name, r.Product.Version
		}
		products[name]++
		if ver != "" {
			versions[name+" "+ver]++
		} else {
			versions[name]++
		}
		for _, fd := range r.Findings {
			f.Findings[fd.Severity]++
		}
	}
	if f.Services > 0 {
		f.TLSPercent = float64(f.TLS) * 100 / float64(f.Services)
	}
	f.Products = tally(products)
	f.Versions = tally(versions)
	return f
}

func tally(m map[string]int) []Count {
	out := make([]Count, 0, len(m))
	for k, v := range m {
		out = append(out, Count{k, v})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// severityRank orders severities, highest first; unknown ones last.
func severityRank(s string) int {
	switch s {
	case scan.SeverityCritical:
		return 0
	case scan.SeverityHigh:
		return 1
	case scan.SeverityMedium:
		return 2
	case scan.SeverityLow:
		return 3
	case scan.SeverityInfo:
		return 4
	}
	return 5
}

// Severities lists the severities, highest first.
var Severities = []string{scan.SeverityCritical, scan.SeverityHigh, scan.SeverityMedium, scan.SeverityLow, scan.SeverityInfo}

// sortFindings returns a copy of fs sorted by severity, then ID.
func sortFindings(fs []scan.Finding) []scan.Finding {
	out := append([]scan.Finding(nil), fs...)
	sort.SliceStable(out, func(i, j int) bool {
		if a, b := severityRank(out[i].Severity), severityRank(out[j].Severity); a != b {
			return a < b
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// worst returns the rank of a result's most severe finding (5 when none).
func worst(r *scan.Result) int {
	w := 5
	for _, f := range r.Findings {
		w = min(w, severityRank(f.Severity))
	}
	return w
}
