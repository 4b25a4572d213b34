package prove

import (
	"fmt"
	"slices"
	"strings"

	"github.com/dicomshield/dicomshield/internal/scan"
)

// Finding IDs this package adds.
const (
	FindingQueryProven     = "DS-PROVE-QUERY"
	FindingGetProven       = "DS-PROVE-GET"
	FindingMoveProven      = "DS-PROVE-MOVE"
	FindingMoveAnyDest     = "DS-PROVE-MOVE-ANY-DEST"
	FindingIdentityIgnored = "DS-IDENTITY-IGNORED"
	FindingWriteAppend     = "DS-WRITE-APPEND"
	FindingWriteOverwrite  = "DS-WRITE-OVERWRITE"
	FindingWriteStore      = "DS-WRITE-STORE"
)

// Apply turns r.Proof and r.WriteTest into r.Exposure verdicts (query and
// retrieve become open or closed from what was proved, rather than
// unproven from what was negotiated) and findings. A finding with the same
// ID already in r is replaced. Only counts and kinds of data are named.
func Apply(r *scan.Result) {
	if p := r.Proof; p != nil {
		r.Exposure.Query = queryExposure(p)
		r.Exposure.Retrieve = retrieveExposure(p)
		if n := maxRecords(p); n > 0 {
			more := ""
			if p.Truncated {
				more = " (counting stopped there)"
			}
			add(r, scan.Finding{ID: FindingQueryProven, Severity: scan.SeverityCritical,
				Title: fmt.Sprintf("A stranger's C-FIND returned %d records%s%s", n, more, kinds(p)),
				Remediation: "Refuse query/retrieve to unknown AE titles and addresses (register peers, " +
					"require TLS client certificates or user identity); on Orthanc set DicomAlwaysAllowFind, " +
					"-Get and -Move to false and list only known modalities."})
		}
		if p.Get == scan.ExposureOpen {
			add(r, scan.Finding{ID: FindingGetProven, Severity: scan.SeverityCritical,
				Title:       "A stranger's C-GET was honoured: the server started sending images",
				Remediation: "Refuse C-GET to peers that are not registered."})
		}
		if p.MoveAnyDest == scan.ExposureOpen {
			add(r, scan.Finding{ID: FindingMoveAnyDest, Severity: scan.SeverityCritical,
				Title:       "C-MOVE accepted a destination AE title a stranger made up: images can be sent anywhere",
				Remediation: "Send C-MOVE only to registered destinations, each with a fixed address."})
		} else if p.Move == scan.ExposureOpen {
			add(r, scan.Finding{ID: FindingMoveProven, Severity: scan.SeverityHigh,
				Title:       "A stranger's C-MOVE was honoured",
				Remediation: "Refuse C-MOVE to peers that are not registered."})
		}
		if p.UserIdentity == IdentityIgnored {
			add(r, scan.Finding{ID: FindingIdentityIgnored, Severity: scan.SeverityLow,
				Title:       "User identity negotiation is ignored: no user can be authenticated",
				Remediation: "Require user identity (PS3.7 D.3.3.7) or TLS client certificates for every peer."})
		}
	}
	if w := r.WriteTest; w != nil {
		if w.Stored {
			add(r, scan.Finding{ID: FindingWriteStore, Severity: scan.SeverityHigh,
				Title:       "A stranger stored an instance (synthetic test instance; UIDs under " + ScannerUIDRoot + ")",
				Remediation: "Accept C-STORE only from registered modalities; delete the scanner's test study."})
		}
		if w.Append == WriteAccepted {
			add(r, scan.Finding{ID: FindingWriteAppend, Severity: scan.SeverityHigh,
				Title: "A stranger appended an instance to an existing series (forged images appear inside real series)",
				Remediation: "Refuse new instances for a series from unknown peers, and for any peer some time " +
					"after the series' last instance."})
		}
		if w.Overwrite == WriteAccepted {
			add(r, scan.Finding{ID: FindingWriteOverwrite, Severity: scan.SeverityCritical,
				Title:       "A stranger replaced the content of an existing SOP instance",
				Remediation: "Refuse a different instance under an existing SOP Instance UID (keep the original)."})
		}
	}
}

// queryExposure: open when records came back, closed when every level was
// refused, unproven when a query was answered with nothing.
func queryExposure(p *scan.Proof) string {
	answered := false
	for _, n := range p.Records {
		if n > 0 {
			return scan.ExposureOpen
		}
		if n == 0 {
			answered = true
		}
	}
	if answered {
		return scan.ExposureUnproven
	}
	return scan.ExposureClosed
}

func retrieveExposure(p *scan.Proof) string {
	switch {
	case p.Get == scan.ExposureOpen || p.Move == scan.ExposureOpen || p.MoveAnyDest == scan.ExposureOpen:
		return scan.ExposureOpen
	case p.Get == scan.ExposureClosed && p.Move == scan.ExposureClosed:
		return scan.ExposureClosed
	}
	return scan.ExposureUnproven
}

func maxRecords(p *scan.Proof) int {
	n := 0
	for _, c := range p.Records {
		n = max(n, c)
	}
	return n
}

// kinds lists the kinds of data seen, by keyword.
func kinds(p *scan.Proof) string {
	var k []string
	for f, ok := range p.Fields {
		if ok {
			k = append(k, f)
		}
	}
	if len(k) == 0 {
		return ""
	}
	slices.Sort(k)
	return ", with " + strings.Join(k, ", ")
}

// add appends f, replacing a finding with its ID.
func add(r *scan.Result, f scan.Finding) {
	for i := range r.Findings {
		if r.Findings[i].ID == f.ID {
			r.Findings[i] = f
			return
		}
	}
	r.Findings = append(r.Findings, f)
}
