package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dicomshield/dicomshield/internal/store"
	"github.com/dicomshield/dicomshield/internal/store/storetest"
)

func newTestIndex(t *testing.T) store.Index {
	t.Helper()
	ix, err := Open(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { ix.Close() })
	return ix
}

func TestConformance(t *testing.T) {
	storetest.Run(t, newTestIndex, nil)
}

func TestOpenByURL(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a dir?#%", "index.db")
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	ix, err := store.OpenIndex((&url.URL{Scheme: "sqlite", Path: p}).String())
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatalf("database not at %s: %v", p, err)
	}
	if m := st.Mode().Perm(); m != 0o600 {
		t.Errorf("database mode %o, want 600", m)
	}
	for _, u := range []string{"sqlite://host/x.db", "sqlite:", "sqlite:///x.db?_pragma=foo"} {
		if _, err := store.OpenIndex(u); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("OpenIndex(%q): %v, want ErrInvalid", u, err)
		}
	}
}

// TestReopen: the schema is created once, kept, and data survives a
// reopen; a newer schema is refused.
func TestReopen(t *testing.T) {
	p := filepath.Join(t.TempDir(), "index.db")
	ix, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	in := &store.Instance{PatientID: "P", StudyInstanceUID: "1.2", SeriesInstanceUID: "1.2.3", SOPInstanceUID: "1.2.3.4",
		SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", BlobKey: strings.Repeat("0", 64)}
	if err := ix.Add(context.Background(), in, store.Guard{}); err != nil {
		t.Fatal(err)
	}
	ix.Close()
	ix, err = Open(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ix.Get(context.Background(), "1.2.3.4"); err != nil {
		t.Fatalf("after reopen: %v", err)
	}
	var v int
	ix.r.QueryRow(`SELECT version FROM schema_version`).Scan(&v)
	if v != SchemaVersion {
		t.Errorf("schema_version %d, want %d", v, SchemaVersion)
	}
	var mode string
	ix.r.QueryRow(`PRAGMA journal_mode`).Scan(&mode)
	if mode != "wal" {
		t.Errorf("journal_mode %q, want wal", mode)
	}
	var sync int
	ix.w.QueryRow(`PRAGMA synchronous`).Scan(&sync)
	if sync != 2 {
		t.Errorf("synchronous %d, want 2 (FULL)", sync)
	}
	ix.w.Exec(`UPDATE schema_version SET version = ?`, SchemaVersion+1)
	ix.Close()
	if ix, err := Open(p); err == nil {
		ix.Close()
		t.Fatal("opened a database of a newer schema")
	}
}

// TestReadOnlyPool: the read connections cannot write, whatever a query
// would try.
func TestReadOnlyPool(t *testing.T) {
	ix, err := Open(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if _, err := ix.r.Exec(`DELETE FROM patient`); err == nil {
		t.Fatal("a write through the read pool succeeded")
	}
}

// TestBlobKeysGivesTheCacheBack: the walk runs with a small page cache,
// and every read connection has the normal one again afterwards (a
// connection left at the walk's size would make later queries slow).
func TestBlobKeysGivesTheCacheBack(t *testing.T) {
	ix, err := Open(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	ctx := context.Background()
	if err := ix.BlobKeys(ctx, func(string) error { return nil }); err != nil {
		t.Fatal(err)
	}
	// Hold every read connection at once, so each is looked at.
	conns := make([]*sql.Conn, readConns)
	for i := range conns {
		c, err := ix.r.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	for i, c := range conns {
		var kib int
		if err := c.QueryRowContext(ctx, `PRAGMA cache_size`).Scan(&kib); err != nil {
			t.Fatal(err)
		}
		if kib != -cacheKiB {
			t.Errorf("read connection %d: cache_size %d after BlobKeys, want %d", i, kib, -cacheKiB)
		}
	}
}
