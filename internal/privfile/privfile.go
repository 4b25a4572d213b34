// Package privfile writes the small owner-only state files of the data
// directory (peers.json, users.json, enroll-tokens.json): atomically, so
// a reader or a crash sees the old file or the new one and never half of
// either, and under an advisory lock, so that two processes (serve and a
// `peer add` beside it) changing one file do not lose each other's change.
package privfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// DecodeJSON reads one JSON document of at most limit bytes from r into
// v, strictly: an unknown field, a second document or trailing data is an
// error. The errors read as the end of a sentence that begins with the
// file's name ("... is larger than 1048576 bytes").
func DecodeJSON(r io.Reader, limit int64, v any) error {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return err
	}
	if int64(len(data)) > limit {
		return fmt.Errorf("is larger than %d bytes", limit)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("is not valid: %v", err)
	}
	if dec.More() {
		return errors.New("has data after its end")
	}
	return nil
}
