package archive

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dicomshield/dicomshield/internal/audit"
	"github.com/dicomshield/dicomshield/internal/store"
)

// QuarantineDir is where recovery moves the blobs no index row refers to,
// inside the data directory (owner-only): a file planted in the blob store
// is kept as evidence for `verify`, and so is a crash's leftover, rather
// than deleted before anyone looked.
const QuarantineDir = "quarantine"

// AlertQuarantined names the security alert recovery raises when it moved
// files into quarantine.
const AlertQuarantined = "blobs-quarantined"

// QuarantineAdvice says what a quarantined file may be and what to do,
// for the log, the alert and verify.
const QuarantineAdvice = "added outside dicomshield, or stored when a crash came between the file and its index row " +
	"(expected after a crash: that store was never acknowledged and the sender sends it again); " +
	"inspect them, then run `dicomshield verify --clear-quarantine` (or delete the folder)"

// QuarantinePath returns the quarantine folder of the data directory dir.
func QuarantinePath(dir string) string { return filepath.Join(dir, QuarantineDir) }

// QuarantinedFile is one file in quarantine.
type QuarantinedFile struct {
	// Name is the file's name in the folder: when it was moved (UTC) and
	// the key it had in the blob store, "20260102T150405Z-<key>".
	Name string `json:"name"`
	// Key is the name it had in the blob store (the SHA-256 its content
	// should have).
	Key  string `json:"key"`
	Size int64  `json:"size"`
	// HashMatches tells whether the content still hashes to Key: true for
	// a crash's leftover, often false for a planted file.
	HashMatches bool `json:"hash_matches"`
}

// quarantine moves the blobs keys into the quarantine folder (copied,
// synced, then removed from the store: the store's files are not ours to
// rename) and returns how many it moved.
func (a *Archive) quarantine(keys []string) (int, error) {
	if len(keys) == 0 {
		return 0, nil
	}
	dir := QuarantinePath(a.Dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, fmt.Errorf("quarantine: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return 0, fmt.Errorf("quarantine: %w", err)
	}
	stamp := a.now().UTC().Format("20060102T150405Z")
	n := 0
	for _, k := range keys {
		if err := a.quarantineOne(dir, stamp+"-"+k, k); err != nil {
			return n, err
		}
		n++
	}
	if err := syncDirectory(dir); err != nil {
		return n, err
	}
	return n, nil
}

func (a *Archive) quarantineOne(dir, name, key string) error {
	rc, err := a.Blobs.Open(key)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("quarantine: blob %s: %w", key, err)
	}
	defer rc.Close()
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("quarantine: %w", err)
	}
	if _, err := io.Copy(f, rc); err != nil {
		f.Close()
		return fmt.Errorf("quarantine: blob %s: %w", key, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("quarantine: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("quarantine: %w", err)
	}
	if err := a.Blobs.Remove(key); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("quarantine: removing blob %s after copying it: %w", key, err)
	}
	return nil
}

func syncDirectory(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Quarantined lists the files in the quarantine folder of the data
// directory dir, by name; none when there is no folder. It reads each
// file to tell whether its content still matches its key.
func Quarantined(dir string) ([]QuarantinedFile, error) { return listQuarantine(dir, true) }

// listQuarantine lists the quarantine folder, hashing each file only when
// hash is set: serve's start and ClearQuarantine need the names, not the
// contents, and a large file left there would be read at every start.
func listQuarantine(dir string, hash bool) ([]QuarantinedFile, error) {
	qdir := QuarantinePath(dir)
	ents, err := os.ReadDir(qdir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("quarantine: %w", err)
	}
	var out []QuarantinedFile
	for _, e := range ents {
		q := QuarantinedFile{Name: e.Name()}
		if _, k, ok := strings.Cut(e.Name(), "-"); ok {
			q.Key = k
		}
		if e.Type().IsRegular() && !hash {
			info, err := e.Info()
			if err != nil {
				return nil, fmt.Errorf("quarantine: %w", err)
			}
			q.Size = info.Size()
		} else if e.Type().IsRegular() {
			sum, size, err := hashFile(filepath.Join(qdir, e.Name()))
			if err != nil {
				return nil, fmt.Errorf("quarantine: %w", err)
			}
			q.Size, q.HashMatches = size, q.Key != "" && sum == q.Key
		}
		out = append(out, q)
	}
	slices.SortFunc(out, func(x, y QuarantinedFile) int { return strings.Compare(x.Name, y.Name) })
	return out, nil
}

func hashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// ClearQuarantine deletes every file in the quarantine folder of the
// data directory dir (an operator's decision, once they were looked at)
// and returns how many it deleted.
func ClearQuarantine(dir string) (int, error) {
	files, err := listQuarantine(dir, false)
	if err != nil {
		return 0, err
	}
	for i, q := range files {
		if err := os.RemoveAll(filepath.Join(QuarantinePath(dir), q.Name)); err != nil {
			return i, fmt.Errorf("quarantine: %w", err)
		}
	}
	return len(files), nil
}

// recordQuarantine raises, once the trail is there (Serve), the alert for
// what recovery moved into quarantine when the archive was opened, and
// warns about files still waiting there from earlier starts.
func (a *Archive) recordQuarantine() {
	if n := a.quarantinedAtOpen; n > 0 {
		a.Audit.Record(audit.Event{Kind: audit.SecurityAlert, Outcome: audit.SeriousFailure, Alert: AlertQuarantined,
			Object: QuarantinePath(a.Dir),
			Description: fmt.Sprintf("recovery moved %d file(s) no index row refers to from the blob store into quarantine at %s "+
				"(%s): %s", n, a.quarantinedAt.UTC().Format(time.RFC3339), QuarantinePath(a.Dir), QuarantineAdvice)})
	}
	files, err := listQuarantine(a.Dir, false)
	if err != nil {
		a.Logger.Error("cannot list the quarantine folder", "dir", QuarantinePath(a.Dir), "err", err)
		return
	}
	if len(files) > a.quarantinedAtOpen {
		a.Logger.Warn("files wait in quarantine since an earlier start", "count", len(files)-a.quarantinedAtOpen,
			"dir", QuarantinePath(a.Dir), "advice", QuarantineAdvice)
	}
}
