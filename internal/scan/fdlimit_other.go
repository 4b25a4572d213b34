//go:build !unix

package scan

func openFileLimit() uint64 { return 0 }
