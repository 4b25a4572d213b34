package archive

// The decision on an open association when the peer registry or the users
// file changed (revoke.go decide), case by case: the end-to-end tests with
// real clients are in revoke_test.go and userrevoke_test.go.

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dicomshield/dicomshield/internal/audit"
	"github.com/dicomshield/dicomshield/internal/dimse"
	"github.com/dicomshield/dicomshield/internal/identity"
	"github.com/dicomshield/dicomshield/internal/policy"
)

func TestDecide(t *testing.T) {
	const ctImage = "1.2.840.10008.5.1.4.1.1.2" // CT Image Storage
	var (
		storeOnly = []string{dimse.VerificationSOPClass, ctImage}
		echoOnly  = []string{dimse.VerificationSOPClass}
		query     = []string{dimse.VerificationSOPClass, dimse.StudyRootFind, dimse.StudyRootGet, ctImage}
	)
	peer := func(rights string, requireUser bool) *policy.Peer {
		rs, err := policy.ParseRights(rights)
		if err != nil {
			t.Fatal(err)
		}
		return &policy.Peer{AETitle: "CT1", Rights: rs, RequireUser: requireUser}
	}
	allowed := func(p *policy.Peer) policy.Decision { return policy.Decision{Allowed: true, Peer: p} }
	user := func(method string, role identity.Role) *identity.Result {
		roles := []identity.Role{role}
		return &identity.Result{Name: "bob", Verified: true, Method: method, Roles: roles, Rights: identity.RightsOf(roles)}
	}
	// sessions as acceptance makes them (identity.go authenticate)
	anonymous := func(p *policy.Peer) *session { return &session{peer: p} }
	named := func(p *policy.Peer) *session { return &session{peer: p, user: "bob"} }
	authenticated := func(p *policy.Peer, res *identity.Result) *session {
		return &session{peer: narrowTo(p, res), user: res.Name, auth: res}
	}
	// what identity.Authenticator.Recheck answers now
	type recheck struct {
		now *identity.Result
		why string
		err error
	}
	same := func(res *identity.Result) *recheck { return &recheck{now: res} }
	modality, viewer := user(identity.MethodPassword, identity.RoleModality), user(identity.MethodPassword, identity.RoleViewer)
	admin := user(identity.MethodPassword, identity.RoleAdmin)
	token := user(identity.MethodJWT, identity.RoleModality)
	storePeer, wide := peer("echo,store", false), peer("echo,store,find,get,move", true)

	tests := []struct {
		name      string
		d         policy.Decision
		sess      *session
		abstracts []string
		user      *recheck // nil: the user must not be looked up
		keep      bool
		alert     string
		outcome   audit.Outcome
		why       string
	}{
		// The peer's registration, as before users were decided again.
		{"peer unchanged", allowed(storePeer), anonymous(storePeer), storeOnly, nil, true, "", 0, ""},
		{"peer removed", policy.Decision{Reason: "CT1 is not a registered peer"}, anonymous(storePeer), storeOnly, nil,
			false, AlertAbortedRevoked, audit.MinorFailure, "not a registered peer"},
		{"certificate revoked", policy.Decision{Reason: "certificate revoked", RevokedCert: true}, authenticated(storePeer, modality), storeOnly, nil,
			false, AlertAbortedRevoked, audit.SeriousFailure, "revoked"},
		{"registry unreadable", policy.Decision{Transient: true}, authenticated(storePeer, modality), storeOnly, nil, true, "", 0, ""},
		{"peer lost store", allowed(peer("echo", false)), anonymous(storePeer), storeOnly, nil,
			false, AlertAbortedRevoked, audit.MinorFailure, "peer CT1 may no longer store"},
		{"peer lost store, echo only negotiated", allowed(peer("echo", false)), anonymous(storePeer), echoOnly, nil, true, "", 0, ""},
		{"peer now requires a user", allowed(peer("echo,store", true)), named(storePeer), storeOnly, nil,
			false, AlertAbortedRevoked, audit.MinorFailure, "requires a user"},
		{"peer lost store before the user is looked at", allowed(peer("echo", true)), authenticated(storePeer, modality), storeOnly,
			&recheck{why: "user bob was removed"}, false, AlertAbortedRevoked, audit.MinorFailure, "peer CT1 may no longer store"},

		// Users: only an authenticated password user is decided against
		// the users file.
		{"no user: the file is not looked at", allowed(storePeer), anonymous(storePeer), storeOnly, nil, true, "", 0, ""},
		{"user name only: the file is not looked at", allowed(storePeer), named(storePeer), storeOnly, nil, true, "", 0, ""},
		{"user unchanged", allowed(wide), authenticated(wide, modality), storeOnly, same(modality), true, "", 0, ""},
		{"user removed", allowed(wide), authenticated(wide, modality), storeOnly, &recheck{why: "user bob was removed"},
			false, AlertAbortedUser, audit.MinorFailure, "user bob was removed"},
		{"password changed", allowed(wide), authenticated(wide, modality), storeOnly, &recheck{why: "the password of user bob was changed"},
			false, AlertAbortedUser, audit.MinorFailure, "password of user bob was changed"},
		{"removed user, echo only", allowed(wide), authenticated(wide, modality), echoOnly, &recheck{why: "user bob was removed"},
			false, AlertAbortedUser, audit.MinorFailure, "removed"},
		{"role modality to viewer, storing", allowed(wide), authenticated(wide, modality), storeOnly, same(viewer),
			false, AlertAbortedUser, audit.MinorFailure, "user bob, now of role viewer, may no longer store"},
		{"role modality to viewer, echo only", allowed(wide), authenticated(wide, modality), echoOnly, same(viewer), true, "", 0, ""},
		{"role admin to viewer, querying", allowed(wide), authenticated(wide, admin), query, same(viewer),
			false, AlertAbortedUser, audit.MinorFailure, "may no longer store"},
		{"role admin to viewer, peer never let it store", allowed(peer("echo,find,get", true)), authenticated(peer("echo,find,get", true), admin),
			query, same(viewer), true, "", 0, ""},
		{"role widened", allowed(wide), authenticated(wide, viewer), query, same(admin), true, "", 0, ""},
		{"users file unusable", allowed(wide), authenticated(wide, modality), storeOnly, &recheck{err: identity.ErrUnavailable}, true, "", 0, ""},
		{"token user", allowed(wide), authenticated(wide, token), storeOnly, same(token), true, "", 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			looked := false
			lookup := func() (*identity.Result, string, error) {
				looked = true
				if tc.user == nil {
					t.Errorf("the user was looked up")
					return nil, "", errors.New("not to be looked up")
				}
				return tc.user.now, tc.user.why, tc.user.err
			}
			v, keep := decide(tc.d, tc.sess, tc.abstracts, lookup)
			if keep != tc.keep {
				t.Fatalf("keep %v (%+v), want %v", keep, v, tc.keep)
			}
			if keep {
				if v != (verdict{}) {
					t.Errorf("kept with a verdict %+v", v)
				}
				if tc.user != nil && !looked {
					t.Errorf("kept without looking the user up")
				}
				return
			}
			if v.alert != tc.alert || v.outcome != tc.outcome || !strings.Contains(v.why, tc.why) {
				t.Errorf("verdict %+v, want alert %s, outcome %d, why containing %q", v, tc.alert, tc.outcome, tc.why)
			}
		})
	}
}

// TestTokenExpiry: an open association accepted with a token is ended once
// the token's exp plus the clock-skew leeway has passed, the instant the
// same token would be refused at acceptance; associations without a token
// never expire.
func TestTokenExpiry(t *testing.T) {
	peer := &policy.Peer{AETitle: "CT1", Rights: []policy.Right{policy.RightEcho, policy.RightStore}}
	roles := []identity.Role{identity.RoleModality}
	// until is exp plus the leeway, as identity.VerifyJWT sets it.
	until := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	token := &identity.Result{Name: "dr-token", Verified: true, Method: identity.MethodJWT, Roles: roles,
		Rights: identity.RightsOf(roles), Until: until}
	password := &identity.Result{Name: "ct-tech", Verified: true, Method: identity.MethodPassword, Roles: roles,
		Rights: identity.RightsOf(roles)}
	named := &identity.Result{Name: "bob", Method: identity.MethodUsername}
	authenticated := func(res *identity.Result) *session {
		return &session{peer: narrowTo(peer, res), user: res.Name, auth: res}
	}
	tests := []struct {
		name string
		sess *session
		now  time.Time
		keep bool
	}{
		{"token, an hour before", authenticated(token), until.Add(-time.Hour), true},
		{"token, a nanosecond before", authenticated(token), until.Add(-time.Nanosecond), true},
		{"token, at the instant", authenticated(token), until, false},
		{"token, a second after", authenticated(token), until.Add(time.Second), false},
		{"token, a day after", authenticated(token), until.Add(24 * time.Hour), false},
		{"password user, long after", authenticated(password), until.Add(24 * time.Hour), true},
		{"user name only, long after", &session{peer: peer, user: "bob"}, until.Add(24 * time.Hour), true},
		{"user name result, long after", &session{peer: peer, user: "bob", auth: named}, until.Add(24 * time.Hour), true},
		{"no user, long after", &session{peer: peer}, until.Add(24 * time.Hour), true},
		{"no session", nil, until.Add(24 * time.Hour), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, keep := tokenExpiry(tc.sess, tc.now)
			if keep != tc.keep {
				t.Fatalf("keep %v (%+v), want %v", keep, v, tc.keep)
			}
			if keep {
				if v != (verdict{}) {
					t.Errorf("kept with a verdict %+v", v)
				}
				return
			}
			if v.alert != AlertAbortedTokenExpired || v.outcome != audit.MinorFailure {
				t.Errorf("verdict %+v, want alert %s, outcome minor failure", v, AlertAbortedTokenExpired)
			}
			if !strings.Contains(v.why, "dr-token") || !strings.Contains(v.why, "expired") {
				t.Errorf("reason %q, want it to name the user and say the token expired", v.why)
			}
			if strings.Contains(v.why, "2030") {
				t.Errorf("reason %q gives the token's expiry claim", v.why)
			}
		})
	}
}
