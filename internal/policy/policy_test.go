package policy

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseRights(t *testing.T) {
	tests := []struct {
		in   string
		want []Right
		ok   bool
	}{
		{"echo,store,find", []Right{RightEcho, RightStore, RightFind}, true},
		{"move, GET ,echo", []Right{RightEcho, RightGet, RightMove}, true},
		{"store,store", []Right{RightStore}, true},
		{"echo,store,find,get,move", AllRights, true},
		{"", []Right{}, true},
		{"  ", []Right{}, true},
		{"echo,,store", nil, false},
		{"echo,delete", nil, false},
		{"all", nil, false},
	}
	for _, tt := range tests {
		got, err := ParseRights(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ParseRights(%q) error = %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if tt.ok && !slices.Equal(got, tt.want) && !(len(got) == 0 && len(tt.want) == 0) {
			t.Errorf("ParseRights(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
	if got := FormatRights([]Right{RightEcho, RightMove}); got != "echo,move" {
		t.Errorf("FormatRights = %q", got)
	}
}

func TestParseHost(t *testing.T) {
	tests := []struct {
		in, want string // want "" = error
	}{
		{"192.168.1.5", "192.168.1.5/32"},
		{" 192.168.1.5 ", "192.168.1.5/32"},
		{"10.0.0.0/24", "10.0.0.0/24"},
		{"10.0.0.7/24", "10.0.0.0/24"},
		{"::1", "::1/128"},
		{"fd00::/64", "fd00::/64"},
		{"::ffff:192.168.1.5", "192.168.1.5/32"},
		{"::ffff:10.0.0.0/120", "10.0.0.0/24"},
		{"0.0.0.0/0", "0.0.0.0/0"},
		{"::/0", "::/0"},
		{"fe80::1%eth0", ""},
		{"pacs.example.org", ""},
		{"10.0.0.0/33", ""},
		{"", ""},
		{"10.0.0", ""},
	}
	for _, tt := range tests {
		got, err := ParseHost(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("ParseHost(%q) = %v, want error", tt.in, got)
			}
			continue
		}
		if err != nil || got.String() != tt.want {
			t.Errorf("ParseHost(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
		}
	}
	if got := FormatHost(netip.MustParsePrefix("192.168.1.5/32")); got != "192.168.1.5" {
		t.Errorf("FormatHost = %q", got)
	}
	if got := FormatHost(netip.MustParsePrefix("10.0.0.0/8")); got != "10.0.0.0/8" {
		t.Errorf("FormatHost = %q", got)
	}
}

func mustHosts(t *testing.T, hs ...string) []netip.Prefix {
	t.Helper()
	var out []netip.Prefix
	for _, h := range hs {
		p, err := ParseHost(h)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func TestPeerCanHasHostMoveAddr(t *testing.T) {
	p := &Peer{AETitle: "CT1", Hosts: mustHosts(t, "10.0.0.0/24", "192.168.1.5"), Port: 11112, Rights: []Right{RightEcho, RightStore}}
	if !p.Can(RightStore) || p.Can(RightMove) {
		t.Error("Can is wrong")
	}
	var nilPeer *Peer
	if nilPeer.Can(RightEcho) || nilPeer.HasHost(netip.MustParseAddr("10.0.0.1")) {
		t.Error("a nil peer can do something")
	}
	if !p.HasHost(netip.MustParseAddr("::ffff:10.0.0.9")) || p.HasHost(netip.MustParseAddr("10.0.1.1")) || p.HasHost(netip.Addr{}) {
		t.Error("HasHost is wrong")
	}
	ap, ok := p.MoveAddr()
	if !ok || ap.String() != "192.168.1.5:11112" {
		t.Errorf("MoveAddr = %v, %v", ap, ok)
	}
	p.Port = 0
	if _, ok := p.MoveAddr(); ok {
		t.Error("MoveAddr with port 0")
	}
	p.Port = 104
	p.Hosts = mustHosts(t, "10.0.0.0/24")
	if _, ok := p.MoveAddr(); ok {
		t.Error("MoveAddr with only a range")
	}
}

func TestPeerValidate(t *testing.T) {
	good := Peer{AETitle: "CT1", Hosts: mustHosts(t, "10.0.0.1"), Rights: []Right{RightEcho}, CertSerial: "0A:1b"}
	tests := []struct {
		name   string
		modify func(p *Peer)
		want   string
	}{
		{"good", func(p *Peer) {}, ""},
		{"empty AE", func(p *Peer) { p.AETitle = "" }, "AE title"},
		{"long AE", func(p *Peer) { p.AETitle = strings.Repeat("A", 17) }, "16"},
		{"backslash AE", func(p *Peer) { p.AETitle = `A\B` }, "backslash"},
		{"no hosts", func(p *Peer) { p.Hosts = nil }, "no hosts"},
		{"invalid host", func(p *Peer) { p.Hosts = []netip.Prefix{{}} }, "invalid host"},
		{"port", func(p *Peer) { p.Port = 70000 }, "port"},
		{"right", func(p *Peer) { p.Rights = []Right{"delete"} }, "not a right"},
		{"serial", func(p *Peer) { p.CertSerial = "xyz" }, "hexadecimal"},
	}
	for _, tt := range tests {
		p := good
		tt.modify(&p)
		err := p.Validate()
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: Validate() = %v, want %q", tt.name, err, tt.want)
		}
	}
}

// brokenRegistry fails every call, as a registry whose file is unreadable.
type brokenRegistry struct{}

func (brokenRegistry) List(context.Context) ([]Peer, error) { return nil, errors.New("disk on fire") }
func (brokenRegistry) Get(context.Context, string) (*Peer, error) {
	return nil, errors.New("disk on fire")
}
func (brokenRegistry) Put(context.Context, Peer) error      { return errors.New("disk on fire") }
func (brokenRegistry) Remove(context.Context, string) error { return errors.New("disk on fire") }

func TestAssociate(t *testing.T) {
	ctx := context.Background()
	reg, err := OpenFileRegistry(filepath.Join(t.TempDir(), PeersFileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []Peer{
		{AETitle: "CT1", Hosts: mustHosts(t, "10.0.0.0/24", "fd00::/64"), Rights: []Right{RightStore}, CertSerial: "0C"},
		{AETitle: "OLDUS", Hosts: mustHosts(t, "192.168.1.5"), Rights: []Right{RightStore}, Plaintext: true, CertSerial: "0C"},
		{AETitle: "ANY", Hosts: mustHosts(t, "0.0.0.0/0", "::/0"), Rights: []Right{RightEcho}, CertSerial: "0C"},
		{AETitle: "LINK", Hosts: mustHosts(t, "fe80::/10"), Rights: []Right{RightEcho}, CertSerial: "0C"},
		{AETitle: "SERIAL", Hosts: mustHosts(t, "10.0.0.0/8"), CertSerial: "01:AB:cd", RevokedSerials: []string{"0B", "0c"}},
		{AETitle: "PENDING", Hosts: mustHosts(t, "10.0.0.0/8")},
		{AETitle: "MY CT", Hosts: mustHosts(t, "10.0.0.0/8"), CertSerial: "0C"},
	} {
		if err := reg.Put(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	pol := &Policy{Registry: reg, AETitle: "DICOMSHIELD"}
	addr := netip.MustParseAddr
	tls := func(calling, certAE string, remote netip.Addr) Request {
		return Request{CallingAE: calling, CalledAE: "DICOMSHIELD", Remote: remote, TLS: true, CertAE: certAE, CertSerial: "0C"}
	}
	tests := []struct {
		name   string
		pol    *Policy
		req    Request
		allow  bool
		code   byte
		reason string // substring of Reason
	}{
		{"tls allowed", pol, tls("CT1", "CT1", addr("10.0.0.7")), true, 0, "over TLS"},
		{"padded AE titles", pol, Request{CallingAE: "CT1             ", CalledAE: "DICOMSHIELD     ", Remote: addr("10.0.0.7"), TLS: true, CertAE: "CT1", CertSerial: "000c"}, true, 0, ""},
		{"AE with inner space", pol, tls("MY CT", "MY CT", addr("10.1.2.3")), true, 0, ""},
		{"called AE wrong", pol, Request{CallingAE: "CT1", CalledAE: "OTHERPACS", Remote: addr("10.0.0.7"), TLS: true, CertAE: "CT1"}, false, RejectCalledAE, "not ours"},
		{"called AE empty", pol, Request{CallingAE: "CT1", Remote: addr("10.0.0.7"), TLS: true, CertAE: "CT1"}, false, RejectCalledAE, "not ours"},
		{"called AE wrong case", pol, Request{CallingAE: "CT1", CalledAE: "dicomshield", Remote: addr("10.0.0.7"), TLS: true, CertAE: "CT1"}, false, RejectCalledAE, "not ours"},
		{"calling unknown", pol, tls("MR9", "MR9", addr("10.0.0.7")), false, RejectCallingAE, "not a registered peer"},
		{"calling invalid", pol, tls("A\\B\n", "A\\B", addr("10.0.0.7")), false, RejectCallingAE, "not a valid AE title"},
		{"calling empty", pol, tls("", "", addr("10.0.0.7")), false, RejectCallingAE, "not a valid AE title"},
		{"remote outside hosts", pol, tls("CT1", "CT1", addr("10.0.1.7")), false, RejectCallingAE, "not among its registered hosts"},
		{"remote ipv4-mapped inside", pol, tls("CT1", "CT1", addr("::ffff:10.0.0.7")), true, 0, "10.0.0.7"},
		{"remote ipv4-mapped outside", pol, tls("CT1", "CT1", addr("::ffff:10.9.0.7")), false, RejectCallingAE, "not among"},
		{"remote ipv6 inside", pol, tls("CT1", "CT1", addr("fd00::42")), true, 0, ""},
		{"remote ipv6 outside", pol, tls("CT1", "CT1", addr("fd01::42")), false, RejectCallingAE, "not among"},
		{"remote link-local with zone", pol, tls("LINK", "LINK", addr("fe80::1%eth0")), true, 0, ""},
		{"remote missing", pol, tls("CT1", "CT1", netip.Addr{}), false, RejectCallingAE, "remote address unknown"},
		{"slash zero v4", pol, tls("ANY", "ANY", addr("203.0.113.9")), true, 0, ""},
		{"slash zero v6", pol, tls("ANY", "ANY", addr("2001:db8::1")), true, 0, ""},
		{"slash zero mapped", pol, tls("ANY", "ANY", addr("::ffff:203.0.113.9")), true, 0, ""},
		{"tls without cert AE", pol, tls("CT1", "", addr("10.0.0.7")), false, RejectCallingAE, "no client certificate"},
		{"tls cert of another peer", pol, tls("CT1", "OLDUS", addr("10.0.0.7")), false, RejectCallingAE, `certificate of "OLDUS"`},
		{"tls serial matches", pol, Request{CallingAE: "SERIAL", CalledAE: "DICOMSHIELD", Remote: addr("10.2.3.4"), TLS: true, CertAE: "SERIAL", CertSerial: "1abCD"}, true, 0, ""},
		{"tls serial differs", pol, Request{CallingAE: "SERIAL", CalledAE: "DICOMSHIELD", Remote: addr("10.2.3.4"), TLS: true, CertAE: "SERIAL", CertSerial: "02abcd"}, false, RejectCallingAE, "serial"},
		{"tls serial not given", pol, Request{CallingAE: "SERIAL", CalledAE: "DICOMSHIELD", Remote: addr("10.2.3.4"), TLS: true, CertAE: "SERIAL"}, false, RejectCallingAE, "serial"},
		{"tls serial revoked", pol, tls("SERIAL", "SERIAL", addr("10.2.3.4")), false, RejectCallingAE, "revoked"},
		{"tls awaiting enrolment", pol, tls("PENDING", "PENDING", addr("10.2.3.4")), false, RejectCallingAE, "no current certificate"},
		{"plain not allowed", pol, Request{CallingAE: "CT1", CalledAE: "DICOMSHIELD", Remote: addr("10.0.0.7")}, false, RejectCallingAE, "may only use TLS"},
		{"plain allowed", pol, Request{CallingAE: "OLDUS", CalledAE: "DICOMSHIELD", Remote: addr("192.168.1.5")}, true, 0, "over plain TCP"},
		{"plain allowed wrong host", pol, Request{CallingAE: "OLDUS", CalledAE: "DICOMSHIELD", Remote: addr("192.168.1.6")}, false, RejectCallingAE, "not among"},
		{"plain-capable peer over tls", pol, tls("OLDUS", "OLDUS", addr("192.168.1.5")), true, 0, ""},
		{"registry broken", &Policy{Registry: brokenRegistry{}, AETitle: "DICOMSHIELD"}, tls("CT1", "CT1", addr("10.0.0.7")), false, RejectNoReason, "registry unavailable"},
		{"no registry", &Policy{AETitle: "DICOMSHIELD"}, tls("CT1", "CT1", addr("10.0.0.7")), false, RejectNoReason, "no peer registry"},
		{"nil policy", nil, tls("CT1", "CT1", addr("10.0.0.7")), false, RejectNoReason, "no peer registry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tt.pol.Associate(ctx, tt.req)
			if d.Allowed != tt.allow {
				t.Fatalf("Allowed = %v, want %v (reason %q)", d.Allowed, tt.allow, d.Reason)
			}
			if d.Reason == "" || !strings.Contains(d.Reason, tt.reason) {
				t.Errorf("Reason %q does not mention %q", d.Reason, tt.reason)
			}
			if strings.ContainsAny(d.Reason, "\n\r") {
				t.Errorf("Reason has a line break: %q", d.Reason)
			}
			if tt.allow {
				if d.Peer == nil || d.Peer.AETitle != strings.TrimSpace(tt.req.CallingAE) || d.RejectReason != 0 {
					t.Errorf("allowed decision %+v", d)
				}
				return
			}
			if d.Peer != nil {
				t.Errorf("denied decision carries peer %+v", d.Peer)
			}
			if d.RejectReason != tt.code {
				t.Errorf("RejectReason = %d, want %d", d.RejectReason, tt.code)
			}
			if d.RevokedCert != strings.Contains(tt.reason, "revoked") {
				t.Errorf("RevokedCert = %v", d.RevokedCert)
			}
			if d.Transient != (tt.code == RejectNoReason) {
				t.Errorf("Transient = %v", d.Transient)
			}
		})
	}
}
