package identity

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/dicomshield/dicomshield/internal/policy"
	"github.com/dicomshield/dicomshield/internal/ul"
)

// MaxConcurrentVerifications bounds the password verifications running at
// once: each takes DefaultArgonMemory (64 MiB), so four cap the memory a
// burst of logins can take at 256 MiB; the others wait their turn.
const MaxConcurrentVerifications = 4

// Methods, as Result.Method says them.
const (
	MethodUsername = "username" // type 1: identification only
	MethodPassword = "password" // type 2
	MethodJWT      = "jwt"      // type 5
)

// Result is who the peer's user is.
type Result struct {
	Name string
	// Verified is false for a user name alone (type 1), which proves
	// nothing: it identifies, it does not authenticate.
	Verified bool
	Method   string
	Roles    []Role
	// Rights are those the roles grant (to be intersected with the
	// peer's); nil when not Verified.
	Rights []policy.Right
	// Until is when a token user's token stops being accepted (exp plus
	// the clock-skew leeway, Verified.Until); zero for other methods,
	// which do not expire.
	Until time.Time
	// stamp identifies the stored password that verified a password
	// user: a digest of its hash (never the hash, never the password),
	// so that Recheck tells a changed password from the same one.
	stamp [sha256.Size]byte
}

// Authenticator checks the user identity of an association request.
// The zero value refuses every type but a bare user name.
type Authenticator struct {
	// Users holds local users (type 2); nil means none.
	Users *Users
	// JWT verifies tokens (type 5); nil means type 5 is not supported.
	JWT *JWTConfig

	sem chan struct{}
}

// NewAuthenticator returns an Authenticator over users and jwt (either
// may be nil).
func NewAuthenticator(users *Users, jwt *JWTConfig) *Authenticator {
	return &Authenticator{Users: users, JWT: jwt, sem: make(chan struct{}, MaxConcurrentVerifications)}
}

// Authenticate checks id. Errors wrap ErrBadCredentials, ErrUnsupported or
// ErrUnavailable, and say why for the log; they never hold the passcode
// or the token.
func (a *Authenticator) Authenticate(ctx context.Context, id *ul.UserIdentity) (*Result, error) {
	if id == nil {
		return nil, errors.New("identity: no user identity")
	}
	switch id.Type {
	case ul.IdentityUsername:
		name := string(id.Primary)
		if err := CheckName(name); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadCredentials, err)
		}
		return &Result{Name: name, Method: MethodUsername}, nil
	case ul.IdentityUsernamePasscode:
		return a.password(ctx, string(id.Primary), string(id.Secondary))
	case ul.IdentityJWT:
		if a.JWT == nil {
			return nil, fmt.Errorf("%w: JWT (type 5) but no token issuer is configured", ErrUnsupported)
		}
		v, err := a.JWT.VerifyJWT(ctx, string(id.Primary))
		if err != nil {
			return nil, err
		}
		return &Result{Name: v.Name, Verified: true, Method: MethodJWT, Roles: v.Roles, Rights: RightsOf(v.Roles), Until: v.Until}, nil
	}
	return nil, fmt.Errorf("%w: type %d", ErrUnsupported, id.Type)
}

func (a *Authenticator) password(ctx context.Context, name, password string) (*Result, error) {
	if a.sem != nil {
		select {
		case a.sem <- struct{}{}:
			defer func() { <-a.sem }()
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err())
		}
	}
	if CheckName(name) != nil || len(password) > MaxPasswordLength {
		burnHash(password)
		return nil, fmt.Errorf("%w: not a valid user name or password", ErrBadCredentials)
	}
	if a.Users == nil {
		burnHash(password)
		return nil, fmt.Errorf("%w: user %q unknown (no users file)", ErrBadCredentials, name)
	}
	usr, err := a.Users.Get(ctx, name)
	switch {
	case errors.Is(err, ErrUnknownUser):
		burnHash(password)
		return nil, fmt.Errorf("%w: user %q unknown", ErrBadCredentials, name)
	case err != nil:
		return nil, err
	}
	if !checkHash(usr.Hash, password) {
		return nil, fmt.Errorf("%w: wrong password for user %q", ErrBadCredentials, name)
	}
	return passwordResult(usr), nil
}

// TokenExpired reports whether r is a token user whose token is no
// longer valid at now, by the rule that refuses an expired token at
// acceptance (Expired): an open association accepted with it is to end.
// Users of other methods never expire.
func (r *Result) TokenExpired(now time.Time) bool {
	return r != nil && r.Verified && r.Method == MethodJWT && Expired(r.Until, now)
}

func passwordResult(usr User) *Result {
	roles := []Role{usr.Role}
	return &Result{Name: usr.Name, Verified: true, Method: MethodPassword, Roles: roles, Rights: RightsOf(roles),
		stamp: sha256.Sum256([]byte(usr.Hash))}
}

// Recheck decides again, against the users file as it is now, a user
// that Authenticate verified earlier (an association still open). It
// returns the user as the file has it now (the roles and rights of its
// current role), or why the authentication no longer holds: the user was
// removed, or its password changed since (the association was accepted
// with the old one; a user removed and added again has a new password
// too). An error wraps ErrUnavailable: the file cannot be read now, and
// nothing is decided.
//
// Only password users are decided: a token (type 5) was verified against
// its issuer, which holds that user, not users.json; a local user of the
// same name is another account. A token's association keeps what it was
// accepted with until the token expires (TokenExpired, which the caller
// checks on its own clock), as does a user name alone (type 1), which
// proved nothing and changed no rights: res comes back unchanged for both.
func (a *Authenticator) Recheck(ctx context.Context, res *Result) (now *Result, why string, err error) {
	if res == nil || !res.Verified || res.Method != MethodPassword {
		return res, "", nil
	}
	if a.Users == nil {
		return nil, fmt.Sprintf("user %s was removed (no users file)", res.Name), nil
	}
	usr, err := a.Users.Get(ctx, res.Name)
	switch {
	case errors.Is(err, ErrUnknownUser):
		return nil, fmt.Sprintf("user %s was removed", res.Name), nil
	case err != nil:
		return nil, "", err
	}
	now = passwordResult(usr)
	if now.stamp != res.stamp {
		return nil, fmt.Sprintf("the password of user %s was changed since it authenticated", res.Name), nil
	}
	return now, "", nil
}
