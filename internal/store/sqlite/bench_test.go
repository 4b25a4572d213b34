package sqlite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/store"
)

// Shape of the generated archive: per patient, studiesPer studies of
// seriesPer series of instancesPer instances (100 instances a patient).
const (
	studiesPer   = 5
	seriesPer    = 4
	instancesPer = 5
	perPatient   = studiesPer * seriesPer * instancesPer
	// batchPatients is how many patients go into one transaction.
	batchPatients = 100
)

// genPatient returns the instances of patient p.
func genPatient(p int, at time.Time) []*store.Instance {
	out := make([]*store.Instance, 0, perPatient)
	mods := []string{"CT", "MR", "CR", "US"}
	for s := range studiesPer {
		study := fmt.Sprintf("1.2.826.0.1.3680043.9.%d.%d", p, s)
		for se := range seriesPer {
			series := fmt.Sprintf("%s.%d", study, se)
			for i := range instancesPer {
				sop := fmt.Sprintf("%s.%d", series, i)
				out = append(out, &store.Instance{
					PatientID: fmt.Sprintf("P%07d", p), PatientName: fmt.Sprintf("Name%d^Given%d", p, p%97),
					PatientBirthDate: fmt.Sprintf("19%02d%02d%02d", p%100, 1+p%12, 1+p%28), PatientSex: "O",
					StudyInstanceUID: study, StudyDate: fmt.Sprintf("20%02d%02d%02d", 10+s, 1+p%12, 1+p%28),
					StudyTime: "101500", AccessionNumber: fmt.Sprintf("A%d-%d", p, s), StudyID: fmt.Sprint(s),
					StudyDescription: "STUDY " + mods[s%len(mods)], ReferringPhysicianName: "Ref^Doc",
					SeriesInstanceUID: series, Modality: mods[(s+se)%len(mods)], SeriesNumber: fmt.Sprint(se + 1),
					SeriesDescription: "SERIES", SOPInstanceUID: sop, SOPClassUID: "1.2.840.10008.5.1.4.1.1.2",
					InstanceNumber: fmt.Sprint(i + 1), TransferSyntaxUID: "1.2.840.10008.1.2.1",
					BlobKey: fmt.Sprintf("%064x", uint64(p)<<16|uint64(s*100+se*10+i)), Size: 524288,
					Sender: "BENCH", ReceivedAt: at,
				})
			}
		}
	}
	return out
}

// load fills ix with patients patients, batchPatients to a transaction
// (the way a bulk import, not a live C-STORE, would), through the same
// addTx as Add.
func load(tb testing.TB, ix *Index, patients int) {
	tb.Helper()
	ctx := context.Background()
	at := time.Now()
	for first := 0; first < patients; first += batchPatients {
		tx, err := ix.w.BeginTx(ctx, nil)
		if err != nil {
			tb.Fatal(err)
		}
		for p := first; p < min(first+batchPatients, patients); p++ {
			for _, in := range genPatient(p, at) {
				if err := ix.addTx(ctx, tx, in, store.Guard{}); err != nil {
					tb.Fatal(err)
				}
			}
		}
		if err := tx.Commit(); err != nil {
			tb.Fatal(err)
		}
	}
}

// fill generates the archive of load (patients x 100 instances, same
// identifiers) inside SQLite with one statement a table: much faster than
// load, especially under the race detector, for tests that need volume
// but not the Add path.
func fill(tb testing.TB, ix *Index, patients int) {
	tb.Helper()
	const seq = `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?) `
	for _, st := range []struct {
		sql  string
		rows int
	}{
		{seq + `INSERT INTO patient (pk, patient_id, name, name_folded, birth_date, sex)
			SELECT i + 1, printf('P%07d', i), printf('Name%d^Given%d', i, i % 97), printf('NAME%d^GIVEN%d', i, i % 97),
			'19700101', 'O' FROM n`, patients},
		{seq + `INSERT INTO study (pk, patient_pk, study_uid, study_date, study_time, accession, study_id, description,
			referring, referring_folded)
			SELECT i + 1, i / 5 + 1, printf('1.2.826.0.1.3680043.9.%d.%d', i / 5, i % 5), printf('20%02d0101', 10 + i % 5),
			'101500', printf('A%d-%d', i / 5, i % 5), '', 'STUDY', '', '' FROM n`, patients * studiesPer},
		{seq + `INSERT INTO series (pk, study_pk, series_uid, modality, number, description)
			SELECT i + 1, i / 4 + 1, printf('1.2.826.0.1.3680043.9.%d.%d.%d', i / 20, (i / 4) % 5, i % 4),
			CASE (i / 4 + i) % 4 WHEN 0 THEN 'CT' WHEN 1 THEN 'MR' WHEN 2 THEN 'CR' ELSE 'US' END, '', '' FROM n`,
			patients * studiesPer * seriesPer},
		{seq + `INSERT INTO instance (pk, series_pk, sop_uid, sop_class, number, transfer_syntax, blob_key, size, sender,
			received_at)
			SELECT i + 1, i / 5 + 1, printf('1.2.826.0.1.3680043.9.%d.%d.%d.%d', i / 100, (i / 20) % 5, (i / 5) % 4, i % 5),
			'1.2.840.10008.5.1.4.1.1.2', '', '', printf('%064d', i), 0, '', 0 FROM n`, patients * perPatient},
	} {
		if _, err := ix.w.Exec(st.sql, st.rows); err != nil {
			tb.Fatal(err)
		}
	}
}

// studyQuery is a typical study-level C-FIND by Patient ID, asking for the
// keys a viewer's study list shows.
func studyQuery(patientID string) *store.Query {
	id := &dicom.DataSet{}
	id.Set(dicom.NewText(dicom.TagPatientID, dicom.LO, patientID))
	for _, k := range []struct {
		tag dicom.Tag
		vr  dicom.VR
	}{
		{dicom.TagPatientName, dicom.PN}, {store.TagPatientBirthDate, dicom.DA}, {dicom.TagStudyInstanceUID, dicom.UI},
		{store.TagStudyDate, dicom.DA}, {store.TagStudyTime, dicom.TM}, {store.TagAccessionNumber, dicom.SH},
		{store.TagStudyDescription, dicom.LO}, {store.TagModalitiesInStudy, dicom.CS},
		{dicom.NewTag(0x0020, 0x1206), dicom.IS}, {dicom.NewTag(0x0020, 0x1208), dicom.IS},
	} {
		id.Set(dicom.Element{Tag: k.tag, VR: k.vr})
	}
	return &store.Query{Level: "STUDY", Model: "STUDY", Identifier: id}
}

// BenchmarkFindStudyByPatientID: study-level C-FIND by Patient ID in an
// archive of 1,000,000 instances (10,000 patients x 5 studies x 4 series x
// 5 instances; 100,000 with -short). Building the archive is timed apart
// and reported as setup-s and inserts/s; the metric that matters is p50-ms
// (and p99-ms), the latency of one query returning 5 studies with their
// counts and modalities.
func BenchmarkFindStudyByPatientID(b *testing.B) {
	patients := 10_000
	if testing.Short() {
		patients = 1_000
	}
	ix, err := Open(filepath.Join(b.TempDir(), "index.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer ix.Close()
	start := time.Now()
	load(b, ix, patients)
	setup := time.Since(start)
	n := patients * perPatient
	b.Logf("setup: %d instances in %v (%.0f instances/s)", n, setup.Round(time.Millisecond), float64(n)/setup.Seconds())
	if _, err := ix.w.Exec(`ANALYZE`); err != nil {
		b.Fatal(err)
	}
	var pages, pageSize int64
	ix.r.QueryRow(`PRAGMA page_count`).Scan(&pages)
	ix.r.QueryRow(`PRAGMA page_size`).Scan(&pageSize)
	b.Logf("database: %.0f MiB", float64(pages*pageSize)/(1<<20))

	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	var lat []time.Duration
	for b.Loop() {
		q := studyQuery(fmt.Sprintf("P%07d", rng.IntN(patients)))
		t0 := time.Now()
		got := 0
		_, err := ix.Find(ctx, q, func(ds *dicom.DataSet) error {
			got++
			if ds.String(dicom.NewTag(0x0020, 0x1208)) != fmt.Sprint(seriesPer*instancesPer) {
				return fmt.Errorf("NumberOfStudyRelatedInstances %q", ds.String(dicom.NewTag(0x0020, 0x1208)))
			}
			return nil
		})
		lat = append(lat, time.Since(t0))
		if err != nil {
			b.Fatal(err)
		}
		if got != studiesPer {
			b.Fatalf("%d studies, want %d", got, studiesPer)
		}
	}
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
	b.ReportMetric(setup.Seconds(), "setup-s")
	b.ReportMetric(float64(n)/setup.Seconds(), "inserts/s")
}

// TestQueryPlans: the frequent queries are answered from indexes, never by
// scanning a level's table.
func TestQueryPlans(t *testing.T) {
	ix, err := Open(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	fill(t, ix, 300)
	key := func(tag dicom.Tag, vr dicom.VR, v string) *store.Query {
		q := studyQuery("")
		q.Identifier.Set(dicom.NewText(tag, vr, v))
		return q
	}
	queries := map[string]*store.Query{
		"study by patient ID":       studyQuery("P0000007"),
		"study by patient name":     key(dicom.TagPatientName, dicom.PN, "Name7^Given7"),
		"study by name prefix":      key(dicom.TagPatientName, dicom.PN, "NAME7*"),
		"study by accession":        key(store.TagAccessionNumber, dicom.SH, "A7-1"),
		"study by date":             key(store.TagStudyDate, dicom.DA, "20110101-20110301"),
		"study by UID list":         key(dicom.TagStudyInstanceUID, dicom.UI, `1.2.826.0.1.3680043.9.7.1\1.2.826.0.1.3680043.9.8.1`),
		"study by PID and modality": key(store.TagModalitiesInStudy, dicom.CS, "CT"),
	}
	queries["study by PID and modality"].Identifier.Set(dicom.NewText(dicom.TagPatientID, dicom.LO, "P0000007"))
	// Fresh (no statistics), then after ANALYZE (PRAGMA optimize runs it
	// on Close).
	checkPlans(t, ix, "fresh", queries)
	if _, err := ix.w.Exec(`ANALYZE`); err != nil {
		t.Fatal(err)
	}
	checkPlans(t, ix, "analyzed", queries)
}

func checkPlans(t *testing.T, ix *Index, phase string, queries map[string]*store.Query) {
	for name, q := range queries {
		plan, err := store.Compile(q)
		if err != nil {
			t.Fatal(err)
		}
		query, args, err := findSQL(plan)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := ix.r.Query("EXPLAIN QUERY PLAN "+query, args...)
		if err != nil {
			t.Fatal(err)
		}
		var steps []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			rows.Scan(&id, &parent, &notused, &detail)
			steps = append(steps, detail)
		}
		rows.Close()
		for _, s := range steps {
			// A SCAN of a table (not of json_each) reads every row.
			if strings.HasPrefix(s, "SCAN ") && !strings.HasPrefix(s, "SCAN (subquery") && !strings.Contains(s, "json_each") && !strings.Contains(s, "COVERING INDEX") {
				t.Errorf("%s, %s: full scan: %q\nplan: %q", phase, name, s, steps)
			}
		}
	}
}

// BenchmarkAdd: one C-STORE's index write, its own synchronous=FULL
// transaction, into an archive that already holds 10,000 instances.
func BenchmarkAdd(b *testing.B) {
	ix, err := Open(filepath.Join(b.TempDir(), "index.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer ix.Close()
	load(b, ix, 100)
	ctx := context.Background()
	p := 100
	var pending []*store.Instance
	for b.Loop() {
		if len(pending) == 0 {
			pending = genPatient(p, time.Now())
			p++
		}
		if err := ix.Add(ctx, pending[0], store.Guard{}); err != nil {
			b.Fatal(err)
		}
		pending = pending[1:]
	}
}

// BenchmarkAddParallel: Adds from several senders at once (each its own
// patient), what group commit is for; compare with BenchmarkAdd.
func BenchmarkAddParallel(b *testing.B) {
	ix, err := Open(filepath.Join(b.TempDir(), "index.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer ix.Close()
	load(b, ix, 100)
	ctx := context.Background()
	var next atomic.Int64
	next.Store(1_000_000)
	b.SetParallelism(2) // 2 x GOMAXPROCS senders
	b.RunParallel(func(pb *testing.PB) {
		var pending []*store.Instance
		for pb.Next() {
			if len(pending) == 0 {
				pending = genPatient(int(next.Add(1)), time.Now())
			}
			if err := ix.Add(ctx, pending[0], store.Guard{}); err != nil {
				b.Error(err)
				return
			}
			pending = pending[1:]
		}
	})
}
