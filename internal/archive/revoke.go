package archive

import (
	"context"
	"net/netip"
	"strings"
	"time"

	"github.com/dicomshield/dicomshield/internal/audit"
	"github.com/dicomshield/dicomshield/internal/dimse"
	"github.com/dicomshield/dicomshield/internal/pki"
	"github.com/dicomshield/dicomshield/internal/policy"
)

// peerCheckInterval is how often serve looks at the peer registry for
// changes made by `peer revoke`, `peer remove`, `peer set` or `peer add`
// (a stat of peers.json when nothing changed): a revoked certificate's
// open associations end within about this long. Half a second costs
// nothing and is well inside what an administrator revoking a stolen
// certificate waits for.
const peerCheckInterval = 500 * time.Millisecond

// AlertAbortedRevoked names the security alert recorded when an open
// association is aborted because its peer was revoked, removed or lost a
// right the association can use.
const AlertAbortedRevoked = "association-aborted-revoked"

// watchPeers re-decides the open associations whenever the peer registry
// changes, and each new association once after it is established (it may
// have been accepted against the registry as it was a moment before a
// change), until ctx ends. See recheck for what ends an association.
func (a *Archive) watchPeers(ctx context.Context) {
	t := time.NewTicker(peerCheckInterval)
	defer t.Stop()
	w := &peerWatch{checked: map[*dimse.Assoc]bool{}}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.checkPeers(ctx, w)
	}
}

// peerWatch is what watchPeers remembers between looks.
type peerWatch struct {
	started bool
	gen     uint64
	warned  bool                  // the registry is unusable and that was logged
	checked map[*dimse.Assoc]bool // associations decided against gen
}

// checkPeers is one look: every open association if the registry
// changed since the last, otherwise those not checked yet.
func (a *Archive) checkPeers(ctx context.Context, w *peerWatch) {
	gen, err := a.Registry.Generation()
	if err != nil {
		// Fail closed for new associations (the policy refuses them), but
		// an unreadable file is an administrator's slip, not a
		// revocation: open associations are kept.
		if !w.warned {
			a.Logger.Error("peer registry unusable: new associations are refused, open ones kept until it is fixed", "err", err)
			w.warned = true
		}
		w.gen = gen
		return
	}
	w.warned = false
	all := !w.started || gen != w.gen
	w.started, w.gen = true, gen
	a.mu.Lock()
	servers := append([]*dimse.Server(nil), a.servers...)
	a.mu.Unlock()
	open := map[*dimse.Assoc]bool{}
	for _, s := range servers {
		for _, as := range s.Associations() {
			open[as] = true
			if !all && w.checked[as] {
				continue
			}
			w.checked[as] = true
			why, revoked, keep := a.recheck(ctx, as)
			if keep {
				continue
			}
			a.abortRevoked(s, as, why, revoked)
		}
	}
	for as := range w.checked {
		if !open[as] {
			delete(w.checked, as)
		}
	}
}

// recheck decides an open association again, as the policy would decide
// it now: it is kept unless its peer is gone, its certificate is revoked
// or no longer the one the registry pins (re-issued, renewed), its address
// or transport is no longer allowed, the peer now requires a user the
// association did not authenticate, or the peer lost a right the
// association's accepted presentation contexts let it use. why says which,
// for the log and the trail; revoked is set when the certificate was
// revoked. A registry that cannot be read keeps the association.
func (a *Archive) recheck(ctx context.Context, as *dimse.Assoc) (why string, revoked, keep bool) {
	req := policy.Request{CallingAE: as.CallingAE, CalledAE: as.CalledAE, TLS: as.TLS != nil}
	if ap, err := netip.ParseAddrPort(as.RemoteAddr.String()); err == nil {
		req.Remote = ap.Addr()
	}
	if as.TLS != nil {
		req.CertAE, _ = pki.PeerAETitle(as.TLS)
		if len(as.TLS.PeerCertificates) > 0 {
			req.CertSerial = pki.Serial(as.TLS.PeerCertificates[0])
		}
	}
	d := a.Policy.Associate(ctx, req)
	if !d.Allowed {
		if d.Transient {
			return "", false, true
		}
		return d.Reason, d.RevokedCert, false
	}
	sess, _ := as.Values.(*session)
	if sess == nil || sess.peer == nil {
		return "", false, true
	}
	if d.Peer.RequireUser && !sess.verified {
		return "peer " + d.Peer.AETitle + " now requires a user and this association authenticated none", false, false
	}
	var lost []string
	for _, r := range rightsInUse(sess.peer, as.AbstractSyntaxes) {
		if !d.Peer.Can(r) {
			lost = append(lost, string(r))
		}
	}
	if len(lost) > 0 {
		return "peer " + d.Peer.AETitle + " may no longer " + strings.Join(lost, ", ") + ", which this association can use", false, false
	}
	return "", false, true
}

// rightsInUse returns the rights of peer (as the association was accepted)
// that the accepted abstract syntaxes let it use: a change that takes away
// a right the association never negotiated leaves it alone.
func rightsInUse(peer *policy.Peer, abstracts []string) []policy.Right {
	var out []policy.Right
	add := func(r policy.Right) {
		if peer.Can(r) && !containsRight(out, r) {
			out = append(out, r)
		}
	}
	for _, ab := range abstracts {
		switch {
		case ab == dimse.VerificationSOPClass:
			add(policy.RightEcho)
		case isStorageClass(ab):
			add(policy.RightStore)
		case ab == dimse.PatientRootFind || ab == dimse.StudyRootFind:
			add(policy.RightFind)
		case ab == dimse.PatientRootGet || ab == dimse.StudyRootGet:
			add(policy.RightGet)
		case ab == dimse.PatientRootMove || ab == dimse.StudyRootMove:
			add(policy.RightMove)
		}
	}
	return out
}

func containsRight(rs []policy.Right, r policy.Right) bool {
	for _, x := range rs {
		if x == r {
			return true
		}
	}
	return false
}

// abortRevoked aborts as on s and records why: in the log and as a
// security alert in the audit trail.
func (a *Archive) abortRevoked(s *dimse.Server, as *dimse.Assoc, why string, revoked bool) {
	if !s.Abort(as.ID, why) {
		return // ended on its own meanwhile
	}
	ev := assocEvent(as, audit.SecurityAlert)
	// A revoked certificate still in use is the stolen-certificate case;
	// a narrowed registration is an administrator's decision.
	ev.Outcome, ev.Alert = audit.MinorFailure, AlertAbortedRevoked
	if revoked {
		ev.Outcome = audit.SeriousFailure
	}
	ev.Description = "open association aborted: " + why
	a.Audit.Record(ev)
	a.Logger.Warn("open association aborted: its peer's registration changed", "assoc", as.ID,
		"calling_ae", strings.TrimSpace(as.CallingAE), "remote", remoteIP(as.RemoteAddr), "reason", why)
}
