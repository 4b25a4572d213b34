//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package enroll

// lockFile is a no-op where flock is not available. Tokens are redeemed
// only by the serve process, whose updates tokensMu serialises, so a token
// still works once; a token created by "peer add" at the same instant as
// another change may be lost, and is then simply made again.
func lockFile(path string) (func(), error) { return func() {}, nil }
