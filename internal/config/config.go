// Package config reads and checks dicomshield.toml, the versioned
// configuration file kept in the data directory.
//
// The file is decoded strictly: an option this version does not know is an
// error (naming the option and its line), not something silently ignored,
// because a misspelt security option that is ignored leaves the server less
// safe than its owner believes. Options left out of the file keep their
// defaults. Every problem is explained in words meant for the person who
// looks after the clinic's computers, not for a programmer.
package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Version is the version of the configuration file format this build
// reads and writes. A file must say `version = 1`; a file written for a
// newer format is refused rather than half understood.
const Version = 1

// FileName is the name of the configuration file inside the data directory.
const FileName = "dicomshield.toml"

// Path returns the configuration file's path inside dataDir.
func Path(dataDir string) string { return filepath.Join(dataDir, FileName) }

// Named risks an owner may accept in accept_risk.
const (
	// RiskPlaintext allows the plain (unencrypted) DICOM listener: patient
	// data then crosses the network readable by anyone on the path.
	RiskPlaintext = "plaintext"
	// RiskMetricsPublic allows the metrics endpoint on a non-loopback
	// address: it reveals traffic volumes, peer counts and software
	// version to whoever can reach it.
	RiskMetricsPublic = "metrics-public"
	// RiskUnsealedSeries allows tamper.seal_after = "0": series are never
	// sealed, so anyone allowed to store can append a forged image to any
	// series, however old.
	RiskUnsealedSeries = "unsealed-series"
	// RiskForeignStudy allows tamper.foreign_study = "allow": any peer
	// allowed to store can add instances to studies other peers created.
	RiskForeignStudy = "foreign-study"
)

// KnownRisks lists every name accept_risk understands.
var KnownRisks = []string{RiskPlaintext, RiskMetricsPublic, RiskUnsealedSeries, RiskForeignStudy}

// Defaults. Each is what a fresh install runs with; the comment says why.
const (
	// DefaultAETitle is the title other DICOM devices address us by. It
	// is the product name in capitals: 11 characters, within the 16 that
	// DICOM allows, and easy to recognise in a modality's device list.
	DefaultAETitle = "DICOMSHIELD"

	// DefaultListenTLS is the DICOM-over-TLS listener on every interface.
	// 2762 is the port IANA registers as "dicom-tls" (PS3.15 annex B), so
	// modalities configured for secure DICOM expect it, and being above
	// 1024 it needs no administrator rights to open.
	DefaultListenTLS = ":2762"

	// DefaultListen is the plain (unencrypted) DICOM listener: off. Plain
	// DICOM sends patient data readable by anyone on the network; an owner
	// who needs it for an old modality must turn it on and also accept
	// the "plaintext" risk.
	DefaultListen = ""

	// DefaultMetrics is where Prometheus metrics are served: loopback
	// only, so that traffic figures and the software version are not shown
	// to the whole network. 9762 echoes the DICOM ports and is not used by
	// any common service.
	DefaultMetrics = "127.0.0.1:9762"

	// DefaultLogFormat is human-readable text, what someone reading the
	// log on the server's console expects; "json" suits log collectors.
	DefaultLogFormat = "text"

	// DefaultLogLevel records each association and problem without the
	// detail of every message exchanged ("debug").
	DefaultLogLevel = "info"

	// DefaultMaxAssociations bounds simultaneous associations from all
	// peers. Every association holds memory, a network connection and
	// often an open file; 64 is far above what a clinic's modalities use
	// at once yet stops a flood of connections exhausting a small server.
	DefaultMaxAssociations = 64

	// DefaultMaxAssociationsPerPeer bounds simultaneous associations from
	// one peer, so that one misbehaving or compromised device cannot take
	// every slot and lock the other modalities out. Modalities that send
	// in parallel rarely open more than four.
	DefaultMaxAssociationsPerPeer = 8

	// DefaultMaxInstanceSize bounds one received DICOM object. 4 GiB is
	// the largest a single DICOM element can be (its length is 32 bits),
	// which covers large multi-frame and whole-slide images, while
	// stopping a peer from filling the disk with one endless object.
	DefaultMaxInstanceSize = "4GiB"

	// DefaultIdleTimeout closes an association on which nothing has been
	// received for this long, freeing its slot from a device that crashed
	// or lost its network. Two minutes outlasts the pause a modality makes
	// between series.
	DefaultIdleTimeout = 2 * time.Minute

	// DefaultAssociateTimeout is how long a new connection has to finish
	// negotiating the association (the ARTIM timer of PS3.8). A real
	// device takes milliseconds; 30 seconds, the common default of DICOM
	// tools, tolerates a slow network but not a connection left hanging
	// on purpose to hold a slot.
	DefaultAssociateTimeout = 30 * time.Second

	// DefaultSealAfter seals a series this long after its last instance
	// arrived: later instances for it are refused, which stops the
	// append-a-forged-image attack on finished series. An hour is the
	// delay vendors were advised to use, and far longer than a modality
	// pauses within one series.
	DefaultSealAfter = 60 * time.Minute

	// DefaultForeignStudy refuses instances for a study from a peer other
	// than the one that created it: a forged series slipped into a real
	// study is as misleading as a forged image in a real series.
	DefaultForeignStudy = ForeignStudyRefuse

	// DefaultMaxFindResults bounds the matches one C-FIND query returns.
	// A query with wildcards could otherwise list every patient on the
	// server in one go; 1000 is more than any worklist or viewer shows.
	DefaultMaxFindResults = 1000
)

// Ranges Validate enforces; outside them a value is almost certainly a typo.
const (
	MinMaxAssociations  = 1
	MaxMaxAssociations  = 10000
	MinInstanceSize     = 1 << 20  // 1 MiB: smaller refuses ordinary CT slices
	MaxInstanceSize     = 64 << 30 // 64 GiB: larger than any real object
	MinIdleTimeout      = time.Second
	MaxIdleTimeout      = 24 * time.Hour
	MinAssociateTimeout = time.Second
	MaxAssociateTimeout = 5 * time.Minute
	MinMaxFindResults   = 1
	MaxMaxFindResults   = 1000000
	MinSealAfter        = time.Minute         // shorter would cut series while the modality still sends
	MaxSealAfter        = 30 * 24 * time.Hour // longer is as good as never sealing
)

// Values of tamper.foreign_study.
const (
	ForeignStudyRefuse = "refuse"
	ForeignStudyAllow  = "allow"
)

// Tamper configures the protection against forged and altered instances.
type Tamper struct {
	// SealAfter: a series whose last instance arrived longer ago than
	// this takes no new instance ("0": never; needs accept_risk
	// "unsealed-series").
	SealAfter Duration `toml:"seal_after"`
	// ForeignStudy: "refuse" or "allow" (needs accept_risk
	// "foreign-study") instances for a study from another peer than the
	// one that created it.
	ForeignStudy string `toml:"foreign_study"`
}

// Log says how the server logs.
type Log struct {
	Format string `toml:"format"` // "text" or "json"
	Level  string `toml:"level"`  // "debug", "info", "warn" or "error"
}

// Limits bound what peers can make the server do.
type Limits struct {
	MaxAssociations        int      `toml:"max_associations"`
	MaxAssociationsPerPeer int      `toml:"max_associations_per_peer"`
	MaxInstanceSize        string   `toml:"max_instance_size"` // "4GiB", "500MB", "1048576"
	IdleTimeout            Duration `toml:"idle_timeout"`
	AssociateTimeout       Duration `toml:"associate_timeout"`
	MaxFindResults         int      `toml:"max_find_results"`
}

// Config is the content of dicomshield.toml.
type Config struct {
	Version   int    `toml:"version"`
	AETitle   string `toml:"ae_title"`
	ListenTLS string `toml:"listen_tls"` // DICOM over TLS; "" = off
	Listen    string `toml:"listen"`     // plain DICOM; "" = off
	// Hostnames are the names and addresses put in the server
	// certificate, the ones peers may use to reach the server.
	Hostnames []string `toml:"hostnames"`
	Metrics   string   `toml:"metrics"` // Prometheus; "" = off
	Log       Log      `toml:"log"`
	Limits    Limits   `toml:"limits"`
	Abuse     Abuse    `toml:"abuse"`
	Tamper    Tamper   `toml:"tamper"`
	Enroll    Enroll   `toml:"enroll"`
	// AcceptRisk names the risks the owner knowingly accepts (see
	// KnownRisks).
	AcceptRisk []string `toml:"accept_risk"`
	// Identity configures user authentication by token (identity.go).
	Identity Identity `toml:"identity"`
	Audit    Audit    `toml:"audit"`
}

// Duration is a length of time written in the file as a string such as
// "30s", "2m" or "1h30m".
type Duration time.Duration

// Duration returns d as a time.Duration.
func (d Duration) Duration() time.Duration { return time.Duration(d) }

// String returns d in the form the file uses, without zero trailing units:
// "2m" rather than "2m0s".
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration: write a number followed by a unit, such as \"30s\", \"2m\" or \"1h\"", s)
	}
	*d = Duration(v)
	return nil
}

// Default returns the configuration a fresh install runs with.
func Default() *Config {
	return &Config{
		Version:   Version,
		AETitle:   DefaultAETitle,
		ListenTLS: DefaultListenTLS,
		Listen:    DefaultListen,
		Hostnames: DefaultHostnames(),
		Metrics:   DefaultMetrics,
		Log:       Log{Format: DefaultLogFormat, Level: DefaultLogLevel},
		Limits: Limits{
			MaxAssociations:        DefaultMaxAssociations,
			MaxAssociationsPerPeer: DefaultMaxAssociationsPerPeer,
			MaxInstanceSize:        DefaultMaxInstanceSize,
			IdleTimeout:            Duration(DefaultIdleTimeout),
			AssociateTimeout:       Duration(DefaultAssociateTimeout),
			MaxFindResults:         DefaultMaxFindResults,
		},
		Abuse:      defaultAbuse(),
		Tamper:     Tamper{SealAfter: Duration(DefaultSealAfter), ForeignStudy: DefaultForeignStudy},
		Enroll:     defaultEnroll(),
		AcceptRisk: []string{},
		Identity:   defaultIdentity(),
		Audit:      defaultAudit(),
	}
}

// DefaultHostnames are the certificate names of a fresh install: this
// machine's host name (what peers on the network most likely use), then
// localhost and both loopback addresses (so tools on the server itself can
// connect and verify the certificate).
func DefaultHostnames() []string {
	var hs []string
	if h, err := os.Hostname(); err == nil {
		h = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(h), "."))
		if checkHostname(h) == nil {
			hs = append(hs, h)
		}
	}
	for _, h := range []string{"localhost", "127.0.0.1", "::1"} {
		if !slices.Contains(hs, h) {
			hs = append(hs, h)
		}
	}
	return hs
}

// Accepts reports whether the owner accepted the named risk.
func (c *Config) Accepts(risk string) bool { return slices.Contains(c.AcceptRisk, risk) }

// MaxInstanceBytes returns Limits.MaxInstanceSize in bytes, or the default
// if it does not parse (Validate reports that).
func (c *Config) MaxInstanceBytes() int64 {
	n, err := ParseSize(c.Limits.MaxInstanceSize)
	if err != nil {
		n, _ = ParseSize(DefaultMaxInstanceSize)
	}
	return n
}

// Validate returns every problem with c, each a sentence that says what is
// wrong and how to fix it. Nil means c is usable.
func (c *Config) Validate() []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	switch {
	case c.Version == 0:
		bad("version: missing; the file must start with `version = %d`", Version)
	case c.Version > Version:
		bad("version: the file is for configuration format %d, but this dicomshield only understands format %d; upgrade dicomshield or rewrite the file", c.Version, Version)
	case c.Version != Version:
		bad("version: %d is not a configuration format; write `version = %d`", c.Version, Version)
	}

	if err := CheckAETitle(c.AETitle); err != nil {
		bad("ae_title: %v", err)
	}

	if c.ListenTLS == "" && c.Listen == "" {
		bad("listen_tls and listen are both empty, so the server would accept no connections; set listen_tls (default %q)", DefaultListenTLS)
	}
	if c.ListenTLS != "" {
		if err := checkListen(c.ListenTLS); err != nil {
			bad("listen_tls: %v", err)
		}
	}
	if c.Listen != "" {
		if err := checkListen(c.Listen); err != nil {
			bad("listen: %v", err)
		} else if !c.Accepts(RiskPlaintext) {
			bad("listen: the plain listener %q sends patient data unencrypted, readable by anyone on the network; use listen_tls instead, or if an old device truly cannot do TLS, add \"plaintext\" to accept_risk to accept that risk", c.Listen)
		}
	}
	if c.Metrics != "" {
		if err := checkListen(c.Metrics); err != nil {
			bad("metrics: %v", err)
		} else if !isLoopback(c.Metrics) && !c.Accepts(RiskMetricsPublic) {
			bad("metrics: %q can be reached from other machines, and the metrics show traffic volumes and the software version; use a loopback address such as %q, or add \"metrics-public\" to accept_risk to accept that risk", c.Metrics, DefaultMetrics)
		}
	}
	addrs := []struct{ name, addr string }{{"listen_tls", c.ListenTLS}, {"listen", c.Listen}, {"metrics", c.Metrics}, {"enroll.listen", c.Enroll.Listen}}
	for i := range addrs {
		for j := i + 1; j < len(addrs); j++ {
			if sameSocket(addrs[i].addr, addrs[j].addr) {
				bad("%s and %s both use %q; each needs its own port", addrs[i].name, addrs[j].name, addrs[j].addr)
			}
		}
	}

	if len(c.Hostnames) == 0 {
		bad("hostnames: empty; list at least the name or address peers use to reach this server, or they cannot verify its certificate")
	}
	seen := map[string]bool{}
	for _, h := range c.Hostnames {
		if err := checkHostname(h); err != nil {
			bad("hostnames: %v", err)
		} else if seen[strings.ToLower(h)] {
			bad("hostnames: %q is listed twice", h)
		}
		seen[strings.ToLower(h)] = true
	}

	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format: %q is not a log format; use \"text\" or \"json\"", c.Log.Format)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level: %q is not a log level; use \"debug\", \"info\", \"warn\" or \"error\"", c.Log.Level)
	}

	l := c.Limits
	if l.MaxAssociations < MinMaxAssociations || l.MaxAssociations > MaxMaxAssociations {
		bad("limits.max_associations: %d is out of range; use a number from %d to %d (default %d)", l.MaxAssociations, MinMaxAssociations, MaxMaxAssociations, DefaultMaxAssociations)
	}
	if l.MaxAssociationsPerPeer < 1 || l.MaxAssociationsPerPeer > MaxMaxAssociations {
		bad("limits.max_associations_per_peer: %d is out of range; use a number from 1 to max_associations (default %d)", l.MaxAssociationsPerPeer, DefaultMaxAssociationsPerPeer)
	} else if l.MaxAssociationsPerPeer > l.MaxAssociations && l.MaxAssociations >= MinMaxAssociations {
		bad("limits.max_associations_per_peer: %d is more than max_associations (%d); one peer cannot have more associations than the whole server", l.MaxAssociationsPerPeer, l.MaxAssociations)
	}
	if n, err := ParseSize(l.MaxInstanceSize); err != nil {
		bad("limits.max_instance_size: %v", err)
	} else if n < MinInstanceSize || n > MaxInstanceSize {
		bad("limits.max_instance_size: %q is out of range; use a size from 1MiB to 64GiB (default %q)", l.MaxInstanceSize, DefaultMaxInstanceSize)
	}
	if d := l.IdleTimeout.Duration(); d < MinIdleTimeout || d > MaxIdleTimeout {
		bad("limits.idle_timeout: %q is out of range; use a duration from %q to %q (default %q)", d.String(), MinIdleTimeout.String(), "24h", Duration(DefaultIdleTimeout).String())
	}
	if d := l.AssociateTimeout.Duration(); d < MinAssociateTimeout || d > MaxAssociateTimeout {
		bad("limits.associate_timeout: %q is out of range; use a duration from %q to %q (default %q)", d.String(), MinAssociateTimeout.String(), "5m", Duration(DefaultAssociateTimeout).String())
	}
	if l.MaxFindResults < MinMaxFindResults || l.MaxFindResults > MaxMaxFindResults {
		bad("limits.max_find_results: %d is out of range; use a number from %d to %d (default %d)", l.MaxFindResults, MinMaxFindResults, MaxMaxFindResults, DefaultMaxFindResults)
	}

	c.Identity.validate(bad)
	c.Abuse.validate(bad)
	c.Tamper.validate(c, bad)
	c.Enroll.validate(bad)

	for _, r := range c.AcceptRisk {
		if !slices.Contains(KnownRisks, r) {
			bad("accept_risk: %q is not a risk dicomshield knows; the known ones are %s", r, quoteList(KnownRisks))
		}
	}
	errs = append(errs, c.Audit.validate()...)
	return errs
}

// CheckAETitle reports whether s can be an application entity title: 1 to
// 16 characters of plain ASCII, no backslash, no control characters, no
// leading or trailing spaces (DICOM ignores them, so they only confuse).
func CheckAETitle(s string) error {
	switch {
	case strings.TrimSpace(s) == "":
		return errors.New("an AE title is required (1 to 16 characters, for example \"DICOMSHIELD\")")
	case len(s) > 16:
		return fmt.Errorf("%q is %d characters long; DICOM allows at most 16", s, len(s))
	case s != strings.Trim(s, " "):
		return fmt.Errorf("%q starts or ends with a space; DICOM ignores those, so remove them", s)
	}
	for _, r := range s {
		switch {
		case r == '\\':
			return fmt.Errorf("%q contains a backslash, which DICOM does not allow in an AE title", s)
		case r < 0x20 || r == 0x7f:
			return fmt.Errorf("%q contains a control character, which DICOM does not allow in an AE title", s)
		case r > 0x7e:
			return fmt.Errorf("%q contains %q; an AE title may use only plain ASCII letters, digits, spaces and punctuation", s, r)
		}
	}
	return nil
}

// checkListen checks a listen address of the form host:port, where host may
// be empty (every interface), an IP address or a host name. Port 0 (any
// free port) is accepted: it is what tests use.
func checkListen(addr string) error {
	host, port, err := splitHostPort(addr)
	if err != nil {
		return err
	}
	if host != "" {
		if err := checkHostname(host); err != nil {
			return fmt.Errorf("in %q: %v", addr, err)
		}
	}
	if port < 0 || port > 65535 {
		return fmt.Errorf("in %q: port %d is out of range; use 1 to 65535", addr, port)
	}
	return nil
}

// splitHostPort splits "host:port", "[v6]:port" or ":port".
func splitHostPort(addr string) (host string, port int, err error) {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return "", 0, fmt.Errorf("%q has no port; write it as address:port, for example \":2762\", \"0.0.0.0:2762\" or \"[::1]:2762\"", addr)
	}
	host, ps := addr[:i], addr[i+1:]
	if strings.HasPrefix(host, "[") {
		if !strings.HasSuffix(host, "]") {
			return "", 0, fmt.Errorf("%q has an unclosed '['; write an IPv6 address as \"[::1]:2762\"", addr)
		}
		host = host[1 : len(host)-1]
		if _, err := netip.ParseAddr(host); err != nil || !strings.Contains(host, ":") {
			return "", 0, fmt.Errorf("%q: %q in brackets is not an IPv6 address", addr, host)
		}
	} else if strings.Contains(host, ":") {
		return "", 0, fmt.Errorf("%q: put an IPv6 address in brackets, as in \"[::1]:2762\"", addr)
	}
	if ps == "" || len(ps) > 5 || strings.Trim(ps, "0123456789") != "" {
		return "", 0, fmt.Errorf("%q: the port %q is not a number from 1 to 65535", addr, ps)
	}
	for _, c := range ps {
		port = port*10 + int(c-'0')
	}
	return host, port, nil
}

// checkHostname accepts an IP address or a DNS host name.
func checkHostname(h string) error {
	if h == "" {
		return errors.New("an empty host name")
	}
	if a, err := netip.ParseAddr(h); err == nil {
		if a.Zone() != "" {
			return fmt.Errorf("%q has a zone (%%...); zones are not allowed", h)
		}
		return nil
	}
	if len(h) > 253 {
		return fmt.Errorf("%q is longer than the 253 characters a host name may have", h)
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("%q is not a valid host name or IP address", h)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("%q is not a valid host name or IP address (host names use only letters, digits, '-' and '.')", h)
			}
		}
	}
	return nil
}

// isLoopback reports whether a valid listen address binds only loopback.
func isLoopback(addr string) bool {
	host, _, err := splitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// sameSocket reports whether two listen addresses would collide: the same
// non-zero port on the same host or with either on every interface.
func sameSocket(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	ha, pa, err1 := splitHostPort(a)
	hb, pb, err2 := splitHostPort(b)
	if err1 != nil || err2 != nil || pa != pb || pa == 0 {
		return false
	}
	return strings.EqualFold(ha, hb) || isWildcard(ha) || isWildcard(hb)
}

func isWildcard(h string) bool {
	if h == "" {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.IsUnspecified()
}

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}
