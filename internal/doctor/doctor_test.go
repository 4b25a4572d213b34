package doctor_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dicomshield/dicomshield/internal/archive"
	"github.com/dicomshield/dicomshield/internal/config"
	"github.com/dicomshield/dicomshield/internal/doctor"
	"github.com/dicomshield/dicomshield/internal/pki"
	"github.com/dicomshield/dicomshield/internal/policy"
)

// dataDir makes a data directory as a first start does (config, CA, empty
// registry) and returns it with its registry and CA.
func dataDir(t *testing.T) (string, *policy.FileRegistry, *pki.CA) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	reg, ca, _, err := archive.OpenRegistry(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	return dir, reg, ca
}

func writeConfig(t *testing.T, dir, body string) {
	t.Helper()
	if err := os.WriteFile(config.Path(dir), []byte("version = 1\n"+body), 0o600); err != nil {
		t.Fatal(err)
	}
}

func putPeer(t *testing.T, reg *policy.FileRegistry, p policy.Peer) {
	t.Helper()
	if p.AddedAt.IsZero() {
		p.AddedAt = time.Now()
	}
	if p.CertSerial == "" {
		p.CertSerial = "01"
	}
	if err := reg.Put(context.Background(), p); err != nil {
		t.Fatal(err)
	}
}

func hosts(ss ...string) []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range ss {
		p, err := policy.ParseHost(s)
		if err != nil {
			panic(err)
		}
		ps = append(ps, p)
	}
	return ps
}

var echoStore = []policy.Right{policy.RightEcho, policy.RightStore}

func TestPKIDirIsTheArchives(t *testing.T) {
	// doctor reads pki/ without importing the archive at run time; this
	// keeps the two names the same.
	dir, _, ca := dataDir(t)
	if ca.Dir() != filepath.Join(dir, archive.PKIDir) || archive.PKIDir != "pki" {
		t.Fatalf("CA in %s, PKIDir %q: doctor looks in pki/", ca.Dir(), archive.PKIDir)
	}
}

// TestChecks: one case per check, each on a data directory built for it.
// want lists findings that must be present (check: severity); absent
// lists checks that must not be.
func TestChecks(t *testing.T) {
	const day = 24 * time.Hour
	tests := []struct {
		name   string
		setup  func(t *testing.T, dir string, reg *policy.FileRegistry, ca *pki.CA) (now time.Time)
		want   map[string]doctor.Severity
		absent []string
	}{
		{"fresh install", nil,
			map[string]doctor.Severity{"no-peers": doctor.Info, "audit-not-forwarded": doctor.Medium},
			[]string{"config-unusable", "plaintext-listener", "accepted-risk", "metrics-public", "abuse-limit-off", "abuse-never-ban", "series-sealing-off", "foreign-study-allowed", "peer-may-reopen", "peer-wide-range",
				"peer-all-rights", "peer-plaintext", "user-identity-not-required", "ca-expiry", "ca-missing", "peer-cert-expiry",
				"data-dir-permissions", "key-permissions", "file-permissions", "peers-unreadable"}},
		{"a tidy peer", func(t *testing.T, dir string, reg *policy.FileRegistry, _ *pki.CA) time.Time {
			putPeer(t, reg, policy.Peer{AETitle: "CT01", Hosts: hosts("10.0.4.21", "10.0.5.0/24", "fd00:1:2:3::/64"), Rights: echoStore, RequireUser: true})
			return time.Time{}
		}, nil, []string{"no-peers", "peer-wide-range", "peer-all-rights", "peer-plaintext", "user-identity-not-required", "peer-cert-expiry"}},
		{"plaintext listener on the network", func(t *testing.T, dir string, _ *policy.FileRegistry, _ *pki.CA) time.Time {
			writeConfig(t, dir, "listen = \":104\"\naccept_risk = [\"plaintext\"]\n")
			return time.Time{}
		}, map[string]doctor.Severity{"plaintext-listener": doctor.High, "accepted-risk": doctor.Low}, nil},
		{"plaintext listener on loopback", func(t *testing.T, dir string, _ *policy.FileRegistry, _ *pki.CA) time.Time {
			writeConfig(t, dir, "listen = \"127.0.0.1:11112\"\naccept_risk = [\"plaintext\"]\n")
			return time.Time{}
		}, map[string]doctor.Severity{"plaintext-listener": doctor.Low}, nil},
		{"metrics on the network", func(t *testing.T, dir string, _ *policy.FileRegistry, _ *pki.CA) time.Time {
			writeConfig(t, dir, "metrics = \"0.0.0.0:9762\"\naccept_risk = [\"metrics-public\"]\n")
			return time.Time{}
		}, map[string]doctor.Severity{"metrics-public": doctor.Medium, "accepted-risk": doctor.Low}, nil},
		{"audit forwarded", func(t *testing.T, dir string, _ *policy.FileRegistry, _ *pki.CA) time.Time {
			ca := filepath.Join(t.TempDir(), "collector-ca.pem")
			if err := os.WriteFile(ca, []byte("not checked by doctor"), 0o600); err != nil {
				t.Fatal(err)
			}
			writeConfig(t, dir, fmt.Sprintf("[audit]\nsyslog = \"logs.example.org:6514\"\nsyslog_ca = %q\n", ca))
			return time.Time{}
		}, nil, []string{"audit-not-forwarded", "config-unusable"}},
		{"series sealing off", func(t *testing.T, dir string, _ *policy.FileRegistry, _ *pki.CA) time.Time {
			writeConfig(t, dir, "accept_risk = [\"unsealed-series\"]\n[tamper]\nseal_after = \"0\"\n")
			return time.Time{}
		}, map[string]doctor.Severity{"series-sealing-off": doctor.Medium, "accepted-risk": doctor.Low}, []string{"foreign-study-allowed"}},
		{"foreign studies allowed", func(t *testing.T, dir string, _ *policy.FileRegistry, _ *pki.CA) time.Time {
			writeConfig(t, dir, "accept_risk = [\"foreign-study\"]\n[tamper]\nforeign_study = \"allow\"\n")
			return time.Time{}
		}, map[string]doctor.Severity{"foreign-study-allowed": doctor.Medium}, []string{"series-sealing-off"}},
		{"peer may reopen", func(t *testing.T, dir string, reg *policy.FileRegistry, _ *pki.CA) time.Time {
			putPeer(t, reg, policy.Peer{AETitle: "CT01", Hosts: hosts("10.0.0.9"), Rights: echoStore, MayReopen: true})
			return time.Time{}
		}, map[string]doctor.Severity{"peer-may-reopen": doctor.Low}, nil},
		{"abuse limits off", func(t *testing.T, dir string, _ *policy.FileRegistry, _ *pki.CA) time.Time {
			writeConfig(t, dir, "[abuse]\nrejections_before_ban = 0\nattempts_per_minute = 0\n")
			return time.Time{}
		}, map[string]doctor.Severity{"abuse-limit-off": doctor.Medium}, nil},
		{"never_ban loopback and private ranges", func(t *testing.T, dir string, _ *policy.FileRegistry, _ *pki.CA) time.Time {
			writeConfig(t, dir, "[abuse]\nnever_ban = [\"127.0.0.1\", \"::1\", \"10.0.4.0/24\", \"172.16.0.0/12\", \"192.168.7.7\", \"fd00:1:2:3::/64\"]\n")
			return time.Time{}
		}, map[string]doctor.Severity{"abuse-never-ban": doctor.Low}, []string{"abuse-limit-off", "config-unusable"}},
		{"never_ban a public address", func(t *testing.T, dir string, _ *policy.FileRegistry, _ *pki.CA) time.Time {
			writeConfig(t, dir, "[abuse]\nnever_ban = [\"127.0.0.1\", \"198.51.100.7\"]\n")
			return time.Time{}
		}, map[string]doctor.Severity{"abuse-never-ban": doctor.Medium}, nil},
		{"never_ban a range wider than a private one", func(t *testing.T, dir string, _ *policy.FileRegistry, _ *pki.CA) time.Time {
			writeConfig(t, dir, "[abuse]\nnever_ban = [\"10.0.0.0/7\"]\n")
			return time.Time{}
		}, map[string]doctor.Severity{"abuse-never-ban": doctor.Medium}, nil},
		{"never_ban link-local IPv6", func(t *testing.T, dir string, _ *policy.FileRegistry, _ *pki.CA) time.Time {
			writeConfig(t, dir, "[abuse]\nnever_ban = [\"fe80::/64\"]\n")
			return time.Time{}
		}, map[string]doctor.Severity{"abuse-never-ban": doctor.Medium}, nil},
		{"config with an unknown option", func(t *testing.T, dir string, _ *policy.FileRegistry, _ *pki.CA) time.Time {
			writeConfig(t, dir, "listen_tsl = \":2762\"\n")
			return time.Time{}
		}, map[string]doctor.Severity{"config-unusable": doctor.High}, []string{"audit-not-forwarded"}},
		{"config others can change", func(t *testing.T, dir string, _ *policy.FileRegistry, _ *pki.CA) time.Time {
			chmod(t, config.Path(dir), 0o666)
			return time.Time{}
		}, map[string]doctor.Severity{"config-unusable": doctor.High}, nil},
		{"peer from anywhere", func(t *testing.T, dir string, reg *policy.FileRegistry, _ *pki.CA) time.Time {
			putPeer(t, reg, policy.Peer{AETitle: "ANY4", Hosts: hosts("0.0.0.0/0"), Rights: echoStore})
			return time.Time{}
		}, map[string]doctor.Severity{"peer-wide-range": doctor.High}, nil},
		{"peer from any IPv6 address", func(t *testing.T, dir string, reg *policy.FileRegistry, _ *pki.CA) time.Time {
			putPeer(t, reg, policy.Peer{AETitle: "ANY6", Hosts: hosts("::/0"), Rights: echoStore})
			return time.Time{}
		}, map[string]doctor.Severity{"peer-wide-range": doctor.High}, nil},
		{"peer from a /16", func(t *testing.T, dir string, reg *policy.FileRegistry, _ *pki.CA) time.Time {
			putPeer(t, reg, policy.Peer{AETitle: "WIDE", Hosts: hosts("10.1.0.0/16"), Rights: echoStore})
			return time.Time{}
		}, map[string]doctor.Severity{"peer-wide-range": doctor.Medium}, nil},
		{"peer from an IPv6 /56", func(t *testing.T, dir string, reg *policy.FileRegistry, _ *pki.CA) time.Time {
			putPeer(t, reg, policy.Peer{AETitle: "WIDE6", Hosts: hosts("fd00:1:2:300::/56"), Rights: echoStore})
			return time.Time{}
		}, map[string]doctor.Severity{"peer-wide-range": doctor.Medium}, nil},
		{"peer with every right", func(t *testing.T, dir string, reg *policy.FileRegistry, _ *pki.CA) time.Time {
			putPeer(t, reg, policy.Peer{AETitle: "GOD", Hosts: hosts("10.0.0.9"), Rights: policy.AllRights})
			return time.Time{}
		}, map[string]doctor.Severity{"peer-all-rights": doctor.Medium}, []string{"peer-wide-range"}},
		{"plaintext peer, listener off", func(t *testing.T, dir string, reg *policy.FileRegistry, _ *pki.CA) time.Time {
			putPeer(t, reg, policy.Peer{AETitle: "OLDCT", Hosts: hosts("10.0.0.9"), Rights: echoStore, Plaintext: true})
			return time.Time{}
		}, map[string]doctor.Severity{"peer-plaintext": doctor.Low}, nil},
		{"plaintext peer, listener on", func(t *testing.T, dir string, reg *policy.FileRegistry, _ *pki.CA) time.Time {
			writeConfig(t, dir, "listen = \":104\"\naccept_risk = [\"plaintext\"]\n")
			putPeer(t, reg, policy.Peer{AETitle: "OLDCT", Hosts: hosts("10.0.0.9"), Rights: echoStore, Plaintext: true})
			return time.Time{}
		}, map[string]doctor.Severity{"peer-plaintext": doctor.High, "plaintext-listener": doctor.High}, nil},
		{"no peer requires a user", func(t *testing.T, dir string, reg *policy.FileRegistry, _ *pki.CA) time.Time {
			putPeer(t, reg, policy.Peer{AETitle: "VIEWER", Hosts: hosts("10.0.0.9"), Rights: []policy.Right{policy.RightFind}})
			return time.Time{}
		}, map[string]doctor.Severity{"user-identity-not-required": doctor.Medium}, nil},
		{"CA expires soon", func(t *testing.T, _ string, _ *policy.FileRegistry, ca *pki.CA) time.Time {
			return ca.Certificate().NotAfter.Add(-20 * day)
		}, map[string]doctor.Severity{"ca-expiry": doctor.Medium}, nil},
		{"CA expired", func(t *testing.T, _ string, _ *policy.FileRegistry, ca *pki.CA) time.Time {
			return ca.Certificate().NotAfter.Add(time.Hour)
		}, map[string]doctor.Severity{"ca-expiry": doctor.High}, nil},
		{"CA missing", func(t *testing.T, dir string, _ *policy.FileRegistry, _ *pki.CA) time.Time {
			if err := os.Remove(filepath.Join(dir, "pki", pki.CACertFile)); err != nil {
				t.Fatal(err)
			}
			return time.Time{}
		}, map[string]doctor.Severity{"ca-missing": doctor.High}, nil},
		{"peer certificate not renewed at two thirds of its life", func(t *testing.T, dir string, reg *policy.FileRegistry, _ *pki.CA) time.Time {
			putPeer(t, reg, policy.Peer{AETitle: "CT01", Hosts: hosts("10.0.0.9"), Rights: echoStore, AddedAt: time.Now().Add(-pki.DefaultPeerValidity + 2*day)})
			return time.Time{}
		}, map[string]doctor.Severity{"peer-cert-expiry": doctor.Medium}, nil},
		{"peer certificate expired", func(t *testing.T, dir string, reg *policy.FileRegistry, _ *pki.CA) time.Time {
			putPeer(t, reg, policy.Peer{AETitle: "CT01", Hosts: hosts("10.0.0.9"), Rights: echoStore, AddedAt: time.Now().Add(-pki.DefaultPeerValidity - day)})
			return time.Time{}
		}, map[string]doctor.Severity{"peer-cert-expiry": doctor.High}, nil},
		{"CA key readable by others", func(t *testing.T, dir string, _ *policy.FileRegistry, _ *pki.CA) time.Time {
			chmod(t, filepath.Join(dir, "pki", pki.CAKeyFile), 0o644)
			return time.Time{}
		}, map[string]doctor.Severity{"key-permissions": doctor.High}, nil},
		{"data directory open to everyone", func(t *testing.T, dir string, _ *policy.FileRegistry, _ *pki.CA) time.Time {
			chmod(t, dir, 0o755)
			return time.Time{}
		}, map[string]doctor.Severity{"data-dir-permissions": doctor.High}, nil},
		{"data directory open to the group", func(t *testing.T, dir string, _ *policy.FileRegistry, _ *pki.CA) time.Time {
			chmod(t, dir, 0o750)
			return time.Time{}
		}, map[string]doctor.Severity{"data-dir-permissions": doctor.Medium}, nil},
		{"peer registry writable by others", func(t *testing.T, dir string, reg *policy.FileRegistry, _ *pki.CA) time.Time {
			putPeer(t, reg, policy.Peer{AETitle: "CT01", Hosts: hosts("10.0.0.9"), Rights: echoStore})
			chmod(t, filepath.Join(dir, policy.PeersFileName), 0o666)
			return time.Time{}
		}, map[string]doctor.Severity{"peers-unreadable": doctor.High}, []string{"no-peers"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, reg, ca := dataDir(t)
			var now time.Time
			if tt.setup != nil {
				now = tt.setup(t, dir, reg, ca)
			}
			o := doctor.Options{Dir: dir, NoProbe: true}
			if !now.IsZero() {
				o.Now = func() time.Time { return now }
			}
			r, err := doctor.Inspect(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]doctor.Severity{}
			for _, f := range r.Findings {
				if f.Problem == "" || f.Fix == "" {
					t.Errorf("finding %s without problem or fix: %+v", f.Check, f)
				}
				if s, ok := got[f.Check]; !ok || f.Severity > s {
					got[f.Check] = f.Severity
				}
			}
			for check, sev := range tt.want {
				if s, ok := got[check]; !ok || s != sev {
					t.Errorf("%s: got %v (present %v), want %v\nfindings: %+v", check, s, ok, sev, r.Findings)
				}
			}
			for _, check := range tt.absent {
				if _, ok := got[check]; ok {
					t.Errorf("%s reported, want none\nfindings: %+v", check, r.Findings)
				}
			}
			for i := 1; i < len(r.Findings); i++ {
				if r.Findings[i].Severity > r.Findings[i-1].Severity {
					t.Fatalf("findings not worst first: %+v", r.Findings)
				}
			}
		})
	}
}

// TestNeverBanFinding: the abuse-never-ban finding lists every exempt
// entry and names those outside loopback and the private ranges.
func TestNeverBanFinding(t *testing.T) {
	tests := []struct {
		name     string
		neverBan string
		severity doctor.Severity
		says     []string
		not      []string
	}{
		{"loopback only", `["127.0.0.1", "::1"]`, doctor.Low,
			[]string{"never banned (abuse.never_ban): 127.0.0.1, ::1.", "guessed"}, []string{"neither loopback"}},
		{"one public", `["10.0.4.0/24", "203.0.113.0/24"]`, doctor.Medium,
			[]string{"10.0.4.0/24, 203.0.113.0/24.", " 203.0.113.0/24 is neither loopback nor a private range", "Remove 203.0.113.0/24 from never_ban: exempt only machines you control"}, []string{"10.0.4.0/24 is neither"}},
		{"two public", `["2001:db8::1", "192.0.2.0/24", "192.168.1.1"]`, doctor.Medium,
			[]string{"2001:db8::1, 192.0.2.0/24 are neither loopback nor a private range", "Remove 2001:db8::1, 192.0.2.0/24 from never_ban"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, _, _ := dataDir(t)
			writeConfig(t, dir, "[abuse]\nnever_ban = "+tt.neverBan+"\n")
			r, err := doctor.Inspect(context.Background(), doctor.Options{Dir: dir, NoProbe: true})
			if err != nil {
				t.Fatal(err)
			}
			var f *doctor.Finding
			for i := range r.Findings {
				if r.Findings[i].Check == "abuse-never-ban" {
					if f != nil {
						t.Fatalf("two abuse-never-ban findings: %+v", r.Findings)
					}
					f = &r.Findings[i]
				}
			}
			if f == nil || f.Severity != tt.severity {
				t.Fatalf("abuse-never-ban %+v, want severity %v", f, tt.severity)
			}
			text := f.Problem + " " + f.Fix
			for _, s := range tt.says {
				if !strings.Contains(text, s) {
					t.Errorf("finding does not say %q: %s", s, text)
				}
			}
			for _, s := range tt.not {
				if strings.Contains(text, s) {
					t.Errorf("finding says %q: %s", s, text)
				}
			}
		})
	}
}

func chmod(t *testing.T, p string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func TestNoDataDir(t *testing.T) {
	_, err := doctor.Inspect(context.Background(), doctor.Options{Dir: filepath.Join(t.TempDir(), "nothing")})
	if err == nil || !strings.Contains(err.Error(), "no data directory") {
		t.Fatalf("err = %v", err)
	}
}

// TestDoctorCreatesNothing: doctor only reads the data directory.
func TestDoctorCreatesNothing(t *testing.T) {
	dir, _, _ := dataDir(t)
	before := listTree(t, dir)
	if _, err := doctor.Inspect(context.Background(), doctor.Options{Dir: dir, NoProbe: true}); err != nil {
		t.Fatal(err)
	}
	if after := listTree(t, dir); after != before {
		t.Fatalf("doctor changed the data directory:\nbefore %s\nafter  %s", before, after)
	}
}

func listTree(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			b.WriteString(p + " " + fi.Mode().String() + " " + fi.ModTime().String() + "\n")
		}
		return nil
	})
	return b.String()
}
