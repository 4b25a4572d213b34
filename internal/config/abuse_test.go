package config

import (
	"strings"
	"testing"
	"time"
)

func TestValidateAbuse(t *testing.T) {
	tests := []struct {
		name   string
		modify func(a *Abuse)
		want   string // substring of the single expected error; "" = valid
	}{
		{"default", func(a *Abuse) {}, ""},
		{"all off", func(a *Abuse) { a.AttemptsPerMinute, a.RejectionsBeforeBan, a.MaxConnectionsPerAddress = 0, 0, 0 }, ""},
		{"attempts negative", func(a *Abuse) { a.AttemptsPerMinute = -1 }, "abuse.attempts_per_minute: -1 is out of range"},
		{"attempts huge", func(a *Abuse) { a.AttemptsPerMinute = MaxAttemptsPerMinute + 1 }, "abuse.attempts_per_minute"},
		{"rejections negative", func(a *Abuse) { a.RejectionsBeforeBan = -3 }, "abuse.rejections_before_ban"},
		{"rejections huge", func(a *Abuse) { a.RejectionsBeforeBan = MaxRejectionsBeforeBan + 1 }, "abuse.rejections_before_ban"},
		{"rejections one", func(a *Abuse) { a.RejectionsBeforeBan = 1 }, ""},
		{"ban zero", func(a *Abuse) { a.BanDuration = 0 }, "abuse.ban_duration"},
		{"ban short", func(a *Abuse) { a.BanDuration = Duration(time.Second) }, "abuse.ban_duration"},
		{"ban week", func(a *Abuse) { a.BanDuration = Duration(MaxBanDuration) }, ""},
		{"ban long", func(a *Abuse) { a.BanDuration = Duration(MaxBanDuration + time.Hour) }, "abuse.ban_duration"},
		{"per address negative", func(a *Abuse) { a.MaxConnectionsPerAddress = -1 }, "abuse.max_connections_per_address"},
		{"per address huge", func(a *Abuse) { a.MaxConnectionsPerAddress = MaxMaxAssociations + 1 }, "abuse.max_connections_per_address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.modify(&c.Abuse)
			errs := c.Validate()
			if tt.want == "" {
				if len(errs) != 0 {
					t.Fatalf("unexpected errors: %v", errs)
				}
				return
			}
			if len(errs) != 1 || !strings.Contains(errs[0].Error(), tt.want) {
				t.Fatalf("got %v, want one error mentioning %q", errs, tt.want)
			}
		})
	}
}

func TestLoadAbuseSection(t *testing.T) {
	p := writeFile(t, "version = 1\n[abuse]\nrejections_before_ban = 3\nban_duration = \"2m\"\n")
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Abuse.RejectionsBeforeBan != 3 || c.Abuse.BanDuration.Duration() != 2*time.Minute ||
		c.Abuse.AttemptsPerMinute != DefaultAttemptsPerMinute || c.Abuse.MaxConnectionsPerAddress != DefaultMaxConnectionsPerAddress {
		t.Fatalf("abuse = %+v", c.Abuse)
	}
	if _, err := Load(writeFile(t, "version = 1\n[abuse]\nban_for = \"2m\"\n")); err == nil || !strings.Contains(err.Error(), `unknown option "abuse.ban_for"`) {
		t.Fatalf("unknown key: err = %v", err)
	}
	if off := c.AbuseLimitsOff(); len(off) != 0 {
		t.Fatalf("AbuseLimitsOff = %v, want none", off)
	}
	c.Abuse.RejectionsBeforeBan = 0
	if off := c.AbuseLimitsOff(); len(off) != 1 || !strings.Contains(off[0], "rejections_before_ban") {
		t.Fatalf("AbuseLimitsOff = %v", off)
	}
}
