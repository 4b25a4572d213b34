package dicom

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/dicomshield/dicomshield/internal/dicom/dict"
)

// Tag identifies a data element: group in the high 16 bits, element number in
// the low 16 bits.
type Tag uint32

// NewTag returns the tag (group,element).
func NewTag(group, element uint16) Tag { return Tag(uint32(group)<<16 | uint32(element)) }

// Group returns the tag's group number.
func (t Tag) Group() uint16 { return uint16(t >> 16) }

// Element returns the tag's element number.
func (t Tag) Element() uint16 { return uint16(t) }

// IsPrivate reports whether the tag belongs to an odd (private) group.
func (t Tag) IsPrivate() bool { return t.Group()&1 == 1 }

// IsPrivateCreator reports whether the tag is a private creator element
// (gggg,0010-00FF) in an odd group.
func (t Tag) IsPrivateCreator() bool {
	return t.IsPrivate() && t.Element() >= 0x0010 && t.Element() <= 0x00FF
}

// PrivateCreatorTag returns, for a private data element (gggg,xxyy) with
// xx >= 0x10, the tag of the private creator element that reserves its
// block: (gggg,00xx). ok is false for tags that are not private data
// elements.
func (t Tag) PrivateCreatorTag() (creator Tag, ok bool) {
	if !t.IsPrivate() || t.Element() < 0x1000 {
		return 0, false
	}
	return NewTag(t.Group(), t.Element()>>8), true
}

// String formats the tag as "(gggg,eeee)" in upper-case hexadecimal.
func (t Tag) String() string {
	var b [11]byte
	const hx = "0123456789ABCDEF"
	b[0] = '('
	for i := 0; i < 4; i++ {
		b[1+i] = hx[(t>>(28-4*i))&0xF]
		b[6+i] = hx[(t>>(12-4*i))&0xF]
	}
	b[5] = ','
	b[10] = ')'
	return string(b[:])
}

// Keyword returns the data dictionary keyword of the tag, or "" if the tag
// is not in the dictionary.
func (t Tag) Keyword() string {
	if e, ok := dict.Lookup(uint32(t)); ok {
		return e.Keyword
	}
	return ""
}

// ParseTag accepts "(gggg,eeee)", "gggg,eeee", "ggggeeee" (hexadecimal) or a
// data dictionary keyword such as "PatientID".
func ParseTag(s string) (Tag, error) {
	in := strings.TrimSpace(s)
	h := strings.TrimSuffix(strings.TrimPrefix(in, "("), ")")
	h = strings.ReplaceAll(h, ",", "")
	if len(h) == 8 {
		if v, err := strconv.ParseUint(h, 16, 32); err == nil {
			return Tag(v), nil
		}
	}
	if e, ok := dict.ByKeyword(in); ok && e.Mask == 0xFFFFFFFF {
		return Tag(e.Tag), nil
	}
	return 0, fmt.Errorf("dicom: %q is neither a tag (gggg,eeee) nor a dictionary keyword", s)
}

// Tags used by the codec itself.
const (
	TagItem                  Tag = 0xFFFEE000
	TagItemDelimitation      Tag = 0xFFFEE00D
	TagSequenceDelimitation  Tag = 0xFFFEE0DD
	TagFileMetaGroupLength   Tag = 0x00020000
	TagFileMetaVersion       Tag = 0x00020001
	TagMediaStorageSOPClass  Tag = 0x00020002
	TagMediaStorageSOPInst   Tag = 0x00020003
	TagTransferSyntaxUID     Tag = 0x00020010
	TagImplementationClass   Tag = 0x00020012
	TagImplementationVersion Tag = 0x00020013
	TagSourceAETitle         Tag = 0x00020016
	TagSpecificCharacterSet  Tag = 0x00080005
	TagSOPClassUID           Tag = 0x00080016
	TagSOPInstanceUID        Tag = 0x00080018
	TagPatientName           Tag = 0x00100010
	TagPatientID             Tag = 0x00100020
	TagStudyInstanceUID      Tag = 0x0020000D
	TagSeriesInstanceUID     Tag = 0x0020000E
	TagPixelData             Tag = 0x7FE00010
	TagFloatPixelData        Tag = 0x7FE00008
	TagDoubleFloatPixelData  Tag = 0x7FE00009
)
