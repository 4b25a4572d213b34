package archive

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/dicomshield/dicomshield/internal/audit"
	"github.com/dicomshield/dicomshield/internal/config"
	"github.com/dicomshield/dicomshield/internal/dimse"
	"github.com/dicomshield/dicomshield/internal/identity"
	"github.com/dicomshield/dicomshield/internal/policy"
	"github.com/dicomshield/dicomshield/internal/ul"
)

// authTimeout bounds one user authentication: a password check takes a
// fraction of a second, a first fetch of the issuer's keys a few; it stays
// well inside the associate timeout.
const authTimeout = 15 * time.Second

// session is what an accepted association hands its handlers
// (dimse.Assoc.Values): the peer, its rights narrowed to the user's role,
// and who the user is.
type session struct {
	peer *policy.Peer
	// user is the user's name: authenticated when auth is set, only
	// claimed (identity type 1) otherwise; "" when none was presented.
	user string
	// auth is the verified user (password or token) the association was
	// accepted with, nil when none; the peer's rights above are narrowed
	// to it. An open association is decided again against it (revoke.go).
	auth *identity.Result
	// slot is the association's place in its peer's count (slots.go).
	slot *slot
}

// verified reports whether the association authenticated a user.
func (s *session) verified() bool { return s.auth != nil && s.auth.Verified }

// narrowTo returns peer with its rights narrowed to those of the verified
// user res: what an association of that peer authenticated as res may
// do. Acceptance narrows with it, and so does the re-decision of an open
// association (revoke.go), so that both compute the same rights.
func narrowTo(peer *policy.Peer, res *identity.Result) *policy.Peer {
	narrowed := *peer
	narrowed.Rights = identity.Intersect(peer.Rights, res.Rights)
	return &narrowed
}

// userOf returns the association's user name for events ("" if none).
func userOf(r *dimse.Request) string {
	if s, _ := r.Assoc.Values.(*session); s != nil {
		return s.user
	}
	return ""
}

// OpenUsers opens the users file of the data directory dir, creating the
// directory (0700) if needed, for the user commands.
func OpenUsers(dir string) (*identity.Users, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return identity.OpenUsers(filepath.Join(dir, identity.UsersFileName))
}

// newAuthenticator builds the user authenticator of a data directory:
// its users file, and tokens when [identity] names an issuer.
func newAuthenticator(dir string, cfg *config.Config) (*identity.Authenticator, error) {
	users, err := OpenUsers(dir)
	if err != nil {
		return nil, err
	}
	var jwt *identity.JWTConfig
	if ic := cfg.Identity; ic.JWTEnabled() {
		keys, err := identity.NewKeySource(ic.JWKS, ic.JWKSRefresh.Duration())
		if err != nil {
			users.Close()
			return nil, err
		}
		jwt = &identity.JWTConfig{Issuer: ic.JWTIssuer, Audience: ic.JWTAudience, UserClaim: ic.JWTUserClaim,
			RolesClaim: ic.JWTRolesClaim, Skew: ic.JWTClockSkew.Duration(), Keys: keys}
	}
	return identity.NewAuthenticator(users, jwt), nil
}

// authenticate checks the user identity of an association the policy
// allowed for peer. It returns the session to accept with and whether to
// send the positive identity response, or the rejection:
//
//   - no identity: accepted as the peer, unless the peer requires a user;
//   - a user name alone (type 1) proves nothing: it names the user in the
//     log and audit trail for a peer that does not require a user, and
//     changes no rights; a peer that requires a user is refused;
//   - a password (type 2) or token (type 5): verified, or refused whatever
//     the peer's setting (bad credentials are never ignored); the user's
//     role then narrows the peer's rights;
//   - Kerberos and SAML (types 3, 4) are not checked: ignored, as PS3.7
//     D.3.3.7 lets an acceptor do, unless the peer requires a user.
//
// Bad or missing credentials give A-ASSOCIATE-RJ rejected-permanent,
// source service-user, reason 1 "no reason given": PS3.8 table 9-21 has no
// reason for failed authentication, and the other reasons (AE titles)
// would mislead. Users file or issuer keys unavailable: rejected-transient.
func (a *Archive) authenticate(r *dimse.AssocRequest, peer *policy.Peer, remote netip.Addr) (*session, bool, *ul.AssociateRJ) {
	ev := audit.Event{Kind: audit.Authentication, Peer: peer.AETitle, CallingAE: r.RQ.CallingAE, CalledAE: r.RQ.CalledAE}
	if remote.IsValid() {
		ev.Remote = remote.String()
	}
	refuse := func(result byte, user, why string, err error) (*session, bool, *ul.AssociateRJ) {
		ev.User, ev.Outcome, ev.Description = user, audit.MinorFailure, why
		if result == ul.RejectTransient {
			ev.Outcome = audit.SeriousFailure
		}
		a.Audit.Record(ev)
		attrs := []any{"calling_ae", peer.AETitle, "remote", ev.Remote, "user", user, "reason", why}
		if err != nil {
			attrs = append(attrs, "err", err)
		}
		a.Logger.Warn("association refused: user authentication", attrs...)
		return nil, false, &ul.AssociateRJ{Result: result, Source: ul.SourceServiceUser, Reason: ul.ReasonNoReason}
	}
	id := r.RQ.User.Identity
	if id == nil {
		if peer.RequireUser {
			return refuse(ul.RejectPermanent, "", "the peer requires a user and none was presented", nil)
		}
		return &session{peer: peer}, false, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), authTimeout)
	defer cancel()
	res, err := a.Identity.Authenticate(ctx, id)
	claimed := ""
	if id.Type == ul.IdentityUsername || id.Type == ul.IdentityUsernamePasscode {
		if identity.CheckName(string(id.Primary)) == nil {
			claimed = string(id.Primary)
		}
	}
	switch {
	case errors.Is(err, identity.ErrUnsupported) && !peer.RequireUser:
		a.Logger.Info("user identity not checked", "calling_ae", peer.AETitle, "type", id.Type, "reason", err)
		return &session{peer: peer}, false, nil
	case errors.Is(err, identity.ErrUnsupported):
		return refuse(ul.RejectPermanent, claimed, fmt.Sprintf("user identity type %d cannot be checked here and the peer requires a user", id.Type), err)
	case errors.Is(err, identity.ErrBadCredentials):
		return refuse(ul.RejectPermanent, claimed, "bad credentials", err)
	case err != nil:
		return refuse(ul.RejectTransient, claimed, "user authentication unavailable", err)
	}
	if !res.Verified {
		if peer.RequireUser {
			return refuse(ul.RejectPermanent, res.Name, "a user name without password or token proves nothing and the peer requires a user", nil)
		}
		ev.User, ev.Outcome, ev.Description = res.Name, audit.Success, "identified by user name only (type 1), not authenticated"
		a.Audit.Record(ev)
		return &session{peer: peer, user: res.Name}, false, nil
	}
	narrowed := narrowTo(peer, res)
	ev.User, ev.Outcome = res.Name, audit.Success
	ev.Description = fmt.Sprintf("authenticated by %s, roles %v, may %s", res.Method, res.Roles, policy.FormatRights(narrowed.Rights))
	a.Audit.Record(ev)
	a.Logger.Info("user authenticated", "calling_ae", peer.AETitle, "user", res.Name, "method", res.Method, "rights", policy.FormatRights(narrowed.Rights))
	return &session{peer: narrowed, user: res.Name, auth: res}, id.PositiveResponseRequested, nil
}
