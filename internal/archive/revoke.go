package archive

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/dicomshield/dicomshield/internal/audit"
	"github.com/dicomshield/dicomshield/internal/dimse"
	"github.com/dicomshield/dicomshield/internal/identity"
	"github.com/dicomshield/dicomshield/internal/pki"
	"github.com/dicomshield/dicomshield/internal/policy"
)

// peerCheckInterval is how often serve looks at the peer registry and
// the users file for changes made by `peer revoke`, `peer remove`, `peer
// set`, `peer add` or `user remove`, `user passwd`, `user add` (a stat of
// peers.json and one of users.json when nothing changed): a revoked
// certificate's or a removed user's open associations end within about
// this long. Half a second costs nothing and is well inside what an
// administrator revoking a stolen certificate or password waits for.
const peerCheckInterval = 500 * time.Millisecond

// AlertAbortedRevoked names the security alert recorded when an open
// association is aborted because its peer was revoked, removed or lost a
// right the association can use.
const AlertAbortedRevoked = "association-aborted-revoked"

// AlertAbortedUser names the security alert recorded when an open
// association is aborted because the user it authenticated with a
// password was removed, its password was changed, or its role no longer
// allows a service the association can use.
const AlertAbortedUser = "association-aborted-user"

// AlertAbortedTokenExpired names the security alert recorded when an
// open association is aborted because the token (JWT, identity type 5) it
// authenticated its user with has expired. Expiry is routine, so it is a
// minor failure.
const AlertAbortedTokenExpired = "association-aborted-token-expired"

// watchPeers re-decides the open associations whenever the peer registry
// or the users file changes, and each new association once after it is
// established (it may have been accepted against the files as they were
// a moment before a change), until ctx ends; and at every look it ends the
// associations whose token has expired (tokenExpiry). See recheck for what
// else ends an association.
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
	started     bool
	gen         uint64                // the peer registry's generation
	usersGen    uint64                // the users file's
	warned      bool                  // the registry is unusable and that was logged
	usersWarned bool                  // the users file is unusable and that was logged
	checked     map[*dimse.Assoc]bool // associations decided against gen and usersGen
}

// checkPeers is one look: every open association if the registry or the
// users file changed since the last, otherwise those not checked yet; and
// every open association's token expiry, which costs a comparison of
// times.
func (a *Archive) checkPeers(ctx context.Context, w *peerWatch) {
	now := a.now()
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
	usersGen, err := a.usersGeneration()
	if err != nil {
		// The same for users: password users are refused new
		// associations (rejected-transient) and the open ones are kept;
		// the users recheck finds the file unusable and decides nothing.
		if !w.usersWarned {
			a.Logger.Error("users file unusable: password users are refused new associations, open ones kept until it is fixed", "err", err)
			w.usersWarned = true
		}
	} else {
		w.usersWarned = false
	}
	all := !w.started || gen != w.gen || usersGen != w.usersGen
	w.started, w.gen, w.usersGen = true, gen, usersGen
	a.mu.Lock()
	servers := append([]*dimse.Server(nil), a.servers...)
	a.mu.Unlock()
	open := map[*dimse.Assoc]bool{}
	for _, s := range servers {
		for _, as := range s.Associations() {
			open[as] = true
			if all || !w.checked[as] {
				w.checked[as] = true
				if v, keep := a.recheck(ctx, as); !keep {
					a.abortAssoc(s, as, v)
					continue
				}
			}
			sess, _ := as.Values.(*session)
			if v, keep := tokenExpiry(sess, now); !keep {
				a.abortAssoc(s, as, v)
			}
		}
	}
	for as := range w.checked {
		if !open[as] {
			delete(w.checked, as)
		}
	}
}

// usersGeneration is the users file's generation (0 when the archive has
// no users file).
func (a *Archive) usersGeneration() (uint64, error) {
	if a.Identity == nil || a.Identity.Users == nil {
		return 0, nil
	}
	return a.Identity.Users.Generation()
}

// verdict is why an open association is to be aborted.
type verdict struct {
	why     string        // for the log and the trail
	alert   string        // AlertAbortedRevoked or AlertAbortedUser
	outcome audit.Outcome // of the alert
}

// recheck decides an open association again, as acceptance would decide
// it now, from the peer registry and the users file as they are: see
// decide.
func (a *Archive) recheck(ctx context.Context, as *dimse.Assoc) (v verdict, keep bool) {
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
	sess, _ := as.Values.(*session)
	user := func() (*identity.Result, string, error) {
		if a.Identity == nil {
			return nil, "", errors.New("no authenticator")
		}
		return a.Identity.Recheck(ctx, sess.auth)
	}
	return decide(a.Policy.Associate(ctx, req), sess, as.AbstractSyntaxes, user)
}

// decide is the decision on an open association whose session is sess
// and whose accepted presentation contexts have the abstract syntaxes
// abstracts, given d, the policy's decision on it now, and user, which
// looks up the association's verified user now
// (identity.Authenticator.Recheck). The association is kept unless
//
//   - its peer is gone, its certificate is revoked or no longer the one
//     the registry pins (re-issued, renewed), its address or transport is
//     no longer allowed, the peer now requires a user the association did
//     not authenticate, or the peer lost a right the association can use
//     (AlertAbortedRevoked);
//   - the user it authenticated with a password was removed, or its
//     password changed since, or its role, intersected with the peer's
//     rights as acceptance does (narrowTo), no longer grants a right the
//     association can use (AlertAbortedUser). Token users and user names
//     alone are not decided again (identity.Authenticator.Recheck says
//     why); a token's expiry is decided at every look (tokenExpiry).
//
// A right the association can use is one it was accepted with that its
// presentation contexts let it use (rightsInUse): taking away a right it
// never negotiated leaves it alone. A registry or users file that cannot
// be read keeps the association.
func decide(d policy.Decision, sess *session, abstracts []string, user func() (*identity.Result, string, error)) (v verdict, keep bool) {
	peerVerdict := func(why string) (verdict, bool) {
		return verdict{why: why, alert: AlertAbortedRevoked, outcome: audit.MinorFailure}, false
	}
	if !d.Allowed {
		if d.Transient {
			return verdict{}, true
		}
		v, keep := peerVerdict(d.Reason)
		if d.RevokedCert {
			// A revoked certificate still in use is the stolen-certificate
			// case; a narrowed registration is an administrator's decision.
			v.outcome = audit.SeriousFailure
		}
		return v, keep
	}
	if sess == nil || sess.peer == nil {
		return verdict{}, true
	}
	if d.Peer.RequireUser && !sess.verified() {
		return peerVerdict("peer " + d.Peer.AETitle + " now requires a user and this association authenticated none")
	}
	inUse := rightsInUse(sess.peer, abstracts)
	if lost := lacking(d.Peer, inUse); len(lost) > 0 {
		return peerVerdict("peer " + d.Peer.AETitle + " may no longer " + sayRights(lost) + ", which this association can use")
	}
	if !sess.verified() {
		return verdict{}, true
	}
	now, why, err := user()
	if err != nil {
		return verdict{}, true // the users file is unusable: checkPeers logs it
	}
	// A user's change is an administrator's decision too, whatever it
	// is: a password changed under an open association may be routine.
	uv := verdict{why: why, alert: AlertAbortedUser, outcome: audit.MinorFailure}
	if why != "" {
		return uv, false
	}
	if lost := lacking(narrowTo(d.Peer, now), inUse); len(lost) > 0 {
		uv.why = fmt.Sprintf("user %s, now of role %s, may no longer %s, which this association can use",
			now.Name, formatRoles(now.Roles), sayRights(lost))
		return uv, false
	}
	return verdict{}, true
}

// tokenExpiry is the decision on an open association whose session is
// sess at now: it is kept unless it authenticated its user with a token
// that has expired since, by the rule that refuses an expired token at
// acceptance (exp plus the configured clock-skew leeway,
// identity.Result.TokenExpired); then it is aborted with
// AlertAbortedTokenExpired. Associations without a token never expire.
// The reason names the user only: neither the token nor its other claims.
func tokenExpiry(sess *session, now time.Time) (v verdict, keep bool) {
	if sess == nil || !sess.auth.TokenExpired(now) {
		return verdict{}, true
	}
	return verdict{why: "the token user " + sess.auth.Name + " authenticated with has expired",
		alert: AlertAbortedTokenExpired, outcome: audit.MinorFailure}, false
}

// lacking returns the rights among inUse that peer does not have.
func lacking(peer *policy.Peer, inUse []policy.Right) []policy.Right {
	var lost []policy.Right
	for _, r := range inUse {
		if !peer.Can(r) {
			lost = append(lost, r)
		}
	}
	return lost
}

// sayRights lists rights for a sentence: "store, find".
func sayRights(rs []policy.Right) string {
	ss := make([]string, len(rs))
	for i, r := range rs {
		ss[i] = string(r)
	}
	return strings.Join(ss, ", ")
}

// formatRoles lists roles for a sentence: "viewer".
func formatRoles(roles []identity.Role) string {
	ss := make([]string, len(roles))
	for i, r := range roles {
		ss[i] = string(r)
	}
	return strings.Join(ss, ",")
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

// abortAssoc aborts as on s and records why: in the log and as a
// security alert in the audit trail.
func (a *Archive) abortAssoc(s *dimse.Server, as *dimse.Assoc, v verdict) {
	if !s.Abort(as.ID, v.why) {
		return // ended on its own meanwhile
	}
	ev := assocEvent(as, audit.SecurityAlert)
	ev.Outcome, ev.Alert = v.outcome, v.alert
	ev.Description = "open association aborted: " + v.why
	a.Audit.Record(ev)
	msg := "open association aborted: its peer's registration changed"
	switch v.alert {
	case AlertAbortedUser:
		msg = "open association aborted: its user was removed or changed"
	case AlertAbortedTokenExpired:
		msg = "open association aborted: its user's token expired"
	}
	a.Logger.Warn(msg, "assoc", as.ID, "calling_ae", strings.TrimSpace(as.CallingAE), "user", ev.User,
		"remote", remoteIP(as.RemoteAddr), "reason", v.why)
}
