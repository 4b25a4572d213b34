package store

import (
	"errors"
	"reflect"
	"testing"

	"github.com/dicomshield/dicomshield/internal/dicom"
)

func TestCompileKeys(t *testing.T) {
	for _, tc := range []struct {
		name string
		tag  dicom.Tag
		vr   dicom.VR
		val  string
		want *Match // nil: universal
	}{
		{"empty", dicom.TagPatientID, dicom.LO, "", nil},
		{"star", dicom.TagPatientID, dicom.LO, "*", nil},
		{"stars", TagStudyDate, dicom.DA, "**", nil},
		{"empty value", dicom.TagPatientID, dicom.LO, `""`, &Match{Kind: MatchEmpty}},
		{"empty value of a date", TagStudyDate, dicom.DA, `""`, &Match{Kind: MatchEmpty}},
		{"quotes on a UID", dicom.TagStudyInstanceUID, dicom.UI, `""`, &Match{Kind: MatchSingle, Values: []string{`""`}}},
		{"single", dicom.TagPatientID, dicom.LO, "PAT1", &Match{Kind: MatchSingle, Values: []string{"PAT1"}}},
		{"padded", dicom.TagPatientID, dicom.LO, " PAT1 ", &Match{Kind: MatchSingle, Values: []string{"PAT1"}}},
		{"wildcard", dicom.TagPatientID, dicom.LO, "PA**T?", &Match{Kind: MatchWildcard, Values: []string{"PA*T?"}}},
		{"backslash is literal", dicom.TagPatientID, dicom.LO, `A\B`, &Match{Kind: MatchSingle, Values: []string{`A\B`}}},
		{"lone backslash", dicom.TagPatientID, dicom.LO, `\`, &Match{Kind: MatchSingle, Values: []string{`\`}}},
		{"PN folded", dicom.TagPatientName, dicom.PN, "smith^john^^", &Match{Kind: MatchSingle, Folded: true, Values: []string{"SMITH^JOHN"}}},
		{"PN wildcard", dicom.TagPatientName, dicom.PN, "smi*", &Match{Kind: MatchWildcard, Folded: true, Values: []string{"SMI*"}}},
		{"UID list", dicom.TagStudyInstanceUID, dicom.UI, `1.2\\1.3`, &Match{Kind: MatchSingle, Values: []string{"1.2", "1.3"}}},
		{"UID list with an empty item", dicom.TagStudyInstanceUID, dicom.UI, `1.2\`, &Match{Kind: MatchSingle, Values: []string{"1.2"}}},
		{"UID padded empty", dicom.TagStudyInstanceUID, dicom.UI, "\x00", nil},
		{"UID star is literal", dicom.TagStudyInstanceUID, dicom.UI, "1.2.*", &Match{Kind: MatchSingle, Values: []string{"1.2.*"}}},
		{"IS no wildcard", TagSeriesNumber, dicom.IS, "1?", &Match{Kind: MatchSingle, Values: []string{"1?"}}},
		{"date", TagStudyDate, dicom.DA, "20240101", &Match{Kind: MatchSingle, Values: []string{"20240101"}}},
		{"date range", TagStudyDate, dicom.DA, "20240101-20240131", &Match{Kind: MatchRange, Lo: "20240101", Hi: "20240131~"}},
		{"date from", TagStudyDate, dicom.DA, "20240101-", &Match{Kind: MatchRange, Lo: "20240101"}},
		{"date until", TagStudyDate, dicom.DA, "-20240101", &Match{Kind: MatchRange, Hi: "20240101~"}},
		{"dash alone", TagStudyDate, dicom.DA, "-", nil},
		{"old-style date range", TagStudyDate, dicom.DA, "2024.01.01-2024.01.31", &Match{Kind: MatchRange, Lo: "20240101", Hi: "20240131~"}},
		{"time range", TagStudyTime, dicom.TM, "08:00-093000.5", &Match{Kind: MatchRange, Lo: "0800", Hi: "093000.5~"}},
		{"date wildcard is literal", TagStudyDate, dicom.DA, "2024*", &Match{Kind: MatchSingle, Values: []string{"2024*"}}},
		{"modalities", TagModalitiesInStudy, dicom.CS, `CT\\MR`, &Match{Kind: MatchSingle, Values: []string{"CT", "MR"}}},
		{"modalities pattern", TagModalitiesInStudy, dicom.CS, `CT\M?`, &Match{Kind: MatchWildcard, Values: []string{"CT", "M?"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := &dicom.DataSet{}
			id.Set(dicom.NewText(tc.tag, tc.vr, tc.val))
			p, err := Compile(&Query{Level: "IMAGE", Identifier: id})
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == nil {
				if len(p.Matches) != 0 {
					t.Fatalf("got %+v, want universal matching", p.Matches)
				}
				return
			}
			if len(p.Matches) != 1 {
				t.Fatalf("got %d matches", len(p.Matches))
			}
			got := p.Matches[0]
			tc.want.Attr = got.Attr
			if !reflect.DeepEqual(&got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, *tc.want)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		q    *Query
	}{
		{"nil", nil},
		{"no identifier", &Query{Level: "STUDY"}},
		{"bad range", &Query{Level: "STUDY", Identifier: one(TagStudyDate, dicom.DA, "2024x-")}},
		{"long range bound", &Query{Level: "STUDY", Identifier: one(TagStudyDate, dicom.DA, "202401011-")}},
		{"patient level in study root", &Query{Level: "PATIENT", Identifier: &dicom.DataSet{}}},
		{"lower case level", &Query{Level: "study", Identifier: &dicom.DataSet{}}},
		// A list of empty values (PS3.4 C.2.2.2.2) is not universal matching.
		{"lone backslash UID", &Query{Level: "STUDY", Identifier: one(dicom.TagStudyInstanceUID, dicom.UI, `\`)}},
		{"backslashes UID", &Query{Level: "IMAGE", Identifier: one(dicom.TagSOPInstanceUID, dicom.UI, `\\`)}},
		{"lone backslash modalities", &Query{Level: "STUDY", Identifier: one(TagModalitiesInStudy, dicom.CS, `\`)}},
	} {
		if _, err := Compile(tc.q); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", tc.name, err)
		}
	}
}

func one(tag dicom.Tag, vr dicom.VR, v string) *dicom.DataSet {
	ds := &dicom.DataSet{}
	ds.Set(dicom.NewText(tag, vr, v))
	return ds
}

func TestFoldPN(t *testing.T) {
	for in, want := range map[string]string{
		"Smith^John":           "SMITH^JOHN",
		"smith^john^^^":        "SMITH^JOHN",
		"Smith^John=^=":        "SMITH^JOHN",
		"Müller^Jürgen":        "MÜLLER^JÜRGEN",
		"yamada^tarou=山田^太郎==": "YAMADA^TAROU=山田^太郎",
		"smi*":                 "SMI*",
		"":                     "",
	} {
		if got := FoldPN(in); got != want {
			t.Errorf("FoldPN(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLevels(t *testing.T) {
	for i, n := range []string{"PATIENT", "STUDY", "SERIES", "IMAGE"} {
		l, err := ParseLevel(" " + n + " ")
		if err != nil || l != Level(i) || l.String() != n {
			t.Errorf("ParseLevel(%q) = %v, %v", n, l, err)
		}
	}
}

// TestCompileRetrieveLists: the unique keys of a C-GET/C-MOVE identifier
// as lists (PS3.4 C.2.2.2.2): empty items are dropped, a list of only empty
// items is refused wherever it stands, a zero-length key above the level
// restricts nothing.
func TestCompileRetrieveLists(t *testing.T) {
	for _, tc := range []struct {
		name    string
		level   string
		keys    map[dicom.Tag]string
		want    map[Field][]string // nil with wantErr
		wantErr bool
	}{
		{"one study", "STUDY", map[dicom.Tag]string{dicom.TagStudyInstanceUID: "1.2"}, map[Field][]string{FieldStudyInstanceUID: {"1.2"}}, false},
		{"study list", "STUDY", map[dicom.Tag]string{dicom.TagStudyInstanceUID: `1.2\1.3`}, map[Field][]string{FieldStudyInstanceUID: {"1.2", "1.3"}}, false},
		{"empty item dropped", "STUDY", map[dicom.Tag]string{dicom.TagStudyInstanceUID: `\1.3`}, map[Field][]string{FieldStudyInstanceUID: {"1.3"}}, false},
		{"lone backslash at the level", "STUDY", map[dicom.Tag]string{dicom.TagStudyInstanceUID: `\`}, nil, true},
		{"lone backslash above the level", "SERIES", map[dicom.Tag]string{dicom.TagStudyInstanceUID: `\`, dicom.TagSeriesInstanceUID: "1.2.1"}, nil, true},
		{"zero-length key above the level", "SERIES", map[dicom.Tag]string{dicom.TagStudyInstanceUID: "", dicom.TagSeriesInstanceUID: "1.2.1"}, map[Field][]string{FieldSeriesInstanceUID: {"1.2.1"}}, false},
		{"missing key at the level", "SERIES", map[dicom.Tag]string{dicom.TagStudyInstanceUID: "1.2"}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := &dicom.DataSet{}
			for tag, v := range tc.keys {
				id.Set(dicom.NewText(tag, dicom.UI, v))
			}
			p, err := CompileRetrieve(&Query{Level: tc.level, Identifier: id})
			if tc.wantErr {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("got %v, %v; want ErrInvalid", p, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := map[Field][]string{}
			for _, m := range p.Matches {
				got[m.Attr.Field] = m.Values
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("matches %v, want %v", got, tc.want)
			}
		})
	}
}
