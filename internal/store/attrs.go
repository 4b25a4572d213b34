package store

import (
	"fmt"
	"strings"

	"github.com/dicomshield/dicomshield/internal/dicom"
)

// Level is a query/retrieve level of the Patient Root and Study Root
// information models (PS3.4 C.6.1, C.6.2).
type Level int

// The levels, from the top of the hierarchy down.
const (
	LevelPatient Level = iota
	LevelStudy
	LevelSeries
	LevelImage
)

var levelNames = [...]string{"PATIENT", "STUDY", "SERIES", "IMAGE"}

// String returns the Query/Retrieve Level value: PATIENT, STUDY, SERIES or
// IMAGE.
func (l Level) String() string {
	if l < 0 || int(l) >= len(levelNames) {
		return fmt.Sprintf("Level(%d)", int(l))
	}
	return levelNames[l]
}

// ParseLevel parses a Query/Retrieve Level value (surrounding spaces
// ignored). Anything but the four levels is an error wrapping ErrInvalid.
func ParseLevel(s string) (Level, error) {
	s = strings.TrimSpace(s)
	for i, n := range levelNames {
		if s == n {
			return Level(i), nil
		}
	}
	return 0, fmt.Errorf("%w: query/retrieve level %q is not PATIENT, STUDY, SERIES or IMAGE", ErrInvalid, s)
}

// Field names an attribute the index matches or returns, for backends to
// map to their own columns.
type Field int

// The fields, grouped by level.
const (
	FieldPatientName Field = iota + 1
	FieldPatientID
	FieldPatientBirthDate
	FieldPatientSex
	FieldNumberOfPatientRelatedStudies
	FieldNumberOfPatientRelatedSeries
	FieldNumberOfPatientRelatedInstances

	FieldStudyInstanceUID
	FieldStudyDate
	FieldStudyTime
	FieldAccessionNumber
	FieldStudyID
	FieldStudyDescription
	FieldReferringPhysicianName
	FieldModalitiesInStudy
	FieldSOPClassesInStudy
	FieldNumberOfStudyRelatedSeries
	FieldNumberOfStudyRelatedInstances

	FieldSeriesInstanceUID
	FieldModality
	FieldSeriesNumber
	FieldSeriesDescription
	FieldNumberOfSeriesRelatedInstances

	FieldSOPInstanceUID
	FieldSOPClassUID
	FieldInstanceNumber
	FieldAvailableTransferSyntaxUID
)

// Attr describes one attribute the index supports as a matching or return
// key.
type Attr struct {
	Field Field
	Tag   dicom.Tag
	VR    dicom.VR
	// Level is the level whose entities carry the attribute.
	Level Level
	// Keyword is the data dictionary keyword.
	Keyword string
	// Aggregate: the value is gathered from the entities below (the
	// modalities of a study's series, the SOP classes of its instances): a
	// study matches when any of them matches, and the returned value lists
	// each distinct one.
	Aggregate bool
	// Count: a number of related entities, returned but never matched (a
	// value in the identifier is ignored).
	Count bool
}

// Attrs lists the supported attributes (PS3.4 C.6.1.1 and C.6.2.1 key
// tables, the keys an archive can answer from its index).
var Attrs = []Attr{
	{Field: FieldPatientName, Tag: dicom.TagPatientName, VR: dicom.PN, Level: LevelPatient, Keyword: "PatientName"},
	{Field: FieldPatientID, Tag: dicom.TagPatientID, VR: dicom.LO, Level: LevelPatient, Keyword: "PatientID"},
	{Field: FieldPatientBirthDate, Tag: TagPatientBirthDate, VR: dicom.DA, Level: LevelPatient, Keyword: "PatientBirthDate"},
	{Field: FieldPatientSex, Tag: TagPatientSex, VR: dicom.CS, Level: LevelPatient, Keyword: "PatientSex"},
	{Field: FieldNumberOfPatientRelatedStudies, Tag: dicom.NewTag(0x0020, 0x1200), VR: dicom.IS, Level: LevelPatient, Keyword: "NumberOfPatientRelatedStudies", Count: true},
	{Field: FieldNumberOfPatientRelatedSeries, Tag: dicom.NewTag(0x0020, 0x1202), VR: dicom.IS, Level: LevelPatient, Keyword: "NumberOfPatientRelatedSeries", Count: true},
	{Field: FieldNumberOfPatientRelatedInstances, Tag: dicom.NewTag(0x0020, 0x1204), VR: dicom.IS, Level: LevelPatient, Keyword: "NumberOfPatientRelatedInstances", Count: true},

	{Field: FieldStudyInstanceUID, Tag: dicom.TagStudyInstanceUID, VR: dicom.UI, Level: LevelStudy, Keyword: "StudyInstanceUID"},
	{Field: FieldStudyDate, Tag: TagStudyDate, VR: dicom.DA, Level: LevelStudy, Keyword: "StudyDate"},
	{Field: FieldStudyTime, Tag: TagStudyTime, VR: dicom.TM, Level: LevelStudy, Keyword: "StudyTime"},
	{Field: FieldAccessionNumber, Tag: TagAccessionNumber, VR: dicom.SH, Level: LevelStudy, Keyword: "AccessionNumber"},
	{Field: FieldStudyID, Tag: TagStudyID, VR: dicom.SH, Level: LevelStudy, Keyword: "StudyID"},
	{Field: FieldStudyDescription, Tag: TagStudyDescription, VR: dicom.LO, Level: LevelStudy, Keyword: "StudyDescription"},
	{Field: FieldReferringPhysicianName, Tag: TagReferringPhysicianName, VR: dicom.PN, Level: LevelStudy, Keyword: "ReferringPhysicianName"},
	{Field: FieldModalitiesInStudy, Tag: TagModalitiesInStudy, VR: dicom.CS, Level: LevelStudy, Keyword: "ModalitiesInStudy", Aggregate: true},
	{Field: FieldSOPClassesInStudy, Tag: dicom.NewTag(0x0008, 0x0062), VR: dicom.UI, Level: LevelStudy, Keyword: "SOPClassesInStudy", Aggregate: true},
	{Field: FieldNumberOfStudyRelatedSeries, Tag: dicom.NewTag(0x0020, 0x1206), VR: dicom.IS, Level: LevelStudy, Keyword: "NumberOfStudyRelatedSeries", Count: true},
	{Field: FieldNumberOfStudyRelatedInstances, Tag: dicom.NewTag(0x0020, 0x1208), VR: dicom.IS, Level: LevelStudy, Keyword: "NumberOfStudyRelatedInstances", Count: true},

	{Field: FieldSeriesInstanceUID, Tag: dicom.TagSeriesInstanceUID, VR: dicom.UI, Level: LevelSeries, Keyword: "SeriesInstanceUID"},
	{Field: FieldModality, Tag: TagModality, VR: dicom.CS, Level: LevelSeries, Keyword: "Modality"},
	{Field: FieldSeriesNumber, Tag: TagSeriesNumber, VR: dicom.IS, Level: LevelSeries, Keyword: "SeriesNumber"},
	{Field: FieldSeriesDescription, Tag: TagSeriesDescription, VR: dicom.LO, Level: LevelSeries, Keyword: "SeriesDescription"},
	{Field: FieldNumberOfSeriesRelatedInstances, Tag: dicom.NewTag(0x0020, 0x1209), VR: dicom.IS, Level: LevelSeries, Keyword: "NumberOfSeriesRelatedInstances", Count: true},

	{Field: FieldSOPInstanceUID, Tag: dicom.TagSOPInstanceUID, VR: dicom.UI, Level: LevelImage, Keyword: "SOPInstanceUID"},
	{Field: FieldSOPClassUID, Tag: dicom.TagSOPClassUID, VR: dicom.UI, Level: LevelImage, Keyword: "SOPClassUID"},
	{Field: FieldInstanceNumber, Tag: TagInstanceNumber, VR: dicom.IS, Level: LevelImage, Keyword: "InstanceNumber"},
	{Field: FieldAvailableTransferSyntaxUID, Tag: dicom.NewTag(0x0008, 0x3002), VR: dicom.UI, Level: LevelImage, Keyword: "AvailableTransferSyntaxUID"},
}

// Tags of the index's attributes that the codec has no constant for.
const (
	TagStudyDate              dicom.Tag = 0x00080020
	TagStudyTime              dicom.Tag = 0x00080030
	TagAccessionNumber        dicom.Tag = 0x00080050
	TagQueryRetrieveLevel     dicom.Tag = 0x00080052
	TagModality               dicom.Tag = 0x00080060
	TagModalitiesInStudy      dicom.Tag = 0x00080061
	TagReferringPhysicianName dicom.Tag = 0x00080090
	TagStudyDescription       dicom.Tag = 0x00081030
	TagSeriesDescription      dicom.Tag = 0x0008103E
	TagPatientBirthDate       dicom.Tag = 0x00100030
	TagPatientSex             dicom.Tag = 0x00100040
	TagStudyID                dicom.Tag = 0x00200010
	TagSeriesNumber           dicom.Tag = 0x00200011
	TagInstanceNumber         dicom.Tag = 0x00200013
)

var attrByTag = func() map[dicom.Tag]*Attr {
	m := make(map[dicom.Tag]*Attr, len(Attrs))
	for i := range Attrs {
		m[Attrs[i].Tag] = &Attrs[i]
	}
	return m
}()

// AttrByTag returns the supported attribute with tag t.
func AttrByTag(t dicom.Tag) (*Attr, bool) {
	a, ok := attrByTag[t]
	return a, ok
}

// AttrByField returns the attribute of field f.
func AttrByField(f Field) *Attr {
	for i := range Attrs {
		if Attrs[i].Field == f {
			return &Attrs[i]
		}
	}
	return nil
}

// availableAt reports whether a can be matched and returned in a query at
// level: attributes of that level and of the levels above it (the
// relational reading of PS3.4 C.4.1.2.2.2, which every hierarchical query
// also satisfies), and counts only at their own level (the patient counts
// also at the STUDY level, as the Study Root model lists them there).
func (a *Attr) availableAt(level Level) bool {
	if a.Count {
		return a.Level == level || (a.Level == LevelPatient && level == LevelStudy)
	}
	return a.Level <= level
}

// FoldPN returns the form of a person name that case-insensitive matching
// compares: upper case (rune by rune, so that a '?' still stands for one
// character), with the trailing empty components and groups PS3.5 6.2 lets
// a writer omit removed ("SMITH^JOHN^^^" and "smith^john" both fold to
// "SMITH^JOHN").
func FoldPN(s string) string {
	s = strings.ToUpper(s)
	if !strings.ContainsAny(s, "^= ") {
		return s
	}
	groups := strings.Split(s, "=")
	for i, g := range groups {
		groups[i] = strings.TrimRight(g, "^ ")
	}
	return strings.TrimRight(strings.Join(groups, "="), "=")
}
