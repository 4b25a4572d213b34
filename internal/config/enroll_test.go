package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestValidateEnroll(t *testing.T) {
	for _, tc := range []struct {
		name   string
		modify func(c *Config)
		want   string // substring of the single expected error; "" = valid
	}{
		{"default", func(c *Config) {}, ""},
		{"enrolment off", func(c *Config) { c.Enroll.Listen = "" }, ""},
		{"loopback", func(c *Config) { c.Enroll.Listen = "127.0.0.1:2763" }, ""},
		{"no port", func(c *Config) { c.Enroll.Listen = "0.0.0.0" }, "enroll.listen"},
		{"same port as DICOM TLS", func(c *Config) { c.Enroll.Listen = ":2762" }, "each needs its own port"},
		{"token 5m", func(c *Config) { c.Enroll.TokenLifetime = Duration(5 * time.Minute) }, ""},
		{"token too short", func(c *Config) { c.Enroll.TokenLifetime = Duration(time.Minute) }, "enroll.token_lifetime"},
		{"token too long", func(c *Config) { c.Enroll.TokenLifetime = Duration(8 * 24 * time.Hour) }, "enroll.token_lifetime"},
		{"cert 90 days", func(c *Config) { c.Enroll.PeerCertLifetime = Duration(90 * 24 * time.Hour) }, ""},
		{"cert a year", func(c *Config) { c.Enroll.PeerCertLifetime = Duration(365 * 24 * time.Hour) }, "enroll.peer_cert_lifetime"},
		{"cert zero", func(c *Config) { c.Enroll.PeerCertLifetime = 0 }, "enroll.peer_cert_lifetime"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.modify(c)
			errs := c.Validate()
			if tc.want == "" && len(errs) != 0 || tc.want != "" && (len(errs) != 1 || !strings.Contains(errs[0].Error(), tc.want)) {
				t.Fatalf("Validate = %v, want %q", errs, tc.want)
			}
		})
	}
}

// TestEnrollFile: the written default has a commented [enroll] table that
// loads back to the defaults, and an unknown key in it is an error.
func TestEnrollFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	if err := WriteDefault(path); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if !strings.Contains(string(data), "\n[enroll]\n") || !strings.Contains(string(data), `peer_cert_lifetime = "336h"`) {
		t.Fatalf("written file lacks the [enroll] table:\n%s", data)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Enroll != defaultEnroll() {
		t.Errorf("loaded %+v, want %+v", c.Enroll, defaultEnroll())
	}
	bad := strings.Replace(string(data), "[enroll]\n", "[enroll]\nallow_anyone = true\n", 1)
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "allow_anyone") {
		t.Errorf("unknown key: Load = %v", err)
	}
}
