package ul

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
)

// ApplicationContextName is the DICOM application context (PS3.7 A.2.1).
const ApplicationContextName = "1.2.840.10008.3.1.1.1"

// Item types of A-ASSOCIATE-RQ/AC (PS3.8 9.3.2, 9.3.3 and PS3.7 annex D).
const (
	itemApplicationContext = 0x10
	itemPresentationRQ     = 0x20
	itemPresentationAC     = 0x21
	itemAbstractSyntax     = 0x30
	itemTransferSyntax     = 0x40
	itemUserInformation    = 0x50
	subMaxLength           = 0x51
	subImplementationClass = 0x52
	subAsyncWindow         = 0x53
	subRoleSelection       = 0x54
	subImplementationVer   = 0x55
	subSOPExtended         = 0x56
	subSOPCommonExtended   = 0x57
	subUserIdentityRQ      = 0x58
	subUserIdentityAC      = 0x59
)

// Presentation context results in an A-ASSOCIATE-AC (PS3.8 table 9-18).
const (
	ResultAcceptance                 byte = 0
	ResultUserRejection              byte = 1
	ResultNoReason                   byte = 2
	ResultAbstractSyntaxNotSupported byte = 3
	ResultTransferSyntaxNotSupported byte = 4
)

// ResultText says a presentation context result in words.
func ResultText(r byte) string {
	switch r {
	case ResultAcceptance:
		return "accepted"
	case ResultUserRejection:
		return "rejected by the user"
	case ResultNoReason:
		return "rejected (no reason given)"
	case ResultAbstractSyntaxNotSupported:
		return "abstract syntax not supported"
	case ResultTransferSyntaxNotSupported:
		return "transfer syntaxes not supported"
	}
	return fmt.Sprintf("unknown result %d", r)
}

// PresentationContext is one proposed (RQ) or answered (AC) context.
type PresentationContext struct {
	ID byte
	// AbstractSyntax is proposed in the RQ; the AC does not carry it.
	AbstractSyntax string
	// TransferSyntaxes: the proposals in the RQ, the single choice in the AC.
	TransferSyntaxes []string
	// Result in the AC.
	Result byte
}

// RoleSelection is an SCP/SCU role selection sub-item (PS3.7 D.3.3.4).
type RoleSelection struct {
	SOPClassUID string
	SCU, SCP    bool
}

// SOPClassExtended is an SOP class extended negotiation sub-item
// (PS3.7 D.3.3.5).
type SOPClassExtended struct {
	SOPClassUID string
	Info        []byte
}

// SOPClassCommonExtended is a common extended negotiation sub-item
// (PS3.7 D.3.3.6).
type SOPClassCommonExtended struct {
	SOPClassUID     string
	ServiceClassUID string
	RelatedGeneral  []string
}

// User identity types (PS3.7 D.3.3.7.1).
const (
	IdentityUsername         byte = 1
	IdentityUsernamePasscode byte = 2
	IdentityKerberos         byte = 3
	IdentitySAML             byte = 4
	IdentityJWT              byte = 5
)

// UserIdentity is the user identity negotiation sub-item of a request.
type UserIdentity struct {
	Type                      byte
	PositiveResponseRequested bool
	Primary                   []byte
	Secondary                 []byte // the passcode, for type 2
}

// UserInfo is the user information item.
type UserInfo struct {
	// MaxLength is the largest P-DATA-TF PDU the sender will receive; 0 means
	// no limit (PS3.8 D.1).
	MaxLength              uint32
	ImplementationClassUID string
	ImplementationVersion  string
	// AsyncWindow, when non-nil, is {max operations invoked, performed}.
	AsyncWindow     *[2]uint16
	Roles           []RoleSelection
	Extended        []SOPClassExtended
	CommonExtended  []SOPClassCommonExtended
	Identity        *UserIdentity // request only
	IdentityResp    []byte        // acceptor's server response, AC only
	HasIdentityResp bool
}

// Associate is an A-ASSOCIATE-RQ or -AC (they share their layout).
type Associate struct {
	ProtocolVersion uint16
	CalledAE        string
	CallingAE       string
	AppContext      string
	Contexts        []PresentationContext
	User            UserInfo
}

// AssociateRQ is an A-ASSOCIATE-RQ.
type AssociateRQ struct{ Associate }

// AssociateAC is an A-ASSOCIATE-AC.
type AssociateAC struct{ Associate }

// Type implements PDU.
func (*AssociateRQ) Type() byte { return TypeAssociateRQ }

// Type implements PDU.
func (*AssociateAC) Type() byte { return TypeAssociateAC }

// Append implements PDU.
func (p *AssociateRQ) Append(b []byte) []byte { return p.appendTo(b, TypeAssociateRQ) }

// Append implements PDU.
func (p *AssociateAC) Append(b []byte) []byte { return p.appendTo(b, TypeAssociateAC) }

// aeField pads an AE title to the 16-byte field with spaces.
func aeField(s string) []byte {
	f := []byte("                ")
	copy(f, s)
	return f
}

func (p *Associate) appendTo(b []byte, typ byte) []byte {
	b, start := appendHeader(b, typ)
	v := p.ProtocolVersion
	if v == 0 {
		v = 1
	}
	b = binary.BigEndian.AppendUint16(b, v)
	b = append(b, 0, 0)
	b = append(b, aeField(p.CalledAE)...)
	b = append(b, aeField(p.CallingAE)...)
	b = append(b, make([]byte, 32)...)
	ctx := p.AppContext
	if ctx == "" {
		ctx = ApplicationContextName
	}
	b = appendItem(b, itemApplicationContext, func(b []byte) []byte { return append(b, ctx...) })
	for _, pc := range p.Contexts {
		if typ == TypeAssociateRQ {
			b = appendItem(b, itemPresentationRQ, func(b []byte) []byte {
				b = append(b, pc.ID, 0, 0, 0)
				b = appendItem(b, itemAbstractSyntax, func(b []byte) []byte { return append(b, pc.AbstractSyntax...) })
				for _, ts := range pc.TransferSyntaxes {
					b = appendItem(b, itemTransferSyntax, func(b []byte) []byte { return append(b, ts...) })
				}
				return b
			})
			continue
		}
		b = appendItem(b, itemPresentationAC, func(b []byte) []byte {
			b = append(b, pc.ID, 0, pc.Result, 0)
			// One transfer syntax answers a context (PS3.8 9.3.3.2);
			// none is sent when none was chosen, so that what was
			// received re-encodes as it came.
			if len(pc.TransferSyntaxes) == 0 {
				return b
			}
			return appendItem(b, itemTransferSyntax, func(b []byte) []byte { return append(b, pc.TransferSyntaxes[0]...) })
		})
	}
	b = appendItem(b, itemUserInformation, func(b []byte) []byte { return p.User.appendTo(b, typ) })
	return finish(b, start)
}

func (u *UserInfo) appendTo(b []byte, typ byte) []byte {
	b = appendItem(b, subMaxLength, func(b []byte) []byte { return binary.BigEndian.AppendUint32(b, u.MaxLength) })
	if u.ImplementationClassUID != "" {
		b = appendItem(b, subImplementationClass, func(b []byte) []byte { return append(b, u.ImplementationClassUID...) })
	}
	if u.AsyncWindow != nil {
		b = appendItem(b, subAsyncWindow, func(b []byte) []byte {
			b = binary.BigEndian.AppendUint16(b, u.AsyncWindow[0])
			return binary.BigEndian.AppendUint16(b, u.AsyncWindow[1])
		})
	}
	for _, r := range u.Roles {
		b = appendItem(b, subRoleSelection, func(b []byte) []byte {
			b = appendLenPrefixed(b, []byte(r.SOPClassUID))
			return append(b, boolByte(r.SCU), boolByte(r.SCP))
		})
	}
	if u.ImplementationVersion != "" {
		b = appendItem(b, subImplementationVer, func(b []byte) []byte { return append(b, u.ImplementationVersion...) })
	}
	for _, x := range u.Extended {
		b = appendItem(b, subSOPExtended, func(b []byte) []byte {
			b = appendLenPrefixed(b, []byte(x.SOPClassUID))
			return append(b, x.Info...)
		})
	}
	if typ == TypeAssociateRQ {
		for _, x := range u.CommonExtended {
			b = appendItem(b, subSOPCommonExtended, func(b []byte) []byte {
				b = appendLenPrefixed(b, []byte(x.SOPClassUID))
				b = appendLenPrefixed(b, []byte(x.ServiceClassUID))
				var rel []byte
				for _, r := range x.RelatedGeneral {
					rel = appendLenPrefixed(rel, []byte(r))
				}
				return appendLenPrefixed(b, rel)
			})
		}
		if id := u.Identity; id != nil {
			b = appendItem(b, subUserIdentityRQ, func(b []byte) []byte {
				b = append(b, id.Type, boolByte(id.PositiveResponseRequested))
				b = appendLenPrefixed(b, id.Primary)
				return appendLenPrefixed(b, id.Secondary)
			})
		}
	} else if u.HasIdentityResp {
		b = appendItem(b, subUserIdentityAC, func(b []byte) []byte { return appendLenPrefixed(b, u.IdentityResp) })
	}
	return b
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// trimUID removes the trailing NUL or space padding some peers add to UIDs
// in items.
func trimUID(b []byte) string { return strings.TrimRight(string(b), "\x00 ") }

func decodeAssociateRQ(body []byte) (PDU, error) {
	p := &AssociateRQ{}
	return p, p.decode(body, TypeAssociateRQ)
}

func decodeAssociateAC(body []byte) (PDU, error) {
	p := &AssociateAC{}
	return p, p.decode(body, TypeAssociateAC)
}

func (p *Associate) decode(body []byte, typ byte) error {
	r := &reader{b: body}
	var err error
	if p.ProtocolVersion, err = r.u16("protocol version"); err != nil {
		return err
	}
	// Bit 0 is version 1, the only version there is (PS3.8 9.3.2). A PDU
	// without it is not one this side can speak; 0 in particular would
	// not survive re-encoding, where it selects the default.
	if p.ProtocolVersion&1 == 0 {
		return protoErr(AbortReasonInvalidParameter, "protocol version 0x%04x does not include version 1", p.ProtocolVersion)
	}
	if _, err = r.bytes(2, "reserved"); err != nil {
		return err
	}
	called, err := r.bytes(16, "called AE title")
	if err != nil {
		return err
	}
	calling, err := r.bytes(16, "calling AE title")
	if err != nil {
		return err
	}
	p.CalledAE = string(bytes.TrimSpace(called))
	p.CallingAE = string(bytes.TrimSpace(calling))
	if _, err = r.bytes(32, "reserved"); err != nil {
		return err
	}
	seenUser, seenCtx := false, false
	for r.left() > 0 {
		it, ib, err := r.item("variable item")
		if err != nil {
			return err
		}
		switch {
		case it == itemApplicationContext:
			if seenCtx {
				return protoErr(AbortReasonUnexpectedParameter, "second application context item")
			}
			seenCtx = true
			p.AppContext = trimUID(ib)
			if p.AppContext == "" {
				return protoErr(AbortReasonInvalidParameter, "empty application context name")
			}
		case it == itemPresentationRQ && typ == TypeAssociateRQ, it == itemPresentationAC && typ == TypeAssociateAC:
			if len(p.Contexts) >= DefaultMaxPresentationContexts {
				return protoErr(AbortReasonInvalidParameter, "more than %d presentation contexts", DefaultMaxPresentationContexts)
			}
			pc, err := decodeContext(ib, typ)
			if err != nil {
				return err
			}
			p.Contexts = append(p.Contexts, pc)
		case it == itemUserInformation:
			if seenUser {
				return protoErr(AbortReasonUnexpectedParameter, "second user information item")
			}
			seenUser = true
			if err := p.User.decode(ib, typ); err != nil {
				return err
			}
		default:
			return protoErr(AbortReasonUnrecognizedParameter, "unexpected item 0x%02x in A-ASSOCIATE", it)
		}
	}
	if !seenCtx {
		return protoErr(AbortReasonInvalidParameter, "no application context item")
	}
	if !seenUser {
		return protoErr(AbortReasonInvalidParameter, "no user information item")
	}
	if typ == TypeAssociateRQ && len(p.Contexts) == 0 {
		return protoErr(AbortReasonInvalidParameter, "no presentation context proposed")
	}
	return nil
}

func decodeContext(ib []byte, typ byte) (PresentationContext, error) {
	r := &reader{b: ib}
	var pc PresentationContext
	hdr, err := r.bytes(4, "presentation context header")
	if err != nil {
		return pc, err
	}
	pc.ID = hdr[0]
	if typ == TypeAssociateAC {
		pc.Result = hdr[2]
	}
	for r.left() > 0 {
		st, sb, err := r.item("presentation context sub-item")
		if err != nil {
			return pc, err
		}
		switch {
		case st == itemAbstractSyntax && typ == TypeAssociateRQ:
			if pc.AbstractSyntax != "" {
				return pc, protoErr(AbortReasonUnexpectedParameter, "two abstract syntaxes in presentation context %d", pc.ID)
			}
			pc.AbstractSyntax = trimUID(sb)
		case st == itemTransferSyntax:
			if typ == TypeAssociateAC && len(pc.TransferSyntaxes) == 1 {
				return pc, protoErr(AbortReasonInvalidParameter, "more than one transfer syntax in answered presentation context %d", pc.ID)
			}
			if len(pc.TransferSyntaxes) >= 64 {
				return pc, protoErr(AbortReasonInvalidParameter, "more than 64 transfer syntaxes in presentation context %d", pc.ID)
			}
			pc.TransferSyntaxes = append(pc.TransferSyntaxes, trimUID(sb))
		default:
			return pc, protoErr(AbortReasonUnrecognizedParameter, "unexpected sub-item 0x%02x in presentation context %d", st, pc.ID)
		}
	}
	if typ == TypeAssociateRQ && (pc.AbstractSyntax == "" || len(pc.TransferSyntaxes) == 0) {
		return pc, protoErr(AbortReasonInvalidParameter, "presentation context %d lacks an abstract or transfer syntax", pc.ID)
	}
	return pc, nil
}

func (u *UserInfo) decode(ib []byte, typ byte) error {
	r := &reader{b: ib}
	for r.left() > 0 {
		st, sb, err := r.item("user information sub-item")
		if err != nil {
			return err
		}
		s := &reader{b: sb}
		switch st {
		case subMaxLength:
			if u.MaxLength, err = s.u32("maximum length"); err != nil {
				return err
			}
		case subImplementationClass:
			u.ImplementationClassUID = trimUID(sb)
		case subImplementationVer:
			u.ImplementationVersion = strings.TrimRight(string(sb), "\x00 ")
		case subAsyncWindow:
			var w [2]uint16
			if w[0], err = s.u16("async window"); err != nil {
				return err
			}
			if w[1], err = s.u16("async window"); err != nil {
				return err
			}
			u.AsyncWindow = &w
		case subRoleSelection:
			uid, err := s.lenPrefixed("role selection UID")
			if err != nil {
				return err
			}
			roles, err := s.bytes(2, "role selection roles")
			if err != nil {
				return err
			}
			if len(u.Roles) >= DefaultMaxPresentationContexts {
				return protoErr(AbortReasonInvalidParameter, "too many role selection items")
			}
			u.Roles = append(u.Roles, RoleSelection{SOPClassUID: trimUID(uid), SCU: roles[0] == 1, SCP: roles[1] == 1})
		case subSOPExtended:
			uid, err := s.lenPrefixed("extended negotiation UID")
			if err != nil {
				return err
			}
			if len(u.Extended) >= DefaultMaxPresentationContexts {
				return protoErr(AbortReasonInvalidParameter, "too many extended negotiation items")
			}
			u.Extended = append(u.Extended, SOPClassExtended{SOPClassUID: trimUID(uid), Info: sb[s.off:]})
		case subSOPCommonExtended:
			if typ != TypeAssociateRQ {
				return protoErr(AbortReasonUnexpectedParameter, "common extended negotiation in A-ASSOCIATE-AC")
			}
			var x SOPClassCommonExtended
			uid, err := s.lenPrefixed("common extended SOP class")
			if err != nil {
				return err
			}
			svc, err := s.lenPrefixed("common extended service class")
			if err != nil {
				return err
			}
			rel, err := s.lenPrefixed("related general SOP classes")
			if err != nil {
				return err
			}
			x.SOPClassUID, x.ServiceClassUID = trimUID(uid), trimUID(svc)
			rr := &reader{b: rel}
			for rr.left() > 0 {
				g, err := rr.lenPrefixed("related general SOP class")
				if err != nil {
					return err
				}
				x.RelatedGeneral = append(x.RelatedGeneral, trimUID(g))
			}
			if len(u.CommonExtended) >= DefaultMaxPresentationContexts {
				return protoErr(AbortReasonInvalidParameter, "too many common extended negotiation items")
			}
			u.CommonExtended = append(u.CommonExtended, x)
		case subUserIdentityRQ:
			if typ != TypeAssociateRQ || u.Identity != nil {
				return protoErr(AbortReasonUnexpectedParameter, "unexpected user identity request item")
			}
			hdr, err := s.bytes(2, "user identity type")
			if err != nil {
				return err
			}
			id := &UserIdentity{Type: hdr[0], PositiveResponseRequested: hdr[1] == 1}
			if id.Primary, err = s.lenPrefixed("user identity primary field"); err != nil {
				return err
			}
			if id.Secondary, err = s.lenPrefixed("user identity secondary field"); err != nil {
				return err
			}
			u.Identity = id
		case subUserIdentityAC:
			if typ != TypeAssociateAC {
				return protoErr(AbortReasonUnexpectedParameter, "user identity response in A-ASSOCIATE-RQ")
			}
			if u.IdentityResp, err = s.lenPrefixed("user identity server response"); err != nil {
				return err
			}
			u.HasIdentityResp = true
		default:
			// PS3.7 D.3.3: unknown user information sub-items are ignored.
		}
	}
	return nil
}
