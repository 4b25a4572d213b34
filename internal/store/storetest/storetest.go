// Package storetest is the conformance suite every store backend passes:
// an index backend's test calls Run with a constructor for it (and nil
// blobs), a blob backend's with nil index. The suite pins down the
// behaviour the rest of dicomshield relies on: duplicate and conflicting
// stores, every C-FIND matching rule of PS3.4 C.2.2.2 (including values
// that are SQL or pattern syntax, which must match literally), return
// keys, limits, retrieve selection, and the crash safety of blobs.
package storetest

import (
	"testing"

	"github.com/dicomshield/dicomshield/internal/store"
)

// Run runs the suite against the backends the constructors make; a nil
// constructor skips that half. Each constructor is called once per
// subtest and must return an empty store that is cleaned up with t (for
// example in t.TempDir()).
func Run(t *testing.T, newIndex func(t *testing.T) store.Index, newBlobs func(t *testing.T) store.Blobs) {
	if newIndex != nil {
		t.Run("Index", func(t *testing.T) { runIndex(t, newIndex) })
	}
	if newBlobs != nil {
		t.Run("Blobs", func(t *testing.T) { runBlobs(t, newBlobs) })
	}
}
