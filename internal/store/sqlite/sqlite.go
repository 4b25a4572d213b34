// Package sqlite is a store.Index in one SQLite file, through the pure-Go
// driver modernc.org/sqlite (no cgo).
//
// # Durability and concurrency
//
// The database runs in WAL mode with synchronous=FULL: when Add returns,
// the instance is on stable storage, so a C-STORE acknowledged after it
// survives a power cut. Writes go through one connection (SQLite has one
// writer at a time; serialising them in Go spares the busy-retry loop) and
// begin IMMEDIATE; reads use a pool of read-only connections that WAL lets
// run beside the writer. busy_timeout covers other processes (a backup
// tool) holding the lock.
//
// # Schema
//
// One table per level of the DICOM information model, linked by foreign
// keys: patient (by Patient ID), study, series, instance, each unique on its
// UID, with indexes on the keys C-FIND is most often asked for (Patient ID,
// folded Patient Name, Study Date, Accession Number) and on the links
// between levels. A study-level query by Patient ID is then two index
// look-ups however many instances the archive holds. Person names are kept
// twice: as received, and folded (store.FoldPN) for case-insensitive
// matching. Table schema_version holds the version of the schema, and Open
// applies the migrations the file lacks.
//
// Every statement is a constant; values are always bound as parameters,
// never written into SQL text.
//
// The package registers the "sqlite" scheme with store.OpenIndex:
// "sqlite:///var/lib/dicomshield/index.db".
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/dicomshield/dicomshield/internal/store"
)

const (
	// busyTimeout is how long a statement waits for a lock held by another
	// process before failing: long enough for a backup or checkpoint, short
	// enough that a stuck peer surfaces as an error, not a hang.
	busyTimeout = 10 * time.Second
	// readConns bounds the read-only connections: queries are CPU-bound on
	// a 2-core machine, and each connection holds its own page cache.
	readConns = 4
	// cacheKiB is each connection's page cache: 32 MiB keeps the indexes of
	// a million-instance archive hot.
	cacheKiB = 32 << 10
)

func init() {
	store.RegisterIndex("sqlite", func(u *url.URL) (store.Index, error) {
		p, err := store.URLPath(u)
		if err != nil {
			return nil, err
		}
		return Open(p)
	})
}

// Index is a store.Index on a SQLite database. It is safe for concurrent
// use.
type Index struct {
	w *sql.DB // one connection, for writes
	r *sql.DB // read-only pool

	stSeries, stStudy, stPatient, stKey             *sql.Stmt
	stInsPatient, stInsStudy, stInsSeries, stInsIns *sql.Stmt

	closeOnce sync.Once
	closeErr  error
}

var _ store.Index = (*Index)(nil)

// Open opens (creating it, mode 0600, when missing) the index database at
// path and brings its schema up to date. A database made by a newer
// version of dicomshield is refused.
func Open(path string) (*Index, error) {
	if path == "" {
		return nil, fmt.Errorf("sqlite: %w: empty path", store.ErrInvalid)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	// Create the file with owner-only permissions; SQLite gives its -wal
	// and -shm files the same mode.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	f.Close()

	ix := &Index{}
	if ix.w, err = sql.Open("sqlite", dsn(abs, "_txlock=immediate")); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	ix.w.SetMaxOpenConns(1)
	ix.w.SetMaxIdleConns(1)
	ix.w.SetConnMaxLifetime(0)
	ix.w.SetConnMaxIdleTime(0)
	ctx := context.Background()
	if err := migrate(ctx, ix.w); err != nil {
		ix.w.Close()
		return nil, err
	}
	if ix.r, err = sql.Open("sqlite", dsn(abs, "_pragma=query_only(1)")); err != nil {
		ix.w.Close()
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	ix.r.SetMaxOpenConns(readConns)
	ix.r.SetMaxIdleConns(readConns)
	if err := ix.prepare(ctx); err != nil {
		ix.Close()
		return nil, err
	}
	return ix, nil
}

// dsn returns the driver's connection string for the database at abs:
// a file: URI (the path escaped, so that no character of it is read as
// URI syntax) with the connection settings.
func dsn(abs string, extra ...string) string {
	params := []string{
		fmt.Sprintf("_pragma=busy_timeout(%d)", busyTimeout.Milliseconds()),
		"_pragma=journal_mode(WAL)",
		"_pragma=synchronous(FULL)",
		"_pragma=foreign_keys(1)",
		fmt.Sprintf("_pragma=cache_size(-%d)", cacheKiB),
		"_pragma=temp_store(MEMORY)",
	}
	params = append(params, extra...)
	return "file:" + (&url.URL{Path: abs}).EscapedPath() + "?" + strings.Join(params, "&")
}

// migrations are the schema changes in order; schema_version holds how
// many have been applied. Never edit a released migration: append one.
var migrations = [][]string{
	1: {
		`CREATE TABLE patient (
			pk          INTEGER PRIMARY KEY,
			patient_id  TEXT NOT NULL UNIQUE,
			name        TEXT NOT NULL,
			name_folded TEXT NOT NULL,
			birth_date  TEXT NOT NULL,
			sex         TEXT NOT NULL
		) STRICT`,
		`CREATE INDEX patient_name ON patient (name_folded)`,
		`CREATE TABLE study (
			pk               INTEGER PRIMARY KEY,
			patient_pk       INTEGER NOT NULL REFERENCES patient (pk),
			study_uid        TEXT NOT NULL UNIQUE,
			study_date       TEXT NOT NULL,
			study_time       TEXT NOT NULL,
			accession        TEXT NOT NULL,
			study_id         TEXT NOT NULL,
			description      TEXT NOT NULL,
			referring        TEXT NOT NULL,
			referring_folded TEXT NOT NULL
		) STRICT`,
		`CREATE INDEX study_patient ON study (patient_pk)`,
		`CREATE INDEX study_date ON study (study_date, study_time)`,
		`CREATE INDEX study_accession ON study (accession)`,
		`CREATE TABLE series (
			pk          INTEGER PRIMARY KEY,
			study_pk    INTEGER NOT NULL REFERENCES study (pk),
			series_uid  TEXT NOT NULL UNIQUE,
			modality    TEXT NOT NULL,
			number      TEXT NOT NULL,
			description TEXT NOT NULL
		) STRICT`,
		`CREATE INDEX series_study ON series (study_pk, modality)`,
		`CREATE TABLE instance (
			pk              INTEGER PRIMARY KEY,
			series_pk       INTEGER NOT NULL REFERENCES series (pk),
			sop_uid         TEXT NOT NULL UNIQUE,
			sop_class       TEXT NOT NULL,
			number          TEXT NOT NULL,
			transfer_syntax TEXT NOT NULL,
			blob_key        TEXT NOT NULL,
			size            INTEGER NOT NULL,
			sender          TEXT NOT NULL,
			received_at     INTEGER NOT NULL
		) STRICT`,
		`CREATE INDEX instance_series ON instance (series_pk, sop_class)`,
		`CREATE INDEX instance_blob ON instance (blob_key)`,
	},
}

// SchemaVersion is the schema version this package writes.
var SchemaVersion = len(migrations) - 1

// migrate applies the missing migrations in one transaction.
func migrate(ctx context.Context, db *sql.DB) (err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	if _, err = tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL) STRICT`); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	var v int
	switch err = tx.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v); {
	case errors.Is(err, sql.ErrNoRows):
		if _, err = tx.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
			return fmt.Errorf("sqlite: migrate: %w", err)
		}
	case err != nil:
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	if v > SchemaVersion {
		err = fmt.Errorf("sqlite: index schema version %d is newer than this program's (%d)", v, SchemaVersion)
		return err
	}
	for n := v + 1; n <= SchemaVersion; n++ {
		for _, stmt := range migrations[n] {
			if _, err = tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("sqlite: migration %d: %w", n, err)
			}
		}
	}
	if _, err = tx.ExecContext(ctx, `UPDATE schema_version SET version = ?`, SchemaVersion); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	return nil
}

// prepare compiles the statements of Add on the write connection.
func (ix *Index) prepare(ctx context.Context) error {
	for _, s := range []struct {
		st  **sql.Stmt
		sql string
	}{
		{&ix.stKey, `SELECT blob_key FROM instance WHERE sop_uid = ?`},
		{&ix.stSeries, `SELECT x.pk, s.study_uid, p.patient_id FROM series x
			JOIN study s ON s.pk = x.study_pk JOIN patient p ON p.pk = s.patient_pk WHERE x.series_uid = ?`},
		{&ix.stStudy, `SELECT s.pk, p.patient_id FROM study s JOIN patient p ON p.pk = s.patient_pk WHERE s.study_uid = ?`},
		{&ix.stPatient, `SELECT pk FROM patient WHERE patient_id = ?`},
		{&ix.stInsPatient, `INSERT INTO patient (patient_id, name, name_folded, birth_date, sex) VALUES (?, ?, ?, ?, ?)`},
		{&ix.stInsStudy, `INSERT INTO study (patient_pk, study_uid, study_date, study_time, accession, study_id,
			description, referring, referring_folded) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&ix.stInsSeries, `INSERT INTO series (study_pk, series_uid, modality, number, description) VALUES (?, ?, ?, ?, ?)`},
		{&ix.stInsIns, `INSERT INTO instance (series_pk, sop_uid, sop_class, number, transfer_syntax, blob_key,
			size, sender, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`},
	} {
		st, err := ix.w.PrepareContext(ctx, s.sql)
		if err != nil {
			return fmt.Errorf("sqlite: prepare: %w", err)
		}
		*s.st = st
	}
	return nil
}

// Close closes the database, after letting SQLite refresh its planner
// statistics. Closing again returns the first Close's result.
func (ix *Index) Close() error {
	ix.closeOnce.Do(func() { ix.closeErr = ix.close() })
	return ix.closeErr
}

func (ix *Index) close() error {
	var errs []error
	if ix.w != nil {
		ix.w.Exec(`PRAGMA optimize`)
		for _, st := range []*sql.Stmt{ix.stKey, ix.stSeries, ix.stStudy, ix.stPatient, ix.stInsPatient, ix.stInsStudy, ix.stInsSeries, ix.stInsIns} {
			if st != nil {
				st.Close()
			}
		}
		errs = append(errs, ix.w.Close())
	}
	if ix.r != nil {
		errs = append(errs, ix.r.Close())
	}
	return errors.Join(errs...)
}

// Add records inst in one IMMEDIATE transaction.
func (ix *Index) Add(ctx context.Context, inst *store.Instance) (err error) {
	if err := checkInstance(inst); err != nil {
		return err
	}
	tx, err := ix.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: add: %w", err)
	}
	if err := ix.addTx(ctx, tx, inst); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: add: %w", err)
	}
	return nil
}

func checkInstance(inst *store.Instance) error {
	if inst == nil {
		return fmt.Errorf("sqlite: add: %w: nil instance", store.ErrInvalid)
	}
	for _, u := range []struct{ name, v string }{
		{"SOPInstanceUID", inst.SOPInstanceUID}, {"SOPClassUID", inst.SOPClassUID},
		{"StudyInstanceUID", inst.StudyInstanceUID}, {"SeriesInstanceUID", inst.SeriesInstanceUID},
	} {
		if !store.ValidUID(u.v) {
			return fmt.Errorf("sqlite: add: %w: %s missing or malformed", store.ErrInvalid, u.name)
		}
	}
	if inst.BlobKey == "" {
		return fmt.Errorf("sqlite: add: %w: no blob key", store.ErrInvalid)
	}
	return nil
}

// addTx records inst inside tx: the instance, and the series, study and
// patient it creates. Existing series and studies must belong to the same
// study and patient as inst says.
func (ix *Index) addTx(ctx context.Context, tx *sql.Tx, inst *store.Instance) error {
	var key string
	switch err := tx.StmtContext(ctx, ix.stKey).QueryRowContext(ctx, inst.SOPInstanceUID).Scan(&key); {
	case err == nil && key == inst.BlobKey:
		return fmt.Errorf("sqlite: add: %w", store.ErrDuplicate)
	case err == nil:
		return fmt.Errorf("sqlite: add: %w: SOP instance stored with other content", store.ErrConflict)
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("sqlite: add: %w", err)
	}

	var seriesPK int64
	var studyUID, patientID string
	switch err := tx.StmtContext(ctx, ix.stSeries).QueryRowContext(ctx, inst.SeriesInstanceUID).Scan(&seriesPK, &studyUID, &patientID); {
	case err == nil:
		if studyUID != inst.StudyInstanceUID {
			return fmt.Errorf("sqlite: add: %w: series belongs to another study", store.ErrConflict)
		}
		if patientID != inst.PatientID {
			return fmt.Errorf("sqlite: add: %w: study belongs to another patient ID", store.ErrConflict)
		}
	case errors.Is(err, sql.ErrNoRows):
		studyPK, err := ix.study(ctx, tx, inst)
		if err != nil {
			return err
		}
		res, err := tx.StmtContext(ctx, ix.stInsSeries).ExecContext(ctx, studyPK, inst.SeriesInstanceUID,
			inst.Modality, inst.SeriesNumber, inst.SeriesDescription)
		if err != nil {
			return fmt.Errorf("sqlite: add series: %w", err)
		}
		if seriesPK, err = res.LastInsertId(); err != nil {
			return fmt.Errorf("sqlite: add series: %w", err)
		}
	default:
		return fmt.Errorf("sqlite: add: %w", err)
	}

	at := inst.ReceivedAt
	if at.IsZero() {
		at = time.Now()
	}
	if _, err := tx.StmtContext(ctx, ix.stInsIns).ExecContext(ctx, seriesPK, inst.SOPInstanceUID, inst.SOPClassUID,
		inst.InstanceNumber, inst.TransferSyntaxUID, inst.BlobKey, inst.Size, inst.Sender, at.UnixNano()); err != nil {
		return fmt.Errorf("sqlite: add instance: %w", err)
	}
	return nil
}

// study returns the primary key of inst's study, creating it (and its
// patient) when missing.
func (ix *Index) study(ctx context.Context, tx *sql.Tx, inst *store.Instance) (int64, error) {
	var studyPK int64
	var patientID string
	err := tx.StmtContext(ctx, ix.stStudy).QueryRowContext(ctx, inst.StudyInstanceUID).Scan(&studyPK, &patientID)
	switch {
	case err == nil:
		if patientID != inst.PatientID {
			return 0, fmt.Errorf("sqlite: add: %w: study belongs to another patient ID", store.ErrConflict)
		}
		return studyPK, nil
	case !errors.Is(err, sql.ErrNoRows):
		return 0, fmt.Errorf("sqlite: add: %w", err)
	}
	var patientPK int64
	err = tx.StmtContext(ctx, ix.stPatient).QueryRowContext(ctx, inst.PatientID).Scan(&patientPK)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		res, err := tx.StmtContext(ctx, ix.stInsPatient).ExecContext(ctx, inst.PatientID, inst.PatientName,
			store.FoldPN(inst.PatientName), inst.PatientBirthDate, inst.PatientSex)
		if err != nil {
			return 0, fmt.Errorf("sqlite: add patient: %w", err)
		}
		if patientPK, err = res.LastInsertId(); err != nil {
			return 0, fmt.Errorf("sqlite: add patient: %w", err)
		}
	case err != nil:
		return 0, fmt.Errorf("sqlite: add: %w", err)
	}
	res, err := tx.StmtContext(ctx, ix.stInsStudy).ExecContext(ctx, patientPK, inst.StudyInstanceUID, inst.StudyDate,
		inst.StudyTime, inst.AccessionNumber, inst.StudyID, inst.StudyDescription, inst.ReferringPhysicianName,
		store.FoldPN(inst.ReferringPhysicianName))
	if err != nil {
		return 0, fmt.Errorf("sqlite: add study: %w", err)
	}
	if studyPK, err = res.LastInsertId(); err != nil {
		return 0, fmt.Errorf("sqlite: add study: %w", err)
	}
	return studyPK, nil
}

// instanceColumns selects a whole store.Instance (see scanInstance) from
// the four tables joined as i, x, s, p.
const instanceColumns = `p.patient_id, p.name, p.birth_date, p.sex,
	s.study_uid, s.study_date, s.study_time, s.accession, s.study_id, s.description, s.referring, ` + modalitiesExpr + `,
	x.series_uid, x.modality, x.number, x.description,
	i.sop_uid, i.sop_class, i.number, i.transfer_syntax, i.blob_key, i.size, i.sender, i.received_at`

// instanceFrom joins the four levels.
const instanceFrom = ` FROM instance i JOIN series x ON x.pk = i.series_pk
	JOIN study s ON s.pk = x.study_pk JOIN patient p ON p.pk = s.patient_pk`

func scanInstance(rows interface{ Scan(...any) error }) (*store.Instance, error) {
	in := &store.Instance{}
	var mods sql.NullString
	var at int64
	err := rows.Scan(&in.PatientID, &in.PatientName, &in.PatientBirthDate, &in.PatientSex,
		&in.StudyInstanceUID, &in.StudyDate, &in.StudyTime, &in.AccessionNumber, &in.StudyID, &in.StudyDescription,
		&in.ReferringPhysicianName, &mods,
		&in.SeriesInstanceUID, &in.Modality, &in.SeriesNumber, &in.SeriesDescription,
		&in.SOPInstanceUID, &in.SOPClassUID, &in.InstanceNumber, &in.TransferSyntaxUID, &in.BlobKey, &in.Size,
		&in.Sender, &at)
	if err != nil {
		return nil, err
	}
	in.ModalitiesInStudy = mods.String
	in.ReceivedAt = time.Unix(0, at).UTC()
	return in, nil
}

// Get returns one instance by SOP Instance UID.
func (ix *Index) Get(ctx context.Context, sopInstanceUID string) (*store.Instance, error) {
	row := ix.r.QueryRowContext(ctx, `SELECT `+instanceColumns+instanceFrom+` WHERE i.sop_uid = ?`, sopInstanceUID)
	in, err := scanInstance(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: get: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: get: %w", err)
	}
	return in, nil
}

// BlobKeys calls fn with each distinct blob key, in key order.
func (ix *Index) BlobKeys(ctx context.Context, fn func(key string) error) error {
	rows, err := ix.r.QueryContext(ctx, `SELECT DISTINCT blob_key FROM instance ORDER BY blob_key`)
	if err != nil {
		return fmt.Errorf("sqlite: blob keys: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return fmt.Errorf("sqlite: blob keys: %w", err)
		}
		if err := fn(k); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: blob keys: %w", err)
	}
	return nil
}
