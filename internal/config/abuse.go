package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Abuse limits how single network addresses may use the server: how often
// they may connect, how many connections they may hold, and how many
// rejected associations make the server refuse them for a while. Zero
// switches a limit off (ban_duration excepted, which must be set).
type Abuse struct {
	AttemptsPerMinute        int      `toml:"attempts_per_minute"`
	RejectionsBeforeBan      int      `toml:"rejections_before_ban"`
	BanDuration              Duration `toml:"ban_duration"`
	MaxConnectionsPerAddress int      `toml:"max_connections_per_address"`
	// NeverBan lists addresses ("127.0.0.1", "::1") and prefixes
	// ("10.0.4.0/24") whose rejections are not counted and which are
	// never banned. The rate and open-connection limits still hold for
	// them.
	NeverBan []string `toml:"never_ban"`
}

// Abuse defaults, each with its reason.
const (
	// DefaultAttemptsPerMinute is how many connections one address may
	// open per minute (all at once, then one every 60s/N). 300 leaves
	// room for the old modalities that open one association per image
	// and send several images a second, yet holds a connection flood from
	// one address to 5 connections a second.
	DefaultAttemptsPerMinute = 300

	// DefaultRejectionsBeforeBan is how many rejected associations (or
	// failed TLS handshakes) within ban_duration make the server refuse
	// the address. A device set up with a wrong AE title makes a handful
	// of attempts before someone looks; guessing AE titles takes hundreds,
	// and at 10 guesses per ban it stays useless.
	DefaultRejectionsBeforeBan = 10

	// DefaultBanDuration is how long a banned address is refused, and the
	// window its rejections are counted in. 15 minutes limits a guesser
	// to 40 guesses an hour, while a device whose setting was wrong and
	// has been corrected works again within a quarter of an hour, without
	// anyone having to lift the ban.
	DefaultBanDuration = 15 * time.Minute

	// DefaultMaxConnectionsPerAddress bounds the connections one address
	// may hold open, counted from the moment they connect (before TLS),
	// so that slow handshakes cannot hold every slot. 16 is twice
	// max_associations_per_peer, so two devices behind one address (a
	// router, a workstation with two AE titles) each get their full
	// share, and a quarter of max_associations, so one address cannot
	// lock the others out.
	DefaultMaxConnectionsPerAddress = 16
)

// DefaultNeverBan is empty: no address is exempt from banning unless the
// owner names it, since each exemption lets that address guess AE titles
// and try certificates without end.
var DefaultNeverBan = []string{}

// Ranges of the abuse options (0, which switches a limit off, aside).
const (
	MaxAttemptsPerMinute   = 100000
	MaxRejectionsBeforeBan = 10000
	MinBanDuration         = time.Minute
	MaxBanDuration         = 7 * 24 * time.Hour
	// MaxNeverBan bounds the never_ban list: it is for a few machines the
	// owner controls, and ranges cover more with one entry.
	MaxNeverBan = 256
)

func defaultAbuse() Abuse {
	return Abuse{
		AttemptsPerMinute:        DefaultAttemptsPerMinute,
		RejectionsBeforeBan:      DefaultRejectionsBeforeBan,
		BanDuration:              Duration(DefaultBanDuration),
		MaxConnectionsPerAddress: DefaultMaxConnectionsPerAddress,
		NeverBan:                 append([]string{}, DefaultNeverBan...),
	}
}

func (a Abuse) validate(bad func(string, ...any)) {
	if a.AttemptsPerMinute < 0 || a.AttemptsPerMinute > MaxAttemptsPerMinute {
		bad("abuse.attempts_per_minute: %d is out of range; use a number from 1 to %d, or 0 for no limit (default %d)", a.AttemptsPerMinute, MaxAttemptsPerMinute, DefaultAttemptsPerMinute)
	}
	if a.RejectionsBeforeBan < 0 || a.RejectionsBeforeBan > MaxRejectionsBeforeBan {
		bad("abuse.rejections_before_ban: %d is out of range; use a number from 1 to %d, or 0 never to ban (default %d)", a.RejectionsBeforeBan, MaxRejectionsBeforeBan, DefaultRejectionsBeforeBan)
	}
	if d := a.BanDuration.Duration(); d < MinBanDuration || d > MaxBanDuration {
		bad("abuse.ban_duration: %q is out of range; use a duration from \"1m\" to \"168h\" (default %q)", d.String(), Duration(DefaultBanDuration).String())
	}
	if a.MaxConnectionsPerAddress < 0 || a.MaxConnectionsPerAddress > MaxMaxAssociations {
		bad("abuse.max_connections_per_address: %d is out of range; use a number from 1 to %d, or 0 for no limit (default %d)", a.MaxConnectionsPerAddress, MaxMaxAssociations, DefaultMaxConnectionsPerAddress)
	}
	if len(a.NeverBan) > MaxNeverBan {
		bad("abuse.never_ban: %d entries; list at most %d, and cover a range with one prefix such as \"10.0.4.0/24\"", len(a.NeverBan), MaxNeverBan)
		return
	}
	type entry struct {
		text string
		p    netip.Prefix
	}
	var ok []entry
	for _, s := range a.NeverBan {
		p, err := ParseNeverBan(s)
		if err != nil {
			bad("abuse.never_ban: %v", err)
			continue
		}
		for _, o := range ok {
			switch {
			case o.p == p && o.text == s:
				bad("abuse.never_ban: %q is listed twice; remove one", s)
			case o.p == p:
				bad("abuse.never_ban: %q and %q are the same %s; remove one", o.text, s, what(p))
			case o.p.Bits() <= p.Bits() && o.p.Contains(p.Addr()):
				bad("abuse.never_ban: %q is already inside %q; remove %q", s, o.text, s)
			case p.Bits() < o.p.Bits() && p.Contains(o.p.Addr()):
				bad("abuse.never_ban: %q is already inside %q; remove %q", o.text, s, o.text)
			default:
				continue
			}
			break
		}
		ok = append(ok, entry{s, p})
	}
}

func what(p netip.Prefix) string {
	if p.IsSingleIP() {
		return "address"
	}
	return "range"
}

// ParseNeverBan reads one entry of abuse.never_ban: an IPv4 or IPv6
// address, or a prefix in CIDR notation with no bits set after its
// length. An IPv4-mapped IPv6 entry is refused with its IPv4 form (IPv4
// connections arriving on an IPv6 socket match the IPv4 entries), and so
// is a prefix that covers every address, which would switch banning off.
func ParseNeverBan(s string) (netip.Prefix, error) {
	example := `write one address ("192.0.2.7", "::1") or a range in CIDR notation ("10.0.4.0/24", "fd00:1:2:3::/64")`
	addrText, _, isPrefix := strings.Cut(s, "/")
	a, err := netip.ParseAddr(addrText)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or range; %s", s, example)
	}
	if a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q has a zone (%%%s); zones are not allowed, %s", s, a.Zone(), example)
	}
	p := netip.PrefixFrom(a, a.BitLen())
	if isPrefix {
		if p, err = netip.ParsePrefix(s); err != nil {
			return netip.Prefix{}, fmt.Errorf("%q: the length after \"/\" must be a number from 0 to %d for an %s address; %s", s, a.BitLen(), family(a), example)
		}
	}
	if p.Bits() == 0 {
		return netip.Prefix{}, fmt.Errorf("%q covers every %s address, so nothing would ever be banned; to switch banning off, set rejections_before_ban = 0 instead, which doctor reports as the weakening it is", s, family(a))
	}
	if a.Is4In6() && p.Bits() >= 96 {
		v4 := netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		text := v4.Masked().String()
		if v4.IsSingleIP() {
			text = v4.Addr().String()
		}
		return netip.Prefix{}, fmt.Errorf("%q is an IPv4-mapped IPv6 %s; write it as %q (IPv4 connections match it however they arrive)", s, what(p), text)
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Errorf("%q has bits set after the prefix length; write %q for the whole range, or %q for the one address", s, m.String(), a.String())
	}
	return p, nil
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// NeverBanPrefixes returns the never_ban entries that parse (Validate
// reports the others).
func (a Abuse) NeverBanPrefixes() []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range a.NeverBan {
		if p, err := ParseNeverBan(s); err == nil {
			ps = append(ps, p)
		}
	}
	return ps
}

func (a Abuse) comment(table func(text, name string), opt func(text, key, value string)) {
	table(`Protection against addresses that misbehave: connection floods, and
guessing AE titles or trying certificates. Refused connections are closed
before anything is read from them, and each ban is logged once and recorded
in the audit trail. 0 switches a limit off.`, "abuse")
	opt(`New connections one address may open per minute (all at once, then
evenly). Enough for devices that open one association per image.`,
		"attempts_per_minute", strconv.Itoa(a.AttemptsPerMinute))
	opt(`Rejected associations or failed TLS handshakes from one address, within
ban_duration, after which the address is refused for ban_duration (even a
registered device at that address, unless never_ban below lists it). This
makes guessing AE titles useless.`,
		"rejections_before_ban", strconv.Itoa(a.RejectionsBeforeBan))
	opt(`How long a banned address is refused, and the window its rejections are
counted in ("15m", "1h"). A ban ends by itself.`,
		"ban_duration", quote(a.BanDuration.String()))
	opt(`Connections one address may hold open at once, counted from when they
connect, before TLS.`,
		"max_connections_per_address", strconv.Itoa(a.MaxConnectionsPerAddress))
	opt(`Addresses and ranges whose rejected associations and failed TLS handshakes
are not counted, so they are never banned: "127.0.0.1", "::1", "10.0.4.0/24".
Each run of dicomshield doctor counts one rejection per listener it probes
against the address it probes from (on this machine: loopback), so a few runs
within ban_duration ban it, and with it the local tools and any registered
device there; listing that address here prevents it. Every entry lets that
address guess AE titles and try certificates without end: list only machines
you control. attempts_per_minute and max_connections_per_address still apply
to them, because those protect the server's resources from any sender, not
against guessing. Empty by default: no address is exempt.`,
		"never_ban", quoteArray(a.NeverBan))
}

// AbuseLimitsOff lists, in words, the abuse protections c switches off (for
// doctor).
func (c *Config) AbuseLimitsOff() []string {
	var off []string
	if c.Abuse.AttemptsPerMinute == 0 {
		off = append(off, "the connection rate limit (abuse.attempts_per_minute = 0)")
	}
	if c.Abuse.RejectionsBeforeBan == 0 {
		off = append(off, "banning after repeated rejections (abuse.rejections_before_ban = 0)")
	}
	if c.Abuse.MaxConnectionsPerAddress == 0 {
		off = append(off, "the limit on connections per address (abuse.max_connections_per_address = 0)")
	}
	return off
}
