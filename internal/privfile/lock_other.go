//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package privfile

// Lock is a no-op where flock is not available: callers keep changes
// from one process serialised with their own mutex, but two processes
// changing one file at the same instant may lose one of the changes.
func Lock(path string) (func(), error) { return func() {}, nil }
