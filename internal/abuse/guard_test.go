package abuse

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// clock is an injected clock tests move by hand.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)} }

var (
	addrA = netip.MustParseAddr("127.0.0.1")
	addrB = netip.MustParseAddr("127.0.0.2")
)

// step is one call on a Guard and what it must answer.
type step struct {
	advance time.Duration // moved before the call
	op      string        // "admit", "release", "reject", "banned" (BannedUntil: Banned or Allowed)
	addr    netip.Addr
	want    Reason
	report  bool
}

func TestGuard(t *testing.T) {
	admit := func(a netip.Addr, want Reason, report bool) step {
		return step{op: "admit", addr: a, want: want, report: report}
	}
	reject := func(a netip.Addr, want Reason, report bool) step {
		return step{op: "reject", addr: a, want: want, report: report}
	}
	release := func(a netip.Addr) step { return step{op: "release", addr: a} }
	banned := func(a netip.Addr, want Reason) step { return step{op: "banned", addr: a, want: want} }
	later := func(d time.Duration, s step) step { s.advance = d; return s }

	tests := []struct {
		name   string
		limits Limits
		steps  []step
	}{
		{"rate limit: a burst, then refill", Limits{AttemptsPerMinute: 3}, []step{
			admit(addrA, Allowed, false), admit(addrA, Allowed, false), admit(addrA, Allowed, false),
			admit(addrA, RateLimited, true),
			admit(addrA, RateLimited, false), // reported a moment ago
			admit(addrB, Allowed, false),     // another address has its own budget
			later(20*time.Second, admit(addrA, Allowed, false)),
			admit(addrA, RateLimited, false),
			later(AlertInterval, admit(addrA, Allowed, false)),
			admit(addrA, Allowed, false), admit(addrA, Allowed, false),
			admit(addrA, RateLimited, true), // a minute after the last report
		}},
		{"rate limit off", Limits{}, []step{
			admit(addrA, Allowed, false), admit(addrA, Allowed, false), admit(addrA, Allowed, false),
			admit(addrA, Allowed, false), admit(addrA, Allowed, false), admit(addrA, Allowed, false),
		}},
		{"ban after rejections, for the ban duration", Limits{RejectionsBeforeBan: 3, BanDuration: 10 * time.Minute}, []step{
			reject(addrA, Allowed, false), reject(addrA, Allowed, false),
			admit(addrA, Allowed, false),
			reject(addrA, Banned, true),
			admit(addrA, Banned, false), // the ban was reported when it began
			admit(addrA, Banned, false),
			reject(addrA, Banned, false),
			admit(addrB, Allowed, false),
			later(10*time.Minute-time.Second, admit(addrA, Banned, false)),
			later(time.Second, admit(addrA, Allowed, false)),
			reject(addrA, Allowed, false), // the count started again
		}},
		{"rejections outside the window are forgotten", Limits{RejectionsBeforeBan: 3, BanDuration: 10 * time.Minute}, []step{
			reject(addrA, Allowed, false), reject(addrA, Allowed, false),
			later(10*time.Minute, reject(addrA, Allowed, false)),
			reject(addrA, Allowed, false),
			reject(addrA, Banned, true),
		}},
		{"banning off", Limits{BanDuration: time.Minute}, []step{
			reject(addrA, Allowed, false), reject(addrA, Allowed, false), reject(addrA, Allowed, false),
			admit(addrA, Allowed, false),
		}},
		{"open connections per address", Limits{MaxOpenPerAddress: 2}, []step{
			admit(addrA, Allowed, false), admit(addrA, Allowed, false),
			admit(addrA, TooManyOpen, true),
			admit(addrA, TooManyOpen, false),
			admit(addrB, Allowed, false),
			release(addrA),
			admit(addrA, Allowed, false),
			admit(addrA, TooManyOpen, false),
			release(addrA), release(addrA), release(addrA), // never below zero
			admit(addrA, Allowed, false), admit(addrA, Allowed, false),
			admit(addrA, TooManyOpen, false),
		}},
		{"refused attempts do not count as open", Limits{MaxOpenPerAddress: 1, AttemptsPerMinute: 1}, []step{
			admit(addrA, Allowed, false),
			release(addrA),
			admit(addrA, RateLimited, true),
			later(time.Minute, admit(addrA, Allowed, false)),
		}},
		{"one IPv6 /64 is one sender", Limits{RejectionsBeforeBan: 2, BanDuration: time.Hour}, []step{
			reject(netip.MustParseAddr("2001:db8:1:2::1"), Allowed, false),
			reject(netip.MustParseAddr("2001:db8:1:2:ffff::7"), Banned, true),
			admit(netip.MustParseAddr("2001:db8:1:2::99"), Banned, false),
			admit(netip.MustParseAddr("2001:db8:1:3::1"), Allowed, false),
			admit(netip.MustParseAddr("::ffff:127.0.0.1"), Allowed, false), // IPv4-mapped is IPv4
		}},
		{"IPv4-mapped and plain IPv4 are one sender", Limits{RejectionsBeforeBan: 2, BanDuration: time.Hour}, []step{
			reject(netip.MustParseAddr("::ffff:127.0.0.1"), Allowed, false),
			reject(addrA, Banned, true),
			admit(netip.MustParseAddr("::ffff:127.0.0.1"), Banned, false),
		}},
		{"never_ban: an exempt address's rejections are not counted", Limits{RejectionsBeforeBan: 2, BanDuration: time.Hour, NeverBan: prefixes("127.0.0.1/32")}, []step{
			reject(addrA, Allowed, false), reject(addrA, Allowed, false), reject(addrA, Allowed, false),
			reject(addrA, Allowed, false), reject(addrA, Allowed, false),
			admit(addrA, Allowed, false),
			banned(addrA, Allowed),
			reject(addrB, Allowed, false), // the next address is not exempt
			reject(addrB, Banned, true),
			admit(addrB, Banned, false),
			banned(addrB, Banned),
			admit(addrA, Allowed, false),
		}},
		{"never_ban: IPv4-mapped IPv6 matches the IPv4 entry", Limits{RejectionsBeforeBan: 2, BanDuration: time.Hour, NeverBan: prefixes("127.0.0.0/8")}, []step{
			reject(netip.MustParseAddr("::ffff:127.0.0.1"), Allowed, false),
			reject(netip.MustParseAddr("::ffff:127.0.0.1"), Allowed, false),
			reject(addrA, Allowed, false),
			admit(netip.MustParseAddr("::ffff:127.0.0.1"), Allowed, false),
			banned(netip.MustParseAddr("::ffff:127.0.0.1"), Allowed),
			reject(netip.MustParseAddr("::ffff:10.0.0.1"), Allowed, false),
			reject(netip.MustParseAddr("10.0.0.1"), Banned, true),
		}},
		{"never_ban: an IPv4-mapped entry matches plain IPv4", Limits{RejectionsBeforeBan: 1, BanDuration: time.Hour, NeverBan: prefixes("::ffff:127.0.0.0/104")}, []step{
			reject(addrA, Allowed, false), reject(addrB, Allowed, false),
			reject(netip.MustParseAddr("::ffff:127.0.0.1"), Allowed, false),
			reject(netip.MustParseAddr("10.0.0.1"), Banned, true),
		}},
		{"never_ban: an IPv6 prefix, with and without zone", Limits{RejectionsBeforeBan: 1, BanDuration: time.Hour, NeverBan: prefixes("fd00:1::/32", "::1/128")}, []step{
			reject(netip.MustParseAddr("fd00:1:2:3::4"), Allowed, false),
			reject(netip.MustParseAddr("fd00:1:ffff:3::4"), Allowed, false),
			reject(netip.MustParseAddr("::1"), Allowed, false),
			reject(netip.MustParseAddr("fe80::1%lo"), Banned, true),
			reject(netip.MustParseAddr("fd00:2::1"), Banned, true),
			admit(netip.MustParseAddr("fd00:1:2:3::4"), Allowed, false),
		}},
		{"never_ban: an exempt IPv6 host is admitted while its /64 is banned", Limits{RejectionsBeforeBan: 2, BanDuration: time.Hour, NeverBan: prefixes("2001:db8:1:2::1/128")}, []step{
			reject(netip.MustParseAddr("2001:db8:1:2::1"), Allowed, false),
			reject(netip.MustParseAddr("2001:db8:1:2::1"), Allowed, false),
			reject(netip.MustParseAddr("2001:db8:1:2::1"), Allowed, false),
			reject(netip.MustParseAddr("2001:db8:1:2::2"), Allowed, false),
			reject(netip.MustParseAddr("2001:db8:1:2::3"), Banned, true),
			admit(netip.MustParseAddr("2001:db8:1:2::9"), Banned, false),
			banned(netip.MustParseAddr("2001:db8:1:2::9"), Banned),
			admit(netip.MustParseAddr("2001:db8:1:2::1"), Allowed, false),
			banned(netip.MustParseAddr("2001:db8:1:2::1"), Allowed),
		}},
		{"never_ban: the rate limit still holds", Limits{AttemptsPerMinute: 2, RejectionsBeforeBan: 1, BanDuration: time.Hour, NeverBan: prefixes("127.0.0.1/32")}, []step{
			admit(addrA, Allowed, false), admit(addrA, Allowed, false),
			admit(addrA, RateLimited, true),
			later(30*time.Second, admit(addrA, Allowed, false)),
		}},
		{"never_ban: the open-connection limit still holds", Limits{MaxOpenPerAddress: 1, RejectionsBeforeBan: 1, BanDuration: time.Hour, NeverBan: prefixes("127.0.0.1/32")}, []step{
			admit(addrA, Allowed, false),
			admit(addrA, TooManyOpen, true),
			reject(addrA, Allowed, false),
			release(addrA),
			admit(addrA, Allowed, false),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			g := New(tt.limits, c.now)
			for i, s := range tt.steps {
				c.advance(s.advance)
				var v Verdict
				switch s.op {
				case "admit":
					v = g.Admit(s.addr)
				case "reject":
					v = g.Reject(s.addr)
				case "release":
					g.Release(s.addr)
					continue
				case "banned":
					until, ok := g.BannedUntil(s.addr)
					if got := map[bool]Reason{true: Banned, false: Allowed}[ok]; got != s.want || ok == until.IsZero() {
						t.Fatalf("step %d: BannedUntil(%s) = %v, %v, want %v", i, s.addr, until, ok, s.want)
					}
					continue
				}
				if v.Reason != s.want || v.Report != s.report {
					t.Fatalf("step %d: %s(%s) = %v (report %v), want %v (report %v)", i, s.op, s.addr, v.Reason, v.Report, s.want, s.report)
				}
				if v.Reason == Banned && v.Until.IsZero() {
					t.Fatalf("step %d: a ban without its end", i)
				}
			}
		})
	}
}

func prefixes(ss ...string) []netip.Prefix {
	ps := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		ps[i] = netip.MustParsePrefix(s)
	}
	return ps
}

// TestGuardExemptRejectionsLeaveNoTrace: an exempt address's rejections
// do not take a place in the table.
func TestGuardExemptRejectionsLeaveNoTrace(t *testing.T) {
	g := New(Limits{RejectionsBeforeBan: 1, BanDuration: time.Hour, NeverBan: prefixes("127.0.0.0/8")}, newClock().now)
	for i := range 100 {
		g.Reject(netip.AddrFrom4([4]byte{127, 0, 0, byte(i)}))
	}
	if n := g.Len(); n != 0 {
		t.Fatalf("%d addresses tracked after exempt rejections, want 0", n)
	}
}

func TestGuardReportsSuppressedCount(t *testing.T) {
	c := newClock()
	g := New(Limits{MaxOpenPerAddress: 1}, c.now)
	g.Admit(addrA)
	if v := g.Admit(addrA); !v.Report || v.Suppressed != 0 {
		t.Fatalf("first refusal %+v, want reported", v)
	}
	for range 41 {
		if v := g.Admit(addrA); v.Report {
			t.Fatalf("refusal reported within the alert interval: %+v", v)
		}
	}
	c.advance(AlertInterval)
	if v := g.Admit(addrA); !v.Report || v.Suppressed != 41 {
		t.Fatalf("refusal after the interval %+v, want reported with 41 suppressed", v)
	}
}

// TestGuardAlertBudget: refusals from many addresses at once are reported
// only AlertBudget times per interval in all.
func TestGuardAlertBudget(t *testing.T) {
	c := newClock()
	g := New(Limits{AttemptsPerMinute: 1, RejectionsBeforeBan: 1, BanDuration: time.Hour}, c.now)
	reported := func(addrs int, f func(netip.Addr) Verdict) int {
		n := 0
		for i := range addrs {
			if f(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})).Report {
				n++
			}
		}
		return n
	}
	reported(1000, g.Admit) // use each address's one attempt
	if n := reported(1000, g.Admit); n != AlertBudget {
		t.Fatalf("%d of 1000 rate-limited addresses reported, want the budget %d", n, AlertBudget)
	}
	c.advance(AlertInterval)
	if n := reported(1000, g.Reject); n != AlertBudget {
		t.Fatalf("%d of 1000 bans reported, want the budget %d", n, AlertBudget)
	}
}

// TestGuardTableBounded: a flood from 100,000 distinct addresses keeps the
// table at its cap, and the addresses with open connections are the last
// to be forgotten.
func TestGuardTableBounded(t *testing.T) {
	for _, tc := range []struct {
		name       string
		maxTracked int
		want       int
	}{
		{"default cap", 0, DefaultMaxTracked},
		{"small cap", 1000, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			g := New(Limits{AttemptsPerMinute: 10, RejectionsBeforeBan: 5, BanDuration: time.Hour, MaxOpenPerAddress: 4, MaxTracked: tc.maxTracked}, c.now)
			held := netip.MustParseAddr("192.0.2.1")
			if v := g.Admit(held); v.Reason != Allowed {
				t.Fatal(v)
			}
			for i := range 100000 {
				a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
				if i%2 == 1 {
					a = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 16), byte(i >> 8), byte(i), 15: 1})
				}
				if v := g.Admit(a); v.Reason != Allowed {
					t.Fatalf("address %d refused: %v", i, v.Reason)
				}
				g.Reject(a)
				g.Release(a)
				if i%1000 == 0 {
					c.advance(time.Millisecond)
				}
			}
			if n := g.Len(); n != tc.want {
				t.Fatalf("table holds %d addresses, want %d", n, tc.want)
			}
			if n := g.Open(held); n != 1 {
				t.Fatalf("the address with an open connection was forgotten (open %d)", n)
			}
		})
	}
}

func BenchmarkGuardAdmit(b *testing.B) {
	g := New(Limits{AttemptsPerMinute: 1 << 30, MaxOpenPerAddress: 1 << 30}, nil)
	addrs := make([]netip.Addr, 1<<12)
	for i := range addrs {
		addrs[i] = netip.MustParseAddr(fmt.Sprintf("10.0.%d.%d", i>>8, i&255))
	}
	b.ResetTimer()
	for i := range b.N {
		a := addrs[i&(len(addrs)-1)]
		g.Admit(a)
		g.Release(a)
	}
}
