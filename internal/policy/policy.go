// Package policy decides who may associate with the server and what each
// peer may do. Everything is denied unless a registered peer is allowed it:
// an association needs our AE title, a registered calling AE title, a
// remote address among that peer's hosts, and either a client certificate
// bound to that AE title (TLS) or the peer's explicit permission to use the
// plain listener.
//
// The package knows nothing of storage or networking internals: the caller
// hands it what it verified (remote address, TLS, the AE title bound to the
// client certificate) and turns the Decision into an A-ASSOCIATE-AC or -RJ.
package policy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/dicomshield/dicomshield/internal/config"
)

// Right is something a peer may do.
type Right string

// The rights, one per DIMSE service a peer can request.
const (
	RightEcho  Right = "echo"  // C-ECHO: verify the connection
	RightStore Right = "store" // C-STORE: send objects to us
	RightFind  Right = "find"  // C-FIND: query what we hold
	RightGet   Right = "get"   // C-GET: retrieve over the same association
	RightMove  Right = "move"  // C-MOVE: have us send objects to a move destination
)

// AllRights lists every right in canonical order.
var AllRights = []Right{RightEcho, RightStore, RightFind, RightGet, RightMove}

// Valid reports whether r is a known right.
func (r Right) Valid() bool { return slices.Contains(AllRights, r) }

// ParseRights parses a comma-separated list such as "echo,store,find".
// Spaces and case are ignored, duplicates collapse, and the result is in
// canonical order. An empty string gives no rights (a peer that is only a
// move destination needs none).
func ParseRights(s string) ([]Right, error) {
	var rs []Right
	if strings.TrimSpace(s) == "" {
		return rs, nil
	}
	for _, f := range strings.Split(s, ",") {
		r := Right(strings.ToLower(strings.TrimSpace(f)))
		if r == "" {
			return nil, fmt.Errorf("rights %q: an empty entry between commas", s)
		}
		if !r.Valid() {
			return nil, fmt.Errorf("rights %q: %q is not a right; the rights are %s", s, string(r), FormatRights(AllRights))
		}
		rs = append(rs, r)
	}
	return normalizeRights(rs), nil
}

// FormatRights writes rights as ParseRights reads them.
func FormatRights(rs []Right) string {
	ss := make([]string, len(rs))
	for i, r := range rs {
		ss[i] = string(r)
	}
	return strings.Join(ss, ",")
}

func normalizeRights(rs []Right) []Right {
	out := []Right{}
	for _, r := range AllRights {
		if slices.Contains(rs, r) {
			out = append(out, r)
		}
	}
	return out
}

// ParseHost parses an address ("192.168.1.5", "::1") or a CIDR range
// ("10.0.0.0/24"). A bare address becomes a /32 or /128 prefix;
// IPv4-mapped IPv6 forms become plain IPv4; bits set below the mask are
// cleared. Host names are refused: a name would have to be resolved at
// each association, and DNS answers can be forged.
func ParseHost(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("host %q is not an address range; write it as 10.0.0.0/24 or fd00::/64", s)
		}
		return normalizePrefix(p), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("host %q is not an IP address; give an address such as 192.168.1.5 or a range such as 10.0.0.0/24 (host names are not accepted because DNS answers can be forged)", s)
	}
	if a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("host %q has a zone (%%...); give the address without it", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// normalizePrefix turns ::ffff:a.b.c.d/n (n >= 96) into a.b.c.d/(n-96) and
// masks host bits.
func normalizePrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked()
}

// FormatHost writes a prefix as ParseHost reads it: a single address
// without its /32 or /128.
func FormatHost(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// Peer is a registered DICOM device: who it is, where it may connect
// from, and what it may do.
type Peer struct {
	AETitle string
	// Hosts are the addresses or ranges the peer may connect from.
	Hosts []netip.Prefix
	// Port is where C-MOVE sends objects for this peer; 0 means the peer
	// is not a move destination.
	Port   int
	Rights []Right
	// Plaintext lets the peer use the plain (unencrypted) listener.
	Plaintext bool
	// CertSerial is the serial number of the peer's current client
	// certificate: a TLS association must present it. Empty means the
	// peer has no usable certificate (awaiting enrolment, or revoked),
	// and every TLS association is refused.
	CertSerial string
	// CertNotAfter is when the current certificate expires; zero if
	// unknown.
	CertNotAfter time.Time
	// RevokedSerials are the serials of certificates revoked by an
	// administrator (at most MaxRevokedSerials, the most recent last).
	// They are kept so that a refusal can say "revoked" and be reported
	// as a security alert.
	RevokedSerials []string
	// RequireUser refuses associations that do not authenticate a user
	// (user identity negotiation with a password or a token).
	RequireUser bool
	AddedAt     time.Time
	// MayReopen lets the peer add instances to a sealed series that it
	// created itself (a modality that sends late images). False, the
	// default, refuses every instance into a sealed series.
	MayReopen bool
}

// MaxRevokedSerials bounds Peer.RevokedSerials: 32. Peer certificates
// live days, so a revoked serial older than a few dozen revocations has
// long expired and is refused for that reason anyway.
const MaxRevokedSerials = 32

// Revoke revokes the peer's current certificate: its serial moves to
// RevokedSerials and the peer has no current certificate until it is
// enrolled again. It returns the revoked serial, or "" if there was none.
func (p *Peer) Revoke() string {
	s := p.CertSerial
	if s == "" {
		return ""
	}
	p.RevokedSerials = append(p.RevokedSerials, s)
	if n := len(p.RevokedSerials); n > MaxRevokedSerials {
		p.RevokedSerials = p.RevokedSerials[n-MaxRevokedSerials:]
	}
	p.CertSerial, p.CertNotAfter = "", time.Time{}
	return s
}

// IsRevoked reports whether serial is among the peer's revoked serials.
func (p *Peer) IsRevoked(serial string) bool {
	for _, r := range p.RevokedSerials {
		if normalizeSerial(r) == normalizeSerial(serial) {
			return true
		}
	}
	return false
}

// Can reports whether the peer has right r. A nil peer can do nothing.
func (p *Peer) Can(r Right) bool { return p != nil && slices.Contains(p.Rights, r) }

// HasHost reports whether addr is among the peer's hosts. IPv4-mapped IPv6
// addresses count as IPv4, and zones are ignored.
func (p *Peer) HasHost(addr netip.Addr) bool {
	if p == nil || !addr.IsValid() {
		return false
	}
	addr = addr.Unmap().WithZone("")
	for _, h := range p.Hosts {
		if h.Contains(addr) {
			return true
		}
	}
	return false
}

// MoveAddr returns where C-MOVE sends objects for this peer: the first of
// its hosts that is a single address, with Port. It is false when the peer
// is not a move destination (Port 0) or has only ranges.
func (p *Peer) MoveAddr() (netip.AddrPort, bool) {
	if p == nil || p.Port == 0 {
		return netip.AddrPort{}, false
	}
	for _, h := range p.Hosts {
		if h.IsSingleIP() {
			return netip.AddrPortFrom(h.Addr(), uint16(p.Port)), true
		}
	}
	return netip.AddrPort{}, false
}

// Validate reports the first problem that keeps p from being registered.
func (p *Peer) Validate() error {
	if err := config.CheckAETitle(p.AETitle); err != nil {
		return fmt.Errorf("peer AE title: %v", err)
	}
	if len(p.Hosts) == 0 {
		return fmt.Errorf("peer %q: no hosts; give at least one address or range it connects from", p.AETitle)
	}
	for _, h := range p.Hosts {
		if !h.IsValid() {
			return fmt.Errorf("peer %q: an invalid host", p.AETitle)
		}
	}
	if p.Port < 0 || p.Port > 65535 {
		return fmt.Errorf("peer %q: port %d is out of range; use 1 to 65535, or 0 if it is not a move destination", p.AETitle, p.Port)
	}
	for _, r := range p.Rights {
		if !r.Valid() {
			return fmt.Errorf("peer %q: %q is not a right; the rights are %s", p.AETitle, string(r), FormatRights(AllRights))
		}
	}
	if !isSerial(p.CertSerial) {
		return fmt.Errorf("peer %q: certificate serial %q is not a hexadecimal number", p.AETitle, p.CertSerial)
	}
	if len(p.RevokedSerials) > MaxRevokedSerials {
		return fmt.Errorf("peer %q: %d revoked serials, more than %d", p.AETitle, len(p.RevokedSerials), MaxRevokedSerials)
	}
	for _, s := range p.RevokedSerials {
		if s == "" || !isSerial(s) {
			return fmt.Errorf("peer %q: revoked certificate serial %q is not a hexadecimal number", p.AETitle, s)
		}
	}
	return nil
}

func isSerial(s string) bool {
	return len(s) <= 128 && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F' || r == ':')
	})
}

// clone returns a deep copy of p with hosts and rights normalised.
func (p Peer) clone() Peer {
	hosts := make([]netip.Prefix, 0, len(p.Hosts))
	for _, h := range p.Hosts {
		h = normalizePrefix(h)
		if !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	p.Hosts = hosts
	p.Rights = normalizeRights(p.Rights)
	p.RevokedSerials = slices.Clone(p.RevokedSerials)
	if !p.CertNotAfter.IsZero() {
		p.CertNotAfter = p.CertNotAfter.UTC().Round(0)
	}
	if !p.AddedAt.IsZero() {
		p.AddedAt = p.AddedAt.UTC().Round(0)
	}
	return p
}

// Reject reasons of A-ASSOCIATE-RJ with source "service user" (PS3.8
// table 9-21).
const (
	RejectNoReason  byte = 1 // no reason given
	RejectCallingAE byte = 3 // calling AE title not recognized
	RejectCalledAE  byte = 7 // called AE title not recognized
)

// Decision is the outcome of Associate.
type Decision struct {
	Allowed bool
	// Peer is the registered peer when Allowed.
	Peer *Peer
	// Reason says why, for the server's log: AE titles and addresses,
	// never patient data. It is not sent to the peer.
	Reason string
	// RejectReason is the A-ASSOCIATE-RJ reason (source: service user)
	// when not Allowed: RejectCalledAE, RejectCallingAE, or RejectNoReason
	// when the decision could not be made.
	RejectReason byte
	// Transient is set when the rejection is due to a passing fault (the
	// peer registry could not be read), so the RJ result should be
	// "rejected-transient" rather than "rejected-permanent".
	Transient bool
	// RevokedCert is set when the peer presented a certificate that was
	// revoked: a security alert, not a routine refusal.
	RevokedCert bool
}

// Request is what the caller knows about an association request.
type Request struct {
	CallingAE, CalledAE string
	// Remote is the peer's IP address.
	Remote netip.Addr
	// TLS is true on the TLS listener, after the handshake verified the
	// client certificate.
	TLS bool
	// CertAE is the AE title bound to the verified client certificate;
	// "" if none.
	CertAE string
	// CertSerial is the serial number of the verified client certificate
	// (hexadecimal; case, colons and leading zeros do not matter). Over
	// TLS it must be the peer's current CertSerial, so that re-issuing,
	// renewing or revoking a peer's certificate retires the old one at
	// once.
	CertSerial string
}

// Policy decides associations against a peer registry.
type Policy struct {
	Registry Registry
	// AETitle is our own (called) AE title.
	AETitle string
}

// Associate decides an association request. Every rejection of the
// calling side gets the same reason code (calling AE title not
// recognized), so a prober cannot learn which check failed; Reason tells
// the log.
func (p *Policy) Associate(ctx context.Context, r Request) Decision {
	deny := func(code byte, format string, a ...any) Decision {
		return Decision{RejectReason: code, Reason: fmt.Sprintf(format, a...)}
	}
	called := trimAE(r.CalledAE)
	calling := trimAE(r.CallingAE)
	if p == nil || p.Registry == nil {
		return Decision{RejectReason: RejectNoReason, Transient: true, Reason: "no peer registry configured"}
	}
	if ours := trimAE(p.AETitle); called == "" || called != ours {
		return deny(RejectCalledAE, "called AE title %q is not ours (%q)", called, ours)
	}
	if err := config.CheckAETitle(calling); err != nil {
		return deny(RejectCallingAE, "calling AE title %q is not a valid AE title", calling)
	}
	peer, err := p.Registry.Get(ctx, calling)
	if errors.Is(err, ErrUnknownPeer) {
		return deny(RejectCallingAE, "calling AE title %q is not a registered peer (remote %s)", calling, r.Remote)
	}
	if err != nil {
		return Decision{RejectReason: RejectNoReason, Transient: true, Reason: fmt.Sprintf("peer registry unavailable, refusing %q: %v", calling, err)}
	}
	remote := r.Remote.Unmap().WithZone("")
	if !remote.IsValid() {
		return deny(RejectCallingAE, "peer %q: remote address unknown", calling)
	}
	if !peer.HasHost(remote) {
		return deny(RejectCallingAE, "peer %q connected from %s, which is not among its registered hosts", calling, remote)
	}
	transport := "plain TCP"
	if r.TLS {
		transport = "TLS"
		if r.CertAE == "" {
			return deny(RejectCallingAE, "peer %q from %s: no client certificate bound to an AE title", calling, remote)
		}
		if certAE := trimAE(r.CertAE); certAE != calling {
			return deny(RejectCallingAE, "peer %q from %s presented the certificate of %q", calling, remote, certAE)
		}
		if r.CertSerial != "" && peer.IsRevoked(r.CertSerial) {
			d := deny(RejectCallingAE, "peer %q from %s presented certificate serial %s, which was revoked", calling, remote, r.CertSerial)
			d.RevokedCert = true
			return d
		}
		if peer.CertSerial == "" {
			return deny(RejectCallingAE, "peer %q from %s has no current certificate (awaiting enrolment or revoked)", calling, remote)
		}
		if normalizeSerial(peer.CertSerial) != normalizeSerial(r.CertSerial) {
			return deny(RejectCallingAE, "peer %q from %s presented certificate serial %q, not its current one %s", calling, remote, r.CertSerial, peer.CertSerial)
		}
	} else if !peer.Plaintext {
		return deny(RejectCallingAE, "peer %q from %s used the plain listener but may only use TLS", calling, remote)
	}
	return Decision{Allowed: true, Peer: peer, Reason: fmt.Sprintf("peer %q from %s over %s", calling, remote, transport)}
}

// trimAE drops the spaces DICOM pads AE titles with.
func trimAE(s string) string { return strings.Trim(s, " ") }

// SameSerial reports whether two certificate serials (hexadecimal; case,
// colons and leading zeros do not matter) are the same and not empty.
func SameSerial(a, b string) bool {
	return a != "" && b != "" && normalizeSerial(a) == normalizeSerial(b)
}

func normalizeSerial(s string) string {
	s = strings.ToLower(strings.ReplaceAll(s, ":", ""))
	if t := strings.TrimLeft(s, "0"); t != "" {
		return t
	}
	return "0"
}
