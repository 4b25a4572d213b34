package config

import (
	"fmt"
	"net/netip"
	"reflect"
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
		{"never_ban addresses and ranges", func(a *Abuse) {
			a.NeverBan = []string{"127.0.0.1", "::1", "10.0.4.0/24", "192.168.1.7/32", "fd00:1:2:3::/64", "2001:db8::/32"}
		}, ""},
		{"never_ban one /1 is not everything", func(a *Abuse) { a.NeverBan = []string{"0.0.0.0/1"} }, ""},
		{"never_ban a host name", func(a *Abuse) { a.NeverBan = []string{"localhost"} }, `abuse.never_ban: "localhost" is not an IP address or range; write one address`},
		{"never_ban empty entry", func(a *Abuse) { a.NeverBan = []string{""} }, `abuse.never_ban: "" is not an IP address or range`},
		{"never_ban spaces", func(a *Abuse) { a.NeverBan = []string{" 10.0.0.1"} }, `" 10.0.0.1" is not an IP address or range`},
		{"never_ban a range written with a dash", func(a *Abuse) { a.NeverBan = []string{"10.0.0.1-10.0.0.9"} }, "is not an IP address or range"},
		{"never_ban IPv4 length too long", func(a *Abuse) { a.NeverBan = []string{"10.0.0.0/33"} }, `"10.0.0.0/33": the length after "/" must be a number from 0 to 32 for an IPv4 address`},
		{"never_ban IPv6 length too long", func(a *Abuse) { a.NeverBan = []string{"fd00::/129"} }, `from 0 to 128 for an IPv6 address`},
		{"never_ban length not a number", func(a *Abuse) { a.NeverBan = []string{"10.0.0.0/x"} }, `"10.0.0.0/x": the length after "/" must be a number`},
		{"never_ban zone", func(a *Abuse) { a.NeverBan = []string{"fe80::1%eth0"} }, `"fe80::1%eth0" has a zone (%eth0); zones are not allowed`},
		{"never_ban zone in a range", func(a *Abuse) { a.NeverBan = []string{"fe80::%eth0/64"} }, `has a zone (%eth0)`},
		{"never_ban host bits set", func(a *Abuse) { a.NeverBan = []string{"10.0.4.7/24"} }, `"10.0.4.7/24" has bits set after the prefix length; write "10.0.4.0/24" for the whole range, or "10.0.4.7" for the one address`},
		{"never_ban IPv6 host bits set", func(a *Abuse) { a.NeverBan = []string{"fd00:1:2:3::9/64"} }, `write "fd00:1:2:3::/64" for the whole range, or "fd00:1:2:3::9" for the one address`},
		{"never_ban every IPv4 address", func(a *Abuse) { a.NeverBan = []string{"0.0.0.0/0"} }, `"0.0.0.0/0" covers every IPv4 address, so nothing would ever be banned; to switch banning off, set rejections_before_ban = 0 instead`},
		{"never_ban every IPv6 address", func(a *Abuse) { a.NeverBan = []string{"::/0"} }, `"::/0" covers every IPv6 address`},
		{"never_ban everything written with host bits", func(a *Abuse) { a.NeverBan = []string{"10.1.2.3/0"} }, `set rejections_before_ban = 0 instead`},
		{"never_ban IPv4-mapped address", func(a *Abuse) { a.NeverBan = []string{"::ffff:127.0.0.1"} }, `"::ffff:127.0.0.1" is an IPv4-mapped IPv6 address; write it as "127.0.0.1"`},
		{"never_ban IPv4-mapped range", func(a *Abuse) { a.NeverBan = []string{"::ffff:10.0.0.0/104"} }, `IPv4-mapped IPv6 range; write it as "10.0.0.0/8"`},
		{"never_ban listed twice", func(a *Abuse) { a.NeverBan = []string{"127.0.0.1", "10.0.0.0/8", "127.0.0.1"} }, `abuse.never_ban: "127.0.0.1" is listed twice; remove one`},
		{"never_ban the same address twice", func(a *Abuse) { a.NeverBan = []string{"127.0.0.1", "127.0.0.1/32"} }, `"127.0.0.1" and "127.0.0.1/32" are the same address; remove one`},
		{"never_ban the same IPv6 address twice", func(a *Abuse) { a.NeverBan = []string{"::1", "0:0::1"} }, `"::1" and "0:0::1" are the same address`},
		{"never_ban an address inside a range after it", func(a *Abuse) { a.NeverBan = []string{"10.0.0.0/8", "10.0.4.7"} }, `"10.0.4.7" is already inside "10.0.0.0/8"; remove "10.0.4.7"`},
		{"never_ban an address inside a range before it", func(a *Abuse) { a.NeverBan = []string{"fd00:1:2:3::7", "fd00::/8"} }, `"fd00:1:2:3::7" is already inside "fd00::/8"; remove "fd00:1:2:3::7"`},
		{"never_ban too long", func(a *Abuse) {
			a.NeverBan = nil
			for i := range MaxNeverBan + 1 {
				a.NeverBan = append(a.NeverBan, fmt.Sprintf("10.0.%d.%d", i/256, i%256))
			}
		}, "abuse.never_ban: 257 entries; list at most 256"},
		{"never_ban at the bound", func(a *Abuse) {
			a.NeverBan = nil
			for i := range MaxNeverBan {
				a.NeverBan = append(a.NeverBan, fmt.Sprintf("10.0.%d.%d", i/256, i%256))
			}
		}, ""},
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

// TestNeverBanPrefixes: what the archive and doctor are given, and the
// never_ban key read from a file and checked by Load (as validate does).
func TestNeverBanPrefixes(t *testing.T) {
	tests := []struct {
		name    string
		file    string // the [abuse] section's never_ban line
		want    []netip.Prefix
		wantErr string
	}{
		{"absent: empty", "", nil, ""},
		{"empty list", "never_ban = []", nil, ""},
		{"addresses become single-address prefixes", `never_ban = ["127.0.0.1", "::1", "10.0.4.0/24"]`,
			[]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("10.0.4.0/24")}, ""},
		{"a string, not a list", `never_ban = "127.0.0.1"`, nil, `option "abuse.never_ban" must be`},
		{"a bad entry is refused at load", `never_ban = ["127.0.0.1/8"]`, nil, `abuse.never_ban: "127.0.0.1/8" has bits set after the prefix length; write "127.0.0.0/8"`},
		{"everything is refused at load", `never_ban = ["::/0"]`, nil, "rejections_before_ban = 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(writeFile(t, "version = 1\n[abuse]\n"+tt.file+"\n"))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Abuse.NeverBanPrefixes(); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("NeverBanPrefixes = %v, want %v", got, tt.want)
			}
		})
	}
	if d := Default().Abuse.NeverBan; d == nil || len(d) != 0 {
		t.Fatalf("default never_ban = %#v, want an empty list", d)
	}
}
