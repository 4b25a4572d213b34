package fs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dicomshield/dicomshield/internal/store"
	"github.com/dicomshield/dicomshield/internal/store/storetest"
)

func newTestBlobs(t *testing.T) store.Blobs {
	t.Helper()
	b, err := Open(t.TempDir())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return b
}

func TestConformance(t *testing.T) {
	storetest.Run(t, nil, newTestBlobs)
}

func TestLayoutAndModes(t *testing.T) {
	dir := t.TempDir()
	b, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := b.Create()
	w.Write([]byte("patient data"))
	key, _, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, key[:2], key[2:4], key)
	st, err := os.Stat(p)
	if err != nil {
		t.Fatalf("blob not at %s: %v", p, err)
	}
	if m := st.Mode().Perm(); m != 0o600 {
		t.Errorf("blob mode %o, want 600", m)
	}
	for _, d := range []string{filepath.Join(dir, tmpDir), filepath.Join(dir, key[:2]), filepath.Join(dir, key[:2], key[2:4])} {
		st, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if m := st.Mode().Perm(); m != 0o700 {
			t.Errorf("%s mode %o, want 700", d, m)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, tmpDir)); len(ents) != 0 {
		t.Errorf("scratch directory not empty after Commit: %d entries", len(ents))
	}
}

func TestRecoverEmptiesScratch(t *testing.T) {
	dir := t.TempDir()
	b, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		w, _ := b.Create()
		w.Write([]byte("interrupted"))
		// No Commit, no Abort: the process "died".
	}
	// A leftover directory, as an older version might have left.
	os.Mkdir(filepath.Join(dir, tmpDir, "junk"), 0o700)
	if ents, _ := os.ReadDir(filepath.Join(dir, tmpDir)); len(ents) != 4 {
		t.Fatalf("%d scratch entries before Recover, want 4", len(ents))
	}
	// A fresh process opens the store and recovers.
	b2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := b2.Recover(); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, tmpDir)); len(ents) != 0 {
		t.Fatalf("%d scratch entries after Recover", len(ents))
	}
	var n int
	b2.List(func(string) error { n++; return nil })
	if n != 0 {
		t.Fatalf("List shows %d blobs", n)
	}
}

func TestListSkipsStrangers(t *testing.T) {
	dir := t.TempDir()
	b, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := b.Create()
	w.Write([]byte("real"))
	key, _, _ := w.Commit()
	// Files that are not blobs of this store: a wrong fan-out, a bad name,
	// a directory named like a key, files in the root.
	other := strings.Repeat("ab", 32)
	os.MkdirAll(filepath.Join(dir, "00", "00"), 0o700)
	os.WriteFile(filepath.Join(dir, "00", "00", other), nil, 0o600)
	os.WriteFile(filepath.Join(dir, "00", "00", "notakey"), nil, 0o600)
	os.Mkdir(filepath.Join(dir, "00", "00", strings.Repeat("00", 32)), 0o700)
	os.Remove(filepath.Join(dir, "ff")) // made by Open (empty unless key is ff...)
	os.WriteFile(filepath.Join(dir, "ff"), nil, 0o600)
	os.Mkdir(filepath.Join(dir, "XY"), 0o700)
	var got []string
	if err := b.List(func(k string) error { got = append(got, k); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != key {
		t.Fatalf("List = %v, want [%s]", got, key)
	}
}

func TestOpenByURL(t *testing.T) {
	dir := t.TempDir()
	b, err := store.OpenBlobs("file://" + dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.(*Blobs).Root(); got != dir {
		t.Errorf("root %s, want %s", got, dir)
	}
	for _, u := range []string{"file://host" + dir, "file://" + dir + "?x=1", "file:", "nosuch://" + dir, dir} {
		if _, err := store.OpenBlobs(u); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("OpenBlobs(%q): %v, want ErrInvalid", u, err)
		}
	}
}

func TestFirstLevelMadeByOpen(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	ents, err := fanout(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 256 || ents[0] != "00" || ents[255] != "ff" {
		t.Fatalf("first level after Open: %d directories (%v...)", len(ents), ents[:min(3, len(ents))])
	}
}

func TestFanoutIndex(t *testing.T) {
	for key, want := range map[string]int{
		strings.Repeat("0", 64):          0,
		"abcd" + strings.Repeat("0", 60): 0xabcd,
		strings.Repeat("f", 64):          0xffff,
		"0a9f" + strings.Repeat("1", 60): 0x0a9f,
	} {
		if got := fanoutIndex(key); got != want {
			t.Errorf("fanoutIndex(%.4s...) = %#x, want %#x", key, got, want)
		}
	}
}

// A fan-out directory removed while the store is open (by hand, or by a
// restore) is made again by the next Commit into it.
func TestCommitRemakesRemovedDirectory(t *testing.T) {
	dir := t.TempDir()
	b, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	put := func() string {
		w, _ := b.Create()
		w.Write([]byte("same content"))
		key, _, err := w.Commit()
		if err != nil {
			t.Fatal(err)
		}
		return key
	}
	key := put()
	if err := os.RemoveAll(filepath.Join(dir, key[:2])); err != nil {
		t.Fatal(err)
	}
	if got := put(); got != key {
		t.Fatalf("key %s, then %s", key, got)
	}
	if ok, err := b.Exists(key); !ok || err != nil {
		t.Fatalf("Exists after the directory was removed and the blob stored again: %v, %v", ok, err)
	}
}
