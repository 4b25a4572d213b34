package cli

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/dicomshield/dicomshield/internal/config"
)

func TestEnrollAddrs(t *testing.T) {
	ifaces := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1"), netip.MustParseAddr("fe80::1"),
		netip.MustParseAddr("10.0.4.2"), netip.MustParseAddr("2001:db8::7")}
	tests := []struct {
		name       string
		listen     string
		hostnames  []string
		ifaces     []netip.Addr
		serverName string
		want       []string
	}{
		{"certificate names, then addresses", ":2763", []string{"pacs.example", "localhost", "127.0.0.1", "::1"}, ifaces, "",
			[]string{"pacs.example:2763", "10.0.4.2:2763", "[2001:db8::7]:2763"}},
		{"addresses only", "0.0.0.0:9443", []string{"localhost"}, ifaces, "", []string{"10.0.4.2:9443", "[2001:db8::7]:9443"}},
		{"bound to one address", "10.0.4.2:2763", []string{"pacs.example"}, ifaces, "", []string{"10.0.4.2:2763"}},
		{"--server-name without port", ":2763", []string{"pacs.example"}, ifaces, "pacs.hospital.org", []string{"pacs.hospital.org:2763"}},
		{"--server-name with port", ":2763", nil, ifaces, "gw.example:443", []string{"gw.example:443"}},
		{"nothing reachable", ":2763", []string{"localhost"}, ifaces[:3], "", []string{"127.0.0.1:2763"}},
		{"names repeated once", ":2763", []string{"10.0.4.2"}, ifaces[3:4], "", []string{"10.0.4.2:2763"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := enrollAddrs(tt.listen, tt.hostnames, tt.ifaces, tt.serverName)
			if err != nil || strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("enrollAddrs = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if _, err := enrollAddrs("2763", nil, nil, ""); err == nil {
		t.Errorf("a listen address without host:port accepted")
	}
}

// TestPeerAddTokenPrintsServer: `peer add --token` prints the enrolment
// address from the config (its port, the certificate's host names), or
// --server-name; never a placeholder.
func TestPeerAddTokenPrintsServer(t *testing.T) {
	tests := []struct {
		name  string
		extra []string
		want  string
	}{
		{"from the config", nil, "--server pacs.example:9443 "},
		{"--server-name", []string{"--server-name", "pacs.hospital.org"}, "--server pacs.hospital.org:9443 "},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := config.WriteDefault(config.Path(dir)); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(config.Path(dir))
			s := regexp.MustCompile(`(?m)^listen = ":2763"`).ReplaceAllString(string(b), `listen = ":9443"`)
			s = regexp.MustCompile(`(?m)^hostnames = .*$`).ReplaceAllString(s, `hostnames = ["pacs.example", "localhost"]`)
			if s == string(b) {
				t.Fatal("the default config has no enrol listen or hostnames line to change")
			}
			os.WriteFile(config.Path(dir), []byte(s), 0o600)
			var out, errb bytes.Buffer
			args := append([]string{"peer", "add", "US0" + string(rune('1'+i)), "--host", "10.0.4.30", "--allow", "echo,store", "--token", "--data", dir}, tt.extra...)
			if code := Main(args, &out, &errb); code != 0 {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			if !strings.Contains(out.String(), tt.want) || strings.Contains(out.String(), "ARCHIVE_HOST") {
				t.Errorf("output lacks %q:\n%s", tt.want, out.String())
			}
		})
	}
}
