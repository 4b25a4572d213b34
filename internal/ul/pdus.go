package ul

import (
	"encoding/binary"
	"fmt"
)

// A-ASSOCIATE-RJ result, source and reason values (PS3.8 table 9-21).
const (
	RejectPermanent byte = 1
	RejectTransient byte = 2

	SourceServiceUser             byte = 1
	SourceServiceProviderACSE     byte = 2
	SourceServiceProviderPresenta byte = 3

	// Reasons when the source is the service user.
	ReasonNoReason                    byte = 1
	ReasonAppContextNotSupported      byte = 2
	ReasonCallingAENotRecognized      byte = 3
	ReasonCalledAENotRecognized       byte = 7
	ReasonACSENoReason                byte = 1 // source ACSE
	ReasonProtocolVersionNotSupported byte = 2 // source ACSE
	ReasonTemporaryCongestion         byte = 1 // source presentation
	ReasonLocalLimitExceeded          byte = 2 // source presentation
)

// AssociateRJ is an A-ASSOCIATE-RJ.
type AssociateRJ struct {
	Result, Source, Reason byte
}

// Type implements PDU.
func (*AssociateRJ) Type() byte { return TypeAssociateRJ }

// Append implements PDU.
func (p *AssociateRJ) Append(b []byte) []byte {
	b, start := appendHeader(b, TypeAssociateRJ)
	b = append(b, 0, p.Result, p.Source, p.Reason)
	return finish(b, start)
}

func decodeAssociateRJ(body []byte) (PDU, error) {
	if len(body) != 4 {
		return nil, protoErr(AbortReasonInvalidParameter, "A-ASSOCIATE-RJ of %d bytes", len(body))
	}
	return &AssociateRJ{Result: body[1], Source: body[2], Reason: body[3]}, nil
}

// String says the rejection in words: who rejected, whether for good, and
// why. It never echoes anything the peer sent.
func (p *AssociateRJ) String() string {
	kind := "rejected"
	switch p.Result {
	case RejectPermanent:
		kind = "rejected permanently"
	case RejectTransient:
		kind = "rejected for now (transient)"
	}
	var who, why string
	switch p.Source {
	case SourceServiceUser:
		who = "by the called application"
		switch p.Reason {
		case ReasonNoReason:
			why = "no reason given"
		case ReasonAppContextNotSupported:
			why = "application context not supported"
		case ReasonCallingAENotRecognized:
			why = "calling AE title not recognized"
		case ReasonCalledAENotRecognized:
			why = "called AE title not recognized"
		}
	case SourceServiceProviderACSE:
		who = "by the peer's association control (ACSE)"
		switch p.Reason {
		case ReasonACSENoReason:
			why = "no reason given"
		case ReasonProtocolVersionNotSupported:
			why = "protocol version not supported"
		}
	case SourceServiceProviderPresenta:
		who = "by the peer's presentation layer"
		switch p.Reason {
		case ReasonTemporaryCongestion:
			why = "temporary congestion"
		case ReasonLocalLimitExceeded:
			why = "local limit exceeded"
		}
	default:
		who = fmt.Sprintf("by unknown source %d", p.Source)
	}
	if why == "" {
		why = fmt.Sprintf("reason code %d", p.Reason)
	}
	return fmt.Sprintf("association %s %s: %s", kind, who, why)
}

// ReleaseRQ is an A-RELEASE-RQ.
type ReleaseRQ struct{}

// Type implements PDU.
func (*ReleaseRQ) Type() byte { return TypeReleaseRQ }

// Append implements PDU.
func (*ReleaseRQ) Append(b []byte) []byte {
	return append(b, TypeReleaseRQ, 0, 0, 0, 0, 4, 0, 0, 0, 0)
}

// ReleaseRP is an A-RELEASE-RP.
type ReleaseRP struct{}

// Type implements PDU.
func (*ReleaseRP) Type() byte { return TypeReleaseRP }

// Append implements PDU.
func (*ReleaseRP) Append(b []byte) []byte {
	return append(b, TypeReleaseRP, 0, 0, 0, 0, 4, 0, 0, 0, 0)
}

// Abort sources (PS3.8 table 9-26).
const (
	AbortSourceUser     byte = 0
	AbortSourceProvider byte = 2
)

// Abort is an A-ABORT.
type Abort struct {
	Source, Reason byte
}

// Type implements PDU.
func (*Abort) Type() byte { return TypeAbort }

// Append implements PDU.
func (p *Abort) Append(b []byte) []byte {
	return append(b, TypeAbort, 0, 0, 0, 0, 4, 0, 0, p.Source, p.Reason)
}

func decodeAbort(body []byte) (PDU, error) {
	if len(body) != 4 {
		return nil, protoErr(AbortReasonInvalidParameter, "A-ABORT of %d bytes", len(body))
	}
	return &Abort{Source: body[2], Reason: body[3]}, nil
}

// String says the abort in words.
func (p *Abort) String() string {
	if p.Source == AbortSourceUser {
		return "association aborted by the peer"
	}
	why := map[byte]string{
		AbortReasonNotSpecified:          "reason not specified",
		AbortReasonUnrecognizedPDU:       "unrecognized PDU",
		AbortReasonUnexpectedPDU:         "unexpected PDU",
		AbortReasonUnrecognizedParameter: "unrecognized PDU parameter",
		AbortReasonUnexpectedParameter:   "unexpected PDU parameter",
		AbortReasonInvalidParameter:      "invalid PDU parameter value",
	}[p.Reason]
	if why == "" {
		why = fmt.Sprintf("reason code %d", p.Reason)
	}
	return "association aborted by the peer's upper layer: " + why
}

// PDV is one presentation data value: a fragment of a command or data set.
type PDV struct {
	ContextID byte
	Command   bool // the fragment belongs to a command set
	Last      bool // the last fragment of the command or data set
	Data      []byte
}

// PDataTF is a P-DATA-TF: one or more PDVs.
type PDataTF struct {
	PDVs []PDV
}

// Type implements PDU.
func (*PDataTF) Type() byte { return TypePDataTF }

// Append implements PDU.
func (p *PDataTF) Append(b []byte) []byte {
	b, start := appendHeader(b, TypePDataTF)
	for _, v := range p.PDVs {
		b = binary.BigEndian.AppendUint32(b, uint32(len(v.Data)+2))
		var mch byte
		if v.Command {
			mch |= 1
		}
		if v.Last {
			mch |= 2
		}
		b = append(b, v.ContextID, mch)
		b = append(b, v.Data...)
	}
	return finish(b, start)
}

func decodePDataTF(body []byte) (PDU, error) {
	p := &PDataTF{}
	r := &reader{b: body}
	for r.left() > 0 {
		n, err := r.u32("PDV length")
		if err != nil {
			return nil, err
		}
		if n < 2 {
			return nil, protoErr(AbortReasonInvalidParameter, "PDV length %d shorter than its header", n)
		}
		if int64(n) > int64(r.left()) {
			return nil, protoErr(AbortReasonInvalidParameter, "PDV length %d exceeds the %d bytes left in the PDU", n, r.left())
		}
		v, _ := r.bytes(int(n), "PDV")
		if v[1]&^3 != 0 {
			return nil, protoErr(AbortReasonInvalidParameter, "PDV message control header 0x%02x has reserved bits set", v[1])
		}
		p.PDVs = append(p.PDVs, PDV{ContextID: v[0], Command: v[1]&1 == 1, Last: v[1]&2 == 2, Data: v[2:]})
	}
	if len(p.PDVs) == 0 {
		return nil, protoErr(AbortReasonInvalidParameter, "P-DATA-TF without a PDV")
	}
	return p, nil
}
