//go:build linux

package fs

import (
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// syncDir makes a directory's entries (a rename, a new file, a removal)
// durable. It uses the system calls directly: os.Open would also try to
// register the descriptor with the poller, four more calls per sync.
func syncDir(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("fs: open %s: %w", dir, err)
	}
	err = ignoringEINTR(func() error { return unix.Fsync(fd) })
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fs: sync %s: %w", dir, err)
	}
	return nil
}

// fdatasync flushes f's data and the metadata needed to read it back (see
// the package comment for why that is enough for a new blob).
func fdatasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = ignoringEINTR(func() error { return unix.Fdatasync(int(fd)) })
	}); err != nil {
		return err
	}
	if serr != nil {
		return &fs.PathError{Op: "fdatasync", Path: f.Name(), Err: serr}
	}
	return nil
}

func ignoringEINTR(fn func() error) error {
	for {
		if err := fn(); err != unix.EINTR {
			return err
		}
	}
}

// startWriteback asks the kernel to start writing n bytes of f from off
// to disk now, without waiting, so that the fdatasync in Commit finds
// most of the blob written already instead of writing all of it then.
// It is a hint: durability still comes from that fdatasync.
func startWriteback(f *os.File, off, n int64) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		unix.SyncFileRange(int(fd), off, n, unix.SYNC_FILE_RANGE_WRITE)
	})
}
