package doctor

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dicomshield/dicomshield/internal/config"
	"github.com/dicomshield/dicomshield/internal/pki"
	"github.com/dicomshield/dicomshield/internal/policy"
)

// checks run in this order on what load read.
var checks = []func(*state) []Finding{
	checkConfig,
	checkPlaintextListener,
	checkAcceptedRisks,
	checkMetrics,
	checkAbuseLimits,
	checkNeverBan,
	checkTamper,
	checkAuditForwarding,
	checkPeers,
	checkUserIdentity,
	checkCertificates,
	checkPermissions,
}

func checkConfig(st *state) []Finding {
	if st.cfgErr == nil {
		return nil
	}
	return []Finding{{Check: "config-unusable", Severity: High,
		Problem: fmt.Sprintf("The configuration cannot be used, so the server will not start: %v", st.cfgErr),
		Fix:     fmt.Sprintf("Correct %s (\"dicomshield validate --data %s\" lists every problem).", config.Path(st.dir), st.dir)}}
}

func checkPlaintextListener(st *state) []Finding {
	c := st.cfg
	if c == nil || c.Listen == "" {
		return nil
	}
	if isLoopbackAddr(c.Listen) {
		return []Finding{{Check: "plaintext-listener", Severity: Low,
			Problem: fmt.Sprintf("The unencrypted DICOM listener is on (listen = %q), though only programs on this machine can reach it.", c.Listen),
			Fix:     "If no program on this machine needs it, set listen = \"\" in the configuration."}}
	}
	return []Finding{{Check: "plaintext-listener", Severity: High,
		Problem: fmt.Sprintf("The unencrypted DICOM listener is on (listen = %q): patient data sent to it crosses the network readable by anyone on the way.", c.Listen),
		Fix:     "Move the devices that use it to DICOM over TLS (dicomshield peer add gives them a certificate), then set listen = \"\" and remove \"plaintext\" from accept_risk."}}
}

func checkAcceptedRisks(st *state) []Finding {
	if st.cfg == nil {
		return nil
	}
	var out []Finding
	for _, r := range st.cfg.AcceptRisk {
		out = append(out, Finding{Check: "accepted-risk", Severity: Low,
			Problem: fmt.Sprintf("The risk %q is accepted in the configuration (accept_risk).", r),
			Fix:     fmt.Sprintf("Check that the reason for accepting %q still holds; remove it from accept_risk when it does not.", r)})
	}
	return out
}

func checkMetrics(st *state) []Finding {
	c := st.cfg
	if c == nil || c.Metrics == "" || isLoopbackAddr(c.Metrics) {
		return nil
	}
	return []Finding{{Check: "metrics-public", Severity: Medium,
		Problem: fmt.Sprintf("The metrics page (metrics = %q) can be reached from other machines; it shows traffic volumes and the software version.", c.Metrics),
		Fix:     fmt.Sprintf("Set metrics = %q and let the monitoring system reach it through this machine.", config.DefaultMetrics)}}
}

func checkAbuseLimits(st *state) []Finding {
	if st.cfg == nil {
		return nil
	}
	var out []Finding
	for _, off := range st.cfg.AbuseLimitsOff() {
		out = append(out, Finding{Check: "abuse-limit-off", Severity: Medium,
			Problem: fmt.Sprintf("Protection against misbehaving addresses is partly off: %s. A stranger can then flood the server or guess AE titles without being stopped.", off),
			Fix:     "Remove that line from the [abuse] section so the default applies."})
	}
	return out
}

// localRanges are the ranges never_ban may name without a warning: loopback
// and the private ranges (RFC 1918, IPv6 unique local), which only the
// clinic's own networks use.
var localRanges = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("fc00::/7"),
}

// isLocalRange reports whether all of p lies in loopback or a private
// range.
func isLocalRange(p netip.Prefix) bool {
	for _, r := range localRanges {
		if r.Bits() <= p.Bits() && r.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

// checkNeverBan lists the addresses exempt from banning: each is a
// deliberate weakening, worse when anyone outside the clinic may hold it.
func checkNeverBan(st *state) []Finding {
	if st.cfg == nil || len(st.cfg.Abuse.NeverBan) == 0 {
		return nil
	}
	var outside []string
	for _, e := range st.cfg.Abuse.NeverBan {
		if p, err := config.ParseNeverBan(e); err != nil || !isLocalRange(p) {
			outside = append(outside, e)
		}
	}
	list := strings.Join(st.cfg.Abuse.NeverBan, ", ")
	f := Finding{Check: "abuse-never-ban", Severity: Low,
		Problem: fmt.Sprintf("These addresses are never banned (abuse.never_ban): %s. Their rejected attempts are not counted, so from there AE titles can be guessed and certificates tried without end.", list),
		Fix:     "Keep only the machines you control in never_ban (this one's loopback address for doctor and local tools), and remove an entry when its reason is gone."}
	if len(outside) > 0 {
		f.Severity = Medium
		f.Problem += fmt.Sprintf(" %s %s neither loopback nor a private range: machines outside the clinic's own networks may send from there.", strings.Join(outside, ", "), pluralWord(len(outside), "is", "are"))
		f.Fix = fmt.Sprintf("Remove %s from never_ban: exempt only machines you control, on this machine or the clinic's own networks.", strings.Join(outside, ", "))
	}
	return []Finding{f}
}

func checkTamper(st *state) []Finding {
	c := st.cfg
	if c == nil {
		return nil
	}
	var out []Finding
	if c.Tamper.SealAfter == 0 {
		out = append(out, Finding{Check: "series-sealing-off", Severity: Medium,
			Problem: "Series are never sealed (tamper.seal_after = \"0\"): any device allowed to store can slip a forged image into a finished series, however old, and viewers show it among the real ones.",
			Fix:     fmt.Sprintf("Remove seal_after from the [tamper] section (the default seals a series %s after its last image) and \"unsealed-series\" from accept_risk.", config.Duration(config.DefaultSealAfter))})
	}
	if c.Tamper.ForeignStudy == config.ForeignStudyAllow {
		out = append(out, Finding{Check: "foreign-study-allowed", Severity: Medium,
			Problem: "Any device allowed to store may add images to studies another device created (tamper.foreign_study = \"allow\").",
			Fix:     "Set foreign_study = \"refuse\" in the [tamper] section and remove \"foreign-study\" from accept_risk."})
	}
	for _, p := range st.peers {
		if p.MayReopen {
			out = append(out, Finding{Check: "peer-may-reopen", Severity: Low,
				Problem: fmt.Sprintf("Device %s may add images to its own sealed series (--may-reopen).", p.AETitle),
				Fix:     fmt.Sprintf("Keep this only if %s really sends late images; otherwise register it again without --may-reopen.", p.AETitle)})
		}
	}
	return out
}

func checkAuditForwarding(st *state) []Finding {
	if st.cfg == nil || st.cfg.Audit.Syslog != "" {
		return nil
	}
	return []Finding{{Check: "audit-not-forwarded", Severity: Medium,
		Problem: "The audit trail (who looked at and sent which records) is kept on this machine only: someone who takes it over can erase the trail.",
		Fix:     "Forward it to the hospital's audit record repository or SIEM: set audit.syslog (host:6514) and audit.syslog_ca in the configuration."}}
}

func checkPeers(st *state) []Finding {
	if st.peersErr != nil {
		return []Finding{{Check: "peers-unreadable", Severity: High,
			Problem: fmt.Sprintf("The list of registered devices cannot be read, so every device is refused: %v", st.peersErr),
			Fix:     fmt.Sprintf("Make %s readable and writable by the server's user only (chmod 600) and check it was not damaged.", filepath.Join(st.dir, policy.PeersFileName))}}
	}
	if len(st.peers) == 0 {
		return []Finding{{Check: "no-peers", Severity: Info,
			Problem: "No device is registered, so nobody can connect.",
			Fix:     "Register each device with dicomshield peer add."}}
	}
	plainOn := st.cfg != nil && st.cfg.Listen != ""
	var out []Finding
	for _, p := range st.peers {
		for _, h := range p.Hosts {
			if sev, what := hostWidth(h); sev > Info {
				out = append(out, Finding{Check: "peer-wide-range", Severity: sev,
					Problem: fmt.Sprintf("Device %s may connect from %s, %s: anyone there who copies its certificate or AE title is taken for it.", p.AETitle, policy.FormatHost(h), what),
					Fix:     fmt.Sprintf("Register %s with its own address only (dicomshield peer add %s --host ADDRESS ...).", p.AETitle, p.AETitle)})
			}
		}
		if len(p.Rights) == len(policy.AllRights) {
			out = append(out, Finding{Check: "peer-all-rights", Severity: Medium,
				Problem: fmt.Sprintf("Device %s has every right (%s): it can read, copy and send away every study, and add images.", p.AETitle, policy.FormatRights(p.Rights)),
				Fix:     fmt.Sprintf("Give %s only what it needs: a modality needs echo,store; a viewer echo,find,get.", p.AETitle)})
		}
		if p.Plaintext {
			sev, where := Low, "but the unencrypted listener is off, so it cannot use it now"
			if plainOn {
				sev, where = High, "and the unencrypted listener is on"
			}
			out = append(out, Finding{Check: "peer-plaintext", Severity: sev,
				Problem: fmt.Sprintf("Device %s may send and receive without encryption, %s.", p.AETitle, where),
				Fix:     fmt.Sprintf("Install its certificate bundle on %s and register it again without --plaintext.", p.AETitle)})
		}
	}
	return out
}

// hostWidth grades a peer's address range.
func hostWidth(h netip.Prefix) (Severity, string) {
	bits, widest := h.Bits(), WidestIPv4Range
	if h.Addr().Is6() {
		widest = WidestIPv6Range
	}
	switch {
	case bits == 0:
		return High, "that is, from any address on the internet"
	case h.Addr().Is4() && bits < 16, h.Addr().Is6() && bits < 48:
		return High, fmt.Sprintf("a range of %s addresses", rangeSize(h))
	case bits < widest:
		return Medium, fmt.Sprintf("a range of %s addresses", rangeSize(h))
	}
	return Info, ""
}

func rangeSize(h netip.Prefix) string {
	free := h.Addr().BitLen() - h.Bits()
	if free >= 63 {
		return fmt.Sprintf("2^%d", free)
	}
	n := uint64(1) << free
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("about %d million", n/1_000_000)
	default:
		return fmt.Sprintf("%d", n)
	}
}

func checkUserIdentity(st *state) []Finding {
	if len(st.peers) == 0 || st.cfg == nil {
		return nil
	}
	for _, p := range st.peers {
		if p.RequireUser {
			return nil
		}
	}
	return []Finding{{Check: "user-identity-not-required", Severity: Medium,
		Problem: "No device has to name a user when it connects, so the audit trail shows which device read a record but not which person.",
		Fix:     "For viewers and workstations people use, add users (dicomshield user add) and require them (dicomshield peer set AE --require-user)."}}
}

func checkCertificates(st *state) []Finding {
	var out []Finding
	if st.caCert == nil {
		out = append(out, Finding{Check: "ca-missing", Severity: High,
			Problem: fmt.Sprintf("The certificate authority (%s) is missing or damaged: no device can be given or verify a certificate.", filepath.Join(st.dir, archivePKIDir, pki.CACertFile)),
			Fix:     "Restore the pki folder from the backup; a new CA means installing a new bundle on every device."})
	} else if f, ok := expiry("ca-expiry", "The certificate authority", st.caCert.NotAfter, st.warn, st, "Plan a new CA and re-issue every device's bundle before that date (dicomshield peer add for each)."); ok {
		out = append(out, f)
	}
	if st.serverCert != nil {
		// Server and peer certificates are short-lived and renewed at two
		// thirds of their life: one inside its last third was not renewed
		// when it should have been.
		if f, ok := expiry("server-cert-expiry", "The server's own certificate", st.serverCert.NotAfter, renewWindow(st.serverCert.NotBefore, st.serverCert.NotAfter), st,
			"Start dicomshield serve (it renews its certificate itself) and check the data directory is writable by it; then run doctor again."); ok {
			out = append(out, f)
		}
	}
	for _, p := range st.peers {
		if p.CertSerial == "" || p.AddedAt.IsZero() {
			continue
		}
		// The registry keeps the end of the current certificate (older
		// registries only when it was issued: then its end is that plus
		// the validity peer add gives).
		end, start := p.CertNotAfter, p.AddedAt
		if end.IsZero() {
			end = p.AddedAt.Add(pki.DefaultPeerValidity)
		} else {
			start = end.Add(-pki.DefaultPeerValidity)
		}
		if f, ok := expiry("peer-cert-expiry", fmt.Sprintf("The certificate of device %s", p.AETitle), end, renewWindow(start, end), st,
			fmt.Sprintf("Renew it on the device (dicomshield enroll --renew --server HOST:2763 --out DIR, daily from a timer), or issue a new bundle (dicomshield peer add %s --bundle DIR with its current --host and --allow) and install it.", p.AETitle)); ok {
			out = append(out, f)
		}
	}
	return out
}

// renewWindow is the last third of a certificate's life, from start to
// end: the part it should never reach, being renewed at two thirds.
func renewWindow(start, end time.Time) time.Duration {
	if life := end.Sub(start); life > 0 {
		return life / 3
	}
	return pki.DefaultRenewBefore
}

// expiry grades a certificate end date: High when past, Medium within
// warn of it.
func expiry(check, what string, end time.Time, warn time.Duration, st *state, fix string) (Finding, bool) {
	left := end.Sub(st.now)
	switch {
	case left <= 0:
		return Finding{Check: check, Severity: High,
			Problem: fmt.Sprintf("%s expired on %s: connections that rely on it fail.", what, end.UTC().Format(time.DateOnly)), Fix: fix}, true
	case left < warn:
		return Finding{Check: check, Severity: Medium,
			Problem: fmt.Sprintf("%s expires on %s, in %d days.", what, end.UTC().Format(time.DateOnly), int(left.Hours()/24)), Fix: fix}, true
	}
	return Finding{}, false
}

func checkPermissions(st *state) []Finding {
	var out []Finding
	if perm := st.dirInfo.Mode().Perm(); perm&0o077 != 0 {
		sev := Medium
		if perm&0o007 != 0 {
			sev = High
		}
		out = append(out, Finding{Check: "data-dir-permissions", Severity: sev,
			Problem: fmt.Sprintf("Other users of this machine can open the data directory %s (permissions %04o), which holds the images and the index of patients.", st.dir, perm),
			Fix:     fmt.Sprintf("Run: chmod 700 %s", st.dir)})
	}
	for _, name := range []string{pki.CAKeyFile, pki.ServerKeyFile} {
		p := filepath.Join(st.dir, archivePKIDir, name)
		fi, err := os.Stat(p)
		if err != nil {
			if name == pki.CAKeyFile && !os.IsNotExist(err) {
				out = append(out, Finding{Check: "key-permissions", Severity: Medium, Problem: fmt.Sprintf("%s cannot be checked: %v", p, err), Fix: "Check the pki folder's permissions."})
			}
			continue
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			what := "the certificate authority's private key: whoever reads it can make certificates every device and this server trust"
			if name == pki.ServerKeyFile {
				what = "the server's private key: whoever reads it can pose as this server"
			}
			out = append(out, Finding{Check: "key-permissions", Severity: High,
				Problem: fmt.Sprintf("Other users of this machine can read %s (permissions %04o), %s.", p, perm, what),
				Fix:     fmt.Sprintf("Run: chmod 600 %s", p)})
		}
	}
	for _, name := range []string{"index.db", policy.PeersFileName} {
		p := filepath.Join(st.dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o077 != 0 {
			out = append(out, Finding{Check: "file-permissions", Severity: Medium,
				Problem: fmt.Sprintf("Other users of this machine can open %s (permissions %04o).", p, fi.Mode().Perm()),
				Fix:     fmt.Sprintf("Run: chmod 600 %s", p)})
		}
	}
	return out
}

// isLoopbackAddr reports whether a listen address binds loopback only.
func isLoopbackAddr(addr string) bool {
	host := addr
	if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		host = addr[:i]
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}
