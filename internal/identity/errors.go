package identity

import "errors"

// Sentinel errors. Errors returned by this package wrap one of them, so
// callers decide with errors.Is; the wrapped text says why for the log and
// never holds a password or a token.
var (
	// ErrBadCredentials: the user is unknown, the password is wrong, or
	// the token is not valid. Which of these is not told to the peer.
	ErrBadCredentials = errors.New("identity: bad credentials")
	// ErrUnsupported: an identity type this server does not check
	// (Kerberos, SAML), or JWT when no issuer is configured.
	ErrUnsupported = errors.New("identity: identity type not supported")
	// ErrUnavailable: the users file or the issuer's keys cannot be read
	// now; a later attempt may succeed.
	ErrUnavailable = errors.New("identity: unavailable")
	// ErrUnknownUser: no user of that name (user management).
	ErrUnknownUser = errors.New("unknown user")
	// ErrUserExists: a user of that name is already there (user add).
	ErrUserExists = errors.New("user already exists")
	// ErrUnknownRole: not one of AllRoles.
	ErrUnknownRole = errors.New("unknown role")
	// ErrWeakPassword: a password too short or too long to be accepted.
	ErrWeakPassword = errors.New("password refused")
)
