// Package abuse keeps single network addresses from wearing the archive
// down or guessing their way in. A Guard limits, per address, how often new
// connections may arrive and how many may be open at once, and refuses an
// address for a while after repeated rejected associations, so that
// guessing AE titles or trying certificates gets nowhere (THREATS.md,
// attacks 5 and 6).
//
// The Guard decides from the remote address alone, before any TLS
// handshake or PDU is read, so a refused connection costs an accept and a
// close. Listener applies it to a net.Listener. The package knows nothing
// of DICOM, policy or logging: the caller reports rejections (Reject) and
// logs and audits what the Verdicts tell it to (Verdict.Report).
//
// Addresses in Limits.NeverBan are exempt from banning: their rejections
// are not counted and they are admitted while their block is banned, but
// the connection rate and the open-connection limits hold for them as for
// any address, since those protect the server's resources, whoever sends.
//
// Memory is bounded: the Guard remembers at most Limits.MaxTracked
// addresses and forgets the least recently seen first. IPv6 addresses are
// tracked by their /64 prefix, the block one host or one customer
// normally holds, so that an attacker cannot escape a ban, or flood the
// table, by hopping between the addresses of its own block.
package abuse

import (
	"container/list"
	"net/netip"
	"sync"
	"time"
)

// Defaults for the Limits fields whose zero value selects them.
const (
	// DefaultMaxTracked bounds how many addresses a Guard remembers. An
	// entry takes about 290 bytes with its table and list overhead
	// (measured: 18 MiB for a full table), so an address flood cannot
	// make it grow further; 65,536 is far above the number of distinct
	// devices that reach a clinic's archive.
	DefaultMaxTracked = 1 << 16

	// IPv6PrefixBits is how much of an IPv6 address identifies a sender:
	// the /64 that one interface or one customer is normally given.
	IPv6PrefixBits = 64
)

// Alert throttling: how often refusals may be reported, so that a flood of
// refused connections cannot flood the log or the audit trail.
const (
	// AlertInterval is the least time between two reports about the same
	// address: one line a minute says enough about a flooding address.
	AlertInterval = time.Minute

	// AlertBudget is how many reports the whole Guard makes per
	// AlertInterval across all addresses (in a burst of at most as many):
	// enough to name every offender of an ordinary incident, while a
	// flood from a whole address range is reported only in part.
	AlertBudget = 60
)

// Limits configure a Guard. A zero field switches its check off, except
// MaxTracked, whose zero value means DefaultMaxTracked.
type Limits struct {
	// AttemptsPerMinute is how many connections an address may open per
	// minute; it may open that many in a burst, then one every 60s/N.
	AttemptsPerMinute int
	// RejectionsBeforeBan is how many rejections (reported with Reject)
	// within BanDuration make the Guard refuse the address for
	// BanDuration.
	RejectionsBeforeBan int
	// BanDuration is how long a ban lasts, and the window over which
	// rejections are counted. Zero switches banning off.
	BanDuration time.Duration
	// MaxOpenPerAddress is how many connections an address may hold open
	// at once.
	MaxOpenPerAddress int
	// MaxTracked bounds the addresses remembered; zero means
	// DefaultMaxTracked.
	MaxTracked int
	// NeverBan lists the addresses whose rejections are not counted and
	// which are never banned (Exempt). A connection's own address is
	// matched, not the /64 it is tracked as: an exempt IPv6 host is
	// admitted while the rest of its /64 is banned. IPv4-mapped IPv6
	// addresses match the IPv4 prefixes, as Key treats them as IPv4.
	NeverBan []netip.Prefix
}

// Exempt reports whether addr is in l.NeverBan.
func (l Limits) Exempt(addr netip.Addr) bool {
	a := addr.Unmap().WithZone("")
	for _, p := range l.NeverBan {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// canonicalPrefix masks p and writes an IPv4-mapped IPv6 prefix as the
// IPv4 prefix it covers, as Exempt matches unmapped addresses.
func canonicalPrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked()
}

// Reason says why a connection was refused.
type Reason int

// The outcomes of Admit and Reject.
const (
	Allowed     Reason = iota // not refused
	Banned                    // the address is banned after repeated rejections
	RateLimited               // too many connections per minute
	TooManyOpen               // too many connections open at once
)

// String names the reason as the audit trail's alert does.
func (r Reason) String() string {
	switch r {
	case Allowed:
		return "allowed"
	case Banned:
		return "address-banned"
	case RateLimited:
		return "rate-limited"
	case TooManyOpen:
		return "too-many-connections"
	}
	return "unknown"
}

// Verdict is the Guard's answer about one connection or rejection.
type Verdict struct {
	Reason Reason
	// Report is set when this refusal (or, from Reject, the ban that just
	// began) should be logged and audited. Refusals are reported at most
	// once per address per AlertInterval and AlertBudget times per
	// AlertInterval in all, and a ban is reported when it begins, not at
	// each connection it refuses.
	Report bool
	// Suppressed is how many refusals of this address went unreported
	// since its last report (set when Report is).
	Suppressed int
	// Until is when the ban ends (Reason Banned).
	Until time.Time
}

// Guard tracks addresses and decides on their connections. It is safe for
// concurrent use.
type Guard struct {
	limits Limits
	now    func() time.Time

	mu     sync.Mutex
	table  map[netip.Addr]*list.Element // of *entry
	lru    *list.List                   // front: least recently seen
	alerts bucket
}

type entry struct {
	key netip.Addr

	attempts bucket
	open     int

	rejections     int
	firstRejection time.Time
	bannedUntil    time.Time

	lastReport time.Time
	suppressed int
}

// New returns a Guard with limits l and clock now (nil: time.Now).
func New(l Limits, now func() time.Time) *Guard {
	if l.MaxTracked <= 0 {
		l.MaxTracked = DefaultMaxTracked
	}
	if now == nil {
		now = time.Now
	}
	nb := make([]netip.Prefix, 0, len(l.NeverBan))
	for _, p := range l.NeverBan {
		if p.IsValid() {
			nb = append(nb, canonicalPrefix(p))
		}
	}
	l.NeverBan = nb
	g := &Guard{limits: l, now: now, table: map[netip.Addr]*list.Element{}, lru: list.New()}
	g.alerts = bucket{tokens: AlertBudget, last: now()}
	return g
}

// Key returns the address a remote address is tracked as: IPv4 (also when
// IPv4-mapped) as it is, IPv6 as its /64 prefix, without zone.
func Key(a netip.Addr) netip.Addr {
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(IPv6PrefixBits)
		return p.Addr()
	}
	return a
}

// Admit decides on a new connection from addr. When it is Allowed the
// connection counts as open until Release(addr).
func (g *Guard) Admit(addr netip.Addr) Verdict {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	e := g.entry(Key(addr))
	if now.Before(e.bannedUntil) && !g.limits.Exempt(addr) {
		// The ban was reported when it began.
		return Verdict{Reason: Banned, Until: e.bannedUntil}
	}
	if n := g.limits.MaxOpenPerAddress; n > 0 && e.open >= n {
		return g.refuse(e, TooManyOpen, now)
	}
	if n := g.limits.AttemptsPerMinute; n > 0 && !e.attempts.take(now, float64(n), time.Minute) {
		return g.refuse(e, RateLimited, now)
	}
	e.open++
	return Verdict{Reason: Allowed}
}

// Release ends a connection Admit allowed. An address forgotten in between
// (the table was full) is not counted below zero.
func (g *Guard) Release(addr netip.Addr) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if el, ok := g.table[Key(addr)]; ok {
		if e := el.Value.(*entry); e.open > 0 {
			e.open--
		}
	}
}

// Reject counts one rejected association (or failed TLS handshake) from
// addr. When it makes RejectionsBeforeBan within BanDuration, the address
// is banned for BanDuration and the Verdict says Banned; otherwise it
// says Allowed. Rejections are counted in a window that starts at the
// first one and lasts BanDuration. A rejection from an exempt address
// (Limits.NeverBan) is not counted: it says Allowed.
func (g *Guard) Reject(addr netip.Addr) Verdict {
	n, ban := g.limits.RejectionsBeforeBan, g.limits.BanDuration
	if n <= 0 || ban <= 0 || g.limits.Exempt(addr) {
		return Verdict{Reason: Allowed}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	e := g.entry(Key(addr))
	if now.Before(e.bannedUntil) {
		return Verdict{Reason: Banned, Until: e.bannedUntil}
	}
	if e.rejections == 0 || now.Sub(e.firstRejection) >= ban {
		e.rejections, e.firstRejection = 0, now
	}
	e.rejections++
	if e.rejections < n {
		return Verdict{Reason: Allowed}
	}
	e.rejections = 0
	e.bannedUntil = now.Add(ban)
	// A ban is reported when it begins, even if the address was reported
	// a moment ago for something else; only the global budget holds it.
	v := Verdict{Reason: Banned, Until: e.bannedUntil}
	if g.alerts.take(now, AlertBudget, AlertInterval) {
		v.Report, v.Suppressed = true, e.suppressed
		e.suppressed, e.lastReport = 0, now
	} else {
		e.suppressed++
	}
	return v
}

// BannedUntil reports whether addr is banned now, and until when. An
// exempt address never is.
func (g *Guard) BannedUntil(addr netip.Addr) (time.Time, bool) {
	if g.limits.Exempt(addr) {
		return time.Time{}, false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if el, ok := g.table[Key(addr)]; ok {
		if e := el.Value.(*entry); g.now().Before(e.bannedUntil) {
			return e.bannedUntil, true
		}
	}
	return time.Time{}, false
}

// Open returns how many connections from addr are open.
func (g *Guard) Open(addr netip.Addr) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if el, ok := g.table[Key(addr)]; ok {
		return el.Value.(*entry).open
	}
	return 0
}

// Len returns how many addresses the Guard remembers.
func (g *Guard) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.table)
}

// refuse returns a refusal for e, reported if neither the per-address
// interval nor the global budget forbids it.
func (g *Guard) refuse(e *entry, r Reason, now time.Time) Verdict {
	v := Verdict{Reason: r}
	if (e.lastReport.IsZero() || now.Sub(e.lastReport) >= AlertInterval) && g.alerts.take(now, AlertBudget, AlertInterval) {
		v.Report, v.Suppressed = true, e.suppressed
		e.suppressed, e.lastReport = 0, now
	} else {
		e.suppressed++
	}
	return v
}

// entry returns the entry of key, made and marked most recently seen. A
// new entry beyond MaxTracked evicts the least recently seen one that has
// no open connection (or, if every one has, the least recently seen).
func (g *Guard) entry(key netip.Addr) *entry {
	if el, ok := g.table[key]; ok {
		g.lru.MoveToBack(el)
		return el.Value.(*entry)
	}
	if len(g.table) >= g.limits.MaxTracked {
		g.evict()
	}
	e := &entry{key: key}
	if n := g.limits.AttemptsPerMinute; n > 0 {
		e.attempts = bucket{tokens: float64(n), last: g.now()}
	}
	g.table[key] = g.lru.PushBack(e)
	return e
}

// evictScan bounds how many busy entries eviction skips looking for an
// idle one, so that a table full of open connections costs a new address
// a few steps, not a walk of the whole table.
const evictScan = 64

func (g *Guard) evict() {
	victim := g.lru.Front()
	for el, i := victim, 0; el != nil && i < evictScan; el, i = el.Next(), i+1 {
		if el.Value.(*entry).open == 0 {
			victim = el
			break
		}
	}
	if victim != nil {
		delete(g.table, victim.Value.(*entry).key)
		g.lru.Remove(victim)
	}
}

// bucket is a token bucket: capacity tokens, refilled at capacity per
// period.
type bucket struct {
	tokens float64
	last   time.Time
}

func (b *bucket) take(now time.Time, capacity float64, period time.Duration) bool {
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(capacity, b.tokens+capacity*el.Seconds()/period.Seconds())
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
