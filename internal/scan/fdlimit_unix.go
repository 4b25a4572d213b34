//go:build unix

package scan

import "syscall"

// openFileLimit is the process's limit on open files (Go raises the soft
// limit to the hard one at start), or 0 when unknown.
func openFileLimit() uint64 {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) != nil {
		return 0
	}
	return rl.Cur
}
