//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package identity

// lockFile is a no-op where flock is not available: changes from one
// process stay serialised by Users's mutex, but two processes
// changing peers at the same instant may lose one of the changes.
func lockFile(path string) (func(), error) { return func() {}, nil }
