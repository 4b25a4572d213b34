package scan

import (
	"fmt"
	"slices"
	"strings"
)

// Verdicts of Proof.UserIdentity and WriteTest, set by package prove.
const (
	IdentityIgnored  = "ignored"  // a made-up user was accepted without an answer: identity is not checked
	IdentityAccepted = "accepted" // the server takes part in identity negotiation but admits associations without it
	IdentityRequired = "required" // associations without user identity are refused
	IdentityUnknown  = "unknown"

	WriteAccepted   = "accepted"   // stored (an overwrite: the new content replaced the old)
	WriteRefused    = "refused"    // a failure status
	WriteIgnored    = "ignored"    // an overwrite answered success but the original was kept
	WriteUnverified = "unverified" // an overwrite answered success that could not be read back
	WriteUntested   = "untested"
)

// Findings that only --prove and --test-write establish.
const (
	FindingMoveAnyDest     = "DS-MOVE-ANY-DEST"
	FindingIdentityIgnored = "DS-IDENTITY-IGNORED"
	FindingStoreOpen       = "DS-STORE-OPEN"
	FindingWriteAppend     = "DS-WRITE-APPEND"
	FindingWriteOverwrite  = "DS-WRITE-OVERWRITE"
)

// ProofFindings adds to r the findings of its Proof and WriteTest (a
// finding with the same ID is replaced): the evidence of --prove (record
// counts and the kinds of personal data, never values) goes into the
// query and retrieve findings' titles. It is pure: the same result gives
// the same findings.
func ProofFindings(r *Result) {
	put := func(f Finding) {
		for i := range r.Findings {
			if r.Findings[i].ID == f.ID {
				r.Findings[i] = f
				return
			}
		}
		r.Findings = append(r.Findings, f)
	}
	drop := func(id string) {
		r.Findings = slices.DeleteFunc(r.Findings, func(f Finding) bool { return f.ID == id })
	}
	if p := r.Proof; p != nil {
		n := 0
		for _, c := range p.Records {
			n = max(n, c)
		}
		if r.Exposure.Query == ExposureOpen && n > 0 {
			more := ""
			if p.Truncated {
				more = " or more (counting stopped there)"
			}
			put(Finding{ID: FindingQueryOpen, Severity: SeverityCritical,
				Title: fmt.Sprintf("A stranger's C-FIND returned %d records%s%s", n, more, kinds(p)),
				Remediation: "Refuse query/retrieve to unknown AE titles and addresses: register the peers that need it, " +
					"require TLS client certificates or user identity; in Orthanc set DicomAlwaysAllowFind, -Get and -Move to false."})
		}
		if p.MoveAnyDest == ExposureOpen {
			put(Finding{ID: FindingMoveAnyDest, Severity: SeverityCritical,
				Title:       "C-MOVE accepted a destination AE title a stranger made up: images can be sent anywhere",
				Remediation: "Send C-MOVE only to registered destinations, each with a fixed address."})
		}
		if p.UserIdentity == IdentityIgnored {
			put(Finding{ID: FindingIdentityIgnored, Severity: SeverityLow,
				Title:       "User identity negotiation is ignored: no user can be authenticated",
				Remediation: "Require user identity (PS3.7 D.3.3.7) or TLS client certificates for every peer."})
		}
	}
	if w := r.WriteTest; w != nil {
		if w.Stored {
			drop(FindingStoreUnproven)
			put(Finding{ID: FindingStoreOpen, Severity: SeverityHigh,
				Title: "A stranger stored an instance (the scanner's labelled synthetic test instance)",
				Remediation: "Accept C-STORE only from registered modalities. Delete what the scanner stored " +
					"(study, series, then instances): " + strings.Join(w.Created, ", ")})
		}
		if w.Append == WriteAccepted {
			put(Finding{ID: FindingWriteAppend, Severity: SeverityHigh,
				Title: "A stranger appended an instance to an existing series: forged images can appear inside real series",
				Remediation: "Refuse new instances for a series from unknown peers, and from any peer some time " +
					"after the series' last instance."})
		}
		if w.Overwrite == WriteAccepted {
			put(Finding{ID: FindingWriteOverwrite, Severity: SeverityCritical,
				Title:       "A stranger replaced the content of an existing SOP instance",
				Remediation: "Refuse different content under an existing SOP Instance UID and keep the original."})
		}
	}
}

// kinds lists the kinds of personal data seen, by keyword.
func kinds(p *Proof) string {
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
