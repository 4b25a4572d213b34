// Package fs keeps blobs in a directory, each in a file named by the
// SHA-256 of its content: DIR/ab/cd/abcd... (two levels of fan-out by the
// first hex digits). A blob is written to DIR/tmp/ while it is hashed;
// Commit syncs it, renames it into place and syncs the directory, so that a
// committed blob survives a crash and an unfinished one is never visible
// under a key. Recover deletes what a crash left in DIR/tmp/.
//
// # What Commit syncs, and why no more
//
// Each sync is a journal commit and a device cache flush, the largest part
// of the time an instance takes to store; Commit makes as few as the
// guarantee needs and orders them so that the file system can merge them:
//
//  1. fdatasync of the blob, before it is renamed: the content (and the
//     size and block map needed to read it back) is on disk before any
//     name points at it, so a key never names an incomplete file. The
//     timestamps it leaves unsynced do not matter; the mode and owner were
//     set by the create, which marks the whole inode dirty for fdatasync
//     (Linux: mark_inode_dirty sets I_DIRTY_DATASYNC). Where the system
//     offers no fdatasync to Go, it is a full fsync.
//  2. The missing fan-out directories are made and the blob is renamed,
//     with no sync in between: nothing reads the new entries before
//     Commit returns, so they only need to be durable by then.
//  3. fsync of the blob's directory (always: a rename is a change to the
//     directory, and until it is durable a crash can put the blob back in
//     tmp/, where Recover deletes it, while the index row written after
//     Commit survives), and, at the same time, of each parent whose new
//     child this Commit saw. On a journaling file system one commit then
//     covers the mkdirs and the rename and one device flush serves all the
//     syncs (one after the other, the later ones would each flush the
//     device again); on any file system each directory is still synced
//     before Commit returns, which is all the caller relies on.
//
// The 256 first-level directories are made (and the root synced once) by
// Open, so that a new archive's first few hundred blobs do not each pay a
// directory creation, the costliest metadata operation there is (ext4
// spreads top-level directories across block groups).
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
	"sync/atomic"

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
	// durable has a bit per second-level fan-out directory (the first four
	// hex digits of a key) that is known to exist with its link in its
	// parent and the parent's in the root synced. Until its bit is set,
	// every Commit into a directory syncs the parents itself, even when
	// another Commit made the directory: seeing that a directory exists
	// does not tell that its creator's sync has finished.
	durable [1 << 16 / 64]atomic.Uint64
}

func (b *Blobs) isDurable(i int) bool { return b.durable[i/64].Load()&(1<<(i%64)) != 0 }
func (b *Blobs) setDurable(i int)     { b.durable[i/64].Or(1 << (i % 64)) }
func (b *Blobs) clearDurable(i int)   { b.durable[i/64].And(^uint64(1 << (i % 64))) }

// fanoutIndex is the number of the second-level directory of a valid key.
func fanoutIndex(key string) int {
	n := 0
	for i := 0; i < 4; i++ {
		c := key[i]
		if c >= 'a' {
			c -= 'a' - 10
		} else {
			c -= '0'
		}
		n = n<<4 | int(c)
	}
	return n
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
	if err := makeFirstLevel(abs); err != nil {
		return nil, err
	}
	return &Blobs{root: abs}, nil
}

// makeFirstLevel makes the missing first-level fan-out directories 00 to
// ff and then syncs the root, so that Commit never has to make or sync
// one. It costs one directory listing when they are all there.
func makeFirstLevel(root string) error {
	names, err := readDirNames(root)
	if err != nil {
		return fmt.Errorf("fs: %w", err)
	}
	have := make(map[string]bool, len(names))
	for _, n := range names {
		have[n] = true
	}
	const hexDigits = "0123456789abcdef"
	made := false
	for i := 0; i < 256; i++ {
		n := string([]byte{hexDigits[i>>4], hexDigits[i&15]})
		if have[n] {
			continue
		}
		if err := os.Mkdir(filepath.Join(root, n), dirMode); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("fs: %w", err)
		}
		made = true
	}
	if made {
		return syncDir(root)
	}
	return nil
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
	// The scratch file needs no sync of tmp/: its name there is never
	// relied on (a crash leaves it for Recover, or loses it).
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

// mkdirs makes the fan-out directory dir (mode 0700) when missing, and its
// parent when that is missing too (Open makes the parents, so this is a
// store whose directories were removed while it ran), without syncing
// anything: Commit syncs after its rename. It reports whether it made the
// parent, whose entry in the root then needs a sync.
func mkdirs(dir string) (madeParent bool, err error) {
	err = os.Mkdir(dir, dirMode)
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.Mkdir(filepath.Dir(dir), dirMode); err == nil {
			madeParent = true
		} else if !errors.Is(err, fs.ErrExist) {
			return false, err
		}
		err = os.Mkdir(dir, dirMode)
	}
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return madeParent, err
	}
	return madeParent, nil
}

// writer is a blob being written in the scratch directory.
type writer struct {
	b    *Blobs
	f    *os.File
	h    hash.Hash
	n    int64
	wb   int64 // bytes handed to startWriteback
	done bool  // committed or aborted
	err  error
}

// writebackChunk is how much of a blob accumulates before its writeback
// is started ahead of Commit's fdatasync.
const writebackChunk = 256 << 10

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
	if w.n-w.wb >= writebackChunk {
		startWriteback(w.f, w.wb, w.n-w.wb)
		w.wb = w.n
	}
	if err != nil {
		w.err = fmt.Errorf("fs: write: %w", err)
		return n, w.err
	}
	return n, nil
}

// Commit syncs the file, moves it under its hash and syncs the directory
// (the package comment gives the order and why each sync is needed). If a
// blob with that hash is already there (same content: the name is its
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
		// Already stored: the name is the content's hash. Its entry may be
		// another Commit's that has not synced yet, so sync it here too
		// before the caller indexes it.
		w.f.Close()
		if err := os.Remove(tmp); err != nil {
			return "", 0, fmt.Errorf("fs: commit: %w", err)
		}
		if err := w.b.syncPlace(key, w.b.isDurable(fanoutIndex(key)), false); err != nil {
			return "", 0, fmt.Errorf("fs: commit: %w", err)
		}
		return key, w.n, nil
	}
	// 1. The content, before any name points at it.
	if err := fdatasync(w.f); err != nil {
		w.f.Close()
		os.Remove(tmp)
		return "", 0, fmt.Errorf("fs: commit: %w", err)
	}
	if err := w.f.Close(); err != nil {
		os.Remove(tmp)
		return "", 0, fmt.Errorf("fs: commit: %w", err)
	}
	// 2. Directories and rename, unsynced for now.
	fi := fanoutIndex(key)
	known := w.b.isDurable(fi)
	var madeParent bool
	var err error
	if !known {
		if madeParent, err = mkdirs(filepath.Dir(dst)); err != nil {
			os.Remove(tmp)
			return "", 0, fmt.Errorf("fs: commit: %w", err)
		}
	}
	err = os.Rename(tmp, dst)
	if err != nil && known && errors.Is(err, fs.ErrNotExist) {
		// The directory was removed behind our back: make it again.
		w.b.clearDurable(fi)
		known = false
		if madeParent, err = mkdirs(filepath.Dir(dst)); err == nil {
			err = os.Rename(tmp, dst)
		}
	}
	if err != nil {
		os.Remove(tmp)
		return "", 0, fmt.Errorf("fs: commit: %w", err)
	}
	// 3. The syncs that make the new entries durable.
	if err := w.b.syncPlace(key, known, madeParent); err != nil {
		return "", 0, err
	}
	return key, w.n, nil
}

// syncPlace syncs the directory of key's blob and, unless the directory is
// known to be durable, its parent, and the root when madeParent says the
// parent is new (see the package comment); it then records
// the directory as durable. A first-level directory that was not made here
// was made by Open, which synced the root after it.
func (b *Blobs) syncPlace(key string, known, madeParent bool) error {
	dir := filepath.Join(b.root, key[0:2], key[2:4])
	if known {
		return syncDir(dir)
	}
	// The syncs are independent, so they run at once: a journaling file
	// system then serves them with one commit and one device flush, where
	// one after the other the second would find the commit done and still
	// flush the device cache again (~0.5 ms here).
	others := []string{filepath.Dir(dir)}
	if madeParent {
		others = append(others, b.root)
	}
	errs := make(chan error, len(others))
	for _, d := range others {
		go func() { errs <- syncDir(d) }()
	}
	err := syncDir(dir)
	for range others {
		if e := <-errs; err == nil {
			err = e
		}
	}
	if err != nil {
		return err
	}
	b.setDurable(fanoutIndex(key))
	return nil
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
