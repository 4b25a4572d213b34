package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), FileName)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultIsValid(t *testing.T) {
	if errs := Default().Validate(); len(errs) != 0 {
		t.Fatalf("Default() does not validate: %v", errs)
	}
}

func TestRoundTrip(t *testing.T) {
	p := filepath.Join(t.TempDir(), FileName)
	if err := WriteDefault(p); err != nil {
		t.Fatal(err)
	}
	got, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := Default(); !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip differs:\n got %+v\nwant %+v", got, want)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
	// No temporary file is left behind.
	ents, _ := os.ReadDir(filepath.Dir(p))
	if len(ents) != 1 {
		t.Fatalf("directory holds %d entries, want 1", len(ents))
	}
}

func TestWriteDefaultNeverOverwrites(t *testing.T) {
	p := writeFile(t, "mine\n")
	err := WriteDefault(p)
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("err = %v, want fs.ErrExist", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "mine\n" {
		t.Fatalf("file was overwritten: %q", b)
	}
}

func TestWrittenFileCommentsEveryOption(t *testing.T) {
	p := filepath.Join(t.TempDir(), FileName)
	if err := WriteDefault(p); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	optLine := regexp.MustCompile(`^([a-z_]+) = `)
	tableLine := regexp.MustCompile(`^\[([a-z_]+)\]$`)
	seen := map[string]bool{}
	table := ""
	for i, l := range lines {
		var key string
		if m := tableLine.FindStringSubmatch(l); m != nil {
			table = m[1]
			key = table
		} else if m := optLine.FindStringSubmatch(l); m != nil {
			key = m[1]
			if table != "" {
				key = table + "." + m[1]
			}
		} else {
			if l != "" && !strings.HasPrefix(l, "#") {
				t.Errorf("line %d is neither comment, option nor table: %q", i+1, l)
			}
			continue
		}
		seen[key] = true
		if i == 0 || !strings.HasPrefix(lines[i-1], "# ") {
			t.Errorf("line %d (%s) has no comment line before it", i+1, key)
		}
	}
	for k := range optionTypes {
		if !seen[k] {
			t.Errorf("option %q is missing from the written file", k)
		}
	}
}

func TestLoadKeepsDefaultsForMissingOptions(t *testing.T) {
	p := writeFile(t, "version = 1\nae_title = \"PACS1\"\n[limits]\nidle_timeout = \"45s\"\nmax_instance_size = \"512 MiB\"\n")
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.AETitle = "PACS1"
	want.Limits.IdleTimeout = Duration(45 * time.Second)
	want.Limits.MaxInstanceSize = "512 MiB"
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got %+v\nwant %+v", c, want)
	}
	if c.MaxInstanceBytes() != 512<<20 {
		t.Fatalf("MaxInstanceBytes = %d", c.MaxInstanceBytes())
	}
}

func TestLoadTamper(t *testing.T) {
	c, err := Load(writeFile(t, "version = 1\naccept_risk = [\"foreign-study\"]\n[tamper]\nseal_after = \"2h30m\"\nforeign_study = \"allow\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Tamper.SealAfter.Duration() != 150*time.Minute || c.Tamper.ForeignStudy != ForeignStudyAllow {
		t.Fatalf("tamper = %+v", c.Tamper)
	}
	if d := Default().Tamper; d.SealAfter.Duration() != time.Hour || d.ForeignStudy != "refuse" {
		t.Fatalf("default tamper = %+v", d)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name, file string
		want       []string // substrings of the error
	}{
		{"unknown top-level key", "version = 1\nae_titel = \"X\"\n", []string{`"ae_titel"`, "line 2", "ae_title"}},
		{"unknown key in table", "version = 1\n[limits]\nmax_assocs = 3\n", []string{`"limits.max_assocs"`, "line 3", "max_associations"}},
		{"unknown table", "version = 1\n[tls]\ncert = \"x\"\n", []string{`"tls"`, "line 2"}},
		{"two unknown keys", "version = 1\nfoo = 1\nbar = 2\n", []string{`"foo"`, "line 2", `"bar"`, "line 3"}},
		{"string for int", "version = 1\n[limits]\nmax_associations = \"ten\"\n", []string{`"limits.max_associations"`, "line 3", "whole number"}},
		{"int for string", "version = 1\nae_title = 5\n", []string{`"ae_title"`, "line 2", "text in double quotes"}},
		{"bad duration", "version = 1\n[limits]\nidle_timeout = \"soon\"\n", []string{`"limits.idle_timeout"`, "line 3", "soon"}},
		{"number for duration", "version = 1\n[limits]\nidle_timeout = 30\n", []string{`"limits.idle_timeout"`, "duration in double quotes"}},
		{"string for table", "version = 1\nlimits = \"x\"\n", []string{`"limits"`, "table"}},
		{"syntax", "version = 1\nae_title = \"X\n", []string{"line 2", "not valid TOML"}},
		{"duplicate key", "version = 1\nversion = 1\n", []string{"line 2", "version"}},
		{"missing version", "ae_title = \"X\"\n", []string{"version", "missing"}},
		{"newer version", "version = 2\n", []string{"format 2", "upgrade"}},
		{"unknown key in tamper", "version = 1\n[tamper]\nseal_time = \"2h\"\n", []string{`"tamper.seal_time"`, "line 3", "seal_after"}},
		{"never sealed by file", "version = 1\n[tamper]\nseal_after = \"0\"\n", []string{"tamper.seal_after", "unsealed-series"}},
		{"validation runs", "version = 1\nae_title = \"A\\\\B\"\n[limits]\nmax_find_results = 0\n", []string{"2 problems", "backslash", "max_find_results"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(writeFile(t, tt.file))
			if err == nil {
				t.Fatalf("no error; config %+v", c)
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %T is not *Error", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestLoadRefusesWritableByOthers(t *testing.T) {
	p := writeFile(t, "version = 1\n")
	if err := os.Chmod(p, 0o666); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p)
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("err = %v", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.toml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want fs.ErrNotExist", err)
	}
}

func TestLoadTooLarge(t *testing.T) {
	p := writeFile(t, "version = 1\n"+strings.Repeat("# x\n", maxFileSize/4+1))
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "larger") {
		t.Fatalf("err = %v", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(c *Config)
		want   string // substring of the single expected error; "" = valid
	}{
		{"default", func(c *Config) {}, ""},
		{"version zero", func(c *Config) { c.Version = 0 }, "version: missing"},
		{"version newer", func(c *Config) { c.Version = 2 }, "upgrade"},
		{"version negative", func(c *Config) { c.Version = -1 }, "not a configuration format"},

		{"ae empty", func(c *Config) { c.AETitle = "" }, "ae_title: an AE title is required"},
		{"ae spaces only", func(c *Config) { c.AETitle = "   " }, "ae_title: an AE title is required"},
		{"ae 16 chars", func(c *Config) { c.AETitle = "ABCDEFGHIJKLMNOP" }, ""},
		{"ae 17 chars", func(c *Config) { c.AETitle = "ABCDEFGHIJKLMNOPQ" }, "at most 16"},
		{"ae backslash", func(c *Config) { c.AETitle = `A\B` }, "backslash"},
		{"ae control", func(c *Config) { c.AETitle = "A\nB" }, "control character"},
		{"ae tab", func(c *Config) { c.AETitle = "A\tB" }, "control character"},
		{"ae non-ascii", func(c *Config) { c.AETitle = "PACSÉ" }, "plain ASCII"},
		{"ae leading space", func(c *Config) { c.AETitle = " PACS" }, "space"},
		{"ae inner space", func(c *Config) { c.AETitle = "MY PACS" }, ""},

		{"tls on ipv4", func(c *Config) { c.ListenTLS = "10.1.2.3:2762" }, ""},
		{"tls on ipv6", func(c *Config) { c.ListenTLS = "[::]:2762" }, ""},
		{"tls on hostname", func(c *Config) { c.ListenTLS = "pacs.example.org:2762" }, ""},
		{"tls port zero", func(c *Config) { c.ListenTLS = "127.0.0.1:0" }, ""},
		{"tls no port", func(c *Config) { c.ListenTLS = "10.1.2.3" }, "listen_tls: \"10.1.2.3\" has no port"},
		{"tls port text", func(c *Config) { c.ListenTLS = ":dicom" }, "listen_tls:"},
		{"tls port too big", func(c *Config) { c.ListenTLS = ":70000" }, "out of range"},
		{"tls v6 no brackets", func(c *Config) { c.ListenTLS = "::1:2762" }, "brackets"},
		{"tls bad host", func(c *Config) { c.ListenTLS = "bad_host:2762" }, "not a valid host name"},
		{"tls off, plain on with risk", func(c *Config) {
			c.ListenTLS = ""
			c.Listen = ":104"
			c.AcceptRisk = []string{RiskPlaintext}
		}, ""},
		{"no listener", func(c *Config) { c.ListenTLS = "" }, "accept no connections"},

		{"plain without risk", func(c *Config) { c.Listen = ":104" }, `add "plaintext" to accept_risk`},
		{"plain with risk", func(c *Config) { c.Listen = ":104"; c.AcceptRisk = []string{"plaintext"} }, ""},
		{"audit syslog with ca", func(c *Config) { c.Audit.Syslog = "logs.example.org:6514"; c.Audit.SyslogCA = "ca.pem" }, ""},
		{"audit syslog ipv6", func(c *Config) { c.Audit.Syslog = "[::1]:6514"; c.Audit.SyslogCA = "/etc/ca.pem" }, ""},
		{"audit syslog without ca", func(c *Config) { c.Audit.Syslog = "logs.example.org:6514" }, "audit.syslog_ca: required"},
		{"audit syslog no host", func(c *Config) { c.Audit.Syslog = ":6514"; c.Audit.SyslogCA = "ca.pem" }, "has no host"},
		{"audit syslog port zero", func(c *Config) { c.Audit.Syslog = "logs:0"; c.Audit.SyslogCA = "ca.pem" }, "port must be 1 to 65535"},
		{"audit syslog no port", func(c *Config) { c.Audit.Syslog = "logs"; c.Audit.SyslogCA = "ca.pem" }, "has no port"},
		{"audit ca without syslog", func(c *Config) { c.Audit.SyslogCA = "ca.pem" }, "audit.syslog is empty"},
		{"audit cert without key", func(c *Config) {
			c.Audit.Syslog, c.Audit.SyslogCA, c.Audit.SyslogCert = "logs:6514", "ca.pem", "c.pem"
		}, "go together"},
		{"audit app name space", func(c *Config) { c.Audit.AppName = "dicom shield" }, "audit.app_name"},
		{"audit app name empty", func(c *Config) { c.Audit.AppName = "" }, "audit.app_name"},
		{"audit source id control", func(c *Config) { c.Audit.SourceID = "a\nb" }, "audit.source_id"},
		{"audit queue small", func(c *Config) { c.Audit.QueueSize = 10 }, "audit.queue_size"},
		{"audit backlog huge", func(c *Config) { c.Audit.SyslogBacklog = 10000000 }, "audit.syslog_backlog"},
		{"plain bad address", func(c *Config) { c.Listen = "104"; c.AcceptRisk = []string{"plaintext"} }, "listen: \"104\" has no port"},
		{"plain same as tls", func(c *Config) { c.Listen = "0.0.0.0:2762"; c.AcceptRisk = []string{"plaintext"} }, "each needs its own port"},

		{"metrics off", func(c *Config) { c.Metrics = "" }, ""},
		{"metrics ipv6 loopback", func(c *Config) { c.Metrics = "[::1]:9762" }, ""},
		{"metrics localhost", func(c *Config) { c.Metrics = "localhost:9762" }, ""},
		{"metrics 127.x", func(c *Config) { c.Metrics = "127.0.0.2:9762" }, ""},
		{"metrics all interfaces", func(c *Config) { c.Metrics = ":9762" }, `add "metrics-public" to accept_risk`},
		{"metrics lan", func(c *Config) { c.Metrics = "10.0.0.5:9762" }, "metrics-public"},
		{"metrics lan accepted", func(c *Config) { c.Metrics = "10.0.0.5:9762"; c.AcceptRisk = []string{"metrics-public"} }, ""},
		{"metrics bad", func(c *Config) { c.Metrics = "localhost" }, "metrics: \"localhost\" has no port"},
		{"metrics same port as tls", func(c *Config) { c.Metrics = "127.0.0.1:2762" }, "each needs its own port"},

		{"hostnames empty", func(c *Config) { c.Hostnames = nil }, "hostnames: empty"},
		{"hostnames bad", func(c *Config) { c.Hostnames = []string{"pacs", "no spaces"} }, "not a valid host name"},
		{"hostnames dup", func(c *Config) { c.Hostnames = []string{"pacs", "PACS"} }, "listed twice"},
		{"hostnames ip", func(c *Config) { c.Hostnames = []string{"10.0.0.1", "fe80::1"} }, ""},

		{"log json", func(c *Config) { c.Log.Format = "json" }, ""},
		{"log format", func(c *Config) { c.Log.Format = "xml" }, "log.format"},
		{"log level", func(c *Config) { c.Log.Level = "verbose" }, "log.level"},
		{"log level debug", func(c *Config) { c.Log.Level = "debug" }, ""},

		{"max assoc zero", func(c *Config) { c.Limits.MaxAssociations = 0 }, "limits.max_associations: 0 is out of range"},
		{"max assoc huge", func(c *Config) { c.Limits.MaxAssociations = 1e6 }, "limits.max_associations:"},
		{"per peer zero", func(c *Config) { c.Limits.MaxAssociationsPerPeer = 0 }, "max_associations_per_peer: 0 is out of range"},
		{"per peer above total", func(c *Config) { c.Limits.MaxAssociations = 4 }, "more than max_associations"},
		{"size bad", func(c *Config) { c.Limits.MaxInstanceSize = "big" }, "not a size"},
		{"size unit", func(c *Config) { c.Limits.MaxInstanceSize = "4 parsecs" }, "unknown unit"},
		{"size small", func(c *Config) { c.Limits.MaxInstanceSize = "1KiB" }, "out of range"},
		{"size large", func(c *Config) { c.Limits.MaxInstanceSize = "1TiB" }, "out of range"},
		{"size bytes", func(c *Config) { c.Limits.MaxInstanceSize = "1048576" }, ""},
		{"idle short", func(c *Config) { c.Limits.IdleTimeout = Duration(time.Millisecond) }, "limits.idle_timeout"},
		{"idle long", func(c *Config) { c.Limits.IdleTimeout = Duration(48 * time.Hour) }, "limits.idle_timeout"},
		{"associate zero", func(c *Config) { c.Limits.AssociateTimeout = 0 }, "limits.associate_timeout"},
		{"associate long", func(c *Config) { c.Limits.AssociateTimeout = Duration(time.Hour) }, "limits.associate_timeout"},
		{"find zero", func(c *Config) { c.Limits.MaxFindResults = 0 }, "limits.max_find_results"},
		{"find huge", func(c *Config) { c.Limits.MaxFindResults = 1e7 }, "limits.max_find_results"},

		{"risk unknown", func(c *Config) { c.AcceptRisk = []string{"yolo"} }, `accept_risk: "yolo" is not a risk`},

		{"seal 1m", func(c *Config) { c.Tamper.SealAfter = Duration(time.Minute) }, ""},
		{"seal 30d", func(c *Config) { c.Tamper.SealAfter = Duration(720 * time.Hour) }, ""},
		{"seal never without risk", func(c *Config) { c.Tamper.SealAfter = 0 }, `add "unsealed-series" to accept_risk`},
		{"seal never with risk", func(c *Config) { c.Tamper.SealAfter = 0; c.AcceptRisk = []string{RiskUnsealedSeries} }, ""},
		{"seal short", func(c *Config) { c.Tamper.SealAfter = Duration(59 * time.Second) }, "tamper.seal_after: \"59s\" is out of range"},
		{"seal long", func(c *Config) { c.Tamper.SealAfter = Duration(721 * time.Hour) }, "tamper.seal_after"},
		{"seal negative", func(c *Config) { c.Tamper.SealAfter = Duration(-time.Hour) }, "tamper.seal_after"},
		{"foreign allow without risk", func(c *Config) { c.Tamper.ForeignStudy = "allow" }, `add "foreign-study" to accept_risk`},
		{"foreign allow with risk", func(c *Config) { c.Tamper.ForeignStudy = "allow"; c.AcceptRisk = []string{"foreign-study"} }, ""},
		{"foreign unknown", func(c *Config) { c.Tamper.ForeignStudy = "sometimes" }, `tamper.foreign_study: "sometimes" is not a choice`},
		{"foreign empty", func(c *Config) { c.Tamper.ForeignStudy = "" }, "tamper.foreign_study"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.modify(c)
			errs := c.Validate()
			if tt.want == "" {
				if len(errs) != 0 {
					t.Fatalf("unexpected errors: %v", errs)
				}
				return
			}
			if len(errs) != 1 {
				t.Fatalf("got %d errors %v, want one mentioning %q", len(errs), errs, tt.want)
			}
			if !strings.Contains(errs[0].Error(), tt.want) {
				t.Fatalf("error %q does not mention %q", errs[0], tt.want)
			}
		})
	}
}

func TestValidateReportsAllProblems(t *testing.T) {
	c := Default()
	c.AETitle = ""
	c.Listen = ":104"
	c.Metrics = ":9762"
	c.AcceptRisk = []string{"nope"}
	if errs := c.Validate(); len(errs) != 4 {
		t.Fatalf("got %d errors, want 4: %v", len(errs), errs)
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"4GiB", 4 << 30, true}, {"4gib", 4 << 30, true}, {"512 MiB", 512 << 20, true},
		{"500MB", 500e6, true}, {"10KB", 10e3, true}, {"1KiB", 1024, true}, {"2G", 2 << 30, true},
		{"1048576", 1 << 20, true}, {"7B", 7, true}, {"1TiB", 1 << 40, true},
		{"", 0, false}, {"GiB", 0, false}, {"1.5GiB", 0, false}, {"-1", 0, false},
		{"4 GB extra", 0, false}, {"99999999999999999999", 0, false}, {"9999999999TiB", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
	for _, n := range []int64{1, 1023, 1024, 4 << 30, 3 << 20, 5 << 40} {
		if got, err := ParseSize(FormatSize(n)); err != nil || got != n {
			t.Errorf("ParseSize(FormatSize(%d)) = %d, %v", n, got, err)
		}
	}
}

func TestDurationText(t *testing.T) {
	var d Duration
	if err := d.UnmarshalText([]byte("1h30m")); err != nil || d.Duration() != 90*time.Minute {
		t.Fatalf("got %v, %v", d, err)
	}
	b, _ := d.MarshalText()
	if string(b) != "1h30m" {
		t.Fatalf("MarshalText = %q", b)
	}
	for d, want := range map[time.Duration]string{2 * time.Minute: "2m", time.Hour: "1h", 90 * time.Second: "1m30s", 30 * time.Second: "30s", 1500 * time.Millisecond: "1.5s", 0: "0s"} {
		if got := Duration(d).String(); got != want {
			t.Errorf("Duration(%v).String() = %q, want %q", d, got, want)
		}
	}
	if err := d.UnmarshalText([]byte("30")); err == nil {
		t.Fatal("a bare number was accepted")
	}
}

func TestDefaultHostnames(t *testing.T) {
	hs := DefaultHostnames()
	for _, want := range []string{"localhost", "127.0.0.1", "::1"} {
		found := false
		for _, h := range hs {
			found = found || h == want
		}
		if !found {
			t.Errorf("DefaultHostnames() = %v lacks %q", hs, want)
		}
	}
}
