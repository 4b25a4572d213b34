package storetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"testing"

	"github.com/dicomshield/dicomshield/internal/store"
)

func runBlobs(t *testing.T, newBlobs func(t *testing.T) store.Blobs) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, b store.Blobs)
	}{
		{"CommitOpen", testBlobCommitOpen},
		{"Empty", testBlobEmpty},
		{"Dedup", testBlobDedup},
		{"Abort", testBlobAbort},
		{"WriterFinished", testBlobWriterFinished},
		{"Remove", testBlobRemove},
		{"InvalidKeys", testBlobInvalidKeys},
		{"List", testBlobList},
		{"Concurrent", testBlobConcurrent},
		{"UncommittedInvisible", testBlobUncommitted},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newBlobs(t)) })
	}
}

func hashOf(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// putBlob stores content (written in a few pieces) and checks the key and
// size Commit returns.
func putBlob(t *testing.T, b store.Blobs, content []byte) string {
	t.Helper()
	w, err := b.Create()
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	for rest := content; len(rest) > 0; {
		n := min(len(rest), 7)
		if _, err := w.Write(rest[:n]); err != nil {
			t.Fatalf("Write: %v", err)
		}
		rest = rest[n:]
	}
	key, size, err := w.Commit()
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if want := hashOf(content); key != want {
		t.Fatalf("Commit key = %s, want SHA-256 %s", key, want)
	}
	if size != int64(len(content)) {
		t.Fatalf("Commit size = %d, want %d", size, len(content))
	}
	return key
}

func readBlob(t *testing.T, b store.Blobs, key string) []byte {
	t.Helper()
	r, err := b.Open(key)
	if err != nil {
		t.Fatalf("Open(%s): %v", key, err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return got
}

func listBlobs(t *testing.T, b store.Blobs) []string {
	t.Helper()
	var keys []string
	if err := b.List(func(k string) error { keys = append(keys, k); return nil }); err != nil {
		t.Fatalf("List: %v", err)
	}
	if !sort.StringsAreSorted(keys) {
		t.Fatalf("List did not give the keys in ascending order: %v", keys)
	}
	return keys
}

func mustExist(t *testing.T, b store.Blobs, key string, want bool) {
	t.Helper()
	ok, err := b.Exists(key)
	if err != nil {
		t.Fatalf("Exists(%s): %v", key, err)
	}
	if ok != want {
		t.Fatalf("Exists(%s) = %v, want %v", key, ok, want)
	}
}

func testBlobCommitOpen(t *testing.T, b store.Blobs) {
	content := bytes.Repeat([]byte("DICM patient data \x00\xff"), 5000)
	key := putBlob(t, b, content)
	if got := readBlob(t, b, key); !bytes.Equal(got, content) {
		t.Fatalf("read back %d bytes, differing from the %d written", len(got), len(content))
	}
	mustExist(t, b, key, true)
	mustExist(t, b, hashOf([]byte("never stored")), false)
	if _, err := b.Open(hashOf([]byte("never stored"))); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Open of a missing key: %v, want ErrNotFound", err)
	}
}

func testBlobEmpty(t *testing.T, b store.Blobs) {
	key := putBlob(t, b, nil)
	if got := readBlob(t, b, key); len(got) != 0 {
		t.Fatalf("empty blob read back as %d bytes", len(got))
	}
}

func testBlobDedup(t *testing.T, b store.Blobs) {
	content := []byte("same content twice")
	k1 := putBlob(t, b, content)
	k2 := putBlob(t, b, content)
	if k1 != k2 {
		t.Fatalf("same content, keys %s and %s", k1, k2)
	}
	if got := listBlobs(t, b); len(got) != 1 || got[0] != k1 {
		t.Fatalf("List after storing one content twice = %v, want [%s]", got, k1)
	}
	if got := readBlob(t, b, k1); !bytes.Equal(got, content) {
		t.Fatalf("read back %q", got)
	}
}

func testBlobAbort(t *testing.T, b store.Blobs) {
	content := []byte("aborted")
	w, err := b.Create()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(content); err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(); err != nil {
		t.Fatalf("Abort: %v", err)
	}
	if err := w.Abort(); err != nil {
		t.Fatalf("second Abort: %v", err)
	}
	mustExist(t, b, hashOf(content), false)
	if got := listBlobs(t, b); len(got) != 0 {
		t.Fatalf("List after Abort = %v", got)
	}
	if _, _, err := w.Commit(); err == nil {
		t.Fatal("Commit after Abort succeeded")
	}
}

func testBlobWriterFinished(t *testing.T, b store.Blobs) {
	w, err := b.Create()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("x"))
	if _, _, err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("more")); err == nil {
		t.Fatal("Write after Commit succeeded")
	}
	if _, _, err := w.Commit(); err == nil {
		t.Fatal("second Commit succeeded")
	}
	if err := w.Abort(); err != nil {
		t.Fatalf("Abort after Commit: %v", err)
	}
	mustExist(t, b, hashOf([]byte("x")), true)
}

func testBlobRemove(t *testing.T, b store.Blobs) {
	key := putBlob(t, b, []byte("to be removed"))
	if err := b.Remove(key); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	mustExist(t, b, key, false)
	if _, err := b.Open(key); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Open after Remove: %v, want ErrNotFound", err)
	}
	if err := b.Remove(key); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second Remove: %v, want ErrNotFound", err)
	}
	// Storing it again works.
	putBlob(t, b, []byte("to be removed"))
}

func testBlobInvalidKeys(t *testing.T, b store.Blobs) {
	valid := putBlob(t, b, []byte("valid"))
	for _, key := range []string{
		"", "..", "../../etc/passwd", "/etc/passwd", "tmp", "ab/cd",
		valid[:63], valid + "0", "ABCDEF" + valid[6:], valid[:62] + "/.",
		"../" + valid[3:], valid[:2] + "\x00" + valid[3:],
	} {
		if r, err := b.Open(key); err == nil {
			r.Close()
			t.Errorf("Open(%q) succeeded", key)
		} else if !errors.Is(err, store.ErrInvalid) && !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Open(%q): %v, want ErrInvalid or ErrNotFound", key, err)
		}
		if ok, err := b.Exists(key); ok {
			t.Errorf("Exists(%q) = true (err %v)", key, err)
		}
		if err := b.Remove(key); err == nil {
			t.Errorf("Remove(%q) succeeded", key)
		}
	}
	mustExist(t, b, valid, true)
}

func testBlobList(t *testing.T, b store.Blobs) {
	var want []string
	for i := range 20 {
		want = append(want, putBlob(t, b, fmt.Appendf(nil, "blob %d", i)))
	}
	sort.Strings(want)
	if got := listBlobs(t, b); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("List = %v\nwant %v", got, want)
	}
	stop := errors.New("stop")
	n := 0
	err := b.List(func(string) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("List with a failing callback: err %v after %d calls, want the callback's error after 1", err, n)
	}
}

func testBlobConcurrent(t *testing.T, b store.Blobs) {
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 8 {
				// Half the contents are shared between goroutines.
				content := fmt.Appendf(nil, "content %d", i)
				if i%2 == 1 {
					content = fmt.Appendf(content, " of %d", g)
				}
				w, err := b.Create()
				if err != nil {
					errs <- err
					return
				}
				w.Write(content)
				key, _, err := w.Commit()
				if err != nil {
					errs <- err
					return
				}
				if key != hashOf(content) {
					errs <- fmt.Errorf("key %s for %q", key, content)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := len(listBlobs(t, b)); got != 4+8*4 {
		t.Fatalf("List has %d blobs, want %d", got, 4+8*4)
	}
}

// testBlobUncommitted: a blob written but never committed (the process
// died) is not visible, and Recover (for stores that have it) removes it:
// the abandoned writer can no longer commit.
func testBlobUncommitted(t *testing.T, b store.Blobs) {
	content := []byte("crash before commit")
	w, err := b.Create()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(content); err != nil {
		t.Fatal(err)
	}
	mustExist(t, b, hashOf(content), false)
	if got := listBlobs(t, b); len(got) != 0 {
		t.Fatalf("List shows an uncommitted blob: %v", got)
	}
	rec, ok := b.(store.Recoverer)
	if !ok {
		w.Abort()
		return
	}
	if err := rec.Recover(); err != nil {
		t.Fatalf("Recover: %v", err)
	}
	if _, _, err := w.Commit(); err == nil {
		t.Fatal("a writer whose scratch file Recover removed could still commit")
	}
	mustExist(t, b, hashOf(content), false)
	w.Abort()
	// The store still works after recovery.
	putBlob(t, b, content)
}
