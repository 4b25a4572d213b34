package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidateNeverBan: validate reports each bad abuse.never_ban entry
// with the reason and the fix, and accepts a good list.
func TestValidateNeverBan(t *testing.T) {
	tests := []struct {
		name     string
		neverBan string
		wantExit int
		want     []string
	}{
		{"loopback and a clinic subnet", `["127.0.0.1", "::1", "10.0.4.0/24"]`, 0, []string{": valid"}},
		{"every problem at once", `["127.0.0.1/8", "::/0", "::ffff:10.0.0.7", "10.0.4.0/24", "10.0.4.9", "pacs.example"]`, 1, []string{
			"5 problems",
			`"127.0.0.1/8" has bits set after the prefix length; write "127.0.0.0/8"`,
			`"::/0" covers every IPv6 address, so nothing would ever be banned; to switch banning off, set rejections_before_ban = 0 instead`,
			`"::ffff:10.0.0.7" is an IPv4-mapped IPv6 address; write it as "10.0.0.7"`,
			`"10.0.4.9" is already inside "10.0.4.0/24"`,
			`"pacs.example" is not an IP address or range`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "dicomshield.toml")
			if err := os.WriteFile(p, []byte("version = 1\n[abuse]\nnever_ban = "+tt.neverBan+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			var out, errb bytes.Buffer
			if code := Main([]string{"validate", p}, &out, &errb); code != tt.wantExit {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantExit, out.String(), errb.String())
			}
			got := out.String() + errb.String()
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("output does not say %q:\n%s", w, got)
				}
			}
		})
	}
}
