package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dicomshield/dicomshield/internal/store"
)

// TestLedgerAppendOnly: the triggers refuse every UPDATE and DELETE of the
// ledger, through any connection that writes.
func TestLedgerAppendOnly(t *testing.T) {
	ix := newTestIndex(t).(*Index)
	ctx := context.Background()
	in := &store.Instance{PatientID: "P", StudyInstanceUID: "1.2", SeriesInstanceUID: "1.2.3", SOPInstanceUID: "1.2.3.4",
		SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", BlobKey: strings.Repeat("a", 64), Sender: "CT1"}
	if err := ix.Add(ctx, in, store.Guard{}); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`UPDATE ledger SET peer = 'FORGER'`,
		`UPDATE ledger SET hash = '` + strings.Repeat("0", 64) + `' WHERE seq = 1`,
		`DELETE FROM ledger`,
		`DELETE FROM ledger WHERE seq = 1`,
		`INSERT OR REPLACE INTO ledger (seq, at, peer, sop_uid, blob_key, prev, hash) VALUES (1, 0, 'X', '1', 'a', 'b', 'c')`,
		`INSERT INTO ledger (seq, at, peer, sop_uid, blob_key, prev, hash) VALUES (5, 0, 'X', '1', 'a', 'b', 'c')`,
		`INSERT INTO ledger (seq, at, peer, sop_uid, blob_key, prev, hash) VALUES (2, 0, 'X', '1', 'a', 'b', 'c')`,
	} {
		if _, err := ix.w.ExecContext(ctx, stmt); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: %v, want the append-only refusal", stmt, err)
		}
	}
	head, err := ix.LedgerHead(ctx)
	if err != nil || head.Seq != 1 || head.Peer != "CT1" || head.Hash != head.ComputeHash() {
		t.Errorf("head after the refused edits: %+v, %v", head, err)
	}
}

// TestMigrateToLedger: an index of schema 1 holding instances gets
// creators, last arrival times and a ledger chaining what it held, in the
// order it was added; then the guard works on the migrated series.
func TestMigrateToLedger(t *testing.T) {
	p := filepath.Join(t.TempDir(), "index.db")
	db, err := sql.Open("sqlite", dsn(p))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	stmts := append([]string{`CREATE TABLE schema_version (version INTEGER NOT NULL) STRICT`,
		`INSERT INTO schema_version (version) VALUES (1)`}, migrations[1]...)
	t0 := time.Date(2024, 5, 1, 8, 0, 0, 0, time.UTC)
	stmts = append(stmts,
		`INSERT INTO patient (pk, patient_id, name, name_folded, birth_date, sex) VALUES (1, 'P1', '', '', '', '')`,
		`INSERT INTO study (pk, patient_pk, study_uid, study_date, study_time, accession, study_id, description, referring, referring_folded)
			VALUES (1, 1, '1.2.9', '', '', '', '', '', '', '')`,
		`INSERT INTO series (pk, study_pk, series_uid, modality, number, description) VALUES (1, 1, '1.2.9.1', 'CT', '', '')`,
		`INSERT INTO series (pk, study_pk, series_uid, modality, number, description) VALUES (2, 1, '1.2.9.2', 'CT', '', '')`)
	type row struct {
		series      int
		sop, sender string
		at          time.Duration
	}
	rows := []row{{1, "1.2.9.1.1", "CT1", 0}, {1, "1.2.9.1.2", "CT1", time.Minute}, {2, "1.2.9.2.1", "CT2", 2 * time.Minute}, {1, "1.2.9.1.3", "CT3", 3 * time.Minute}}
	for i, r := range rows {
		stmts = append(stmts, fmt.Sprintf(`INSERT INTO instance (series_pk, sop_uid, sop_class, number, transfer_syntax, blob_key, size, sender, received_at)
			VALUES (%d, '%s', '1.2.840.10008.5.1.4.1.1.2', '', '', '%s', 1, '%s', %d)`, r.series, r.sop, strings.Repeat(fmt.Sprint(i), 64), r.sender, t0.Add(r.at).UnixNano()))
	}
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	db.Close()

	ix, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	var entries []store.LedgerEntry
	prev := store.LedgerGenesis
	if err := ix.LedgerEntries(ctx, 0, func(e *store.LedgerEntry) error {
		if e.Prev != prev || e.Hash != e.ComputeHash() {
			t.Errorf("entry %d does not chain", e.Seq)
		}
		prev = e.Hash
		entries = append(entries, *e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(rows) {
		t.Fatalf("%d ledger entries for %d instances", len(entries), len(rows))
	}
	for i, r := range rows {
		if e := entries[i]; e.Seq != int64(i+1) || e.SOPInstanceUID != r.sop || e.Peer != r.sender || !e.Time.Equal(t0.Add(r.at)) {
			t.Errorf("entry %d = %+v, want %+v", i+1, e, r)
		}
	}
	for _, c := range []struct {
		series, creator string
		last            time.Duration
	}{{"1.2.9.1", "CT1", 3 * time.Minute}, {"1.2.9.2", "CT2", 2 * time.Minute}} {
		var creator string
		var last int64
		if err := ix.r.QueryRowContext(ctx, `SELECT creator, last_at FROM series WHERE series_uid = ?`, c.series).Scan(&creator, &last); err != nil {
			t.Fatal(err)
		}
		if creator != c.creator || last != t0.Add(c.last).UnixNano() {
			t.Errorf("series %s: creator %q, last %v; want %q, %v", c.series, creator, time.Unix(0, last).UTC(), c.creator, t0.Add(c.last))
		}
	}
	var studyCreator string
	ix.r.QueryRowContext(ctx, `SELECT creator FROM study WHERE study_uid = '1.2.9'`).Scan(&studyCreator)
	if studyCreator != "CT1" {
		t.Errorf("study creator %q, want CT1", studyCreator)
	}
	in := &store.Instance{PatientID: "P1", StudyInstanceUID: "1.2.9", SeriesInstanceUID: "1.2.9.1", SOPInstanceUID: "1.2.9.1.9",
		SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", BlobKey: strings.Repeat("f", 64), Sender: "CT1", ReceivedAt: t0.Add(2 * time.Hour)}
	if err := ix.Add(ctx, in, store.Guard{SealAfter: time.Hour}); !errors.Is(err, store.ErrSealed) {
		t.Errorf("into a migrated series 2 h after its last instance: %v, want ErrSealed", err)
	}
	in.ReceivedAt, in.Sender = t0.Add(10*time.Minute), "CT2"
	if err := ix.Add(ctx, in, store.Guard{SealAfter: time.Hour}); !errors.Is(err, store.ErrForeignStudy) {
		t.Errorf("into a migrated study by another sender: %v, want ErrForeignStudy", err)
	}
	in.Sender = "CT1"
	if err := ix.Add(ctx, in, store.Guard{SealAfter: time.Hour}); err != nil {
		t.Errorf("creator within the seal time: %v", err)
	}
	if head, _ := ix.LedgerHead(ctx); head.Seq != int64(len(rows)+1) || head.Prev != prev {
		t.Errorf("head after the first new instance: %+v", head)
	}
}

func TestGenesisConstant(t *testing.T) {
	if zeros64 != store.LedgerGenesis {
		t.Fatal("zeros64 differs from store.LedgerGenesis")
	}
}
