package config

import (
	"strings"
	"testing"
)

func TestIdentityOptions(t *testing.T) {
	tests := []struct {
		name    string
		toml    string
		problem string // "" = valid
	}{
		{"off by default", "", ""},
		{"file keys", `jwt_issuer = "https://sso.test/realms/c"
jwt_audience = "dicomshield"
jwks = "/etc/dicomshield/jwks.json"`, ""},
		{"url keys", `jwt_issuer = "i"
jwt_audience = "a"
jwks = "https://sso.test/certs"
jwt_user_claim = "preferred_username"
jwt_clock_skew = "30s"
jwks_refresh = "10m"`, ""},
		{"issuer alone", `jwt_issuer = "i"`, "go together"},
		{"plain http keys", `jwt_issuer = "i"
jwt_audience = "a"
jwks = "http://sso.test/certs"`, "only https://"},
		{"relative path", `jwt_issuer = "i"
jwt_audience = "a"
jwks = "jwks.json"`, "relative path"},
		{"skew too large", `jwt_clock_skew = "1h"`, "jwt_clock_skew"},
		{"refresh too short", `jwks_refresh = "1s"`, "jwks_refresh"},
		{"empty user claim", `jwt_user_claim = ""`, "jwt_user_claim"},
		{"unknown option", `jwt_secret = "x"`, "unknown option \"identity.jwt_secret\""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(writeFile(t, "version = 1\n[identity]\n"+tc.toml+"\n"))
			switch {
			case tc.problem == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.problem != "" && (err == nil || !strings.Contains(err.Error(), tc.problem)):
				t.Fatalf("got %v, want a problem mentioning %q", err, tc.problem)
			}
		})
	}
}
