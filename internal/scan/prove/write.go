package prove

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/dimse"
	"github.com/dicomshield/dicomshield/internal/scan"
)

// Write-test labels. The synthetic patient, study and series say what they
// are wherever a viewer or worklist shows them.
const (
	// TestPatientName and TestPatientID name the synthetic patient.
	TestPatientName = "DICOMSHIELD^SCANNER-TEST"
	TestPatientID   = "DICOMSHIELD-SCANNER-TEST"
	// TestDescription is the study and series description.
	TestDescription = "DICOMSHIELD SCANNER WRITE TEST - NOT CLINICAL - DELETE"
	// overwriteNumber is the Instance Number of the overwriting content:
	// far from the original's 1, so a read-back tells which one is kept.
	overwriteNumber = 9001
)

// Write-test verdicts (WriteTest.Append and .Overwrite), defined in
// package scan. An overwrite is "accepted" only when a read-back shows the
// new content, "ignored" when it shows the original, and "unverified" when
// the server answered success but could not be read back (query closed):
// Orthanc, for one, answers success when it keeps the original.
const (
	WriteAccepted   = scan.WriteAccepted
	WriteRefused    = scan.WriteRefused
	WriteIgnored    = scan.WriteIgnored
	WriteUnverified = scan.WriteUnverified
	WriteUntested   = scan.WriteUntested
)

// WriteTest.Detail when nothing was stored.
const (
	noAssociation = "association refused: nothing stored"
	noContext     = "storage refused (presentation context not accepted): nothing stored"
	storeRefused  = "nothing stored: "
	assocFailed   = "the association failed"
)

// appendedFresh is the WriteTest.Detail note of an accepted append: the
// test appends to a series it created moments earlier, so a server that
// seals a series some time after its last instance (the defence against
// forged appends) accepts it too. Only a refusal is conclusive.
const appendedFresh = "append accepted into the scanner's own series, created moments earlier: " +
	"a server that refuses new instances some time after a series' last one would accept this too, " +
	"so appends to older series may still be refused"

// secondaryCapture is Secondary Capture Image Storage, the class of the
// synthetic instances: every archive accepts it and it needs no modality
// module.
const secondaryCapture = "1.2.840.10008.5.1.4.1.1.7"

// Tags of the synthetic instance not named in package dicom.
const (
	tagStudyDate           dicom.Tag = 0x00080020
	tagStudyTime           dicom.Tag = 0x00080030
	tagAccessionNumber     dicom.Tag = 0x00080050
	tagModality            dicom.Tag = 0x00080060
	tagConversionType      dicom.Tag = 0x00080064
	tagReferringPhysician  dicom.Tag = 0x00080090
	tagStudyDescription    dicom.Tag = 0x00081030
	tagSeriesDescription   dicom.Tag = 0x0008103E
	tagPatientBirthDate    dicom.Tag = 0x00100030
	tagPatientSex          dicom.Tag = 0x00100040
	tagStudyID             dicom.Tag = 0x00200010
	tagSeriesNumber        dicom.Tag = 0x00200011
	tagInstanceNumber      dicom.Tag = 0x00200013
	tagImageComments       dicom.Tag = 0x00204000
	tagSamplesPerPixel     dicom.Tag = 0x00280002
	tagPhotometric         dicom.Tag = 0x00280004
	tagRows                dicom.Tag = 0x00280010
	tagColumns             dicom.Tag = 0x00280011
	tagBitsAllocated       dicom.Tag = 0x00280100
	tagBitsStored          dicom.Tag = 0x00280101
	tagHighBit             dicom.Tag = 0x00280102
	tagPixelRepresentation dicom.Tag = 0x00280103
)

// synthetic is one test instance.
type synthetic struct {
	Study, Series, SOP string
	Number             int
	Comment            string
	Shade              byte
}

// dataSet builds the instance: an 8x8 grey square.
func (s synthetic) dataSet(now time.Time) *dicom.DataSet {
	ds := &dicom.DataSet{}
	text := func(t dicom.Tag, vr dicom.VR, v string) { ds.Set(dicom.NewText(t, vr, v)) }
	text(dicom.TagSOPClassUID, dicom.UI, secondaryCapture)
	text(dicom.TagSOPInstanceUID, dicom.UI, s.SOP)
	text(tagStudyDate, dicom.DA, now.Format("20060102"))
	text(tagStudyTime, dicom.TM, now.Format("150405"))
	text(tagAccessionNumber, dicom.SH, "")
	text(tagModality, dicom.CS, "OT")
	text(tagConversionType, dicom.CS, "WSD")
	text(tagReferringPhysician, dicom.PN, "")
	text(tagStudyDescription, dicom.LO, TestDescription)
	text(tagSeriesDescription, dicom.LO, TestDescription)
	text(dicom.TagPatientName, dicom.PN, TestPatientName)
	text(dicom.TagPatientID, dicom.LO, TestPatientID)
	text(tagPatientBirthDate, dicom.DA, "")
	text(tagPatientSex, dicom.CS, "O")
	text(dicom.TagStudyInstanceUID, dicom.UI, s.Study)
	text(dicom.TagSeriesInstanceUID, dicom.UI, s.Series)
	text(tagStudyID, dicom.SH, "DSSCAN")
	text(tagSeriesNumber, dicom.IS, "1")
	text(tagInstanceNumber, dicom.IS, strconv.Itoa(s.Number))
	text(tagImageComments, dicom.LT, s.Comment)
	ds.Set(dicom.NewUint16s(tagSamplesPerPixel, dicom.US, 1))
	text(tagPhotometric, dicom.CS, "MONOCHROME2")
	ds.Set(dicom.NewUint16s(tagRows, dicom.US, 8))
	ds.Set(dicom.NewUint16s(tagColumns, dicom.US, 8))
	ds.Set(dicom.NewUint16s(tagBitsAllocated, dicom.US, 8))
	ds.Set(dicom.NewUint16s(tagBitsStored, dicom.US, 8))
	ds.Set(dicom.NewUint16s(tagHighBit, dicom.US, 7))
	ds.Set(dicom.NewUint16s(tagPixelRepresentation, dicom.US, 0))
	ds.Set(dicom.NewBytes(dicom.TagPixelData, dicom.OB, bytes.Repeat([]byte{s.Shade}, 64)))
	return ds
}

// store sends s and returns the status, or an error for a refused
// context or a broken association.
func (s synthetic) store(ctx context.Context, cl *dimse.Client, now time.Time) (uint16, error) {
	body, err := dicom.MarshalDataSet(s.dataSet(now), dicom.ExplicitVRLittleEndian)
	if err != nil {
		return 0, err
	}
	st, err := cl.Store(ctx, secondaryCapture, s.SOP, dicom.ExplicitVRLittleEndianUID, bytes.NewReader(body))
	var se *dimse.StatusError
	if errors.As(err, &se) {
		return se.Status, nil
	}
	return st, err
}

// Write runs the write test (opt-in, --test-write): it stores one
// synthetic instance in a series of its own, then appends a second
// instance to that series and stores different content under the first
// instance's SOP Instance UID, and reports each policy. Every UID created
// is listed in Created so the owner can delete them. It never touches
// anything but its own synthetic series.
func Write(ctx context.Context, a scan.Access) *scan.WriteTest {
	w := &scan.WriteTest{Append: WriteUntested, Overwrite: WriteUntested}
	now := time.Now().UTC()
	first := synthetic{Study: newUID(), Series: newUID(), SOP: newUID(), Number: 1,
		Comment: "dicomshield scanner write test: original", Shade: 0x40}
	cl, done, err := dial(ctx, a, proposals(secondaryCapture, dimse.StudyRootFind), nil)
	if err != nil {
		w.Detail = noAssociation
		return w
	}
	defer done()
	if !accepted(cl, secondaryCapture) {
		w.Detail = noContext
		return w
	}
	st, err := first.store(ctx, cl, now)
	if err != nil || dimse.Kind(st) == dimse.KindFailure {
		w.Detail = storeRefused + statusWords(st, err)
		return w
	}
	w.Stored = true
	w.Created = []string{first.Study, first.Series, first.SOP}
	var notes []string

	// Append: a new instance in the existing series.
	second := synthetic{Study: first.Study, Series: first.Series, SOP: newUID(), Number: 2,
		Comment: "dicomshield scanner write test: appended", Shade: 0x80}
	st, err = second.store(ctx, cl, now)
	switch {
	case err != nil:
		notes = append(notes, "append: "+statusWords(st, err))
	case dimse.Kind(st) == dimse.KindFailure:
		w.Append = WriteRefused
		notes = append(notes, "append refused: "+statusWords(st, nil))
	default:
		w.Append = WriteAccepted
		w.Created = append(w.Created, second.SOP)
		notes = append(notes, appendedFresh)
	}

	// Overwrite: different content under the first SOP Instance UID.
	changed := first
	changed.Number, changed.Comment, changed.Shade = overwriteNumber, "dicomshield scanner write test: overwritten", 0xC0
	st, err = changed.store(ctx, cl, now)
	switch {
	case err != nil:
		notes = append(notes, "overwrite: "+statusWords(st, err))
	case dimse.Kind(st) == dimse.KindFailure:
		w.Overwrite = WriteRefused
		notes = append(notes, "overwrite refused: "+statusWords(st, nil))
	default:
		w.Overwrite = readBack(ctx, cl, first)
		if w.Overwrite == WriteUnverified {
			notes = append(notes, "overwrite answered "+statusWords(st, nil)+
				"; whether the content was replaced could not be read back (query closed)")
		}
	}
	w.Detail = strings.Join(notes, "; ")
	return w
}

// readBack asks, with C-FIND at IMAGE level, which Instance Number the
// server now holds for the first synthetic instance: only the scanner's
// own synthetic values are read.
func readBack(ctx context.Context, cl *dimse.Client, s synthetic) string {
	if !accepted(cl, dimse.StudyRootFind) {
		return WriteUnverified
	}
	ds := &dicom.DataSet{}
	ds.Set(dicom.NewText(tagQueryRetrieveLevel, dicom.CS, "IMAGE"))
	ds.Set(dicom.NewText(dicom.TagStudyInstanceUID, dicom.UI, s.Study))
	ds.Set(dicom.NewText(dicom.TagSeriesInstanceUID, dicom.UI, s.Series))
	ds.Set(dicom.NewText(dicom.TagSOPInstanceUID, dicom.UI, s.SOP))
	ds.Set(dicom.Element{Tag: tagInstanceNumber, VR: dicom.IS})
	number := ""
	_, err := cl.Find(ctx, dimse.StudyRootFind, ds, func(m *dicom.DataSet) error {
		if m.String(dicom.TagSOPInstanceUID) == s.SOP {
			number = strings.TrimSpace(m.String(tagInstanceNumber))
		}
		return nil
	})
	switch {
	case err != nil || number == "":
		return WriteUnverified
	case number == strconv.Itoa(overwriteNumber):
		return WriteAccepted
	case number == strconv.Itoa(s.Number):
		return WriteIgnored
	}
	return WriteUnverified
}

// statusWords says a store outcome from its status code alone (never the
// peer's error comment).
func statusWords(st uint16, err error) string {
	if err != nil {
		if errors.Is(err, dimse.ErrNoContext) {
			return "no accepted presentation context"
		}
		return assocFailed
	}
	return fmt.Sprintf("%s (0x%04X)", dimse.StatusText(st), st)
}
