package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/store"
)

// column is how a store.Field is read and matched. All of it is constant
// SQL over the aliases p (patient), s (study), x (series), i (instance).
type column struct {
	// expr is the value.
	expr string
	// folded is the case-folded copy matched for PN.
	folded string
	// exists and col, for the aggregates: a match is
	// "EXISTS (SELECT 1 " + exists + " AND <condition on col>)".
	exists, col string
}

// modalitiesExpr lists a study's distinct modalities, '\' (char 92)
// separated, in order.
const modalitiesExpr = `(SELECT group_concat(m, char(92)) FROM (SELECT DISTINCT x2.modality AS m FROM series x2
	WHERE x2.study_pk = s.pk AND x2.modality <> '' ORDER BY 1))`

var columns = map[store.Field]column{
	store.FieldPatientName:      {expr: "p.name", folded: "p.name_folded"},
	store.FieldPatientID:        {expr: "p.patient_id"},
	store.FieldPatientBirthDate: {expr: "p.birth_date"},
	store.FieldPatientSex:       {expr: "p.sex"},
	store.FieldNumberOfPatientRelatedStudies: {expr: `(SELECT count(*) FROM study s2
		WHERE s2.patient_pk = p.pk)`},
	store.FieldNumberOfPatientRelatedSeries: {expr: `(SELECT count(*) FROM study s2 JOIN series x2 ON x2.study_pk = s2.pk
		WHERE s2.patient_pk = p.pk)`},
	store.FieldNumberOfPatientRelatedInstances: {expr: `(SELECT count(*) FROM study s2 JOIN series x2 ON x2.study_pk = s2.pk
		JOIN instance i2 ON i2.series_pk = x2.pk WHERE s2.patient_pk = p.pk)`},

	store.FieldStudyInstanceUID:       {expr: "s.study_uid"},
	store.FieldStudyDate:              {expr: "s.study_date"},
	store.FieldStudyTime:              {expr: "s.study_time"},
	store.FieldAccessionNumber:        {expr: "s.accession"},
	store.FieldStudyID:                {expr: "s.study_id"},
	store.FieldStudyDescription:       {expr: "s.description"},
	store.FieldReferringPhysicianName: {expr: "s.referring", folded: "s.referring_folded"},
	store.FieldModalitiesInStudy: {expr: modalitiesExpr,
		exists: "FROM series x2 WHERE x2.study_pk = s.pk", col: "x2.modality"},
	store.FieldSOPClassesInStudy: {expr: `(SELECT group_concat(c, char(92)) FROM (SELECT DISTINCT i2.sop_class AS c
		FROM series x2 JOIN instance i2 ON i2.series_pk = x2.pk WHERE x2.study_pk = s.pk ORDER BY 1))`,
		exists: "FROM series x2 JOIN instance i2 ON i2.series_pk = x2.pk WHERE x2.study_pk = s.pk", col: "i2.sop_class"},
	store.FieldNumberOfStudyRelatedSeries: {expr: `(SELECT count(*) FROM series x2 WHERE x2.study_pk = s.pk)`},
	store.FieldNumberOfStudyRelatedInstances: {expr: `(SELECT count(*) FROM series x2 JOIN instance i2 ON i2.series_pk = x2.pk
		WHERE x2.study_pk = s.pk)`},

	store.FieldSeriesInstanceUID:              {expr: "x.series_uid"},
	store.FieldModality:                       {expr: "x.modality"},
	store.FieldSeriesNumber:                   {expr: "x.number"},
	store.FieldSeriesDescription:              {expr: "x.description"},
	store.FieldNumberOfSeriesRelatedInstances: {expr: `(SELECT count(*) FROM instance i2 WHERE i2.series_pk = x.pk)`},

	store.FieldSOPInstanceUID:             {expr: "i.sop_uid"},
	store.FieldSOPClassUID:                {expr: "i.sop_class"},
	store.FieldInstanceNumber:             {expr: "i.number"},
	store.FieldAvailableTransferSyntaxUID: {expr: "i.transfer_syntax"},
}

// levelFrom is the FROM clause and row order of each level.
var levelFrom = [...]struct{ from, order string }{
	store.LevelPatient: {` FROM patient p`, ` ORDER BY p.pk`},
	store.LevelStudy:   {` FROM study s JOIN patient p ON p.pk = s.patient_pk`, ` ORDER BY s.pk`},
	store.LevelSeries: {` FROM series x JOIN study s ON s.pk = x.study_pk
		JOIN patient p ON p.pk = s.patient_pk`, ` ORDER BY x.pk`},
	store.LevelImage: {instanceFrom, ` ORDER BY i.pk`},
}

// where turns the plan's matches into a WHERE clause (or "") and its
// arguments. Values only ever become arguments.
func where(p *store.Plan) (string, []any, error) {
	var conds []string
	var args []any
	for i := range p.Matches {
		m := &p.Matches[i]
		c, ok := columns[m.Attr.Field]
		if !ok {
			return "", nil, fmt.Errorf("sqlite: %w: no column for %s", store.ErrInvalid, m.Attr.Keyword)
		}
		col := c.expr
		if m.Folded && c.folded != "" {
			col = c.folded
		}
		if c.exists != "" {
			col = c.col
		}
		cond, a, err := condition(col, m)
		if err != nil {
			return "", nil, err
		}
		if c.exists != "" {
			if m.Kind == store.MatchEmpty {
				// No entity below has a value.
				cond = "NOT EXISTS (SELECT 1 " + c.exists + " AND " + c.col + " <> '')"
			} else {
				cond = "EXISTS (SELECT 1 " + c.exists + " AND " + cond + ")"
			}
		}
		conds = append(conds, cond)
		args = append(args, a...)
	}
	if len(conds) == 0 {
		return "", nil, nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args, nil
}

// condition is the SQL test of one match on col.
func condition(col string, m *store.Match) (string, []any, error) {
	switch m.Kind {
	case store.MatchSingle:
		if len(m.Values) == 1 {
			return col + " = ?", []any{m.Values[0]}, nil
		}
		// A list of any length as one parameter: a JSON array, unpacked by
		// json_each.
		js, err := json.Marshal(m.Values)
		if err != nil {
			return "", nil, fmt.Errorf("sqlite: %w", err)
		}
		return col + " IN (SELECT value FROM json_each(?))", []any{string(js)}, nil
	case store.MatchWildcard:
		parts := make([]string, len(m.Values))
		args := make([]any, len(m.Values))
		for i, v := range m.Values {
			parts[i] = col + " GLOB ?"
			args[i] = globPattern(v)
		}
		if len(parts) == 1 {
			return parts[0], args, nil
		}
		return "(" + strings.Join(parts, " OR ") + ")", args, nil
	case store.MatchRange:
		cond := col + " <> ''"
		var args []any
		if m.Lo != "" {
			cond += " AND " + col + " >= ?"
			args = append(args, m.Lo)
		}
		if m.Hi != "" {
			cond += " AND " + col + " <= ?"
			args = append(args, m.Hi)
		}
		return "(" + cond + ")", args, nil
	case store.MatchEmpty:
		return col + " = ''", nil, nil
	}
	return "", nil, fmt.Errorf("sqlite: %w: match kind %d", store.ErrInvalid, m.Kind)
}

// globPattern turns a DICOM wild card pattern into a GLOB pattern. GLOB
// rather than LIKE: GLOB is case-sensitive, as C.2.2.2.4 requires (SQLite's
// LIKE folds ASCII case unless the deprecated case_sensitive_like pragma is
// set), and its '*' and '?' (one character, not one byte) are DICOM's. The
// one other character GLOB gives a meaning to is '[', which becomes "[[]"
// (a set holding only '['); '%', '_', '\' and quotes are plain characters
// in GLOB, and the pattern is a bound parameter in any case.
func globPattern(p string) string {
	if !strings.Contains(p, "[") {
		return p
	}
	return strings.ReplaceAll(p, "[", "[[]")
}

// Find runs a C-FIND query; see store.Index.
func (ix *Index) Find(ctx context.Context, q *store.Query, fn func(*dicom.DataSet) error) (bool, error) {
	plan, err := store.Compile(q)
	if err != nil {
		return false, fmt.Errorf("sqlite: find: %w", err)
	}
	query, args, err := findSQL(plan)
	if err != nil {
		return false, fmt.Errorf("sqlite: find: %w", err)
	}
	rows, err := ix.r.QueryContext(ctx, query, args...)
	if err != nil {
		return false, fmt.Errorf("sqlite: find: %w", err)
	}
	defer rows.Close()

	fields := plan.Fields()
	ncols := max(len(fields), 1)
	vals := make([]sql.NullString, ncols)
	ptrs := make([]any, ncols)
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	pos := make(map[store.Field]int, len(fields))
	for i, f := range fields {
		pos[f] = i
	}
	value := func(f store.Field) string { return vals[pos[f]].String }
	n := 0
	for rows.Next() {
		if plan.Limit > 0 && n == plan.Limit {
			return true, nil
		}
		if err := rows.Scan(ptrs...); err != nil {
			return false, fmt.Errorf("sqlite: find: %w", err)
		}
		if err := fn(plan.Response(value)); err != nil {
			return false, err
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("sqlite: find: %w", err)
	}
	return false, nil
}

// findSQL builds the query of a plan: the requested fields (or a constant
// when none is), the level's tables, the matches, the level's order and,
// with a limit, one row more than it so that truncation shows.
func findSQL(plan *store.Plan) (string, []any, error) {
	fields := plan.Fields()
	cols := make([]string, 0, len(fields)+1)
	for _, f := range fields {
		cols = append(cols, columns[f].expr)
	}
	if len(cols) == 0 {
		cols = append(cols, "1")
	}
	cond, args, err := where(plan)
	if err != nil {
		return "", nil, err
	}
	lf := levelFrom[plan.Level]
	query := "SELECT " + strings.Join(cols, ", ") + lf.from + cond + lf.order
	if plan.Limit > 0 {
		query += " LIMIT ?"
		args = append(args, plan.Limit+1)
	}
	return query, args, nil
}

// Instances lists the instances a retrieve identifier selects.
func (ix *Index) Instances(ctx context.Context, q *store.Query) ([]*store.Instance, error) {
	plan, err := store.CompileRetrieve(q)
	if err != nil {
		return nil, fmt.Errorf("sqlite: instances: %w", err)
	}
	cond, args, err := where(plan)
	if err != nil {
		return nil, fmt.Errorf("sqlite: instances: %w", err)
	}
	rows, err := ix.r.QueryContext(ctx, `SELECT `+instanceColumns+instanceFrom+cond+` ORDER BY i.pk`, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: instances: %w", err)
	}
	defer rows.Close()
	var out []*store.Instance
	for rows.Next() {
		in, err := scanInstance(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: instances: %w", err)
		}
		out = append(out, in)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: instances: %w", err)
	}
	return out, nil
}
