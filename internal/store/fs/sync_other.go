//go:build !linux

package fs

import (
	"fmt"
	"os"
)

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

// fdatasync is a full fsync where the portable library offers no
// fdatasync.
func fdatasync(f *os.File) error { return f.Sync() }

// startWriteback is a no-op where the system has no sync_file_range.
func startWriteback(f *os.File, off, n int64) {}
