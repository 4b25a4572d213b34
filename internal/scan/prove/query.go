package prove

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"

	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/dimse"
	"github.com/dicomshield/dicomshield/internal/scan"
)

// Query levels counted, as they appear in Proof.Records.
const (
	LevelPatient = "PATIENT"
	LevelStudy   = "STUDY"
)

// tagQueryRetrieveLevel is (0008,0052).
const tagQueryRetrieveLevel = dicom.Tag(0x00080052)

// field is one kind of personal or health data asked for with universal
// (empty) matching.
type field struct {
	Keyword string
	Tag     dicom.Tag
	VR      dicom.VR
}

// patientFields are the personal data of the patient module (PS3.4
// C.6.1.1.2 and C.6.2.1.2): what the published research found servers
// handing out - names, birth dates, addresses, phone numbers, and social
// security numbers, which sites often file as other patient IDs.
var patientFields = []field{
	{"PatientName", dicom.TagPatientName, dicom.PN},
	{"PatientID", dicom.TagPatientID, dicom.LO},
	{"PatientBirthDate", 0x00100030, dicom.DA},
	{"PatientSex", 0x00100040, dicom.CS},
	{"OtherPatientIDs", 0x00101000, dicom.LO},
	{"PatientBirthName", 0x00101005, dicom.PN},
	{"PatientMotherBirthName", 0x00101060, dicom.PN},
	{"PatientAddress", 0x00101040, dicom.LO},
	{"PatientTelephoneNumbers", 0x00102154, dicom.SH},
	{"EthnicGroup", 0x00102160, dicom.SH},
	{"PatientComments", 0x00104000, dicom.LT},
}

// studyFields are the health data of the study level: what was examined,
// when, by whom.
var studyFields = []field{
	{"StudyDate", 0x00080020, dicom.DA},
	{"AccessionNumber", 0x00080050, dicom.SH},
	{"ModalitiesInStudy", 0x00080061, dicom.CS},
	{"ReferringPhysicianName", 0x00080090, dicom.PN},
	{"StudyDescription", 0x00081030, dicom.LO},
	{"PatientAge", 0x00101010, dicom.AS},
}

// minimalFields are asked for when a server refuses the full query (some
// refuse keys outside their own list): the unique keys and the name.
var minimalFields = []field{
	{"PatientName", dicom.TagPatientName, dicom.PN},
	{"PatientID", dicom.TagPatientID, dicom.LO},
}

// queryLevel is one count: a level in an information model.
type queryLevel struct {
	Level  string
	Model  string
	Fields []field
}

var queryLevels = []queryLevel{
	{LevelPatient, dimse.PatientRootFind, patientFields},
	{LevelStudy, dimse.StudyRootFind, append(slices.Clone(patientFields), studyFields...)},
}

// identifier asks for fields at level with universal matching.
func identifier(level string, fields []field) *dicom.DataSet {
	ds := &dicom.DataSet{}
	ds.Set(dicom.NewText(tagQueryRetrieveLevel, dicom.CS, level))
	for _, f := range fields {
		ds.Set(dicom.Element{Tag: f.Tag, VR: f.VR})
	}
	if level == LevelStudy {
		ds.Set(dicom.Element{Tag: dicom.TagStudyInstanceUID, VR: dicom.UI})
	}
	return ds
}

// present reports whether a text value holds anything beyond padding and
// separators: an empty person name ("^^") or an empty list ("\") is not
// data. It looks at the bytes in place and keeps nothing.
func present(e *dicom.Element) bool {
	if e == nil {
		return false
	}
	for _, c := range e.Value {
		switch c {
		case ' ', 0, '^', '=', '\\':
		default:
			return true
		}
	}
	return false
}

// target is the one study a retrieve probe asks for: the first a count
// saw. It lives in memory for the duration of Read and is never written
// anywhere.
type target struct {
	StudyUID  string
	PatientID string
}

// counter accumulates what the counts saw: presence flags and, when asked,
// salted hashes of patient IDs.
type counter struct {
	salt   string
	fields map[string]bool
	hashes map[string]struct{}
	target *target
}

// see inspects one match and drops it.
func (c *counter) see(ds *dicom.DataSet, fields []field) {
	for _, f := range fields {
		if present(ds.Get(f.Tag)) {
			c.fields[f.Keyword] = true
		} else if _, ok := c.fields[f.Keyword]; !ok {
			c.fields[f.Keyword] = false
		}
	}
	if c.salt != "" {
		if e := ds.Get(dicom.TagPatientID); present(e) {
			h := sha256.New()
			h.Write([]byte(c.salt))
			h.Write([]byte{0})
			h.Write(trimValue(e.Value))
			c.hashes[hex.EncodeToString(h.Sum(nil))] = struct{}{}
		}
	}
	if c.target == nil {
		if uid := ds.String(dicom.TagStudyInstanceUID); uid != "" {
			c.target = &target{StudyUID: uid, PatientID: ds.String(dicom.TagPatientID)}
		}
	}
}

// trimValue drops the padding around a text value.
func trimValue(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == 0) {
		b = b[:len(b)-1]
	}
	for len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	return b
}

// count runs the C-FIND queries of every level, each on an association
// of its own (some servers answer a refused query with A-ABORT), and fills
// p.Records, p.Truncated, p.Fields and p.PatientIDHashes. It returns the
// study a retrieve probe may ask for (nil when none was seen) and
// ErrNoAccess when the association was refused.
func count(ctx context.Context, a scan.Access, o *Options, p *scan.Proof) (*target, error) {
	for _, l := range queryLevels {
		p.Records[l.Level] = -1
	}
	c := &counter{salt: o.HashSalt, fields: map[string]bool{}, hashes: map[string]struct{}{}}
	max := o.maxRecords()
	for _, l := range queryLevels {
		cl, done, err := dial(ctx, a, proposals(l.Model), nil)
		if err != nil {
			return nil, errors.Join(ErrNoAccess, err)
		}
		if !accepted(cl, l.Model) {
			done()
			continue
		}
		n, truncated, err := countLevel(ctx, cl, c, l, l.Fields, max)
		var se *dimse.StatusError
		if n == 0 && errors.As(err, &se) && ctx.Err() == nil {
			// Refused with every key, the association still up: try
			// again with the fewest.
			n, truncated, err = countLevel(ctx, cl, c, l, minimalFields, max)
		}
		done()
		if err == nil || n > 0 {
			p.Records[l.Level] = n
		}
		p.Truncated = p.Truncated || truncated
	}
	if len(c.fields) > 0 {
		p.Fields = c.fields
	}
	for h := range c.hashes {
		p.PatientIDHashes = append(p.PatientIDHashes, h)
	}
	slices.Sort(p.PatientIDHashes)
	return c.target, nil
}

// countLevel counts the matches of one query, stopping with C-CANCEL at
// max. The error is for classifying only: its text may carry the peer's
// words and is never shown.
func countLevel(ctx context.Context, cl *dimse.Client, c *counter, l queryLevel, fields []field, max int) (n int, truncated bool, err error) {
	seen := 0
	n, err = cl.Find(ctx, l.Model, identifier(l.Level, fields), func(ds *dicom.DataSet) error {
		c.see(ds, fields)
		seen++
		if seen >= max {
			truncated = true
			return dimse.ErrStop
		}
		return nil
	})
	return n, truncated, err
}
