package dimse

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/dicomshield/dicomshield/internal/dicom"
)

// encodeViaDataSet is the encoder Encode replaced (a data set built, then
// marshalled): the oracle of TestEncodeMatchesDataSet.
func encodeViaDataSet(c *Command) []byte {
	var ds dicom.DataSet
	text := func(t dicom.Tag, v dicom.VR, s string) {
		if s != "" {
			ds.Elements = append(ds.Elements, dicom.NewText(t, v, s))
		}
	}
	u16 := func(t dicom.Tag, v uint16) {
		ds.Elements = append(ds.Elements, dicom.NewUint16s(t, dicom.US, v))
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
		b := make([]byte, 0, 4*len(c.OffendingElements))
		for _, t := range c.OffendingElements {
			b = binary.LittleEndian.AppendUint16(b, t.Group())
			b = binary.LittleEndian.AppendUint16(b, t.Element())
		}
		ds.Elements = append(ds.Elements, dicom.Element{Tag: tagOffending, VR: dicom.AT, Value: b})
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
	body, _ := dicom.MarshalDataSet(&ds, dicom.ImplicitVRLittleEndian)
	out := make([]byte, 0, 12+len(body))
	out = binary.LittleEndian.AppendUint32(out, uint32(tagGroupLength))
	out = binary.LittleEndian.AppendUint32(out, 4)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(body)))
	return append(out, body...)
}

// TestEncodeMatchesDataSet: the direct encoder writes exactly the bytes
// the data set encoder did, for every kind of command and every optional
// field, odd and even lengths, and decodes back to the command.
func TestEncodeMatchesDataSet(t *testing.T) {
	cmds := []*Command{
		{Field: CEchoRQ, AffectedSOPClass: VerificationSOPClass, MessageID: 1},
		{Field: CEchoRSP, AffectedSOPClass: VerificationSOPClass, RespondingTo: 1, Status: StatusSuccess},
		{Field: CFindRQ, AffectedSOPClass: StudyRootFind, MessageID: 7, Priority: 2, HasDataSet: true},
		{Field: CFindRSP, AffectedSOPClass: StudyRootFind, RespondingTo: 7, Status: 0xFF00, HasDataSet: true},
		{Field: CFindRSP, AffectedSOPClass: StudyRootFind, RespondingTo: 7, Status: StatusSOPClassNotSupported,
			ErrorComment: "an odd comment", OffendingElements: []dicom.Tag{dicom.TagPatientID, dicom.TagStudyInstanceUID}},
		{Field: CFindRSP, RespondingTo: 7, Status: 0xA700, ErrorComment: string(bytes.Repeat([]byte("x"), 100))},
		{Field: CCancelRQ, RespondingTo: 9},
		{Field: CMoveRQ, AffectedSOPClass: StudyRootMove, MessageID: 3, MoveDestination: "DEST", HasDataSet: true},
		{Field: CMoveRQ, AffectedSOPClass: StudyRootMove, MessageID: 3, MoveDestination: "ODD", HasDataSet: true},
		{Field: CMoveRSP, AffectedSOPClass: StudyRootMove, RespondingTo: 3, Status: 0xFF00, HasSubOps: true,
			SubOps: SubOps{Remaining: 4, Completed: 1, Failed: 2, Warning: 3}},
		{Field: CGetRSP, AffectedSOPClass: StudyRootGet, RespondingTo: 3, Status: StatusSuccess, HasSubOps: true, SubOps: SubOps{Completed: 5}},
		{Field: CFindRSP, RespondingTo: 3, Status: StatusSuccess, HasSubOps: true, SubOps: SubOps{Completed: 5}},
		{Field: CStoreRQ, AffectedSOPClass: "1.2.840.10008.5.1.4.1.1.2", AffectedSOPInstance: "1.2.3.45", MessageID: 11,
			HasDataSet: true, HasMoveOriginator: true, MoveOriginatorAE: "MOVER", MoveOriginatorID: 3},
		{Field: CStoreRSP, AffectedSOPClass: "1.2.840.10008.5.1.4.1.1.2", AffectedSOPInstance: "1.2.3.4", RespondingTo: 11, Status: StatusSuccess},
		{Field: 0x0110, RequestedSOPClass: "1.2.3", RequestedSOPInstance: "1.2.33", MessageID: 1},
	}
	for i, c := range cmds {
		got, want := c.Encode(), encodeViaDataSet(c)
		if !bytes.Equal(got, want) {
			t.Errorf("command %d (field 0x%04x):\n got % x\nwant % x", i, c.Field, got, want)
			continue
		}
		if binary.LittleEndian.Uint32(got[8:]) != uint32(len(got)-12) {
			t.Errorf("command %d: group length", i)
		}
		if _, err := DecodeCommand(got); err != nil {
			t.Errorf("command %d: %v", i, err)
		}
	}
}
