//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package privfile

import (
	"os"
	"syscall"
)

// Lock takes an exclusive advisory lock on path (a lock file beside the
// file it guards), creating it (0600) if needed, and returns the function
// that releases it. It blocks while another process, or another holder in
// this one, has it.
func Lock(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
