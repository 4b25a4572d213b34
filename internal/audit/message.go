package audit

import (
	"encoding/base64"
	"encoding/xml"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Source identifies this dicomshield in every message: the
// AuditSourceIdentification, and the application's own ActiveParticipant.
type Source struct {
	// ID is the AuditSourceID: which system reports (A.5.2); the trail
	// fills in the host name when it is empty.
	ID string
	// SiteID is the AuditEnterpriseSiteID; empty leaves it out.
	SiteID string
	// AETitle is our AE title, given as AlternativeUserID "AETITLES=..."
	// (A.5.2.2) and as the UserID when ProcessID is empty.
	AETitle string
	// ProcessID is the identity of this process (A.5.2.1), usually its
	// operating system process ID.
	ProcessID string
}

// Code systems and the DCM codes of PS3.16 that the messages use.
const (
	codeSystemDCM  = "DCM"
	codeSystemRFC  = "RFC-3881"
	transferSyntax = "1.2.840.10008.1.2.1" // Explicit VR Little Endian: how Event.Query is encoded
)

// coded is a coded value: csd-code, codeSystemName, originalText (PS3.15
// A.5.1 CodedValueType).
type coded struct {
	Code   string `xml:"csd-code,attr"`
	System string `xml:"codeSystemName,attr"`
	Text   string `xml:"originalText,attr"`
}

func dcm(code, text string) *coded { return &coded{code, codeSystemDCM, text} }

// Event IDs (PS3.15 A.5.3, PS3.16 CID 400).
var (
	evApplicationActivity = dcm("110100", "Application Activity")
	evAuditLogUsed        = dcm("110101", "Audit Log Used")
	evInstancesTransfer   = dcm("110104", "DICOM Instances Transferred")
	evQuery               = dcm("110112", "Query")
	evSecurityAlert       = dcm("110113", "Security Alert")
	evUserAuthentication  = dcm("110114", "User Authentication")
)

// Event type codes (PS3.16 CID 401, 402, 403).
var (
	typeApplicationStart  = dcm("110120", "Application Start")
	typeApplicationStop   = dcm("110121", "Application Stop")
	typeLogin             = dcm("110122", "Login")
	typeNodeAuth          = dcm("110126", "Node Authentication")
	typeNetworkConfig     = dcm("110128", "Network Configuration")
	typeSecurityConfig    = dcm("110129", "Security Configuration")
	typeRestrictedUse     = dcm("110132", "Use of Restricted Function")
	typeAuditStopped      = dcm("110133", "Audit Recording Stopped")
	typeObjectSecurity    = dcm("110135", "Object Security Attributes Changed")
	typeUserSecurityAttrs = dcm("110137", "User Security Attributes Changed")
)

// Active participant roles (PS3.16 CID 402).
var (
	roleApplication = dcm("110150", "Application")
	roleLauncher    = dcm("110151", "Application Launcher")
	roleDestination = dcm("110152", "Destination Role ID")
	roleSource      = dcm("110153", "Source Role ID")
)

// Participant object ID types (A.5.1.2.4 and PS3.16 CID 404).
var (
	idPatientNumber = &coded{"2", codeSystemRFC, "Patient Number"}
	idUserID        = &coded{"11", codeSystemRFC, "User Identifier"}
	idURI           = &coded{"12", codeSystemRFC, "URI"}
	idStudyUID      = dcm("110180", "Study Instance UID")
	idSOPClassUID   = dcm("110181", "SOP Class UID")
	idNodeID        = dcm("110182", "Node ID")
)

// alertTypes gives the EventTypeCode of a security alert or configuration
// change by its Event.Alert name; others get the kind's default.
var alertTypes = map[string]*coded{
	"bad-certificate":      typeNodeAuth,
	"node-authentication":  typeNodeAuth,
	"rate-limited":         typeRestrictedUse,
	"series-sealed":        typeRestrictedUse,
	"foreign-study":        typeRestrictedUse,
	"audit-events-dropped": typeAuditStopped,
	"peer-added":           typeSecurityConfig,
	"peer-removed":         typeSecurityConfig,
	"peer-revoked":         typeSecurityConfig,
	"peer-enrolled":        typeSecurityConfig,
	"user-added":           typeUserSecurityAttrs,
	"user-removed":         typeUserSecurityAttrs,
	"network-changed":      typeNetworkConfig,
	"object-security":      typeObjectSecurity,
}

// The message, field by field, in the element order of the schema.
type message struct {
	XMLName     xml.Name            `xml:"AuditMessage"`
	Event       eventIdentification `xml:"EventIdentification"`
	Active      []activeParticipant `xml:"ActiveParticipant"`
	AuditSource auditSource         `xml:"AuditSourceIdentification"`
	Objects     []participantObject `xml:"ParticipantObjectIdentification"`
}

type eventIdentification struct {
	ActionCode  string   `xml:"EventActionCode,attr"`
	DateTime    string   `xml:"EventDateTime,attr"`
	Outcome     int      `xml:"EventOutcomeIndicator,attr"`
	EventID     *coded   `xml:"EventID"`
	TypeCode    []*coded `xml:"EventTypeCode"`
	Description string   `xml:"EventOutcomeDescription,omitempty"`
}

type activeParticipant struct {
	UserID          string   `xml:"UserID,attr"`
	AlternativeID   string   `xml:"AlternativeUserID,attr,omitempty"`
	UserName        string   `xml:"UserName,attr,omitempty"`
	UserIsRequestor bool     `xml:"UserIsRequestor,attr"`
	NAPID           string   `xml:"NetworkAccessPointID,attr,omitempty"`
	NAPType         string   `xml:"NetworkAccessPointTypeCode,attr,omitempty"`
	Roles           []*coded `xml:"RoleIDCode"`
}

type auditSource struct {
	SiteID   string `xml:"AuditEnterpriseSiteID,attr,omitempty"`
	SourceID string `xml:"AuditSourceID,attr"`
	TypeCode struct {
		Code string `xml:"csd-code,attr"`
	} `xml:"AuditSourceTypeCode"`
}

type participantObject struct {
	ID          string             `xml:"ParticipantObjectID,attr"`
	TypeCode    string             `xml:"ParticipantObjectTypeCode,attr,omitempty"`
	Role        string             `xml:"ParticipantObjectTypeCodeRole,attr,omitempty"`
	IDType      *coded             `xml:"ParticipantObjectIDTypeCode"`
	Name        string             `xml:"ParticipantObjectName,omitempty"`
	Query       string             `xml:"ParticipantObjectQuery,omitempty"` // base64
	Details     []valuePair        `xml:"ParticipantObjectDetail"`
	Description *objectDescription `xml:"ParticipantObjectDescription,omitempty"`
}

type valuePair struct {
	Type  string `xml:"type,attr"`
	Value string `xml:"value,attr"` // base64, the schema's xsd:base64Binary
}

type objectDescription struct {
	SOPClasses []sopClass `xml:"SOPClass"`
}

type sopClass struct {
	UID       string `xml:"UID,attr"`
	Instances int    `xml:"NumberOfInstances,attr"`
}

// ErrUnknownKind is returned by Marshal for an Event whose Kind is not one
// of this package's.
var ErrUnknownKind = errors.New("audit: unknown event kind")

// auditSourceType is the AuditSourceTypeCode of dicomshield: 4,
// "Application Server process tier in a multi-tier system" (A.5.1.2.1).
const auditSourceType = "4"

// Marshal encodes ev as a DICOM audit message (PS3.15 A.5, the XML of
// the A.5.1 schema), reported by src. The encoding is one line (no
// newline inside or after), so that it fits a line of the local log and
// a syslog record.
func Marshal(ev Event, src Source) ([]byte, error) {
	t := ev.Time
	if t.IsZero() {
		t = time.Now()
	}
	m := message{Event: eventIdentification{
		DateTime:    t.UTC().Format("2006-01-02T15:04:05.000Z"),
		Outcome:     int(ev.Outcome),
		Description: ev.Description,
	}}
	switch ev.Outcome {
	case Success, MinorFailure, SeriousFailure, MajorFailure:
	default:
		m.Event.Outcome = int(MajorFailure)
	}
	m.AuditSource.SourceID, m.AuditSource.SiteID = src.ID, src.SiteID
	if m.AuditSource.SourceID == "" {
		m.AuditSource.SourceID = "dicomshield"
	}
	m.AuditSource.TypeCode.Code = auditSourceType

	us := func(requestor bool, roles ...*coded) activeParticipant {
		p := activeParticipant{UserID: src.ProcessID, UserIsRequestor: requestor, Roles: roles}
		if p.UserID == "" {
			p.UserID = src.AETitle
		}
		if src.AETitle != "" {
			p.AlternativeID = "AETITLES=" + src.AETitle
		}
		p.NAPID, p.NAPType = accessPoint(ev.Local)
		return p
	}
	peer := func(requestor bool, roles ...*coded) activeParticipant {
		p := activeParticipant{UserID: firstOf(ev.CallingAE, ev.Peer, ev.Remote, "unknown"), UserName: ev.User,
			UserIsRequestor: requestor, Roles: roles}
		p.NAPID, p.NAPType = accessPoint(ev.Remote)
		return p
	}

	switch ev.Kind {
	case AppStart, AppStop:
		m.Event.ActionCode, m.Event.EventID = "E", evApplicationActivity
		m.Event.TypeCode = []*coded{typeApplicationStart}
		if ev.Kind == AppStop {
			m.Event.TypeCode = []*coded{typeApplicationStop}
		}
		m.Active = append(m.Active, us(false, roleApplication))
		if ev.User != "" {
			m.Active = append(m.Active, activeParticipant{UserID: ev.User, UserIsRequestor: true, Roles: []*coded{roleLauncher}})
		}
	case AuditLogUsed:
		m.Event.ActionCode, m.Event.EventID = "R", evAuditLogUsed
		m.Active = append(m.Active, activeParticipant{UserID: firstOf(ev.User, "unknown"), UserIsRequestor: true})
		m.Active = append(m.Active, us(false, roleApplication))
		m.Objects = append(m.Objects, participantObject{ID: firstOf(ev.Object, "audit.log"), TypeCode: "2", Role: "13",
			IDType: idURI, Name: "Security Audit Log"})
	case AssocAccepted, AssocRefused:
		m.Event.ActionCode, m.Event.EventID = "E", evSecurityAlert
		m.Event.TypeCode = []*coded{typeNodeAuth}
		m.Active = append(m.Active, us(false, roleApplication), peer(true))
		m.Objects = append(m.Objects, nodeObject(ev))
	case Authentication:
		m.Event.ActionCode, m.Event.EventID = "E", evUserAuthentication
		m.Event.TypeCode = []*coded{typeLogin}
		u := peer(true)
		if ev.User != "" {
			u.UserID, u.UserName, u.AlternativeID = ev.User, "", aeTitles(ev.CallingAE)
		}
		m.Active = append(m.Active, u, us(false, roleApplication))
	case Query:
		m.Event.ActionCode, m.Event.EventID = "E", evQuery
		m.Active = append(m.Active, peer(true, roleSource), us(false, roleDestination))
		// PS3.15 A.5.3.11 "SOP Queried and the Query": a system object
		// in the role of a report (3), identified by the SOP Class UID.
		m.Objects = append(m.Objects, participantObject{ID: firstOf(first(ev.SOPClasses), "unknown"), TypeCode: "2", Role: "3",
			IDType: idSOPClassUID, Query: b64(ev.Query),
			Details: []valuePair{{Type: "TransferSyntax", Value: b64([]byte(transferSyntax))}}})
	case InstancesStored:
		m.Event.ActionCode, m.Event.EventID = "C", evInstancesTransfer
		m.Active = append(m.Active, peer(true, roleSource), us(false, roleDestination))
		m.Objects = append(m.Objects, studyObjects(ev)...)
	case InstancesSent:
		m.Event.ActionCode, m.Event.EventID = "R", evInstancesTransfer
		if ev.Destination != "" {
			// C-MOVE: the requestor asked for a transfer to a third node.
			dest := activeParticipant{UserID: ev.Destination, UserIsRequestor: false, Roles: []*coded{roleDestination}}
			m.Active = append(m.Active, us(false, roleSource), dest, peer(true))
		} else {
			m.Active = append(m.Active, us(false, roleSource), peer(true, roleDestination))
		}
		m.Objects = append(m.Objects, studyObjects(ev)...)
	case SecurityAlert, ConfigChange:
		m.Event.ActionCode, m.Event.EventID = "E", evSecurityAlert
		typ := alertTypes[ev.Alert]
		if typ == nil {
			typ = typeRestrictedUse
			if ev.Kind == ConfigChange {
				typ = typeSecurityConfig
			}
		}
		m.Event.TypeCode = []*coded{typ}
		m.Active = append(m.Active, us(false, roleApplication))
		switch {
		case ev.Kind == ConfigChange && ev.User != "":
			m.Active = append(m.Active, activeParticipant{UserID: ev.User, UserIsRequestor: true})
		case ev.CallingAE != "" || ev.Peer != "" || ev.Remote != "" || ev.User != "":
			m.Active = append(m.Active, peer(true))
		}
		if ev.Kind == ConfigChange {
			o := participantObject{ID: firstOf(ev.Object, ev.Peer, "configuration"), TypeCode: "2", Role: "13", IDType: idNodeID,
				Name: ev.Alert, Details: alertDetail(ev)}
			if ev.Object != "" && strings.HasPrefix(ev.Alert, "user-") {
				o.IDType, o.TypeCode, o.Role = idUserID, "1", "11"
			}
			m.Objects = append(m.Objects, o)
		} else {
			m.Objects = append(m.Objects, nodeObject(ev))
			m.Objects = append(m.Objects, studyObjects(ev)...)
		}
	default:
		return nil, ErrUnknownKind
	}
	return xml.Marshal(&m)
}

// nodeObject is the alert subject of a security alert: the peer's node,
// by AE title and address, with the description as an "Alert Description"
// detail.
func nodeObject(ev Event) participantObject {
	id := firstOf(ev.Remote, ev.CallingAE, ev.Peer, "unknown")
	return participantObject{ID: id, TypeCode: "2", Role: "13", IDType: idNodeID,
		Name: firstOf(ev.Peer, ev.CallingAE, ev.Alert), Details: alertDetail(ev)}
}

func alertDetail(ev Event) []valuePair {
	var d []valuePair
	if ev.Alert != "" {
		d = append(d, valuePair{Type: "Alert Type", Value: b64([]byte(ev.Alert))})
	}
	if ev.Description != "" {
		d = append(d, valuePair{Type: "Alert Description", Value: b64([]byte(ev.Description))})
	}
	return d
}

// studyObjects lists each study (2/3, Study Instance UID, with its SOP
// classes and instance counts) and each patient (1/1, Patient Number).
func studyObjects(ev Event) []participantObject {
	var out []participantObject
	desc := &objectDescription{}
	switch {
	case len(ev.PerClass) > 0:
		for _, c := range sortedKeys(ev.PerClass) {
			desc.SOPClasses = append(desc.SOPClasses, sopClass{UID: c, Instances: ev.PerClass[c]})
		}
	case len(ev.SOPClasses) == 1:
		desc.SOPClasses = []sopClass{{UID: ev.SOPClasses[0], Instances: ev.Instances}}
	default:
		for _, c := range ev.SOPClasses {
			desc.SOPClasses = append(desc.SOPClasses, sopClass{UID: c})
		}
	}
	if len(desc.SOPClasses) == 0 {
		desc = nil
	}
	for _, s := range ev.Studies {
		out = append(out, participantObject{ID: s, TypeCode: "2", Role: "3", IDType: idStudyUID, Description: desc})
	}
	for _, p := range ev.Patients {
		out = append(out, participantObject{ID: p, TypeCode: "1", Role: "1", IDType: idPatientNumber})
	}
	return out
}

// accessPoint returns the NetworkAccessPointID and its type code: 2 for
// an IP address, 1 for a machine name.
func accessPoint(addr string) (string, string) {
	if addr == "" {
		return "", ""
	}
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		return ap.Addr().Unmap().String(), "2"
	}
	if a, err := netip.ParseAddr(addr); err == nil {
		return a.Unmap().String(), "2"
	}
	return addr, "1"
}

func aeTitles(ae string) string {
	if ae == "" {
		return ""
	}
	return "AETITLES=" + ae
}

func firstOf(ss ...string) string {
	for _, s := range ss {
		if s = strings.TrimSpace(s); s != "" {
			return s
		}
	}
	return ""
}

func first(ss []string) string {
	if len(ss) == 0 {
		return ""
	}
	return ss[0]
}

func sortedKeys(m map[string]int) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// b64 encodes b as the schema's xsd:base64Binary text; empty stays
// empty so that the element is left out.
func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
