package doctor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/dicomshield/dicomshield/internal/abuse"
	"github.com/dicomshield/dicomshield/internal/dimse"
	"github.com/dicomshield/dicomshield/internal/ul"
)

// ProbeAETitle is the calling AE title of the plain listener probe: not a
// title anyone registers, so a healthy server rejects it.
const ProbeAETitle = "DOCTOR-PROBE"

// Probe is what one listener answered.
type Probe struct {
	Listener string `json:"listener"` // "tls" or "plain"
	Address  string `json:"address"`  // what was dialled
	// From is the address the probe came from, the one the server counts
	// its rejection against ("" if doctor could not tell).
	From string `json:"from,omitempty"`
	Up   bool   `json:"up"`
	// Rejected says the listener rejected the probe as it rejects a
	// stranger, which counts as one rejection against From (see [abuse]
	// in the configuration).
	Rejected bool `json:"rejected,omitempty"`
	// Result says in words what the listener did.
	Result string `json:"result"`
	// TLSVersion and Certificate describe a TLS listener.
	TLSVersion  string    `json:"tls_version,omitempty"`
	Certificate *CertInfo `json:"certificate,omitempty"`
}

// CertInfo describes the certificate a TLS listener presented.
type CertInfo struct {
	Subject   string    `json:"subject"`
	Names     []string  `json:"names"`
	NotAfter  time.Time `json:"not_after"`
	FromOurCA bool      `json:"from_our_ca"`
}

// dialTarget turns a listen address into one to dial on this machine:
// every interface becomes loopback.
func dialTarget(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}

// probeSource returns the address this machine sends from to reach addr,
// as its routing chooses it (a UDP socket is connected, which sends
// nothing), or the zero Addr if it cannot tell. The probes bind to it, so
// that what doctor reports is the address the server saw.
func probeSource(addr string) netip.Addr {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return netip.Addr{}
	}
	defer c.Close()
	if ua, ok := c.LocalAddr().(*net.UDPAddr); ok {
		if a, ok := netip.AddrFromSlice(ua.IP); ok {
			return a.Unmap()
		}
	}
	return netip.Addr{}
}

// localAddr is the address a probe binds to: src with any port, or nil
// to let the system choose.
func localAddr(src netip.Addr) net.Addr {
	if !src.IsValid() {
		return nil
	}
	return &net.TCPAddr{IP: src.AsSlice()}
}

func probe(ctx context.Context, st *state, timeout time.Duration) ([]Probe, []Finding) {
	var probes []Probe
	var out []Finding
	if st.cfg.ListenTLS != "" {
		p, f := probeTLS(ctx, st, dialTarget(st.cfg.ListenTLS), timeout)
		probes, out = append(probes, p), append(out, f...)
	}
	if st.cfg.Listen != "" {
		p, f := probePlain(ctx, st, dialTarget(st.cfg.Listen), timeout)
		probes, out = append(probes, p), append(out, f...)
	}
	return probes, append(out, probesCounted(st, probes)...)
}

// probesCounted tells, for each address doctor's probes came from that
// never_ban does not exempt, how many rejections each run counts against
// it and how many runs ban it.
func probesCounted(st *state, probes []Probe) []Finding {
	a := st.cfg.Abuse
	if a.RejectionsBeforeBan <= 0 {
		return nil // banning is off (abuse-limit-off says so)
	}
	limits := abuse.Limits{NeverBan: a.NeverBanPrefixes()}
	var sources []string
	count := map[string]int{}
	for _, p := range probes {
		if !p.Rejected || p.From == "" {
			continue
		}
		if src, err := netip.ParseAddr(p.From); err != nil || limits.Exempt(src) {
			continue
		}
		if count[p.From] == 0 {
			sources = append(sources, p.From)
		}
		count[p.From]++
	}
	var out []Finding
	for _, src := range sources {
		n := count[src]
		runs := (a.RejectionsBeforeBan + n - 1) / n
		who := "address " + src
		if ip, _ := netip.ParseAddr(src); ip.IsLoopback() {
			who = "this machine's loopback address " + src
		}
		add := fmt.Sprintf("never_ban = [%q]", src)
		if len(a.NeverBan) > 0 {
			add = fmt.Sprintf("%q to never_ban", src)
		}
		out = append(out, Finding{Check: "probe-counts-rejections", Severity: Info,
			Problem: fmt.Sprintf("Each doctor run counts %d rejected %s against %s, which its probes come from: %d within %s ban it (abuse.rejections_before_ban, ban_duration), so %d %s of doctor within %s lock out this machine's tools, and any registered device at that address, for %s.",
				n, pluralWord(n, "attempt", "attempts"), who, a.RejectionsBeforeBan, a.BanDuration, runs, pluralWord(runs, "run", "runs"), a.BanDuration, a.BanDuration),
			Fix: fmt.Sprintf("If only programs you control send from %s, exempt it: add %s in the [abuse] section (its rejections are then not counted; the connection limits still apply). Otherwise run doctor less often, or with --no-probe.", src, add)})
	}
	return out
}

func pluralWord(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// notAnswering turns a failed dial into a probe result and finding.
func notAnswering(p Probe, err error, what string) (Probe, []Finding) {
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		p.Up = true
		p.Result = "closed the connection at once"
		return p, []Finding{{Check: "probe-refused", Severity: Low,
			Problem: fmt.Sprintf("The %s at %s closed doctor's connection at once: this machine's address is probably refused for a while after repeated rejected attempts (or too many connections).", what, p.Address),
			Fix:     "Wait for the ban to end (abuse.ban_duration) and run doctor again; if it keeps happening, look in the server log for which program on this machine is being refused."}}
	}
	p.Result = "no answer: " + err.Error()
	return p, []Finding{{Check: "listener-down", Severity: Medium,
		Problem: fmt.Sprintf("Nothing answers on the %s at %s: devices cannot reach the archive.", what, p.Address),
		Fix:     "Start dicomshield serve (or its service) with this data directory, and check its log for why it stopped."}}
}

func probeTLS(ctx context.Context, st *state, addr string, timeout time.Duration) (Probe, []Finding) {
	p := Probe{Listener: "tls", Address: addr}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	src := probeSource(addr)
	d := net.Dialer{LocalAddr: localAddr(src)}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil && src.IsValid() {
		// Bound to an address the system then would not use: let it
		// choose, and read what it chose.
		d.LocalAddr = nil
		nc, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return notAnswering(p, err, "TLS listener")
	}
	defer nc.Close()
	if ta, ok := nc.LocalAddr().(*net.TCPAddr); ok {
		if a, ok := netip.AddrFromSlice(ta.IP); ok {
			p.From = a.Unmap().String()
		}
	}
	nc.SetDeadline(time.Now().Add(timeout))
	var presented []*x509.Certificate
	tc := tls.Client(nc, &tls.Config{
		// Verified below against the archive's CA, so that a wrong
		// certificate is reported rather than only refused.
		InsecureSkipVerify: true,
		ServerName:         "localhost",
		MinVersion:         tls.VersionTLS12,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			for _, r := range raw {
				if c, err := x509.ParseCertificate(r); err == nil {
					presented = append(presented, c)
				}
			}
			return nil
		},
	})
	herr := tc.HandshakeContext(ctx)
	var out []Finding
	if len(presented) == 0 {
		if herr == nil {
			herr = errors.New("no certificate presented")
		}
		if errors.Is(herr, syscall.ECONNRESET) || errors.Is(herr, syscall.EPIPE) {
			return notAnswering(p, herr, "TLS listener")
		}
		p.Up = true
		p.Result = "does not speak TLS: " + herr.Error()
		return p, []Finding{{Check: "tls-listener-not-tls", Severity: High,
			Problem: fmt.Sprintf("Something answers at %s (listen_tls) but does not complete a TLS handshake: another program may hold the port, or it is not DICOM over TLS.", addr),
			Fix:     "Find the program listening on that port (ss -ltnp) and stop it, or give listen_tls another port."}}
	}
	p.Up = true
	leaf := presented[0]
	info := &CertInfo{Subject: leaf.Subject.String(), NotAfter: leaf.NotAfter, Names: leaf.DNSNames}
	for _, ip := range leaf.IPAddresses {
		info.Names = append(info.Names, ip.String())
	}
	if st.caCert != nil {
		pool := x509.NewCertPool()
		pool.AddCert(st.caCert)
		inter := x509.NewCertPool()
		for _, c := range presented[1:] {
			inter.AddCert(c)
		}
		_, verr := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: st.now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		info.FromOurCA = verr == nil
	}
	p.Certificate = info
	if herr == nil {
		p.TLSVersion = tls.VersionName(tc.ConnectionState().Version)
	}
	if !info.FromOurCA {
		out = append(out, Finding{Check: "tls-wrong-certificate", Severity: High,
			Problem: fmt.Sprintf("The TLS listener at %s presents a certificate (%s) that this archive's certificate authority did not issue or that is no longer valid: devices will refuse it, or another program holds the port.", addr, info.Subject),
			Fix:     fmt.Sprintf("Check that dicomshield serve with the data directory %s is what listens there, and restart it so it renews its certificate.", st.dir)})
	} else if st.serverCert == nil || !leaf.Equal(st.serverCert) {
		if f, ok := expiry("server-cert-expiry", "The certificate the server presents", leaf.NotAfter, renewWindow(leaf.NotBefore, leaf.NotAfter), st,
			"Restart dicomshield serve so it renews its certificate, and check the data directory is writable by it."); ok {
			out = append(out, f)
		}
	}
	// A healthy listener refuses a client without a certificate: in TLS
	// 1.2 during the handshake, in TLS 1.3 with an alert right after it.
	if herr == nil {
		tc.SetReadDeadline(time.Now().Add(timeout))
		_, rerr := tc.Read(make([]byte, 1))
		var ne net.Error
		if errors.As(rerr, &ne) && ne.Timeout() {
			p.Result = "accepted a connection without a client certificate"
			out = append(out, Finding{Check: "tls-no-client-certificate", Severity: High,
				Problem: fmt.Sprintf("The TLS listener at %s accepts connections without a client certificate, so any device may try to associate.", addr),
				Fix:     "Check that dicomshield serve is what listens there; it always requires the certificates it issued."})
			return p, out
		}
	}
	p.Result = "presents its certificate and refuses clients without one"
	p.Rejected = true
	return p, out
}

func probePlain(ctx context.Context, st *state, addr string, timeout time.Duration) (Probe, []Finding) {
	p := Probe{Listener: "plain", Address: addr}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	dial := func(local net.Addr) (*dimse.Client, error) {
		return dimse.Dial(ctx, addr, &dimse.DialOptions{CallingAE: ProbeAETitle, CalledAE: st.cfg.AETitle, ConnectTimeout: timeout, LocalAddr: local,
			UL:       ul.Config{AssociateTimeout: timeout},
			Contexts: []dimse.Proposal{{AbstractSyntax: dimse.VerificationSOPClass, TransferSyntaxes: []string{"1.2.840.10008.1.2.1", "1.2.840.10008.1.2"}}}})
	}
	src := probeSource(addr)
	if src.IsValid() {
		p.From = src.String()
	}
	cl, err := dial(localAddr(src))
	if op := (*net.OpError)(nil); err != nil && src.IsValid() && errors.As(err, &op) && op.Op == "dial" {
		// As in probeTLS: let the system choose; the address is then
		// unknown.
		p.From = ""
		cl, err = dial(nil)
	}
	var rj *ul.RejectedError
	switch {
	case err == nil:
		cl.Abort()
		p.Up = true
		p.Result = "accepted an association from an unregistered AE title"
		return p, []Finding{{Check: "plain-accepts-strangers", Severity: High,
			Problem: fmt.Sprintf("The unencrypted listener at %s accepted an association from the unregistered AE title %s: any device on the network may talk to it.", addr, ProbeAETitle),
			Fix:     "Check that dicomshield serve is what listens there, and set listen = \"\" unless an old device truly needs it."}}
	case errors.As(err, &rj):
		p.Up = true
		p.Result = "answers plain DICOM and rejects unregistered AE titles (" + rj.Error() + ")"
		// A transient rejection (the server busy) is not counted.
		p.Rejected = rj.RJ.Result != ul.RejectTransient
		return p, nil
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return notAnswering(p, err, "unencrypted listener")
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || strings.Contains(err.Error(), "EOF") {
		return notAnswering(p, syscall.ECONNRESET, "unencrypted listener")
	}
	p.Up = true
	p.Result = "answered, but not as DICOM: " + err.Error()
	return p, []Finding{{Check: "plain-not-dicom", Severity: Medium,
		Problem: fmt.Sprintf("Something answers at %s (listen) but not as a DICOM server would.", addr),
		Fix:     "Find the program listening on that port (ss -ltnp) and stop it, or give listen another port."}}
}
