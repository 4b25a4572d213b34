package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dicomshield/dicomshield/internal/audit"
	"github.com/dicomshield/dicomshield/internal/config"
)

// TestAuditVerify: `audit --verify` passes a log written by dicomshield
// and prints its head; after an edit, a deletion, or a cut at the end
// (found with the recorded head) it names the problem and exits 1.
func TestAuditVerify(t *testing.T) {
	tests := []struct {
		name     string
		tamper   func(lines []string) []string
		useHead  bool
		exitCode int
		want     string
	}{
		{"whole", func(l []string) []string { return l }, true, 0, "OK: no record edited"},
		{"edited", func(l []string) []string {
			l[2] = strings.Replace(l[2], "STRANGER", "FRIEND", 1)
			return l
		}, false, 1, "edited"},
		{"deleted", func(l []string) []string { return append(l[:1:1], l[2:]...) }, false, 1, "deleted"},
		{"cut at the end", func(l []string) []string { return l[:len(l)-2] }, true, 1, "truncated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := config.WriteDefault(config.Path(dir)); err != nil {
				t.Fatal(err)
			}
			src := audit.Source{ID: "test", AETitle: "DICOMSHIELD"}
			for i := 0; i < 5; i++ {
				ev := audit.Event{Time: time.Now(), Kind: audit.AssocRefused, Outcome: audit.MinorFailure, CallingAE: "STRANGER",
					Description: fmt.Sprintf("attempt %d", i)}
				if err := audit.Append(audit.LogPath(dir), src, ev); err != nil {
					t.Fatal(err)
				}
			}
			run := func(args ...string) (int, string) {
				var out, errb bytes.Buffer
				code := Main(append([]string{"audit", "--data", dir, "--verify"}, args...), &out, &errb)
				return code, out.String() + errb.String()
			}
			// The first run records its own use of the log and prints the
			// head, which includes that record.
			code, out := run()
			m := regexp.MustCompile(`audit log head: seq (\d+) hash ([0-9a-f]{64})`).FindStringSubmatch(out)
			if code != 0 || m == nil || m[1] != "6" {
				t.Fatalf("verify of the untouched log: exit %d, head %v\n%s", code, m, out)
			}
			head := m[1] + ":" + m[2]
			data, err := os.ReadFile(audit.LogPath(dir))
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
			lines = tt.tamper(lines)
			if err := os.WriteFile(audit.LogPath(dir), []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			var args []string
			if tt.useHead {
				args = []string{"--expect", head}
			}
			code, out = run(args...)
			if code != tt.exitCode || !strings.Contains(out, tt.want) {
				t.Errorf("exit %d, want %d, output should say %q:\n%s", code, tt.exitCode, tt.want, out)
			}
		})
	}
}
