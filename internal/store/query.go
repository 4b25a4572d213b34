package store

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/dicom/charset"
	"github.com/dicomshield/dicomshield/internal/dicom/dict"
)

// Bounds on query keys. A query that exceeds them is an error wrapping
// ErrInvalid rather than work for the database.
const (
	// MaxKeyLength bounds the value of one key in bytes (after character
	// set decoding). It admits a list of about a thousand UIDs; single
	// values are never near it (PS3.5 caps LO at 64 characters).
	MaxKeyLength = 64 << 10
	// MaxPatternLength bounds one wild card pattern in bytes: pattern
	// matching costs grow with its length, and no legitimate value of the
	// text VRs the index matches is longer than 64 characters.
	MaxPatternLength = 256
)

// MatchKind is a kind of attribute matching (PS3.4 C.2.2.2).
type MatchKind int

// The kinds of matching a backend implements. Universal matching (a key
// without value, or "*") is no Match at all: it only asks for the value.
const (
	// MatchSingle: the value equals one of Values, byte for byte (Single
	// Value Matching, C.2.2.2.1; List of UID Matching, C.2.2.2.2). For an
	// aggregate attribute, any one of the entities below has such a value.
	MatchSingle MatchKind = iota + 1
	// MatchWildcard: the value matches one of Values, patterns in which
	// '*' stands for any run of characters (none included) and '?' for
	// exactly one character; every other character stands for itself
	// (Wild Card Matching, C.2.2.2.4).
	MatchWildcard
	// MatchRange: the value is not empty and Lo <= value <= Hi in byte
	// order (Range Matching, C.2.2.2.5). Lo empty means no lower bound; Hi
	// empty means no upper bound. A non-empty Hi already ends in '~' (above
	// every digit and '.'), so that a value given to a finer precision than
	// the upper bound is still inside the range: "-0800" takes in 08:00:59.
	MatchRange
	// MatchEmpty: the value is empty or absent (Empty Value Matching, the
	// key value "" of C.2.2.2.1).
	MatchEmpty
)

// Match is one matching key of a compiled query.
type Match struct {
	Attr   *Attr
	Kind   MatchKind
	Values []string
	Lo, Hi string
	// Folded: the attribute is a person name matched case-insensitively;
	// Values are folded with FoldPN and are compared with the folded copy
	// of the stored value.
	Folded bool
}

// returnKey is one key the response carries.
type returnKey struct {
	tag  dicom.Tag
	vr   dicom.VR
	attr *Attr // nil: not supported, returned empty
}

// Plan is a query compiled from an identifier: what to match, what to
// return. Backends turn Matches into their own query language, always
// passing values as parameters.
type Plan struct {
	Level Level
	// PatientRoot: the Patient Root model (else Study Root).
	PatientRoot bool
	// Matches are the keys that restrict the result; all must match.
	Matches []Match
	// Limit is the query's Limit (0: none).
	Limit int

	returns []returnKey
	fields  []Field
}

// Fields lists the fields Response needs, each once, in identifier order.
func (p *Plan) Fields() []Field { return p.fields }

// Compile reads a C-FIND identifier into a plan. The rules (PS3.4 C.2.2.2):
//
//   - A key without value (or "*") is Universal Matching: no restriction,
//     the value is returned.
//   - "" (two quotation marks) is Empty Value Matching for the text, date
//     and time VRs.
//   - '*' and '?' make a Wild Card pattern in the VRs that allow them (AE,
//     CS, LO, LT, PN, SH, ST, UC, UR, UT); elsewhere they are plain
//     characters.
//   - A DA or TM value with '-' is a range: "A-B", "A-", "-B".
//   - A UI value with several values ('\' separated) is a list of UIDs,
//     matching any of them; so is a list for the multi-valued aggregates
//     (ModalitiesInStudy: a study matches when one of its series has one of
//     the modalities). Empty items match nothing; a list of only empty
//     items ("\") is refused (ErrInvalid), never universal.
//   - Any other value is Single Value Matching: exact and case-sensitive,
//     except PN, which is matched case-insensitively (see FoldPN), with or
//     without wild cards. A '\' in a single-valued key is part of the
//     value, which no stored value contains.
//
// Keys are decoded with the identifier's Specific Character Set. Keys the
// index does not support, and supported keys of a level below the query
// level, are not matched and are returned empty (private keys are not
// returned at all). The query may carry keys of any level above its own
// (relational queries), and in the Patient Root model the hierarchical
// unique keys above the level are not required.
func Compile(q *Query) (*Plan, error) {
	p, dec, err := begin(q)
	if err != nil {
		return nil, err
	}
	seen := map[dicom.Tag]bool{}
	for i := range q.Identifier.Elements {
		e := &q.Identifier.Elements[i]
		switch {
		case e.Tag.Group() <= 0x0002, e.Tag == dicom.TagSpecificCharacterSet, e.Tag == TagQueryRetrieveLevel,
			e.Tag.IsPrivate(), seen[e.Tag]:
			continue
		}
		seen[e.Tag] = true
		a, ok := AttrByTag(e.Tag)
		if !ok || !a.availableAt(p.Level) {
			p.returns = append(p.returns, returnKey{tag: e.Tag, vr: unsupportedVR(e)})
			continue
		}
		p.returns = append(p.returns, returnKey{tag: e.Tag, vr: a.VR, attr: a})
		p.fields = append(p.fields, a.Field)
		if a.Count || e.IsSequence() {
			continue
		}
		m, err := compileKey(a, e, dec)
		if err != nil {
			return nil, err
		}
		if m != nil {
			p.Matches = append(p.Matches, *m)
		}
	}
	return p, nil
}

// CompileRetrieve reads a C-GET or C-MOVE identifier (PS3.4 C.4.2.2.1,
// C.4.3.2.1): the unique key of the query level is required and may be a
// list of UIDs (for PATIENT, one Patient ID); the unique keys of the levels
// above it, when present, restrict the selection too. Wild cards, ranges
// and universal values have no meaning here: "*" is taken literally. A
// unique key of a level below the query level is an error, as are a
// missing key and the PATIENT level outside the Patient Root model. Other
// keys are ignored.
func CompileRetrieve(q *Query) (*Plan, error) {
	p, dec, err := begin(q)
	if err != nil {
		return nil, err
	}
	for _, f := range []Field{FieldPatientID, FieldStudyInstanceUID, FieldSeriesInstanceUID, FieldSOPInstanceUID} {
		a := AttrByField(f)
		e := q.Identifier.Get(a.Tag)
		var vals []string
		if e != nil {
			if vals, err = keyValues(a, e, dec); err != nil {
				return nil, err
			}
			if vals, err = listValues(a, vals); err != nil {
				return nil, err
			}
		}
		if len(vals) == 0 {
			if a.Level == p.Level {
				return nil, fmt.Errorf("%w: %s retrieve without %s", ErrInvalid, p.Level, a.Keyword)
			}
			continue
		}
		if a.Level > p.Level {
			return nil, fmt.Errorf("%w: %s in a %s level retrieve", ErrInvalid, a.Keyword, p.Level)
		}
		if a.VR != dicom.UI {
			vals = []string{strings.Join(vals, `\`)}
		}
		p.Matches = append(p.Matches, Match{Attr: a, Kind: MatchSingle, Values: vals})
	}
	return p, nil
}

// begin checks the level and model of q and returns the identifier's text
// decoder.
func begin(q *Query) (*Plan, *charset.Decoder, error) {
	if q == nil || q.Identifier == nil {
		return nil, nil, fmt.Errorf("%w: query without identifier", ErrInvalid)
	}
	if q.Limit < 0 {
		return nil, nil, fmt.Errorf("%w: negative limit", ErrInvalid)
	}
	lv := q.Level
	if lv == "" {
		lv = q.Identifier.String(TagQueryRetrieveLevel)
	}
	level, err := ParseLevel(lv)
	if err != nil {
		return nil, nil, err
	}
	p := &Plan{Level: level, Limit: q.Limit}
	switch strings.TrimSpace(q.Model) {
	case "PATIENT":
		p.PatientRoot = true
	case "STUDY", "":
		if level == LevelPatient {
			return nil, nil, fmt.Errorf("%w: the Study Root model has no PATIENT level", ErrInvalid)
		}
	default:
		return nil, nil, fmt.Errorf("%w: information model %q is not PATIENT or STUDY", ErrInvalid, q.Model)
	}
	// An unsupported Specific Character Set still yields the decoder of the
	// terms that are supported; the keys it cannot decode then match
	// nothing, which is the right answer to a query we cannot read.
	dec, _ := q.Identifier.TextDecoder(nil)
	return p, dec, nil
}

// keyValues decodes a key's value as the attribute's VR (not the one the
// peer declared) into its values.
func keyValues(a *Attr, e *dicom.Element, dec *charset.Decoder) ([]string, error) {
	if len(e.Value) > MaxKeyLength {
		return nil, fmt.Errorf("%w: %s key longer than %d bytes", ErrInvalid, a.Keyword, MaxKeyLength)
	}
	tmp := dicom.Element{Tag: a.Tag, VR: a.VR, Value: e.Value}
	vals, err := tmp.Text(dec)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, a.Keyword, err)
	}
	return vals, nil
}

// listValues returns the values of a list key without its empty items.
// PS3.4 C.2.2.2.2 has each item of a list hold one value, and only a
// zero-length key is universal (C.2.2.2.3): an empty item is no value and
// matches nothing, so dropping it changes no answer. A key of nothing but
// empty items ("\", "\\") is a list that can match nothing; it is
// refused as an invalid identifier rather than read as universal, which
// would answer it with everything.
func listValues(a *Attr, vals []string) ([]string, error) {
	var out []string
	for _, v := range vals {
		if v != "" {
			out = append(out, v)
		}
	}
	if len(out) == 0 && len(vals) > 1 {
		return nil, fmt.Errorf("%w: %s is a list of empty values", ErrInvalid, a.Keyword)
	}
	return out, nil
}

// compileKey returns the match for one supported key, or nil for
// universal matching.
func compileKey(a *Attr, e *dicom.Element, dec *charset.Decoder) (*Match, error) {
	vals, err := keyValues(a, e, dec)
	if err != nil {
		return nil, err
	}
	raw := strings.Join(vals, `\`)
	if strings.Trim(raw, "*") == "" {
		return nil, nil
	}
	if a.VR == dicom.UI || a.Aggregate {
		if vals, err = listValues(a, vals); err != nil {
			return nil, err
		}
	}
	if raw == `""` && emptyMatchVR(a.VR) {
		return &Match{Attr: a, Kind: MatchEmpty}, nil
	}
	m := &Match{Attr: a, Kind: MatchSingle}
	switch {
	case a.VR == dicom.UI:
		m.Values = vals
	case a.VR == dicom.DA || a.VR == dicom.TM:
		v := normalizeDateTime(a.VR, raw)
		lo, hi, isRange := strings.Cut(v, "-")
		if !isRange {
			m.Values = []string{v}
			break
		}
		if lo == "" && hi == "" {
			return nil, nil
		}
		if !dateTimeBound(a.VR, lo) || !dateTimeBound(a.VR, hi) {
			return nil, fmt.Errorf("%w: %s range bound is not a %s value", ErrInvalid, a.Keyword, a.VR)
		}
		m.Kind, m.Lo = MatchRange, lo
		if hi != "" {
			m.Hi = hi + "~"
		}
	case a.Aggregate:
		// ModalitiesInStudy: any of the values, each possibly a pattern.
		m.Values = vals
		if hasWildcard(raw) {
			m.Kind = MatchWildcard
		}
	default:
		m.Values = []string{raw}
		if wildcardVR(a.VR) && hasWildcard(raw) {
			m.Kind = MatchWildcard
		}
	}
	if a.VR == dicom.PN {
		m.Folded = true
		for i, v := range m.Values {
			m.Values[i] = FoldPN(v)
		}
	}
	if m.Kind == MatchWildcard {
		for i, v := range m.Values {
			v = collapseStars(v)
			if len(v) > MaxPatternLength {
				return nil, fmt.Errorf("%w: %s pattern longer than %d bytes", ErrInvalid, a.Keyword, MaxPatternLength)
			}
			m.Values[i] = v
		}
	}
	return m, nil
}

func hasWildcard(s string) bool { return strings.ContainsAny(s, "*?") }

// wildcardVR: the VRs for which C.2.2.2.4 allows wild cards.
func wildcardVR(v dicom.VR) bool {
	switch v {
	case dicom.AE, dicom.CS, dicom.LO, dicom.LT, dicom.PN, dicom.SH, dicom.ST, dicom.UC, dicom.UR, dicom.UT:
		return true
	}
	return false
}

// emptyMatchVR: the VRs for which "" asks for Empty Value Matching.
func emptyMatchVR(v dicom.VR) bool {
	return wildcardVR(v) || v == dicom.DA || v == dicom.TM || v == dicom.DT
}

// collapseStars replaces each run of '*' by one: the same pattern, and
// less work for the matcher.
func collapseStars(s string) string {
	if !strings.Contains(s, "**") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '*' && i > 0 && s[i-1] == '*' {
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// normalizeDateTime removes the separators of the ACR-NEMA forms of dates
// ("2024.01.31") and times ("08:30:00"), so that values compare as
// strings.
func normalizeDateTime(v dicom.VR, s string) string {
	switch v {
	case dicom.DA:
		return strings.ReplaceAll(s, ".", "")
	case dicom.TM:
		return strings.ReplaceAll(s, ":", "")
	}
	return s
}

// dateTimeBound reports whether s (normalized) can bound a range of VR v:
// empty, or digits (and, in a time, one '.' for the fraction), at most as
// long as the VR's longest value.
func dateTimeBound(v dicom.VR, s string) bool {
	max, dot := 8, false
	if v == dicom.TM {
		max = 13
	}
	if len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
		case c == '.' && v == dicom.TM && !dot && i == 6:
			dot = true
		default:
			return false
		}
	}
	return true
}

// unsupportedVR is the VR an unsupported return key is answered with: the
// dictionary's, else the one the peer used, else UN.
func unsupportedVR(e *dicom.Element) dicom.VR {
	if d, ok := dict.Lookup(uint32(e.Tag)); ok && d.VR != "" {
		if v, ok := dicom.ParseVR(d.VR); ok {
			return v
		}
	}
	if e.VR != 0 {
		return e.VR
	}
	return dicom.UN
}

// Response builds the data set of one match: every return key in the
// order of the identifier, value(f) for the supported ones (multiple values
// '\' separated; counts as decimal text), empty for the others (an empty
// sequence for a sequence key), then Query/Retrieve Level and, when a value
// is not ASCII, Specific Character Set ISO_IR 192 (values are UTF-8).
func (p *Plan) Response(value func(Field) string) *dicom.DataSet {
	els := make([]dicom.Element, 0, len(p.returns)+2)
	ascii := true
	for _, rk := range p.returns {
		switch {
		case rk.attr != nil:
			v := value(rk.attr.Field)
			if ascii && !isASCII(v) {
				ascii = false
			}
			els = append(els, dicom.NewText(rk.tag, rk.vr, v))
		case rk.vr == dicom.SQ:
			els = append(els, dicom.NewSequence(rk.tag))
		default:
			els = append(els, dicom.Element{Tag: rk.tag, VR: rk.vr})
		}
	}
	els = append(els, dicom.NewText(TagQueryRetrieveLevel, dicom.CS, p.Level.String()))
	if !ascii {
		els = append(els, dicom.NewText(dicom.TagSpecificCharacterSet, dicom.CS, "ISO_IR 192"))
	}
	// One sort rather than an insertion per element: an identifier may
	// hold thousands of keys.
	slices.SortFunc(els, func(a, b dicom.Element) int { return cmp.Compare(a.Tag, b.Tag) })
	return &dicom.DataSet{Elements: els}
}

// Itoa formats a count for Response.
func Itoa(n int64) string { return strconv.FormatInt(n, 10) }

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
