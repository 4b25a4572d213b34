package archive_test

// Recovery keeps evidence: blobs no index row refers to are moved into
// quarantine, raised as one alert, reported by verify until cleared.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dicomshield/dicomshield/internal/archive"
	"github.com/dicomshield/dicomshield/internal/audit"
	"github.com/dicomshield/dicomshield/internal/cli"
	"github.com/dicomshield/dicomshield/internal/dicomtest"
)

// runCLIStatus runs the command line and returns its exit status and
// output.
func runCLIStatus(args ...string) (int, string) {
	var out, errb bytes.Buffer
	code := cli.Main(args, &out, &errb)
	return code, out.String() + errb.String()
}

// TestRecoveryQuarantines: files in the blob store without an index row (a
// forged instance planted under its valid hash name, a file whose content
// is not its name's hash, a store cut short by a crash after its blob was
// committed) survive the restart in the quarantine folder, owner-only; the
// restart raises one alert counting them; verify reports each and exits 1
// until --clear-quarantine, which the audit trail records.
func TestRecoveryQuarantines(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	dir := filepath.Join(t.TempDir(), "data")
	a, _, err := archive.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	blobRoot := filepath.Join(dir, archive.BlobsDir)
	plant := func(name string, content []byte) string {
		p := filepath.Join(blobRoot, name[0:2], name[2:4], name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, content, 0o600); err != nil {
			t.Fatal(err)
		}
		return name
	}
	hashOf := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	forged := makeInstance(t, instanceSpec{Description: "forged"}).Data
	tests := []struct {
		name     string
		make     func() string // puts the file in place, returns its key
		matches  bool          // its content hashes to its name
		inDetail string
	}{
		{"planted under its valid hash name", func() string { return plant(hashOf(forged), forged) }, true, "expected"},
		{"planted under another file's hash", func() string { return plant(hashOf([]byte("other")), forged) }, false, "does not hash"},
		{"committed by a store a crash cut short", func() string {
			w, err := a.Blobs.Create()
			if err != nil {
				t.Fatal(err)
			}
			w.Write([]byte("the blob of a store whose index row never came"))
			k, _, err := w.Commit()
			if err != nil {
				t.Fatal(err)
			}
			return k
		}, true, "expected after a crash"},
	}
	keys := map[string]bool{}
	for _, tt := range tests {
		keys[tt.make()] = tt.matches
	}
	a.Close()

	s, al := startGuarded(t, dir, newFakeClock(), nil)
	ev := al.wait(t, archive.AlertQuarantined)
	if !strings.Contains(ev.Description, "moved 3 file(s)") || ev.Outcome != audit.SeriousFailure {
		t.Errorf("alert: %q (outcome %d), want 3 files counted", ev.Description, ev.Outcome)
	}
	if !strings.Contains(s.Logs.String(), "into quarantine") || !strings.Contains(s.Logs.String(), "count=3") {
		t.Errorf("the log does not count the quarantined files")
	}
	if got := blobFiles(t, dir); len(got) != 0 {
		t.Errorf("blob store still holds %q", got)
	}
	qdir := archive.QuarantinePath(dir)
	if fi, err := os.Stat(qdir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("quarantine folder: %v, %v; want mode 0700", fi, err)
	}
	files, err := archive.Quarantined(dir)
	if err != nil || len(files) != len(tests) {
		t.Fatalf("Quarantined = %+v, %v; want %d files", files, err, len(tests))
	}
	for _, q := range files {
		matches, ok := keys[q.Key]
		if !ok || q.HashMatches != matches {
			t.Errorf("quarantined %+v: want one of the planted keys, hash matching %v", q, matches)
		}
		fi, err := os.Stat(filepath.Join(qdir, q.Name))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v; want mode 0600", q.Name, fi, err)
		}
	}

	code, out := runCLIStatus("verify", "--data", dir)
	if code != 1 {
		t.Errorf("verify with quarantined files: exit %d, want 1\n%s", code, out)
	}
	if n := strings.Count(out, "added outside dicomshield / quarantined"); n != len(tests) {
		t.Errorf("verify reported %d quarantined files, want %d:\n%s", n, len(tests), out)
	}
	for _, tt := range tests {
		if !strings.Contains(out, tt.inDetail) {
			t.Errorf("verify output lacks %q (%s):\n%s", tt.inDetail, tt.name, out)
		}
	}
	code, out = runCLIStatus("verify", "--data", dir, "--clear-quarantine")
	if code != 0 || !strings.Contains(out, "deleted 3 quarantined file(s)") {
		t.Errorf("verify --clear-quarantine: exit %d\n%s", code, out)
	}
	if code, out := runCLIStatus("verify", "--data", dir); code != 0 {
		t.Errorf("verify after clearing: exit %d\n%s", code, out)
	}
	f, err := os.Open(audit.LogPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cleared := false
	audit.ReadLog(f, func(e audit.Entry) error {
		cleared = cleared || e.Alert == "quarantine-cleared"
		return nil
	})
	if !cleared {
		t.Errorf("the audit log does not record the clearing")
	}
}
