// Package scan finds DICOM services and classifies how exposed each one is.
//
// result.go is the scanner's output model: one Result per service
// (host and port), written as one JSON object per line (JSON Lines) by
// `dicomshield scan --json`, and read back by `scan diff` and the reports.
// Field names are part of the command's interface: add fields, never rename.
package scan

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Authorization levels, the classification the published research used.
const (
	AuthNone    = "none"    // a stranger (random AE titles) was accepted
	AuthWeak    = "weak"    // only a default or common AE title was accepted
	AuthStrong  = "strong"  // nothing guessable accepted; TLS client certificate or user identity required
	AuthUnknown = "unknown" // the scan could not tell (no DICOM, timeouts)
)

// Exposure states for query, retrieve and store.
const (
	ExposureOpen     = "open"     // a stranger did it (or, for store, the context was accepted and a store answered)
	ExposureClosed   = "closed"   // refused
	ExposureUnproven = "unproven" // the context was accepted but nothing proved data flows
)

// Severities of findings, highest first.
const (
	SeverityCritical = "critical"
	SeverityHigh     = "high"
	SeverityMedium   = "medium"
	SeverityLow      = "low"
	SeverityInfo     = "info"
)

// Result is everything the scanner learned about one service.
type Result struct {
	Host string    `json:"host"`
	Port int       `json:"port"`
	Time time.Time `json:"time"` // when the probe of this service started (UTC)

	// DICOM says whether the service answered an A-ASSOCIATE-RQ with a
	// DICOM PDU (AC, RJ or A-ABORT) over Transport ("tls" or "plain").
	DICOM     bool    `json:"dicom"`
	Transport string  `json:"transport,omitempty"`
	TLS       TLSInfo `json:"tls"`

	Auth       string `json:"auth"`
	AuthDetail string `json:"auth_detail"`
	// StoppedBy names the check that kept a stranger out when nothing
	// guessable was accepted: "called-ae", "calling-ae", "certificate",
	// "unstated" (refused without naming a check: an address filter or
	// an unstated one), "busy" (only transient rejections).
	StoppedBy string    `json:"stopped_by,omitempty"`
	Attempts  []Attempt `json:"attempts,omitempty"` // the association ladder, in order

	Implementation Implementation `json:"implementation"`
	Product        *Product       `json:"product,omitempty"`
	// OrthancREST is true when Orthanc's REST API on the same host, for
	// this DICOM port, answered GET /system without credentials.
	OrthancREST bool `json:"orthanc_rest,omitempty"`

	// Services maps a service name (see services.go, e.g. "verification",
	// "study-root-find", "ct-storage") to what a stranger was offered.
	Services map[string]Service `json:"services,omitempty"`
	// Echo is the outcome of the stranger's C-ECHO: "success", a failure
	// in words, or "" when no association was accepted.
	Echo string `json:"echo,omitempty"`
	// ExposureDetail says how each exposure verdict was reached.
	ExposureDetail string   `json:"exposure_detail,omitempty"`
	Exposure       Exposure `json:"exposure"`

	Proof     *Proof     `json:"proof,omitempty"`      // --prove
	WriteTest *WriteTest `json:"write_test,omitempty"` // --test-write
	Decoy     *Decoy     `json:"decoy,omitempty"`      // honeypot / fixture evidence

	Findings []Finding `json:"findings"`
	Error    string    `json:"error,omitempty"` // why the probe stopped early, if it did
}

// TLSInfo describes the TLS layer of a service.
type TLSInfo struct {
	Enabled            bool       `json:"enabled"`
	Version            string     `json:"version,omitempty"` // "TLS 1.3"
	Cipher             string     `json:"cipher,omitempty"`
	ClientCertRequired bool       `json:"client_cert_required"`
	Cert               *CertInfo  `json:"cert,omitempty"` // the leaf
	Chain              []CertInfo `json:"chain,omitempty"`
}

// CertInfo is a certificate as a person checks it.
type CertInfo struct {
	Subject    string    `json:"subject"`
	Issuer     string    `json:"issuer"`
	NotBefore  time.Time `json:"not_before"`
	NotAfter   time.Time `json:"not_after"`
	SelfSigned bool      `json:"self_signed"`
	KeyType    string    `json:"key_type"` // "RSA", "ECDSA", "Ed25519"
	KeyBits    int       `json:"key_bits"`
	SHA256     string    `json:"sha256"` // hex fingerprint of the DER
}

// Attempt is one rung of the association ladder.
type Attempt struct {
	Calling string `json:"calling"`
	Called  string `json:"called"`
	// Outcome is "accepted", "rejected", "aborted" or "error".
	Outcome string `json:"outcome"`
	// Reject is set when Outcome is "rejected", decoded into words.
	Reject *Reject `json:"reject,omitempty"`
	Detail string  `json:"detail,omitempty"`
}

// Reject is an A-ASSOCIATE-RJ in numbers and words.
type Reject struct {
	Result int    `json:"result"` // 1 permanent, 2 transient
	Source int    `json:"source"` // 1 user, 2 UL provider (ACSE), 3 UL provider (presentation)
	Reason int    `json:"reason"`
	Text   string `json:"text"` // "permanent, service user: calling AE title not recognized"
}

// Implementation is what the peer said of itself in its A-ASSOCIATE-AC
// (or, failing that, nothing).
type Implementation struct {
	ClassUID    string `json:"class_uid,omitempty"`
	VersionName string `json:"version_name,omitempty"`
}

// Product is the scanner's identification of the software.
type Product struct {
	Name     string   `json:"name"`              // "Orthanc", "DCMTK"
	Version  string   `json:"version,omitempty"` // "1.10.1"
	Evidence string   `json:"evidence"`          // "implementation version name OFFIS_DCMTK_367", "HTTP /system"
	CVEs     []string `json:"cves,omitempty"`
}

// Service is what one proposed abstract syntax got.
type Service struct {
	SOPClass string `json:"sop_class"`
	Accepted bool   `json:"accepted"`
}

// Exposure is the verdict per operation for a stranger.
type Exposure struct {
	Query    string `json:"query"`
	Retrieve string `json:"retrieve"`
	Store    string `json:"store"`
}

// Proof is what --prove established by doing, never by keeping data.
type Proof struct {
	// Records counted per query level ("PATIENT", "STUDY"); -1 when that
	// level was refused or unsupported.
	Records map[string]int `json:"records"`
	// Truncated is true when a count stopped at the configured maximum
	// (C-CANCEL sent).
	Truncated bool `json:"truncated"`
	// Fields says which kinds of personal data came back non-empty
	// ("PatientName": true, "PatientBirthDate": false, ...). Never values.
	Fields map[string]bool `json:"fields,omitempty"`
	// PatientIDHashes are salted SHA-256 hashes of patient IDs, present
	// only when the user asked for them (--hash-ids SALT).
	PatientIDHashes []string `json:"patient_id_hashes,omitempty"`
	Get             string   `json:"get,omitempty"`           // open|closed|unproven
	Move            string   `json:"move,omitempty"`          // open|closed|unproven
	MoveAnyDest     string   `json:"move_any_dest,omitempty"` // open: C-MOVE to an AE the stranger named
	UserIdentity    string   `json:"user_identity,omitempty"` // ignored|accepted|required|unknown
}

// WriteTest is what --test-write did with its synthetic instances.
type WriteTest struct {
	Stored    bool   `json:"stored"`
	Append    string `json:"append"`    // accepted|refused|untested
	Overwrite string `json:"overwrite"` // accepted|refused|ignored|unverified|untested
	// Created lists every UID the scanner stored, so the owner can delete
	// them: the study, the series, then the instances, in that order.
	Created []string `json:"created,omitempty"`
	Detail  string   `json:"detail,omitempty"`
}

// Decoy is the evidence that a service is a honeypot or a test fixture.
type Decoy struct {
	Likely   bool     `json:"likely"`
	Evidence []string `json:"evidence"`
}

// Finding is one problem, stated for the person who can fix it.
type Finding struct {
	ID          string `json:"id"` // stable, e.g. "DS-AUTH-NONE"
	Severity    string `json:"severity"`
	Title       string `json:"title"`
	Remediation string `json:"remediation"`
}

// Key identifies a service across scans.
func (r *Result) Key() string { return fmt.Sprintf("%s:%d", r.Host, r.Port) }

// WriteJSONL writes r as one line of JSON.
func WriteJSONL(w io.Writer, r *Result) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}

// maxLine bounds one JSON line when reading results back (a result with a
// long certificate chain and ladder is a few KiB).
const maxLine = 4 << 20

// ReadJSONL reads results written by WriteJSONL. Blank lines are skipped;
// anything else that is not a result is an error naming its line.
func ReadJSONL(r io.Reader) ([]Result, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	var out []Result
	for line := 1; sc.Scan(); line++ {
		b := sc.Bytes()
		if len(b) == 0 {
			continue
		}
		var res Result
		if err := json.Unmarshal(b, &res); err != nil {
			return out, fmt.Errorf("line %d: not a scan result: %w", line, err)
		}
		if res.Host == "" || res.Port == 0 {
			return out, fmt.Errorf("line %d: scan result without host and port", line)
		}
		out = append(out, res)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return out, fmt.Errorf("a line is longer than %d bytes: not a scan result file", maxLine)
		}
		return out, err
	}
	return out, nil
}
