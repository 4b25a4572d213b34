package config

import (
	"net/url"
	"path/filepath"
	"strings"
	"time"
)

// Defaults of [identity]: how users authenticate with JSON Web Tokens
// (user identity type 5). Local users with passwords need no setting.
const (
	// DefaultJWTIssuer is empty: tokens are refused until the owner names
	// the issuer they trust; no issuer is trusted by default.
	DefaultJWTIssuer = ""
	// DefaultJWTUserClaim is "sub", the one claim every OpenID Connect
	// token carries; "preferred_username" is the readable alternative.
	DefaultJWTUserClaim = "sub"
	// DefaultJWTRolesClaim is "roles", the name most issuers (Keycloak's
	// client roles mapper, Entra ID app roles) can be set to emit.
	DefaultJWTRolesClaim = "roles"
	// DefaultJWTClockSkew tolerates clocks one minute apart without
	// keeping expired tokens useful for long.
	DefaultJWTClockSkew = time.Minute
	// DefaultJWKSRefresh re-fetches the issuer's keys hourly: issuers
	// publish new keys well before they use them.
	DefaultJWKSRefresh = time.Hour
)

// Ranges of [identity] options.
const (
	MaxJWTClockSkew = 5 * time.Minute // more makes stolen expired tokens useful
	MinJWKSRefresh  = time.Minute     // less would hammer the issuer
	MaxJWKSRefresh  = 24 * time.Hour  // more would miss a revoked key for days
)

// Identity configures token (JWT) authentication.
type Identity struct {
	// JWTIssuer is the "iss" tokens must carry; "" turns tokens off.
	JWTIssuer string `toml:"jwt_issuer"`
	// JWTAudience is a value tokens' "aud" must contain.
	JWTAudience string `toml:"jwt_audience"`
	// JWKS is where the issuer's public keys are: an https:// URL or an
	// absolute file path.
	JWKS          string   `toml:"jwks"`
	JWTUserClaim  string   `toml:"jwt_user_claim"`
	JWTRolesClaim string   `toml:"jwt_roles_claim"`
	JWTClockSkew  Duration `toml:"jwt_clock_skew"`
	JWKSRefresh   Duration `toml:"jwks_refresh"`
}

// JWTEnabled reports whether tokens are accepted.
func (i *Identity) JWTEnabled() bool { return i.JWTIssuer != "" }

func defaultIdentity() Identity {
	return Identity{JWTIssuer: DefaultJWTIssuer, JWTUserClaim: DefaultJWTUserClaim, JWTRolesClaim: DefaultJWTRolesClaim,
		JWTClockSkew: Duration(DefaultJWTClockSkew), JWKSRefresh: Duration(DefaultJWKSRefresh)}
}

func (i *Identity) validate(bad func(string, ...any)) {
	if i.JWTIssuer != "" || i.JWTAudience != "" || i.JWKS != "" {
		if i.JWTIssuer == "" || i.JWTAudience == "" || i.JWKS == "" {
			bad("identity: jwt_issuer, jwt_audience and jwks go together; set all three to accept tokens, or none")
		}
	}
	if i.JWKS != "" {
		switch {
		case strings.HasPrefix(i.JWKS, "https://"):
			if u, err := url.Parse(i.JWKS); err != nil || u.Host == "" {
				bad("identity.jwks: %q is not a valid https URL", i.JWKS)
			}
		case strings.Contains(i.JWKS, "://"):
			bad("identity.jwks: %q: only https:// URLs are accepted, because whoever can alter the keys on the way can sign tokens; or give an absolute file path", i.JWKS)
		case !filepath.IsAbs(i.JWKS):
			bad("identity.jwks: %q is a relative path; give an absolute path or an https:// URL", i.JWKS)
		}
	}
	if strings.TrimSpace(i.JWTUserClaim) == "" {
		bad("identity.jwt_user_claim: empty; name the claim that holds the user name (default %q)", DefaultJWTUserClaim)
	}
	if strings.TrimSpace(i.JWTRolesClaim) == "" {
		bad("identity.jwt_roles_claim: empty; name the claim that holds the roles (default %q)", DefaultJWTRolesClaim)
	}
	if d := i.JWTClockSkew.Duration(); d < 0 || d > MaxJWTClockSkew {
		bad("identity.jwt_clock_skew: %q is out of range; use a duration from \"0s\" to \"5m\" (default %q)", d.String(), Duration(DefaultJWTClockSkew).String())
	}
	if d := i.JWKSRefresh.Duration(); d < MinJWKSRefresh || d > MaxJWKSRefresh {
		bad("identity.jwks_refresh: %q is out of range; use a duration from \"1m\" to \"24h\" (default %q)", d.String(), Duration(DefaultJWKSRefresh).String())
	}
}

// commentedIdentity writes the [identity] table.
func (c *Config) commentedIdentity(table func(text, name string), opt func(text, key, value string)) {
	i := c.Identity
	table(`User identity. Peers registered with --require-user must authenticate a
user on every association: a user name and password (add users with
"dicomshield user add NAME --role ROLE") or a JSON Web Token from the
issuer configured here. The user's role then limits what the association
may do, within what the peer may do. Passwords are kept only as Argon2id
hashes, in users.json in the data directory.`, "identity")
	opt(`The issuer ("iss") whose tokens are accepted, exactly as in the tokens,
such as "https://sso.example.org/realms/clinic". Empty, the default, accepts
no tokens.`, "jwt_issuer", quote(i.JWTIssuer))
	opt(`The audience ("aud") tokens must be issued for, such as "dicomshield".`,
		"jwt_audience", quote(i.JWTAudience))
	opt(`Where the issuer's public keys are: its JWKS URL (https only), such as
"https://sso.example.org/realms/clinic/protocol/openid-connect/certs", or an
absolute path to a JWKS file.`, "jwks", quote(i.JWKS))
	opt(`The token claim that holds the user name ("sub" or "preferred_username").`,
		"jwt_user_claim", quote(i.JWTUserClaim))
	opt(`The token claim that lists the user's roles: modality, viewer, reader or
admin. Other values in it are ignored; a token without a known role may do
nothing.`, "jwt_roles_claim", quote(i.JWTRolesClaim))
	opt(`Tolerance for clocks that differ when checking a token's expiry ("1m").`,
		"jwt_clock_skew", quote(i.JWTClockSkew.String()))
	opt(`How long fetched keys are used before they are fetched again ("1h").`,
		"jwks_refresh", quote(i.JWKSRefresh.String()))
}
