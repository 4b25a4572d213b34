package storetest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/store"
)

// matchCase is one query and the unique keys of the entities it must
// return (in any order).
type matchCase struct {
	name  string
	model string // "" for Study Root
	level string
	keys  []string
	want  []string
}

// Series and instance UIDs of the fixture used below.
var (
	seSmithCT = stSmithCT + ".1"
	seSmithSR = stSmithCT + ".2"
)

var matchCases = []matchCase{
	// Universal matching.
	{name: "universal", level: "STUDY", want: allStudies},
	{name: "universal key", level: "STUDY", keys: []string{"PatientID", "StudyDate"}, want: allStudies},
	{name: "lone star is universal", level: "STUDY", keys: []string{"PatientID=*"}, want: allStudies},
	{name: "lone star on a date", level: "STUDY", keys: []string{"StudyDate=*"}, want: allStudies},
	{name: "lone star on a UID", level: "STUDY", keys: []string{"StudyInstanceUID=*"}, want: allStudies},
	{name: "stars collapse", level: "STUDY", keys: []string{"PatientID=***"}, want: allStudies},

	// Single value matching: exact and case-sensitive.
	{name: "single PatientID", level: "STUDY", keys: []string{"PatientID=PAT001"}, want: []string{stSmithCT, stSmithMR}},
	{name: "PatientID case-sensitive", level: "STUDY", keys: []string{"PatientID=pat001"}},
	{name: "PatientID prefix is not a match", level: "STUDY", keys: []string{"PatientID=PAT00"}},
	{name: "description exact", level: "STUDY", keys: []string{"StudyDescription=CT CHEST"}, want: []string{stSmithCT}},
	{name: "description case-sensitive", level: "STUDY", keys: []string{"StudyDescription=ct chest"}},
	{name: "non-ASCII description", level: "STUDY", keys: []string{"StudyDescription=Röntgen Thorax"}, want: []string{stMueller}},
	{name: "accession", level: "STUDY", keys: []string{"AccessionNumber=ACC-2"}, want: []string{stMueller}},
	{name: "StudyID", level: "STUDY", keys: []string{"StudyID=S2"}, want: []string{stSmithMR}},
	{name: "two keys", level: "STUDY", keys: []string{"PatientID=PAT001", "StudyDescription=MR HEAD"}, want: []string{stSmithMR}},
	{name: "two keys, one fails", level: "STUDY", keys: []string{"PatientID=PAT002", "StudyDescription=MR HEAD"}},

	// Person names: case-insensitive, trailing empty components ignored.
	{name: "PN exact", level: "STUDY", keys: []string{"PatientName=Smith^John"}, want: []string{stSmithCT, stSmithMR}},
	{name: "PN case-insensitive", level: "STUDY", keys: []string{"PatientName=SMITH^john"}, want: []string{stSmithCT, stSmithMR}},
	{name: "PN trailing components", level: "STUDY", keys: []string{"PatientName=smith^john^^^"}, want: []string{stSmithCT, stSmithMR}},
	{name: "PN family name only is not a match", level: "STUDY", keys: []string{"PatientName=Smith"}},
	{name: "PN wildcard", level: "STUDY", keys: []string{"PatientName=smi*"}, want: []string{stSmithCT, stSmithMR}},
	{name: "PN non-ASCII folded", level: "STUDY", keys: []string{"PatientName=MÜLLER*"}, want: []string{stMueller}},
	{name: "PN ? is one character", level: "STUDY", keys: []string{"PatientName=M?ller^J?rgen"}, want: []string{stMueller}},
	{name: "PN ? is not two", level: "STUDY", keys: []string{"PatientName=M??ller*"}},
	{name: "PN inner star", level: "STUDY", keys: []string{"PatientName=*ü*"}, want: []string{stMueller}},
	{name: "PN with quote", level: "STUDY", keys: []string{"PatientName=o'brien^pat"}, want: []string{stPercent}},
	{name: "referring physician", level: "STUDY", keys: []string{"ReferringPhysicianName=grün*"}, want: []string{stMueller}},

	// Wild cards: only * and ? are special.
	{name: "star suffix", level: "STUDY", keys: []string{"PatientID=PAT00*"}, want: []string{stSmithCT, stSmithMR, stMueller}},
	{name: "question mark", level: "STUDY", keys: []string{"PatientID=PAT00?"}, want: []string{stSmithCT, stSmithMR, stMueller}},
	{name: "question mark needs a character", level: "STUDY", keys: []string{"PatientID=PAT001?"}},
	{name: "? matches % _ x but not [1]", level: "STUDY", keys: []string{"PatientID=A?B"}, want: []string{stPercent, stUnder, stPlain}},
	{name: "star prefix", level: "STUDY", keys: []string{"StudyDescription=*HEAD"}, want: []string{stSmithMR}},
	{name: "wildcard case-sensitive", level: "STUDY", keys: []string{"StudyDescription=ct*"}},

	// SQL LIKE and GLOB syntax in values is literal.
	{name: "percent literal", level: "STUDY", keys: []string{"PatientID=A%B"}, want: []string{stPercent}},
	{name: "underscore literal", level: "STUDY", keys: []string{"PatientID=A_B"}, want: []string{stUnder}},
	{name: "percent alone", level: "STUDY", keys: []string{"PatientID=%"}},
	{name: "underscore alone", level: "STUDY", keys: []string{"PatientID=_"}},
	{name: "percent prefix", level: "STUDY", keys: []string{"PatientID=A%"}},
	{name: "percent in pattern", level: "STUDY", keys: []string{"PatientID=A%*"}, want: []string{stPercent}},
	{name: "underscore in pattern", level: "STUDY", keys: []string{"PatientID=A_*"}, want: []string{stUnder}},
	{name: "percent inside description", level: "STUDY", keys: []string{"StudyDescription=*%*"}, want: []string{stPercent}},
	{name: "underscore inside description", level: "STUDY", keys: []string{"StudyDescription=*_*"}, want: []string{stUnder}},
	{name: "accession with percent", level: "STUDY", keys: []string{"AccessionNumber=A%1"}, want: []string{stUnder}},
	{name: "accession with underscore", level: "STUDY", keys: []string{"AccessionNumber=A_1"}, want: []string{stPercent}},
	{name: "bracket literal", level: "STUDY", keys: []string{"PatientID=A[1]B"}, want: []string{stBracket}},
	{name: "bracket in pattern", level: "STUDY", keys: []string{"PatientID=A[1]*"}, want: []string{stBracket}},
	{name: "open bracket in pattern", level: "STUDY", keys: []string{"PatientID=A[*"}, want: []string{stBracket}},
	{name: "bracket set is not a set", level: "STUDY", keys: []string{"PatientID=A[%_x]*"}},
	{name: "bracket description", level: "STUDY", keys: []string{"StudyDescription=[b*"}, want: []string{stBracket}},
	{name: "backslash literal", level: "STUDY", keys: []string{`StudyDescription=back\slash`}, want: []string{stPlain}},
	{name: "backslash is no list", level: "STUDY", keys: []string{`PatientID=PAT001\PAT002`}},
	{name: "backslash value", level: "STUDY", keys: []string{`PatientID=\`}},

	// SQL injection attempts match nothing and break nothing.
	{name: "injection and", level: "STUDY", keys: []string{"PatientID=1234' and 1=1--"}},
	{name: "injection or", level: "STUDY", keys: []string{"PatientID=1234' OR '1'='1"}},
	{name: "injection double quote", level: "STUDY", keys: []string{`PatientID=1234" OR ""="`}},
	{name: "injection wildcard", level: "STUDY", keys: []string{"PatientName=*' OR 1=1--"}},
	{name: "injection drop", level: "STUDY", keys: []string{"StudyDescription=x'); DROP TABLE study;--*"}},
	{name: "injection stored value matches itself", level: "STUDY", keys: []string{"StudyDescription=x'); DROP TABLE patient;--"}, want: []string{stInjection}},
	{name: "injection in UID list", level: "STUDY", keys: []string{`StudyInstanceUID=1.2.826.0.1.1') OR 1=1--\1.2`}},
	{name: "still intact", level: "STUDY", keys: []string{"PatientID=1234"}, want: []string{stInjection}},

	// Empty value matching.
	{name: "empty accession", level: "STUDY", keys: []string{`AccessionNumber=""`}, want: []string{stSmithMR}},
	{name: "empty referring", level: "STUDY", keys: []string{`ReferringPhysicianName=""`}, want: []string{stSmithMR, stPercent, stUnder, stPlain, stBracket, stInjection}},
	{name: "empty is not universal", level: "STUDY", keys: []string{`PatientID=""`}},

	// Dates and times: single values and ranges; no wild cards.
	{name: "date single", level: "STUDY", keys: []string{"StudyDate=20240105"}, want: []string{stSmithCT}},
	{name: "date range", level: "STUDY", keys: []string{"StudyDate=20240101-20240131"}, want: []string{stSmithCT}},
	{name: "date range inclusive", level: "STUDY", keys: []string{"StudyDate=20240105-20240210"}, want: []string{stSmithCT, stMueller}},
	{name: "date from", level: "STUDY", keys: []string{"StudyDate=20240302-"}, want: []string{stUnder, stPlain, stBracket, stInjection}},
	{name: "date until", level: "STUDY", keys: []string{"StudyDate=-20231231"}, want: []string{stSmithMR}},
	{name: "date reversed range", level: "STUDY", keys: []string{"StudyDate=20241231-20240101"}},
	{name: "date old style", level: "STUDY", keys: []string{"StudyDate=2024.01.01-2024.01.31"}, want: []string{stSmithCT}},
	{name: "date no wildcard", level: "STUDY", keys: []string{"StudyDate=2024*"}},
	{name: "date and time", level: "STUDY", keys: []string{"StudyDate=2024-", "StudyTime=-1000"}, want: []string{stSmithCT, stMueller}},
	{name: "time range", level: "STUDY", keys: []string{"StudyTime=0800-0900"}, want: []string{stSmithCT}},
	{name: "time until hour", level: "STUDY", keys: []string{"StudyTime=-08"}, want: []string{stSmithCT}},
	{name: "time from", level: "STUDY", keys: []string{"StudyTime=1700-"}, want: []string{stSmithMR}},
	{name: "time old style", level: "STUDY", keys: []string{"StudyTime=17:00-17:00"}, want: []string{stSmithMR}},
	{name: "birth date range", model: "PATIENT", level: "PATIENT", keys: []string{"PatientBirthDate=19900101-19911231"}, want: []string{"A%B", "A_B"}},

	// UIDs: single, list, no wild cards.
	{name: "UID single", level: "STUDY", keys: []string{"StudyInstanceUID=" + stMueller}, want: []string{stMueller}},
	{name: "UID list", level: "STUDY", keys: []string{`StudyInstanceUID=` + stSmithCT + `\` + stMueller + `\1.2.3`}, want: []string{stSmithCT, stMueller}},
	{name: "UID no wildcard", level: "STUDY", keys: []string{"StudyInstanceUID=1.2.826.0.1.*"}},
	{name: "UID no prefix", level: "STUDY", keys: []string{"StudyInstanceUID=1.2.826.0.1"}},

	// Aggregates of the study.
	{name: "modality in study", level: "STUDY", keys: []string{"ModalitiesInStudy=MR"}, want: []string{stSmithMR}},
	{name: "second modality in study", level: "STUDY", keys: []string{"ModalitiesInStudy=SR"}, want: []string{stSmithCT}},
	{name: "modality list", level: "STUDY", keys: []string{`ModalitiesInStudy=CT\CR`}, want: []string{stSmithCT, stMueller}},
	{name: "modality wildcard", level: "STUDY", keys: []string{"ModalitiesInStudy=C*"}, want: []string{stSmithCT, stMueller}},
	{name: "modality list with wildcard", level: "STUDY", keys: []string{`ModalitiesInStudy=M?\S*`}, want: []string{stSmithCT, stSmithMR}},
	{name: "modality unknown", level: "STUDY", keys: []string{"ModalitiesInStudy=XX"}},
	{name: "modality and patient", level: "STUDY", keys: []string{"PatientID=PAT001", "ModalitiesInStudy=CT"}, want: []string{stSmithCT}},
	{name: "SOP class in study", level: "STUDY", keys: []string{"SOPClassesInStudy=" + mrImage}, want: []string{stSmithMR}},

	// Keys the index does not match.
	{name: "unsupported key ignored", level: "STUDY", keys: []string{"PatientAge=045Y"}, want: allStudies},
	{name: "lower-level key ignored", level: "STUDY", keys: []string{"Modality=CT"}, want: allStudies},
	{name: "count ignored", level: "STUDY", keys: []string{"NumberOfStudyRelatedInstances=99"}, want: allStudies},

	// Other levels.
	{name: "patient level", model: "PATIENT", level: "PATIENT", want: []string{"PAT001", "PAT002", "A%B", "A_B", "AxB", "A[1]B", "1234"}},
	{name: "patient by name", model: "PATIENT", level: "PATIENT", keys: []string{"PatientName=*^Pat"}, want: []string{"A%B"}},
	{name: "patient root study level", model: "PATIENT", level: "STUDY", keys: []string{"PatientID=PAT002"}, want: []string{stMueller}},
	{name: "series of a study", level: "SERIES", keys: []string{"StudyInstanceUID=" + stSmithCT}, want: []string{seSmithCT, seSmithSR}},
	{name: "series by modality", level: "SERIES", keys: []string{"StudyInstanceUID=" + stSmithCT, "Modality=SR"}, want: []string{seSmithSR}},
	{name: "series by number", level: "SERIES", keys: []string{"PatientID=PAT001", "SeriesNumber=1"}, want: []string{seSmithCT, stSmithMR + ".1"}},
	{name: "series number exact", level: "SERIES", keys: []string{"SeriesNumber=01"}},
	{name: "series number no wildcard", level: "SERIES", keys: []string{"SeriesNumber=1*"}},
	{name: "series relational", level: "SERIES", keys: []string{"PatientName=müller^jürgen"}, want: []string{stMueller + ".1"}},
	{name: "images of a series", level: "IMAGE", keys: []string{"SeriesInstanceUID=" + seSmithCT}, want: []string{seSmithCT + ".1", seSmithCT + ".2", seSmithCT + ".3"}},
	{name: "image by number", level: "IMAGE", keys: []string{"SeriesInstanceUID=" + seSmithCT, "InstanceNumber=2"}, want: []string{seSmithCT + ".2"}},
	{name: "image list", level: "IMAGE", keys: []string{`SOPInstanceUID=` + seSmithCT + `.1\` + seSmithSR + `.1`}, want: []string{seSmithCT + ".1", seSmithSR + ".1"}},
	{name: "image by class", level: "IMAGE", keys: []string{"StudyInstanceUID=" + stSmithCT, "SOPClassUID=" + srBasic}, want: []string{seSmithSR + ".1"}},
	{name: "image by patient", level: "IMAGE", keys: []string{"PatientID=PAT002"}, want: []string{stMueller + ".1.1"}},
}

func testMatch(t *testing.T, newIndex func(t *testing.T) store.Index) {
	ix, _ := loaded(t, newIndex)
	for _, tc := range matchCases {
		t.Run(tc.name, func(t *testing.T) {
			keys := tc.keys
			uk := uniqueKey[tc.level]
			if !slices.ContainsFunc(keys, func(k string) bool { return strings.HasPrefix(k, uk+"=") || k == uk }) {
				keys = append(slices.Clone(keys), uk)
			}
			res, trunc := find(t, ix, &store.Query{Level: tc.level, Model: tc.model, Identifier: ident(t, keys...)})
			if trunc {
				t.Error("truncated without a limit")
			}
			tag, _ := dicom.ParseTag(uk)
			got := sorted(values(res, tag))
			want := sorted(append([]string{}, tc.want...))
			if !slices.Equal(got, want) {
				t.Errorf("keys %q\n got %q\nwant %q", tc.keys, got, want)
			}
		})
	}
	// The injection attempts above left the tables as they were.
	res, _ := find(t, ix, &store.Query{Level: "IMAGE", Identifier: ident(t, "SOPInstanceUID")})
	if len(res) != len(fixtureInstances()) {
		t.Errorf("%d instances after the queries, want %d", len(res), len(fixtureInstances()))
	}
}

func testFindErrors(t *testing.T, newIndex func(t *testing.T) store.Index) {
	ix, _ := loaded(t, newIndex)
	ctx := context.Background()
	nop := func(*dicom.DataSet) error { return nil }
	for _, tc := range []struct {
		name string
		q    *store.Query
	}{
		{"no identifier", &store.Query{Level: "STUDY"}},
		{"bad level", &store.Query{Level: "FOO", Identifier: ident(t)}},
		{"level injection", &store.Query{Level: "STUDY' OR 1=1--", Identifier: ident(t)}},
		{"no level", &store.Query{Identifier: ident(t, "PatientID")}},
		{"patient level in study root", &store.Query{Level: "PATIENT", Identifier: ident(t)}},
		{"bad model", &store.Query{Level: "STUDY", Model: "WORKLIST", Identifier: ident(t)}},
		{"negative limit", &store.Query{Level: "STUDY", Limit: -1, Identifier: ident(t)}},
		{"injection in range", &store.Query{Level: "STUDY", Identifier: ident(t, "StudyDate=0' OR '1'='1-")}},
		{"letters in time range", &store.Query{Level: "STUDY", Identifier: ident(t, "StudyTime=08h-09h")}},
		{"long pattern", &store.Query{Level: "STUDY", Identifier: ident(t, "PatientName=*"+strings.Repeat("a*", store.MaxPatternLength))}},
	} {
		if _, err := ix.Find(ctx, tc.q, nop); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: Find = %v, want ErrInvalid", tc.name, err)
		}
	}

	// The level may come from the identifier.
	res, _ := find(t, ix, &store.Query{Identifier: ident(t, "QueryRetrieveLevel=SERIES", "StudyInstanceUID="+stSmithMR, "SeriesInstanceUID")})
	if got := values(res, dicom.TagSeriesInstanceUID); !slices.Equal(got, []string{stSmithMR + ".1"}) {
		t.Errorf("level from the identifier: got %q", got)
	}

	// The callback's error stops the query and is returned.
	stop := errors.New("stop")
	n := 0
	_, err := ix.Find(ctx, &store.Query{Level: "IMAGE", Identifier: ident(t)}, func(*dicom.DataSet) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("Find with a failing callback: %v after %d calls", err, n)
	}

	// A cancelled context fails the query.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := ix.Find(cctx, &store.Query{Level: "IMAGE", Identifier: ident(t)}, nop); err == nil {
		t.Error("Find with a cancelled context succeeded")
	}
}

func testLimit(t *testing.T, newIndex func(t *testing.T) store.Index) {
	ix, _ := loaded(t, newIndex)
	for _, tc := range []struct {
		limit     int
		n         int
		truncated bool
	}{
		{0, len(allStudies), false},
		{1, 1, true},
		{3, 3, true},
		{len(allStudies) - 1, len(allStudies) - 1, true},
		{len(allStudies), len(allStudies), false},
		{len(allStudies) + 1, len(allStudies), false},
	} {
		res, trunc := find(t, ix, &store.Query{Level: "STUDY", Limit: tc.limit, Identifier: ident(t, "StudyInstanceUID")})
		if len(res) != tc.n || trunc != tc.truncated {
			t.Errorf("limit %d: %d results, truncated %v; want %d, %v", tc.limit, len(res), trunc, tc.n, tc.truncated)
		}
	}
	res, trunc := find(t, ix, &store.Query{Level: "STUDY", Limit: 1, Identifier: ident(t, "PatientID=PAT002", "StudyInstanceUID")})
	if len(res) != 1 || trunc {
		t.Errorf("limit 1 with one match: %d results, truncated %v", len(res), trunc)
	}
}
