// Package fs keeps blobs in a directory, each in a file named by the
// SHA-256 of its content: DIR/ab/cd/abcd... (two levels of fan-out by the
// first hex digits). A blob is written to DIR/tmp/ while it is hashed;
// Commit syncs it, renames it into place and syncs the directory, so that a
// committed blob survives a crash and an unfinished one is never visible
// under a key. Recover deletes what a crash left in DIR/tmp/.
//
// Paths are built only from hashes this package computed (or, for Open,
// Remove and Exists, from keys checked to be 64 lower-case hex digits),
// never from anything a peer sent. Files are created 0600 and directories
// 0700: the archive holds patient data.
//
// The package registers the "file" scheme with store.OpenBlobs:
// "file:///var/lib/dicomshield/blobs".
package fs

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/dicomshield/dicomshield/internal/store"
)

const (
	// dirMode and fileMode keep the archive to its owner.
	dirMode  = 0o700
	fileMode = 0o600
	// tmpDir is the scratch directory inside the root.
	tmpDir = "tmp"
)

func init() {
	store.RegisterBlobs("file", func(u *url.URL) (store.Blobs, error) {
		p, err := store.URLPath(u)
		if err != nil {
			return nil, err
		}
		return Open(p)
	})
}

// Blobs is a store.Blobs on a directory. It is safe for concurrent use.
type Blobs struct {
	root string
	// mkdirMu serialises the creation of fan-out directories, so that two
	// commits into a new directory do not race on its parent's sync.
	mkdirMu sync.Mutex
}

var _ store.Blobs = (*Blobs)(nil)
var _ store.Recoverer = (*Blobs)(nil)

// Open returns the blob store rooted at dir, creating dir and dir/tmp
// (mode 0700) when they do not exist. It does not clean up: call Recover
// at start-up.
func Open(dir string) (*Blobs, error) {
	if dir == "" {
		return nil, fmt.Errorf("fs: %w: empty directory", store.ErrInvalid)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("fs: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(abs, tmpDir), dirMode); err != nil {
		return nil, fmt.Errorf("fs: %w", err)
	}
	return &Blobs{root: abs}, nil
}

// Root returns the directory the store is in.
func (b *Blobs) Root() string { return b.root }

// validKey reports whether key is a lower-case hex SHA-256.
func validKey(key string) bool {
	if len(key) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(key); i++ {
		if !isLowerHex(key[i]) {
			return false
		}
	}
	return true
}

// path returns the file of a valid key.
func (b *Blobs) path(key string) string {
	return filepath.Join(b.root, key[0:2], key[2:4], key)
}

func (b *Blobs) checked(key string) (string, error) {
	if !validKey(key) {
		return "", fmt.Errorf("fs: %w: blob key is not a hex SHA-256", store.ErrInvalid)
	}
	return b.path(key), nil
}

// Create starts a blob in the scratch directory.
func (b *Blobs) Create() (store.BlobWriter, error) {
	f, err := os.CreateTemp(filepath.Join(b.root, tmpDir), "blob-*")
	if err != nil {
		return nil, fmt.Errorf("fs: create: %w", err)
	}
	// CreateTemp makes 0600 files already; be explicit against a changed
	// default.
	if err := f.Chmod(fileMode); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("fs: create: %w", err)
	}
	return &writer{b: b, f: f, h: sha256.New()}, nil
}

// Open opens the blob stored under key.
func (b *Blobs) Open(key string) (io.ReadCloser, error) {
	p, err := b.checked(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("fs: blob %s: %w", key, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("fs: %w", err)
	}
	return f, nil
}

// Remove deletes the blob stored under key and syncs its directory.
func (b *Blobs) Remove(key string) error {
	p, err := b.checked(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("fs: blob %s: %w", key, store.ErrNotFound)
		}
		return fmt.Errorf("fs: %w", err)
	}
	return syncDir(filepath.Dir(p))
}

// Exists reports whether a blob is stored under key. An invalid key is an
// error, not a "no".
func (b *Blobs) Exists(key string) (bool, error) {
	p, err := b.checked(key)
	if err != nil {
		return false, err
	}
	st, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("fs: %w", err)
	}
	return st.Mode().IsRegular(), nil
}

// List calls fn with every stored key, in lexical order. Files that are
// not where their name says (not a key, or in the wrong fan-out directory)
// are skipped: they are not blobs of this store.
func (b *Blobs) List(fn func(key string) error) error {
	lv1, err := fanout(b.root)
	if err != nil {
		return err
	}
	for _, d1 := range lv1 {
		lv2, err := fanout(filepath.Join(b.root, d1))
		if err != nil {
			return err
		}
		for _, d2 := range lv2 {
			ents, err := os.ReadDir(filepath.Join(b.root, d1, d2))
			if err != nil {
				return fmt.Errorf("fs: %w", err)
			}
			for _, e := range ents {
				k := e.Name()
				if !e.Type().IsRegular() || !validKey(k) || k[0:2] != d1 || k[2:4] != d2 {
					continue
				}
				if err := fn(k); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// fanout lists the fan-out directories (two lower-case hex digits) in dir.
func fanout(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("fs: %w", err)
	}
	var names []string
	for _, e := range ents {
		if n := e.Name(); e.IsDir() && isHexPair(n) {
			names = append(names, n)
		}
	}
	return names, nil
}

// Recover deletes every file left in the scratch directory: blobs whose
// writer never committed (the process crashed, or was killed, while
// receiving them). Call it at start-up, before any Create.
func (b *Blobs) Recover() error {
	dir := filepath.Join(b.root, tmpDir)
	names, err := readDirNames(dir)
	if err != nil {
		return fmt.Errorf("fs: recover: %w", err)
	}
	for _, n := range names {
		if err := os.RemoveAll(filepath.Join(dir, n)); err != nil {
			return fmt.Errorf("fs: recover: %w", err)
		}
	}
	return syncDir(dir)
}

func isHexPair(s string) bool {
	return len(s) == 2 && isLowerHex(s[0]) && isLowerHex(s[1])
}

func isLowerHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' }

func readDirNames(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	return names, nil
}

// mkdirs creates the fan-out directories of p (mode 0700), syncing each
// parent that gained an entry.
func (b *Blobs) mkdirs(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	b.mkdirMu.Lock()
	defer b.mkdirMu.Unlock()
	parent := filepath.Dir(dir)
	for _, d := range []string{parent, dir} {
		err := os.Mkdir(d, dirMode)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return err
		}
		if err := syncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}

// syncDir makes a directory's entries (a rename, a new file, a removal)
// durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fs: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fs: sync %s: %w", dir, err)
	}
	return nil
}

// writer is a blob being written in the scratch directory.
type writer struct {
	b    *Blobs
	f    *os.File
	h    hash.Hash
	n    int64
	done bool // committed or aborted
	err  error
}

var errFinished = errors.New("fs: blob writer already committed or aborted")

func (w *writer) Write(p []byte) (int, error) {
	if w.done {
		return 0, errFinished
	}
	if w.err != nil {
		return 0, w.err
	}
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	w.n += int64(n)
	if err != nil {
		w.err = fmt.Errorf("fs: write: %w", err)
		return n, w.err
	}
	return n, nil
}

// Commit syncs the file, moves it under its hash and syncs the directory.
// If a blob with that hash is already there (same content: the name is its
// hash) the new copy is dropped, unless the stored one has another size,
// which only damage explains: it is then replaced.
func (w *writer) Commit() (string, int64, error) {
	if w.done {
		return "", 0, errFinished
	}
	if w.err != nil {
		w.Abort()
		return "", 0, w.err
	}
	w.done = true
	tmp := w.f.Name()
	key := hex.EncodeToString(w.h.Sum(nil))
	dst := w.b.path(key)
	if st, err := os.Lstat(dst); err == nil && st.Mode().IsRegular() && st.Size() == w.n {
		// Already stored: the name is the content's hash.
		w.f.Close()
		if err := os.Remove(tmp); err != nil {
			return "", 0, fmt.Errorf("fs: commit: %w", err)
		}
		return key, w.n, nil
	}
	if err := w.f.Sync(); err != nil {
		w.f.Close()
		os.Remove(tmp)
		return "", 0, fmt.Errorf("fs: commit: %w", err)
	}
	if err := w.f.Close(); err != nil {
		os.Remove(tmp)
		return "", 0, fmt.Errorf("fs: commit: %w", err)
	}
	if err := w.b.mkdirs(filepath.Dir(dst)); err != nil {
		os.Remove(tmp)
		return "", 0, fmt.Errorf("fs: commit: %w", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return "", 0, fmt.Errorf("fs: commit: %w", err)
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return "", 0, err
	}
	return key, w.n, nil
}

// Abort closes and deletes the scratch file.
func (w *writer) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	w.f.Close()
	if err := os.Remove(w.f.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("fs: abort: %w", err)
	}
	return nil
}

var _ store.StrayLister = (*Blobs)(nil)

// Strays calls fn with the path (relative to the root, slash-separated) of
// every entry that is not a blob of this store: a file or link outside the
// ab/cd/<key> layout, a directory where none belongs. The scratch
// directory is not looked into (it holds the stores in progress).
func (b *Blobs) Strays(fn func(name string) error) error {
	return filepath.WalkDir(b.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("fs: %w", err)
		}
		if p == b.root {
			return nil
		}
		rel, err := filepath.Rel(b.root, p)
		if err != nil {
			return fmt.Errorf("fs: %w", err)
		}
		parts := strings.Split(filepath.ToSlash(rel), "/")
		switch {
		case len(parts) == 1 && parts[0] == tmpDir && d.IsDir():
			return filepath.SkipDir
		case len(parts) <= 2 && d.IsDir() && isHexPair(parts[len(parts)-1]):
			return nil
		case len(parts) == 3 && d.Type().IsRegular() && validKey(parts[2]) && parts[2][0:2] == parts[0] && parts[2][2:4] == parts[1]:
			return nil
		}
		if err := fn(filepath.ToSlash(rel)); err != nil {
			return err
		}
		if d.IsDir() {
			return filepath.SkipDir
		}
		return nil
	})
}
