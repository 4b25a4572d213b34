package config

import (
	"strconv"
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

// Ranges of the abuse options (0, which switches a limit off, aside).
const (
	MaxAttemptsPerMinute   = 100000
	MaxRejectionsBeforeBan = 10000
	MinBanDuration         = time.Minute
	MaxBanDuration         = 7 * 24 * time.Hour
)

func defaultAbuse() Abuse {
	return Abuse{
		AttemptsPerMinute:        DefaultAttemptsPerMinute,
		RejectionsBeforeBan:      DefaultRejectionsBeforeBan,
		BanDuration:              Duration(DefaultBanDuration),
		MaxConnectionsPerAddress: DefaultMaxConnectionsPerAddress,
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
registered device at that address). This makes guessing AE titles useless.`,
		"rejections_before_ban", strconv.Itoa(a.RejectionsBeforeBan))
	opt(`How long a banned address is refused, and the window its rejections are
counted in ("15m", "1h"). A ban ends by itself.`,
		"ban_duration", quote(a.BanDuration.String()))
	opt(`Connections one address may hold open at once, counted from when they
connect, before TLS.`,
		"max_connections_per_address", strconv.Itoa(a.MaxConnectionsPerAddress))
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
