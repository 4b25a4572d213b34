package scan

import (
	"fmt"
	"strings"
	"time"
)

// Finding IDs. They are stable: reports and `scan diff` key on them.
const (
	FindingAuthNone        = "DS-AUTH-NONE"
	FindingAuthWeak        = "DS-AUTH-WEAK"
	FindingQueryOpen       = "DS-QUERY-OPEN"
	FindingQueryUnproven   = "DS-QUERY-UNPROVEN"
	FindingRetrieveOpen    = "DS-RETRIEVE-OPEN"
	FindingRetrieveUnprvn  = "DS-RETRIEVE-UNPROVEN"
	FindingStoreUnproven   = "DS-STORE-UNPROVEN"
	FindingWorklist        = "DS-WORKLIST-ACCEPTED"
	FindingPlaintext       = "DS-TLS-NONE"
	FindingTLSOld          = "DS-TLS-OLD"
	FindingTLSNoClientCert = "DS-TLS-NO-CLIENT-CERT"
	FindingCertExpired     = "DS-CERT-EXPIRED"
	FindingCertSelfSigned  = "DS-CERT-SELF-SIGNED"
	FindingCertWeakKey     = "DS-CERT-WEAK-KEY"
	FindingKnownCVE        = "DS-VULN-VERSION"
	FindingOrthancREST     = "DS-ORTHANC-REST-OPEN"
)

// minRSABits is the smallest RSA key BCP 195 (RFC 9325) accepts.
const minRSABits = 2048

// classify derives the findings from what the probe established. It is
// pure: the same result gives the same findings.
func classify(r *Result) {
	r.Findings = nil
	add := func(id, sev, title, fix string) {
		r.Findings = append(r.Findings, Finding{ID: id, Severity: sev, Title: title, Remediation: fix})
	}
	const restrict = "Register the devices that need this service (AE title, address, and a TLS client certificate) and refuse every other peer: in Orthanc set the DicomAlways* options to false and list the modalities in DicomModalities; in DCMTK dcmqrscp use the AE table's peer lists; dicomshield serve refuses unknown peers by default."
	switch r.Auth {
	case AuthNone:
		add(FindingAuthNone, SeverityCritical, "Any stranger can open an association: no AE title check",
			"Turn on called and calling AE title checks and an address filter, and require TLS client certificates. "+restrict)
	case AuthWeak:
		add(FindingAuthWeak, SeverityHigh, "Only a published default or common AE title stands between strangers and this service",
			"Change the AE title from its default, check calling AE titles and addresses, and require TLS client certificates: AE titles are not secrets. "+restrict)
	}
	switch r.Exposure.Query {
	case ExposureOpen:
		add(FindingQueryOpen, SeverityCritical, "A stranger's query (C-FIND) is executed: patient records can be listed",
			"Refuse C-FIND from unregistered peers at once, then check the audit log for past queries. "+restrict)
	case ExposureUnproven:
		add(FindingQueryUnproven, SeverityHigh, "Query contexts are accepted from a stranger (not proven: run with --prove)",
			"Refuse query/retrieve presentation contexts to unregistered peers. "+restrict)
	}
	switch r.Exposure.Retrieve {
	case ExposureOpen:
		add(FindingRetrieveOpen, SeverityCritical, "A stranger's retrieve (C-GET/C-MOVE) is executed: images can be downloaded",
			"Refuse C-GET and C-MOVE from unregistered peers, and allow C-MOVE only to registered destinations. "+restrict)
	case ExposureUnproven:
		add(FindingRetrieveUnprvn, SeverityHigh, "Retrieve contexts are accepted from a stranger (not proven: run with --prove)",
			"Refuse C-GET/C-MOVE presentation contexts to unregistered peers and allow C-MOVE only to registered destinations. "+restrict)
	}
	if r.Exposure.Store == ExposureUnproven {
		add(FindingStoreUnproven, SeverityHigh, "A stranger may send images (storage accepted): forged images can be slipped into real studies",
			"Accept C-STORE only from registered modalities (Orthanc: DicomAlwaysAllowStore false), and refuse new instances for a series some time after its last one. "+restrict)
	}
	if s, ok := r.Services["modality-worklist"]; ok && s.Accepted && r.Auth != AuthStrong {
		add(FindingWorklist, SeverityHigh, "The modality worklist (scheduled patients) accepts a stranger's association",
			"Serve the worklist only to registered modalities. "+restrict)
	}
	if r.DICOM && r.Transport == "plain" {
		add(FindingPlaintext, SeverityMedium, "DICOM without TLS: images and patient data cross the network readable and unauthenticated",
			"Offer DICOM over TLS (port 2762, TLS 1.2 or later, PS3.15 B.12) and move devices to it; then close the plain port.")
	}
	if r.TLS.Enabled {
		if r.TLS.Version == "TLS 1.0" || r.TLS.Version == "TLS 1.1" || strings.HasPrefix(r.TLS.Version, "SSL") {
			add(FindingTLSOld, SeverityHigh, "Obsolete TLS version "+r.TLS.Version+" accepted",
				"Allow TLS 1.2 and 1.3 only (RFC 8996; PS3.15 B.12, BCP 195).")
		}
		if !r.TLS.ClientCertRequired && r.Auth != AuthStrong {
			add(FindingTLSNoClientCert, SeverityMedium, "TLS without a client certificate: any stranger completes the handshake",
				"Require client certificates issued to each registered device (dicomshield peer add makes them).")
		}
		if c := r.TLS.Cert; c != nil {
			if !c.NotAfter.IsZero() && c.NotAfter.Before(r.Time) {
				add(FindingCertExpired, SeverityMedium, "The server certificate expired on "+c.NotAfter.Format(time.DateOnly),
					"Renew the certificate, and automate renewal.")
			}
			if c.SelfSigned {
				add(FindingCertSelfSigned, SeverityLow, "Self-signed server certificate: clients cannot verify it without pinning",
					"Issue the server certificate from a CA the devices trust (an internal CA is fine).")
			}
			if c.KeyType == "RSA" && c.KeyBits < minRSABits {
				add(FindingCertWeakKey, SeverityMedium, fmt.Sprintf("RSA key of %d bits", c.KeyBits),
					fmt.Sprintf("Use an RSA key of at least %d bits or an ECDSA P-256 key.", minRSABits))
			}
		}
	}
	if p := r.Product; p != nil && len(p.CVEs) > 0 {
		add(FindingKnownCVE, SeverityHigh, fmt.Sprintf("%s %s has known vulnerabilities: %s", p.Name, p.Version, strings.Join(p.CVEs, ", ")),
			"Update "+p.Name+" to a release that fixes them; until then, keep the service reachable from registered devices only.")
	}
	if r.OrthancREST {
		add(FindingOrthancREST, SeverityHigh, "Orthanc's REST API answered without credentials",
			"Set AuthenticationEnabled true with strong RegisteredUsers, keep RemoteAccessAllowed false unless needed, and put the API behind TLS.")
	}
	ProofFindings(r) // --prove and --test-write
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
}
