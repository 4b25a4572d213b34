package cli

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/dicom/dict"
	"github.com/dicomshield/dicomshield/internal/dimse"
)

// tagQueryRetrieveLevel is (0008,0052) Query/Retrieve Level.
const tagQueryRetrieveLevel = dicom.Tag(0x00080052)

// queryKeysHelp explains -k, --level and --model to find, get and move.
const queryKeysHelp = `
Keys: each -k is TAG or TAG=VALUE, TAG being gggg,eeee or a dictionary
keyword (PatientID, StudyDate...); the VR comes from the data dictionary.
A key without value asks the peer to return it; a value is a matching key:
wildcards * and ? (PAT*), date ranges (20240101-20241231), lists of UIDs
separated by a backslash. --level sets Query/Retrieve Level (0008,0052):
PATIENT, STUDY, SERIES or IMAGE. --model chooses the information model:
study (Study Root, the default) or patient (Patient Root, needed for the
PATIENT level).`

// queryOptions are the identifier flags of find, get and move.
type queryOptions struct {
	level string
	keys  []string
	model string
}

func addQueryFlags(cmd *cobra.Command) *queryOptions {
	q := &queryOptions{}
	f := cmd.Flags()
	f.StringVar(&q.level, "level", "STUDY", "query/retrieve `LEVEL`: PATIENT, STUDY, SERIES or IMAGE")
	f.StringArrayVarP(&q.keys, "query-key", "k", nil, "query key `TAG[=VALUE]`, TAG as gggg,eeee or a keyword (repeatable)")
	f.StringVar(&q.model, "model", "study", "information `MODEL`: study (Study Root) or patient (Patient Root)")
	return q
}

// uniqueKeys are the unique keys of each level (PS3.4 C.6).
var uniqueKeys = map[string]dicom.Tag{
	"PATIENT": dicom.TagPatientID,
	"STUDY":   dicom.TagStudyInstanceUID,
	"SERIES":  dicom.TagSeriesInstanceUID,
	"IMAGE":   dicom.TagSOPInstanceUID,
}

// sopClass returns the SOP class of the service ("find", "get" or
// "move") in the chosen information model.
func (q *queryOptions) sopClass(service string) (string, error) {
	level := strings.ToUpper(q.level)
	if _, ok := uniqueKeys[level]; !ok {
		return "", usageError("--level %q: use PATIENT, STUDY, SERIES or IMAGE", q.level)
	}
	var classes [3]string
	switch strings.ToLower(q.model) {
	case "study":
		if level == "PATIENT" {
			return "", usageError("the study root model has no PATIENT level: use --model patient")
		}
		classes = [3]string{dimse.StudyRootFind, dimse.StudyRootGet, dimse.StudyRootMove}
	case "patient":
		classes = [3]string{dimse.PatientRootFind, dimse.PatientRootGet, dimse.PatientRootMove}
	default:
		return "", usageError("--model %q: use study or patient", q.model)
	}
	switch service {
	case "find":
		return classes[0], nil
	case "get":
		return classes[1], nil
	}
	return classes[2], nil
}

// identifier builds the query identifier from --level and the -k keys. It
// returns the tags of the keys in the order given (without repeats), or
// the level's unique key when no key was given.
func (q *queryOptions) identifier() (*dicom.DataSet, []dicom.Tag, error) {
	level := strings.ToUpper(q.level)
	ds := &dicom.DataSet{}
	ds.Set(dicom.NewText(tagQueryRetrieveLevel, dicom.CS, level))
	var tags []dicom.Tag
	seen := map[dicom.Tag]bool{}
	nonASCII := false
	for _, k := range q.keys {
		e, err := parseKey(k)
		if err != nil {
			return nil, nil, err
		}
		if e.VR.IsText() && !isASCII(e.Value) {
			nonASCII = true
		}
		ds.Set(e)
		if !seen[e.Tag] {
			seen[e.Tag] = true
			tags = append(tags, e.Tag)
		}
	}
	if len(tags) == 0 {
		t := uniqueKeys[level]
		ds.Set(dicom.NewText(t, keyVR(t), ""))
		tags = append(tags, t)
	}
	// Values come from the command line in UTF-8: say so, unless the user
	// chose a character set.
	if nonASCII && ds.Get(dicom.TagSpecificCharacterSet) == nil {
		ds.Set(dicom.NewText(dicom.TagSpecificCharacterSet, dicom.CS, "ISO_IR 192"))
	}
	return ds, tags, nil
}

func keyVR(t dicom.Tag) dicom.VR {
	e, _ := dict.Lookup(uint32(t))
	v, _ := dicom.ParseVR(e.VR)
	return v
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// parseKey turns one -k argument into an element.
func parseKey(arg string) (dicom.Element, error) {
	name, value, _ := strings.Cut(arg, "=")
	tag, err := dicom.ParseTag(name)
	if err != nil {
		return dicom.Element{}, usageError("-k %q: %q is neither a tag (gggg,eeee) nor a dictionary keyword", arg, name)
	}
	if g := tag.Group(); g == 0x0000 || g == 0x0002 || g == 0xFFFE {
		return dicom.Element{}, usageError("-k %q: %s is not a data set element", arg, tag)
	}
	entry, ok := dict.Lookup(uint32(tag))
	vr, known := dicom.ParseVR(entry.VR)
	if !ok || !known {
		return dicom.Element{}, usageError("-k %q: %s is not in the data dictionary, so its VR is unknown", arg, tag)
	}
	if !utf8.ValidString(value) {
		return dicom.Element{}, usageError("-k %q: the value is not valid UTF-8", arg)
	}
	switch {
	case vr == dicom.SQ:
		if value != "" {
			return dicom.Element{}, usageError("-k %q: %s is a sequence; give it without a value", arg, tag)
		}
		return dicom.NewSequence(tag), nil
	case vr.IsText():
		return dicom.NewText(tag, vr, value), nil
	case value == "":
		return dicom.Element{Tag: tag, VR: vr, Value: []byte{}}, nil
	case vr == dicom.US || vr == dicom.SS:
		var vals []uint16
		for _, s := range strings.Split(value, `\`) {
			n, err := strconv.ParseInt(s, 10, 32)
			if err != nil || (vr == dicom.US && (n < 0 || n > 0xFFFF)) || (vr == dicom.SS && (n < -0x8000 || n > 0x7FFF)) {
				return dicom.Element{}, usageError("-k %q: %q is not a %s value", arg, s, vr)
			}
			vals = append(vals, uint16(n))
		}
		return dicom.NewUint16s(tag, vr, vals...), nil
	case vr == dicom.UL || vr == dicom.SL:
		var vals []uint32
		for _, s := range strings.Split(value, `\`) {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || (vr == dicom.UL && (n < 0 || n > 0xFFFFFFFF)) || (vr == dicom.SL && (n < -0x80000000 || n > 0x7FFFFFFF)) {
				return dicom.Element{}, usageError("-k %q: %q is not a %s value", arg, s, vr)
			}
			vals = append(vals, uint32(n))
		}
		return dicom.NewUint32s(tag, vr, vals...), nil
	}
	return dicom.Element{}, usageError("-k %q: values of VR %s cannot be given on the command line", arg, vr)
}

// subOpsText says the sub-operation counts of a C-GET or C-MOVE.
func subOpsText(s dimse.SubOps) string {
	text := fmt.Sprintf("%d completed, %d failed, %d warning", s.Completed, s.Failed, s.Warning)
	if s.Remaining > 0 {
		text += fmt.Sprintf(", %d remaining", s.Remaining)
	}
	return text
}
