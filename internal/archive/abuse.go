package archive

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/dicomshield/dicomshield/internal/abuse"
	"github.com/dicomshield/dicomshield/internal/audit"
	"github.com/dicomshield/dicomshield/internal/ul"
)

// The archive's abuse resistance: one abuse.Guard per Serve, shared by the
// TLS and plain listeners, decides on each connection from its address
// before any TLS handshake or PDU is read. Associations the policy
// rejects and TLS handshakes that fail count against the address (the
// dimse server's NotEstablished hook); enough of them ban it, unless the
// address is in [abuse] never_ban.

// now is the archive's clock.
func (a *Archive) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// abuseLimits turns the [abuse] section of the configuration into Guard
// limits.
func (a *Archive) abuseLimits() abuse.Limits {
	c := a.Config.Abuse
	return abuse.Limits{
		AttemptsPerMinute:   c.AttemptsPerMinute,
		RejectionsBeforeBan: c.RejectionsBeforeBan,
		BanDuration:         c.BanDuration.Duration(),
		MaxOpenPerAddress:   c.MaxConnectionsPerAddress,
		NeverBan:            c.NeverBanPrefixes(),
	}
}

// guardListeners makes the Guard of this Serve and puts it in front of the
// listeners (either may be nil).
func (a *Archive) guardListeners(tlsL, plainL net.Listener) (net.Listener, net.Listener) {
	limits := a.abuseLimits()
	if len(limits.NeverBan) > 0 && limits.RejectionsBeforeBan > 0 {
		a.Logger.Info("rejections from these addresses are not counted and never ban them (abuse.never_ban)",
			"never_ban", strings.Join(a.Config.Abuse.NeverBan, ","))
	}
	g := abuse.New(limits, a.now)
	a.mu.Lock()
	a.guard = g
	a.mu.Unlock()
	wrap := func(l net.Listener) net.Listener {
		if l == nil {
			return nil
		}
		local := l.Addr().String()
		return &abuse.Listener{Listener: l, Guard: g, Refused: func(addr netip.Addr, v abuse.Verdict) {
			a.metrics.connRefused.Add(1)
			if v.Report {
				a.reportAbuse(addr, local, v)
			}
		}}
	}
	return wrap(tlsL), wrap(plainL)
}

// notEstablished counts a connection that ended without an association
// against its address. Transient rejections are not counted: they come
// from our own limits (too many associations for the peer) or a passing
// fault (the peer registry unreadable), not from what the peer sent.
func (a *Archive) notEstablished(remote net.Addr, err error) {
	// Accepted by accept, but the A-ASSOCIATE-AC never got through.
	a.slotNotEstablished(remote)
	var rj *ul.RejectedError
	if errors.As(err, &rj) && rj.RJ.Result == ul.RejectTransient {
		return
	}
	addr, ok := abuse.RemoteIP(remote)
	if !ok {
		return
	}
	a.mu.Lock()
	g := a.guard
	a.mu.Unlock()
	if g == nil {
		return
	}
	if v := g.Reject(addr); v.Reason == abuse.Banned && v.Report {
		a.reportAbuse(addr, "", v)
	}
}

// reportAbuse logs and audits a ban or a refusal the Guard decided to
// report (at most one per address a minute, and a bounded number in all,
// so that a flood cannot flood the log or the trail).
func (a *Archive) reportAbuse(addr netip.Addr, local string, v abuse.Verdict) {
	var desc string
	switch v.Reason {
	case abuse.Banned:
		desc = fmt.Sprintf("address refused until %s after %d rejected associations or failed TLS handshakes within %s",
			v.Until.UTC().Format(time.RFC3339), a.Config.Abuse.RejectionsBeforeBan, a.Config.Abuse.BanDuration)
	case abuse.RateLimited:
		desc = fmt.Sprintf("connection refused: more than %d connections a minute from this address", a.Config.Abuse.AttemptsPerMinute)
	case abuse.TooManyOpen:
		desc = fmt.Sprintf("connection refused: %d connections already open from this address", a.Config.Abuse.MaxConnectionsPerAddress)
	default:
		return
	}
	if v.Suppressed > 0 {
		desc += fmt.Sprintf(" (%d more refusals of this address since the last report)", v.Suppressed)
	}
	attrs := []any{"remote", addr.String(), "alert", v.Reason.String()}
	if v.Reason == abuse.Banned {
		attrs = append(attrs, "until", v.Until.UTC().Format(time.RFC3339))
	}
	if v.Suppressed > 0 {
		attrs = append(attrs, "unreported", v.Suppressed)
	}
	a.Logger.Warn(desc, attrs...)
	a.Audit.Record(audit.Event{Time: a.now(), Kind: audit.SecurityAlert, Outcome: audit.MinorFailure, Alert: v.Reason.String(),
		Description: desc, Remote: addr.String(), Local: local})
}
