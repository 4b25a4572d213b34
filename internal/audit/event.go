// Package audit records what happens to the archive as DICOM audit
// messages (PS3.15 A.5): who associated, who was refused, who queried,
// stored and retrieved what, every security alert and every change of
// configuration.
//
// event.go is the contract between the parts of dicomshield that see
// events (the archive, the CLI) and the trail that records them: callers
// fill an Event and hand it to a Recorder; they never build XML or know
// where it goes. The trail (local append-only log, syslog over TLS) lives
// beside it in this package.
package audit

import "time"

// Kind is what happened, mapped by the trail to a DICOM audit EventID and
// EventTypeCode.
type Kind string

// The events dicomshield records.
const (
	AppStart        Kind = "application-start"    // 110100 Application Activity / 110120 Application Start
	AppStop         Kind = "application-stop"     // 110100 Application Activity / 110121 Application Stop
	AssocAccepted   Kind = "association-accepted" // a peer associated (node authentication succeeded)
	AssocRefused    Kind = "association-refused"  // A-ASSOCIATE-RJ or refused before the association
	Authentication  Kind = "user-authentication"  // 110114 User Authentication (user identity negotiation)
	Query           Kind = "query"                // 110112 Query (C-FIND)
	InstancesStored Kind = "instances-stored"     // 110104 DICOM Instances Transferred, we are the destination
	InstancesSent   Kind = "instances-sent"       // 110104 DICOM Instances Transferred, we are the source (C-GET/C-MOVE)
	SecurityAlert   Kind = "security-alert"       // 110113 Security Alert (refused tampering, rate limits, bad certificates...)
	ConfigChange    Kind = "configuration-change" // 110113 Security Alert / 110128-110131 configuration (peer added, revoked, user added...)
	AuditLogUsed    Kind = "audit-log-used"       // 110101 Audit Log Used (someone read the trail)
)

// Outcome is the EventOutcomeIndicator of PS3.15 A.5.
type Outcome int

// Outcomes.
const (
	Success        Outcome = 0
	MinorFailure   Outcome = 4
	SeriousFailure Outcome = 8
	MajorFailure   Outcome = 12
)

// Event is one thing that happened. Fields left empty are left out of the
// message. Events carry patient and study identifiers because recording
// who touched which patient is the audit trail's purpose; the trail is not
// the operational log, which never carries them.
type Event struct {
	Time    time.Time // zero: when recorded
	Kind    Kind
	Outcome Outcome
	// Alert names the specific security alert or configuration change, in
	// a stable machine-readable form ("series-sealed", "foreign-study",
	// "rate-limited", "bad-certificate", "peer-added", "peer-revoked",
	// "user-added"...), for filtering.
	Alert string
	// Description says in words what happened and why (never patient data).
	Description string

	User      string // the authenticated user (user identity negotiation), if any
	Peer      string // the registered peer's AE title, if known
	CallingAE string
	CalledAE  string
	Remote    string // the peer's network address (IP, no port)
	Local     string // our listener address

	SOPClasses []string // SOP classes transferred or queried
	Studies    []string // Study Instance UIDs involved
	Patients   []string // Patient IDs involved
	Instances  int      // number of instances transferred
	Query      []byte   // the C-FIND identifier (for 110112), encoded in Explicit VR Little Endian
	// PerClass counts instances per SOP class, for the SOPClass entries of
	// a study's description; nil means Instances, under SOPClasses[0] when
	// there is just one class.
	PerClass map[string]int
	// Destination is the AE title a C-MOVE sent to (instances-sent); empty
	// for C-GET, where the requestor is the destination.
	Destination string
	// Object names what a configuration change or an audit log use is
	// about when that is not Peer: a user name, a file's URI.
	Object string
}

// Recorder receives events. Implementations must be safe for concurrent
// use and must not block the caller for long: a slow collector delays its
// queue, never a C-STORE.
type Recorder interface {
	Record(Event)
}

// Discard is a Recorder that drops every event (tests and tools that
// write no trail).
type Discard struct{}

// Record drops ev.
func (Discard) Record(Event) {}

// Func adapts a function to a Recorder (tests collect events with it).
type Func func(Event)

// Record calls f(ev).
func (f Func) Record(ev Event) { f(ev) }
