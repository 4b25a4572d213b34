package archive

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
)

// TestListQuarantineWithoutHashing: the start's listing gives names and
// sizes without reading the files (HashMatches stays false), verify's
// listing reads them.
func TestListQuarantineWithoutHashing(t *testing.T) {
	dir := t.TempDir()
	content := []byte("a blob a crash left without its index row")
	sum := sha256.Sum256(content)
	key := hex.EncodeToString(sum[:])
	if err := os.MkdirAll(QuarantinePath(dir), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(QuarantinePath(dir), "20261123T120000Z-"+key), content, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		hash        bool
		wantMatches bool
	}{{false, false}, {true, true}} {
		files, err := listQuarantine(dir, tc.hash)
		if err != nil {
			t.Fatal(err)
		}
		if len(files) != 1 || files[0].Key != key || files[0].Size != int64(len(content)) || files[0].HashMatches != tc.wantMatches {
			t.Errorf("hash=%v: %+v, want one file of %d bytes under its key, HashMatches %v", tc.hash, files, len(content), tc.wantMatches)
		}
	}
}
