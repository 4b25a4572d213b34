package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dicomshield/dicomshield/internal/audit"
	"github.com/dicomshield/dicomshield/internal/config"
)

func TestAuditCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := config.WriteDefault(config.Path(dir)); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	src := audit.Source{ID: "test", AETitle: "DICOMSHIELD"}
	for _, ev := range []audit.Event{
		{Time: now.Add(-48 * time.Hour), Kind: audit.AssocAccepted, Peer: "CT01", CallingAE: "CT01", Remote: "127.0.0.1"},
		{Time: now.Add(-time.Hour), Kind: audit.AssocRefused, Outcome: audit.MinorFailure, CallingAE: "STRANGER", Remote: "192.0.2.9", Description: "calling AE title not registered"},
		{Time: now.Add(-time.Minute), Kind: audit.InstancesStored, Peer: "CT01", CallingAE: "CT01", Studies: []string{"1.2.3"}, Patients: []string{"PAT-9"}, Instances: 4, SOPClasses: []string{"1.2.840.10008.5.1.4.1.1.2"}},
	} {
		if err := audit.Append(audit.LogPath(dir), src, ev); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name     string
		args     []string
		want     []string // substrings of the output
		rows     int      // table rows (without header) or lines
		exitCode int
	}{
		{"all", nil, []string{"association-accepted", "STRANGER", "PAT-9"}, 3, 0},
		{"since", []string{"--since", "2h"}, []string{"STRANGER", "PAT-9"}, 2, 0},
		{"kind", []string{"--kind", "instances-stored"}, []string{"PAT-9", "1.2.3"}, 1, 0},
		{"peer", []string{"--peer", "ct01"}, []string{"CT01"}, 2, 0},
		{"failures", []string{"--outcome", "failure"}, []string{"minor failure", "calling AE title not registered"}, 1, 0},
		{"xml", []string{"--kind", "association-refused", "--xml"}, []string{"<AuditMessage>", `csd-code="110113"`}, 1, 0},
		{"json", []string{"--kind", "instances-stored", "--json"}, []string{`"patients":["PAT-9"]`}, 1, 0},
		{"bad since", []string{"--since", "last week"}, nil, 0, 1},
		{"bad outcome", []string{"--outcome", "meh"}, nil, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Main(append([]string{"audit", "--data", dir}, tt.args...), &out, &errb)
			if code != tt.exitCode {
				t.Fatalf("exit %d, want %d: %s", code, tt.exitCode, errb.String())
			}
			if code != 0 {
				return
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if strings.HasPrefix(lines[0], "TIME") {
				lines = lines[1:]
			}
			// The reads themselves are recorded, and show in later reads.
			var rows []string
			for _, l := range lines {
				if !strings.Contains(l, "audit-log-used") && !strings.Contains(l, "110101") {
					rows = append(rows, l)
				}
			}
			lines = rows
			if len(lines) != tt.rows {
				t.Errorf("%d rows, want %d:\n%s", len(lines), tt.rows, out.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
	// Every successful read was itself recorded.
	f, err := os.Open(audit.LogPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	used := 0
	audit.ReadLog(f, func(e audit.Entry) error {
		if e.Kind == audit.AuditLogUsed {
			used++
		}
		return nil
	})
	if used != 7 {
		t.Fatalf("%d audit-log-used records, want 7 (one per read)", used)
	}
}
