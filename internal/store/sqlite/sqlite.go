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
// Schema 2 adds the tamper protection: each study and series records the
// sender that created it, each series when it last received an instance,
// and table ledger holds the hash chain (store.LedgerEntry), one row per
// instance, written in Add's transaction. Triggers refuse every UPDATE and
// DELETE of the ledger and any INSERT that does not follow its head; they
// stop accidents and casual edits, and the hash chain makes the rest
// visible to store.Verify.
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
	"database/sql/driver"
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
	stTouchSeries, stHead, stInsLedger              *sql.Stmt

	// Group commit (Add): queue holds the Adds waiting, and whoever
	// holds writer (capacity 1) commits them.
	gmu    sync.Mutex
	queue  []*pendingAdd
	writer chan struct{}

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

	ix := &Index{writer: make(chan struct{}, 1)}
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
	// 2: tamper protection. Each study and series remembers the sender
	// that created it and each series when it last received an instance
	// (taken from the instances already stored); the ledger is the
	// append-only hash chain over everything stored (see
	// store.LedgerEntry), which the triggers keep append-only and
	// backfillLedger fills with the instances already stored.
	2: {
		`ALTER TABLE study ADD COLUMN creator TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE series ADD COLUMN creator TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE series ADD COLUMN last_at INTEGER NOT NULL DEFAULT 0`,
		`UPDATE series SET
			creator = coalesce((SELECT i.sender FROM instance i WHERE i.series_pk = series.pk ORDER BY i.pk LIMIT 1), ''),
			last_at = coalesce((SELECT max(i.received_at) FROM instance i WHERE i.series_pk = series.pk), 0)`,
		`UPDATE study SET creator = coalesce((SELECT i.sender FROM instance i JOIN series x ON x.pk = i.series_pk
			WHERE x.study_pk = study.pk ORDER BY i.pk LIMIT 1), '')`,
		`CREATE TABLE ledger (
			seq      INTEGER PRIMARY KEY,
			at       INTEGER NOT NULL,
			peer     TEXT NOT NULL,
			sop_uid  TEXT NOT NULL,
			blob_key TEXT NOT NULL,
			prev     TEXT NOT NULL,
			hash     TEXT NOT NULL
		) STRICT`,
		`CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
			BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END`,
		`CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
			BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END`,
		// An insert must follow the head: INSERT OR REPLACE would
		// otherwise overwrite an entry without firing the DELETE trigger.
		`CREATE TRIGGER ledger_append_at_head BEFORE INSERT ON ledger
			WHEN NEW.seq IS NOT coalesce((SELECT max(seq) FROM ledger), 0) + 1
				OR NEW.prev IS NOT coalesce((SELECT hash FROM ledger ORDER BY seq DESC LIMIT 1), '` + zeros64 + `')
			BEGIN SELECT RAISE(ABORT, 'ledger is append-only: an entry must follow the head'); END`,
	},
}

// migrationSteps run in Go after a migration's statements, in the same
// transaction, for what SQL alone cannot do.
var migrationSteps = map[int]func(ctx context.Context, tx *sql.Tx) error{
	2: backfillLedger,
}

// backfillLedger chains the instances an index of schema 1 holds, in the
// order they were added, each at its received time and sender.
func backfillLedger(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT received_at, sender, sop_uid, blob_key FROM instance ORDER BY pk`)
	if err != nil {
		return err
	}
	var entries []store.LedgerEntry
	for rows.Next() {
		var e store.LedgerEntry
		var at int64
		if err := rows.Scan(&at, &e.Peer, &e.SOPInstanceUID, &e.BlobKey); err != nil {
			rows.Close()
			return err
		}
		e.Time = time.Unix(0, at).UTC()
		entries = append(entries, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	prev := store.LedgerGenesis
	for i := range entries {
		e := &entries[i]
		e.Seq, e.Prev = int64(i+1), prev
		if !store.ValidLedgerField(e.Peer) {
			// A sender with a control character cannot be chained
			// unambiguously; schema 1 never validated it.
			e.Peer = strings.Map(func(r rune) rune {
				if r < 0x20 || r == 0x7f {
					return '?'
				}
				return r
			}, e.Peer)
		}
		e.Hash = e.ComputeHash()
		if _, err := tx.ExecContext(ctx, insLedger, e.Seq, e.Time.UnixNano(), e.Peer, e.SOPInstanceUID, e.BlobKey, e.Prev, e.Hash); err != nil {
			return err
		}
		prev = e.Hash
	}
	return nil
}

// zeros64 is store.LedgerGenesis, as a constant for the schema.
const zeros64 = "0000000000000000000000000000000000000000000000000000000000000000"

// insLedger appends one ledger entry.
const insLedger = `INSERT INTO ledger (seq, at, peer, sop_uid, blob_key, prev, hash) VALUES (?, ?, ?, ?, ?, ?, ?)`

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
		if step := migrationSteps[n]; step != nil {
			if err = step(ctx, tx); err != nil {
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

// The lookups of a new instance's SOP Instance UID, series and study, by
// Add (prepared on the write connection) and by Precheck (on the read
// pool).
const (
	selKey    = `SELECT blob_key FROM instance WHERE sop_uid = ?`
	selSeries = `SELECT x.pk, s.study_uid, p.patient_id, s.creator, x.creator, x.last_at FROM series x
			JOIN study s ON s.pk = x.study_pk JOIN patient p ON p.pk = s.patient_pk WHERE x.series_uid = ?`
	selStudy = `SELECT s.pk, p.patient_id, s.creator FROM study s JOIN patient p ON p.pk = s.patient_pk WHERE s.study_uid = ?`
)

// prepare compiles the statements of Add on the write connection.
func (ix *Index) prepare(ctx context.Context) error {
	for _, s := range []struct {
		st  **sql.Stmt
		sql string
	}{
		{&ix.stKey, selKey},
		{&ix.stSeries, selSeries},
		{&ix.stStudy, selStudy},
		{&ix.stPatient, `SELECT pk FROM patient WHERE patient_id = ?`},
		{&ix.stInsPatient, `INSERT INTO patient (patient_id, name, name_folded, birth_date, sex) VALUES (?, ?, ?, ?, ?)`},
		{&ix.stInsStudy, `INSERT INTO study (patient_pk, study_uid, study_date, study_time, accession, study_id,
			description, referring, referring_folded, creator) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&ix.stInsSeries, `INSERT INTO series (study_pk, series_uid, modality, number, description, creator, last_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`},
		{&ix.stTouchSeries, `UPDATE series SET last_at = max(last_at, ?) WHERE pk = ?`},
		{&ix.stHead, `SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1`},
		{&ix.stInsLedger, insLedger},
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
		for _, st := range []*sql.Stmt{ix.stKey, ix.stSeries, ix.stStudy, ix.stPatient, ix.stInsPatient, ix.stInsStudy, ix.stInsSeries, ix.stInsIns,
			ix.stTouchSeries, ix.stHead, ix.stInsLedger} {
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

// Add records inst and its ledger entry, durably, before it returns.
//
// Adds from concurrent callers are committed together (group commit):
// the caller that finds the writer free commits every Add waiting at that
// moment in one IMMEDIATE transaction, each inside its own savepoint so a
// refused or failed instance is rolled back alone. One WAL sync then
// covers the whole group instead of one sync per instance, which is what
// bounds ingest from several senders at once. A lone caller commits alone,
// as before: batching never waits for company.
func (ix *Index) Add(ctx context.Context, inst *store.Instance, g store.Guard) (err error) {
	if err := checkInstance(inst); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sqlite: add: %w", err)
	}
	p := &pendingAdd{ctx: ctx, inst: inst, g: g, done: make(chan struct{})}
	ix.gmu.Lock()
	ix.queue = append(ix.queue, p)
	ix.gmu.Unlock()
	for {
		select {
		case <-p.done:
			return p.err
		case ix.writer <- struct{}{}:
		}
		// This caller holds the writer: commit what is waiting (its own
		// Add among them, unless an earlier holder already took it).
		ix.gmu.Lock()
		batch := ix.queue
		if len(batch) > maxGroup {
			batch = batch[:maxGroup:maxGroup]
		}
		ix.queue = ix.queue[len(batch):]
		ix.gmu.Unlock()
		ix.commitGroup(batch)
		<-ix.writer
		select {
		case <-p.done:
			return p.err
		default: // still queued behind a full group: go round again
		}
	}
}

// maxGroup bounds one group commit: enough to share a sync among every
// sender a site runs at once, small enough that one transaction stays
// short.
const maxGroup = 128

// pendingAdd is an Add waiting for its group to commit.
type pendingAdd struct {
	ctx  context.Context
	inst *store.Instance
	g    store.Guard
	err  error
	done chan struct{}
}

// commitGroup commits batch in one transaction, each Add in a savepoint,
// and reports each outcome to its caller.
func (ix *Index) commitGroup(batch []*pendingAdd) {
	if len(batch) == 0 {
		return
	}
	finish := func(err error) {
		for _, p := range batch {
			if p.err == nil {
				p.err = err
			}
			close(p.done)
		}
	}
	// The transaction belongs to the group, not to one caller: a caller
	// that gives up must not roll back the others' instances.
	ctx := context.Background()
	tx, err := ix.w.BeginTx(ctx, nil)
	if err != nil {
		finish(fmt.Errorf("sqlite: add: %w", err))
		return
	}
	for _, p := range batch {
		if err := p.ctx.Err(); err != nil {
			p.err = fmt.Errorf("sqlite: add: %w", err)
			continue
		}
		if _, err := tx.ExecContext(ctx, `SAVEPOINT add_one`); err != nil {
			p.err = fmt.Errorf("sqlite: add: %w", err)
			continue
		}
		if err := ix.addTx(ctx, tx, p.inst, p.g); err != nil {
			p.err = err
			if _, rerr := tx.ExecContext(ctx, `ROLLBACK TO add_one`); rerr != nil {
				tx.Rollback()
				finish(fmt.Errorf("sqlite: add: rollback: %w", rerr))
				return
			}
		}
		if _, err := tx.ExecContext(ctx, `RELEASE add_one`); err != nil {
			tx.Rollback()
			finish(fmt.Errorf("sqlite: add: %w", err))
			return
		}
	}
	if err := tx.Commit(); err != nil {
		finish(fmt.Errorf("sqlite: add: %w", err))
		return
	}
	finish(nil)
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
	if inst.BlobKey == "" || !store.ValidLedgerField(inst.BlobKey) {
		return fmt.Errorf("sqlite: add: %w: no blob key", store.ErrInvalid)
	}
	if !store.ValidLedgerField(inst.Sender) {
		return fmt.Errorf("sqlite: add: %w: sender with a control character", store.ErrInvalid)
	}
	return nil
}

// addTx records inst inside tx: the instance, the series, study and
// patient it creates, and its ledger entry. Existing series and studies
// must belong to the same study and patient as inst says, and pass g.
func (ix *Index) addTx(ctx context.Context, tx *sql.Tx, inst *store.Instance, g store.Guard) error {
	var key string
	switch err := tx.StmtContext(ctx, ix.stKey).QueryRowContext(ctx, inst.SOPInstanceUID).Scan(&key); {
	case err == nil && key == inst.BlobKey:
		return fmt.Errorf("sqlite: add: %w", store.ErrDuplicate)
	case err == nil:
		return fmt.Errorf("sqlite: add: %w: SOP instance stored with other content", store.ErrConflict)
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("sqlite: add: %w", err)
	}

	at := inst.ReceivedAt
	if at.IsZero() {
		at = time.Now()
	}
	var seriesPK, lastAt int64
	var studyUID, patientID, studyCreator, seriesCreator string
	switch err := tx.StmtContext(ctx, ix.stSeries).QueryRowContext(ctx, inst.SeriesInstanceUID).Scan(&seriesPK, &studyUID,
		&patientID, &studyCreator, &seriesCreator, &lastAt); {
	case err == nil:
		if err := seriesRefusal(g, inst, at, studyUID, patientID, studyCreator, seriesCreator, lastAt); err != nil {
			return err
		}
		if _, err := tx.StmtContext(ctx, ix.stTouchSeries).ExecContext(ctx, at.UnixNano(), seriesPK); err != nil {
			return fmt.Errorf("sqlite: add: %w", err)
		}
	case errors.Is(err, sql.ErrNoRows):
		studyPK, err := ix.study(ctx, tx, inst, g)
		if err != nil {
			return err
		}
		res, err := tx.StmtContext(ctx, ix.stInsSeries).ExecContext(ctx, studyPK, inst.SeriesInstanceUID,
			inst.Modality, inst.SeriesNumber, inst.SeriesDescription, inst.Sender, at.UnixNano())
		if err != nil {
			return fmt.Errorf("sqlite: add series: %w", err)
		}
		if seriesPK, err = res.LastInsertId(); err != nil {
			return fmt.Errorf("sqlite: add series: %w", err)
		}
	default:
		return fmt.Errorf("sqlite: add: %w", err)
	}

	if _, err := tx.StmtContext(ctx, ix.stInsIns).ExecContext(ctx, seriesPK, inst.SOPInstanceUID, inst.SOPClassUID,
		inst.InstanceNumber, inst.TransferSyntaxUID, inst.BlobKey, inst.Size, inst.Sender, at.UnixNano()); err != nil {
		return fmt.Errorf("sqlite: add instance: %w", err)
	}
	return ix.appendLedger(ctx, tx, inst, at)
}

// seriesRefusal is why inst may not join its existing series (nil: it
// may), given the series' study, patient, creators and last arrival.
func seriesRefusal(g store.Guard, inst *store.Instance, at time.Time, studyUID, patientID, studyCreator, seriesCreator string, lastAt int64) error {
	if studyUID != inst.StudyInstanceUID {
		return fmt.Errorf("sqlite: add: %w: series belongs to another study", store.ErrConflict)
	}
	if patientID != inst.PatientID {
		return fmt.Errorf("sqlite: add: %w: study belongs to another patient ID", store.ErrConflict)
	}
	if err := checkForeign(g, studyCreator, inst.Sender); err != nil {
		return err
	}
	if g.SealAfter > 0 && at.Sub(time.Unix(0, lastAt)) > g.SealAfter && !(g.MayReopen && seriesCreator == inst.Sender) {
		return fmt.Errorf("sqlite: add: %w: last instance %s before this one", store.ErrSealed,
			at.Sub(time.Unix(0, lastAt)).Round(time.Second))
	}
	return nil
}

// studyRefusal is why inst may not join its existing study with a new
// series (nil: it may).
func studyRefusal(g store.Guard, inst *store.Instance, patientID, creator string) error {
	if patientID != inst.PatientID {
		return fmt.Errorf("sqlite: add: %w: study belongs to another patient ID", store.ErrConflict)
	}
	return checkForeign(g, creator, inst.Sender)
}

// Precheck runs Add's hierarchy checks (seriesRefusal, studyRefusal) on a
// read connection, without a transaction: see store.Index. On the usual
// path (an existing series, or a new one) it is one or two indexed
// lookups; the SOP Instance UID is looked up only to overrule a refusal.
func (ix *Index) Precheck(ctx context.Context, inst *store.Instance, g store.Guard) error {
	refusal, err := ix.hierarchyRefusal(ctx, inst, g)
	if err != nil || refusal == nil {
		return err
	}
	// A stored SOP Instance UID is Add's to judge by content first: the
	// same bytes again are a no-op even in a sealed series.
	var key string
	switch err := ix.r.QueryRowContext(ctx, selKey, inst.SOPInstanceUID).Scan(&key); {
	case err == nil:
		return nil
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("sqlite: precheck: %w", err)
	}
	return refusal
}

// hierarchyRefusal returns why inst may not join its series or study
// (nil, nil when it may), or an error when the index could not tell.
func (ix *Index) hierarchyRefusal(ctx context.Context, inst *store.Instance, g store.Guard) (refusal, err error) {
	at := inst.ReceivedAt
	if at.IsZero() {
		at = time.Now()
	}
	var pk, lastAt int64
	var studyUID, patientID, studyCreator, seriesCreator string
	switch err := ix.r.QueryRowContext(ctx, selSeries, inst.SeriesInstanceUID).Scan(&pk, &studyUID, &patientID,
		&studyCreator, &seriesCreator, &lastAt); {
	case err == nil:
		return seriesRefusal(g, inst, at, studyUID, patientID, studyCreator, seriesCreator, lastAt), nil
	case !errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("sqlite: precheck: %w", err)
	}
	switch err := ix.r.QueryRowContext(ctx, selStudy, inst.StudyInstanceUID).Scan(&pk, &patientID, &studyCreator); {
	case err == nil:
		return studyRefusal(g, inst, patientID, studyCreator), nil
	case !errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("sqlite: precheck: %w", err)
	}
	return nil, nil
}

// checkForeign refuses a sender adding to a study another sender created,
// unless g allows it.
func checkForeign(g store.Guard, creator, sender string) error {
	if !g.AllowForeignStudy && creator != sender {
		return fmt.Errorf("sqlite: add: %w", store.ErrForeignStudy)
	}
	return nil
}

// appendLedger chains inst's entry after the current head, inside tx: the
// write connection is the only writer, and the IMMEDIATE transaction holds
// the database's write lock, so the head cannot move under it.
func (ix *Index) appendLedger(ctx context.Context, tx *sql.Tx, inst *store.Instance, at time.Time) error {
	e := store.LedgerEntry{Time: at, Peer: inst.Sender, SOPInstanceUID: inst.SOPInstanceUID, BlobKey: inst.BlobKey}
	switch err := tx.StmtContext(ctx, ix.stHead).QueryRowContext(ctx).Scan(&e.Seq, &e.Prev); {
	case errors.Is(err, sql.ErrNoRows):
		e.Seq, e.Prev = 0, store.LedgerGenesis
	case err != nil:
		return fmt.Errorf("sqlite: ledger: %w", err)
	}
	e.Seq++
	e.Hash = e.ComputeHash()
	if _, err := tx.StmtContext(ctx, ix.stInsLedger).ExecContext(ctx, e.Seq, at.UnixNano(), e.Peer, e.SOPInstanceUID,
		e.BlobKey, e.Prev, e.Hash); err != nil {
		return fmt.Errorf("sqlite: ledger: %w", err)
	}
	return nil
}

// LedgerHead returns the last ledger entry.
func (ix *Index) LedgerHead(ctx context.Context) (store.LedgerEntry, error) {
	var e store.LedgerEntry
	var at int64
	err := ix.r.QueryRowContext(ctx, `SELECT seq, at, peer, sop_uid, blob_key, prev, hash FROM ledger ORDER BY seq DESC LIMIT 1`).
		Scan(&e.Seq, &at, &e.Peer, &e.SOPInstanceUID, &e.BlobKey, &e.Prev, &e.Hash)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return store.LedgerEntry{Hash: store.LedgerGenesis}, nil
	case err != nil:
		return store.LedgerEntry{}, fmt.Errorf("sqlite: ledger head: %w", err)
	}
	e.Time = time.Unix(0, at).UTC()
	return e, nil
}

// LedgerEntries calls fn with the entries after seq after, in order.
func (ix *Index) LedgerEntries(ctx context.Context, after int64, fn func(*store.LedgerEntry) error) error {
	rows, err := ix.r.QueryContext(ctx, `SELECT seq, at, peer, sop_uid, blob_key, prev, hash FROM ledger WHERE seq > ? ORDER BY seq`, after)
	if err != nil {
		return fmt.Errorf("sqlite: ledger: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e store.LedgerEntry
		var at int64
		if err := rows.Scan(&e.Seq, &at, &e.Peer, &e.SOPInstanceUID, &e.BlobKey, &e.Prev, &e.Hash); err != nil {
			return fmt.Errorf("sqlite: ledger: %w", err)
		}
		e.Time = time.Unix(0, at).UTC()
		if err := fn(&e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: ledger: %w", err)
	}
	return nil
}

// study returns the primary key of inst's study, creating it (and its
// patient) when missing; an existing one must pass g.
func (ix *Index) study(ctx context.Context, tx *sql.Tx, inst *store.Instance, g store.Guard) (int64, error) {
	var studyPK int64
	var patientID, creator string
	err := tx.StmtContext(ctx, ix.stStudy).QueryRowContext(ctx, inst.StudyInstanceUID).Scan(&studyPK, &patientID, &creator)
	switch {
	case err == nil:
		if err := studyRefusal(g, inst, patientID, creator); err != nil {
			return 0, err
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
		store.FoldPN(inst.ReferringPhysicianName), inst.Sender)
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

// HasBlob reports whether an instance refers to key (through the
// instance_blob index).
func (ix *Index) HasBlob(ctx context.Context, key string) (bool, error) {
	var one int
	err := ix.r.QueryRowContext(ctx, `SELECT 1 FROM instance WHERE blob_key = ? LIMIT 1`, key).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("sqlite: has blob: %w", err)
	}
	return true, nil
}

// walkCacheKiB is the page cache of the connection BlobKeys runs on. The
// walk reads the whole instance_blob index once (80 MB at a million
// instances); in the normal cache (cacheKiB) it would leave ~70 MB of
// pages behind that nothing reads again, and a small one does not slow it
// down (measured: 0.55-0.70 s against 0.59-0.86 s at a million).
const walkCacheKiB = 2 << 10

// BlobKeys calls fn with each distinct blob key, in key order.
func (ix *Index) BlobKeys(ctx context.Context, fn func(key string) error) error {
	conn, err := ix.r.Conn(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: blob keys: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, fmt.Sprintf(`PRAGMA cache_size = -%d`, walkCacheKiB)); err != nil {
		return fmt.Errorf("sqlite: blob keys: %w", err)
	}
	defer func() {
		// Give the connection its cache back for the queries after; if
		// that fails, drop the connection rather than keep a small one.
		if _, err := conn.ExecContext(context.Background(), fmt.Sprintf(`PRAGMA cache_size = -%d`, cacheKiB)); err != nil {
			conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	rows, err := conn.QueryContext(ctx, `SELECT DISTINCT blob_key FROM instance ORDER BY blob_key`)
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
