// Package privfile writes the small owner-only state files of the data
// directory (peers.json, users.json, enroll-tokens.json): atomically, so
// a reader or a crash sees the old file or the new one and never half of
// either, and under an advisory lock, so that two processes (serve and a
// `peer add` beside it) changing one file do not lose each other's change.
package privfile

import (
	"os"
	"path/filepath"
)

// Mode is the permission of every file WriteAtomic writes: owner only,
// because these files hold who may connect, password hashes and token
// hashes.
const Mode = 0o600

// WriteAtomic replaces path with data: written to a temporary file in the
// same directory (mode Mode), synced, renamed over path, and the
// directory synced so the rename survives a power cut.
func WriteAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(name)
		}
	}()
	if err := tmp.Chmod(Mode); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(name, path); err != nil {
		return err
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
