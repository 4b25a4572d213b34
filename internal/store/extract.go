package store

import (
	"fmt"
	"strings"

	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/dicom/charset"
)

// MaxValueLength bounds, in bytes after decoding to UTF-8, each value
// ExtractInstance records. PS3.5 caps the VRs involved at 64 characters
// (PN at 64 per component group); a value many times longer is hostile or
// broken, and would bloat the index and its indexes.
const MaxValueLength = 1024

// maxUIDLength is the longest UID PS3.5 9.1 allows.
const maxUIDLength = 64

// ExtractInstance reads what the index records from a data set (its
// header is enough: read it with dicom.ReadOptions.StopAt =
// dicom.TagPixelData). Text is decoded with the data set's Specific
// Character Set to UTF-8; a character set the decoder does not support
// does not stop the store (the values are decoded as far as it can, the
// rest becomes U+FFFD). For the single-valued attributes the first value is
// taken; ModalitiesInStudy keeps all its values, '\' separated.
//
// SOP Class UID, SOP Instance UID, Study Instance UID and Series Instance
// UID are required and must be well-formed UIDs (digits and dots, at most
// 64 characters); their absence, a malformed one, or any value over
// MaxValueLength is an error wrapping ErrInvalid.
//
// TransferSyntaxUID is taken from (0002,0010) when the data set holds the
// meta group, else left empty for the caller; BlobKey, Size, Sender and
// ReceivedAt are the caller's to fill.
func ExtractInstance(ds *dicom.DataSet) (*Instance, error) {
	if ds == nil {
		return nil, fmt.Errorf("%w: no data set", ErrInvalid)
	}
	dec, _ := ds.TextDecoder(nil)
	x := extractor{ds: ds, dec: dec}
	inst := &Instance{
		PatientID:              x.first(dicom.TagPatientID, dicom.LO),
		PatientName:            x.first(dicom.TagPatientName, dicom.PN),
		PatientBirthDate:       normalizeDateTime(dicom.DA, x.first(TagPatientBirthDate, dicom.DA)),
		PatientSex:             x.first(TagPatientSex, dicom.CS),
		StudyInstanceUID:       x.uid(dicom.TagStudyInstanceUID, "StudyInstanceUID"),
		StudyDate:              normalizeDateTime(dicom.DA, x.first(TagStudyDate, dicom.DA)),
		StudyTime:              normalizeDateTime(dicom.TM, x.first(TagStudyTime, dicom.TM)),
		AccessionNumber:        x.first(TagAccessionNumber, dicom.SH),
		StudyID:                x.first(TagStudyID, dicom.SH),
		StudyDescription:       x.first(TagStudyDescription, dicom.LO),
		ReferringPhysicianName: x.first(TagReferringPhysicianName, dicom.PN),
		ModalitiesInStudy:      x.all(TagModalitiesInStudy, dicom.CS),
		SeriesInstanceUID:      x.uid(dicom.TagSeriesInstanceUID, "SeriesInstanceUID"),
		Modality:               x.first(TagModality, dicom.CS),
		SeriesNumber:           x.first(TagSeriesNumber, dicom.IS),
		SeriesDescription:      x.first(TagSeriesDescription, dicom.LO),
		SOPInstanceUID:         x.uid(dicom.TagSOPInstanceUID, "SOPInstanceUID"),
		SOPClassUID:            x.uid(dicom.TagSOPClassUID, "SOPClassUID"),
		InstanceNumber:         x.first(TagInstanceNumber, dicom.IS),
		TransferSyntaxUID:      x.first(dicom.TagTransferSyntaxUID, dicom.UI),
	}
	if x.err != nil {
		return nil, x.err
	}
	return inst, nil
}

// extractor reads values, keeping the first error.
type extractor struct {
	ds  *dicom.DataSet
	dec *charset.Decoder
	err error
}

// values decodes element t as VR v (whatever VR it was read with: an
// implicit-VR UN or a mislabelled value is still text here).
func (x *extractor) values(t dicom.Tag, v dicom.VR) []string {
	e := x.ds.Get(t)
	if e == nil || x.err != nil || e.IsSequence() || e.IsEncapsulated() {
		return nil
	}
	tmp := dicom.Element{Tag: t, VR: v, Value: e.Value}
	vals, err := tmp.Text(x.dec)
	if err != nil {
		x.err = fmt.Errorf("%w: %s: %v", ErrInvalid, t, err)
		return nil
	}
	for _, s := range vals {
		if len(s) > MaxValueLength {
			x.err = fmt.Errorf("%w: %s value longer than %d bytes", ErrInvalid, t, MaxValueLength)
			return nil
		}
	}
	return vals
}

func (x *extractor) first(t dicom.Tag, v dicom.VR) string {
	if vals := x.values(t, v); len(vals) > 0 {
		return vals[0]
	}
	return ""
}

func (x *extractor) all(t dicom.Tag, v dicom.VR) string {
	vals := x.values(t, v)
	out := vals[:0]
	for _, s := range vals {
		if s != "" {
			out = append(out, s)
		}
	}
	return strings.Join(out, `\`)
}

func (x *extractor) uid(t dicom.Tag, keyword string) string {
	s := x.first(t, dicom.UI)
	if x.err != nil {
		return ""
	}
	if s == "" {
		x.err = fmt.Errorf("%w: no %s", ErrInvalid, keyword)
		return ""
	}
	if !ValidUID(s) {
		x.err = fmt.Errorf("%w: %s is not a valid UID", ErrInvalid, keyword)
		return ""
	}
	return s
}

// ValidUID reports whether s has the form of a UID (PS3.5 9.1): 1 to 64
// characters, components of digits separated by single dots. Leading zeros
// in a component, which PS3.5 forbids but some writers produce, are
// accepted.
func ValidUID(s string) bool {
	if len(s) == 0 || len(s) > maxUIDLength || s[0] == '.' || s[len(s)-1] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
		case c == '.' && s[i-1] != '.':
		default:
			return false
		}
	}
	return true
}
