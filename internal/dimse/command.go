// Package dimse implements the DICOM message service element (PS3.7) on
// top of the upper layer (package ul): command sets, message assembly
// across PDVs, the C-ECHO, C-STORE, C-FIND, C-GET, C-MOVE and C-CANCEL
// services as SCU and SCP, a Server and a Client.
//
// The server knows nothing of policy: an acceptor hook decides on each
// association request and handlers decide on each operation.
package dimse

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dicomshield/dicomshield/internal/dicom"
)

// Command field values (PS3.7 E.1).
const (
	CStoreRQ  uint16 = 0x0001
	CStoreRSP uint16 = 0x8001
	CGetRQ    uint16 = 0x0010
	CGetRSP   uint16 = 0x8010
	CFindRQ   uint16 = 0x0020
	CFindRSP  uint16 = 0x8020
	CMoveRQ   uint16 = 0x0021
	CMoveRSP  uint16 = 0x8021
	CEchoRQ   uint16 = 0x0030
	CEchoRSP  uint16 = 0x8030
	CCancelRQ uint16 = 0x0FFF
)

// Priorities (PS3.7 table 9.1-1).
const (
	PriorityMedium uint16 = 0
	PriorityHigh   uint16 = 1
	PriorityLow    uint16 = 2
)

// noDataSet is the Command Data Set Type meaning "no data set follows".
const noDataSet = 0x0101

// maxCommandLength bounds a command set: it holds a few UIDs and numbers,
// so anything bigger is not a command.
const maxCommandLength = 64 << 10

// Command tags (group 0000).
const (
	tagGroupLength      = dicom.Tag(0x00000000)
	tagAffectedSOPClass = dicom.Tag(0x00000002)
	tagRequestedSOPCls  = dicom.Tag(0x00000003)
	tagCommandField     = dicom.Tag(0x00000100)
	tagMessageID        = dicom.Tag(0x00000110)
	tagRespondingTo     = dicom.Tag(0x00000120)
	tagMoveDestination  = dicom.Tag(0x00000600)
	tagPriority         = dicom.Tag(0x00000700)
	tagDataSetType      = dicom.Tag(0x00000800)
	tagStatus           = dicom.Tag(0x00000900)
	tagOffending        = dicom.Tag(0x00000901)
	tagErrorComment     = dicom.Tag(0x00000902)
	tagErrorID          = dicom.Tag(0x00000903)
	tagAffectedSOPInst  = dicom.Tag(0x00001000)
	tagRequestedSOPInst = dicom.Tag(0x00001001)
	tagRemaining        = dicom.Tag(0x00001020)
	tagCompleted        = dicom.Tag(0x00001021)
	tagFailed           = dicom.Tag(0x00001022)
	tagWarning          = dicom.Tag(0x00001023)
	tagMoveOriginatorAE = dicom.Tag(0x00001030)
	tagMoveOriginatorID = dicom.Tag(0x00001031)
)

// Command is a DIMSE command set, the fields of PS3.7 section 9 and 10
// that the C-services use. Optional counters are present when their Has
// flag is set.
type Command struct {
	Field                 uint16
	MessageID             uint16
	RespondingTo          uint16
	AffectedSOPClass      string
	AffectedSOPInstance   string
	MoveDestination       string
	Priority              uint16
	HasDataSet            bool
	Status                uint16
	ErrorComment          string
	OffendingElements     []dicom.Tag
	SubOps                SubOps
	HasSubOps             bool
	MoveOriginatorAE      string
	MoveOriginatorID      uint16
	HasMoveOriginator     bool
	RequestedSOPClass     string
	RequestedSOPInstance  string
	unknownCommandElement bool
}

// SubOps counts the sub-operations of C-GET and C-MOVE.
type SubOps struct {
	Remaining, Completed, Failed, Warning uint16
}

// IsResponse reports whether the command is a response.
func (c *Command) IsResponse() bool { return c.Field&0x8000 != 0 }

// Name returns the command's name, e.g. "C-STORE-RQ".
func (c *Command) Name() string { return CommandName(c.Field) }

// CommandName names a command field value.
func CommandName(f uint16) string {
	n := map[uint16]string{
		CStoreRQ: "C-STORE-RQ", CStoreRSP: "C-STORE-RSP", CGetRQ: "C-GET-RQ", CGetRSP: "C-GET-RSP",
		CFindRQ: "C-FIND-RQ", CFindRSP: "C-FIND-RSP", CMoveRQ: "C-MOVE-RQ", CMoveRSP: "C-MOVE-RSP",
		CEchoRQ: "C-ECHO-RQ", CEchoRSP: "C-ECHO-RSP", CCancelRQ: "C-CANCEL-RQ",
	}[f]
	if n == "" {
		return fmt.Sprintf("command 0x%04X", f)
	}
	return n
}

// ErrCommand is wrapped by errors decoding a command set.
var ErrCommand = errors.New("dimse: invalid command set")

// Encode returns the command set in implicit VR little endian (PS3.7 6.3.1)
// with its group length.
func (c *Command) Encode() []byte {
	// Implicit VR Little Endian, appended directly (every exchange encodes
	// a command, so no data set is built): the group length first, then
	// the elements in ascending tag order.
	b := make([]byte, 12, 192)
	head := func(t dicom.Tag, n int) {
		b = binary.LittleEndian.AppendUint16(b, t.Group())
		b = binary.LittleEndian.AppendUint16(b, t.Element())
		b = binary.LittleEndian.AppendUint32(b, uint32(n+n%2))
	}
	text := func(t dicom.Tag, v dicom.VR, s string) {
		if s != "" {
			head(t, len(s))
			b = append(b, s...)
			if len(s)%2 == 1 {
				b = append(b, v.PadByte())
			}
		}
	}
	u16 := func(t dicom.Tag, v uint16) {
		head(t, 2)
		b = binary.LittleEndian.AppendUint16(b, v)
	}
	text(tagAffectedSOPClass, dicom.UI, c.AffectedSOPClass)
	text(tagRequestedSOPCls, dicom.UI, c.RequestedSOPClass)
	u16(tagCommandField, c.Field)
	if !c.IsResponse() && c.Field != CCancelRQ {
		u16(tagMessageID, c.MessageID)
	} else {
		u16(tagRespondingTo, c.RespondingTo)
	}
	text(tagMoveDestination, dicom.AE, c.MoveDestination)
	if !c.IsResponse() && c.Field != CCancelRQ && c.Field != CEchoRQ {
		u16(tagPriority, c.Priority)
	}
	if c.HasDataSet {
		u16(tagDataSetType, 0x0000)
	} else {
		u16(tagDataSetType, noDataSet)
	}
	if c.IsResponse() {
		u16(tagStatus, c.Status)
	}
	if len(c.OffendingElements) > 0 {
		head(tagOffending, 4*len(c.OffendingElements))
		for _, t := range c.OffendingElements {
			b = binary.LittleEndian.AppendUint16(b, t.Group())
			b = binary.LittleEndian.AppendUint16(b, t.Element())
		}
	}
	if c.ErrorComment != "" {
		ec := c.ErrorComment
		if len(ec) > 64 {
			ec = ec[:64]
		}
		text(tagErrorComment, dicom.LO, ec)
	}
	text(tagAffectedSOPInst, dicom.UI, c.AffectedSOPInstance)
	text(tagRequestedSOPInst, dicom.UI, c.RequestedSOPInstance)
	if c.HasSubOps {
		if c.Status&0xFF00 == 0xFF00 || c.Field == CGetRSP || c.Field == CMoveRSP {
			u16(tagRemaining, c.SubOps.Remaining)
		}
		u16(tagCompleted, c.SubOps.Completed)
		u16(tagFailed, c.SubOps.Failed)
		u16(tagWarning, c.SubOps.Warning)
	}
	if c.HasMoveOriginator {
		text(tagMoveOriginatorAE, dicom.AE, c.MoveOriginatorAE)
		u16(tagMoveOriginatorID, c.MoveOriginatorID)
	}
	binary.LittleEndian.PutUint32(b[0:], uint32(tagGroupLength))
	binary.LittleEndian.PutUint32(b[4:], 4)
	binary.LittleEndian.PutUint32(b[8:], uint32(len(b)-12))
	return b
}

// DecodeCommand parses a command set.
func DecodeCommand(b []byte) (*Command, error) {
	if len(b) > maxCommandLength {
		return nil, fmt.Errorf("%w: %d bytes", ErrCommand, len(b))
	}
	ds, err := dicom.Parse(b, dicom.ImplicitVRLittleEndian, &dicom.ReadOptions{Limits: dicom.Limits{MaxElements: 64, MaxDepth: 1}})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCommand, err)
	}
	c := &Command{}
	var have struct{ field, dst bool }
	for i := range ds.Elements {
		e := &ds.Elements[i]
		if e.Tag.Group() != 0 {
			return nil, fmt.Errorf("%w: element %s outside group 0000", ErrCommand, e.Tag)
		}
		u16 := func() (uint16, error) {
			if len(e.Value) != 2 {
				return 0, fmt.Errorf("%w: %s has %d bytes, want 2", ErrCommand, e.Tag, len(e.Value))
			}
			return binary.LittleEndian.Uint16(e.Value), nil
		}
		var err error
		switch e.Tag {
		case tagGroupLength:
		case tagAffectedSOPClass:
			c.AffectedSOPClass = e.String()
		case tagRequestedSOPCls:
			c.RequestedSOPClass = e.String()
		case tagCommandField:
			c.Field, err = u16()
			have.field = true
		case tagMessageID:
			c.MessageID, err = u16()
		case tagRespondingTo:
			c.RespondingTo, err = u16()
		case tagMoveDestination:
			c.MoveDestination = e.String()
		case tagPriority:
			c.Priority, err = u16()
		case tagDataSetType:
			var v uint16
			v, err = u16()
			c.HasDataSet = v != noDataSet
			have.dst = true
		case tagStatus:
			c.Status, err = u16()
		case tagOffending:
			e.VR = dicom.AT
			c.OffendingElements, _ = e.Tags()
		case tagErrorComment:
			c.ErrorComment = e.String()
		case tagErrorID:
		case tagAffectedSOPInst:
			c.AffectedSOPInstance = e.String()
		case tagRequestedSOPInst:
			c.RequestedSOPInstance = e.String()
		case tagRemaining:
			c.SubOps.Remaining, err = u16()
			c.HasSubOps = true
		case tagCompleted:
			c.SubOps.Completed, err = u16()
			c.HasSubOps = true
		case tagFailed:
			c.SubOps.Failed, err = u16()
			c.HasSubOps = true
		case tagWarning:
			c.SubOps.Warning, err = u16()
			c.HasSubOps = true
		case tagMoveOriginatorAE:
			c.MoveOriginatorAE = e.String()
			c.HasMoveOriginator = true
		case tagMoveOriginatorID:
			c.MoveOriginatorID, err = u16()
			c.HasMoveOriginator = true
		default:
			c.unknownCommandElement = true
		}
		if err != nil {
			return nil, err
		}
	}
	if !have.field {
		return nil, fmt.Errorf("%w: no command field", ErrCommand)
	}
	if !have.dst {
		return nil, fmt.Errorf("%w: no command data set type", ErrCommand)
	}
	return c, nil
}
