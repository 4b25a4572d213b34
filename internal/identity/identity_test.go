package identity_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dicomshield/dicomshield/internal/dicomtest"
	"github.com/dicomshield/dicomshield/internal/identity"
	"github.com/dicomshield/dicomshield/internal/policy"
	"github.com/dicomshield/dicomshield/internal/ul"
)

// cheap are Argon2id parameters that keep the suite fast; the production
// defaults are checked separately in TestDefaultParams.
var cheap = identity.Params{Time: 1, Memory: 64, Threads: 1}

func TestMain(m *testing.M) {
	restore := identity.SetParamsForTesting(cheap)
	code := m.Run()
	restore()
	os.Exit(code)
}

// TestDefaultParams: the production parameters are RFC 9106's and a hash
// made with them records them.
func TestDefaultParams(t *testing.T) {
	p := identity.DefaultParams
	if p.Time < 3 || p.Memory < 64*1024 || p.Threads < 1 {
		t.Fatalf("default Argon2id parameters %+v are below t=3, m=64MiB", p)
	}
	restore := identity.SetParamsForTesting(p)
	defer restore()
	start := time.Now()
	h, err := identity.HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("one Argon2id hash with the defaults took %v", time.Since(start))
	if !strings.HasPrefix(h, "$argon2id$v=19$m=65536,t=3,p=2$") {
		t.Fatalf("hash %q does not record the default parameters", h)
	}
}

func newUsers(t *testing.T) *identity.Users {
	t.Helper()
	u, err := identity.OpenUsers(filepath.Join(t.TempDir(), identity.UsersFileName))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestUsers(t *testing.T) {
	ctx := context.Background()
	u := newUsers(t)
	if err := u.Add(ctx, "alice", identity.RoleViewer, "a long passphrase"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		do   func() error
		want error
	}{
		{"duplicate", func() error { return u.Add(ctx, "alice", identity.RoleAdmin, "another passphrase") }, identity.ErrUserExists},
		{"short password", func() error { return u.Add(ctx, "bob", identity.RoleAdmin, "short") }, identity.ErrWeakPassword},
		{"bad role", func() error { return u.Add(ctx, "bob", identity.Role("root"), "a long passphrase") }, identity.ErrUnknownRole},
		{"bad name", func() error { return u.Add(ctx, "bob smith", identity.RoleAdmin, "a long passphrase") }, nil},
		{"passwd unknown", func() error { return u.SetPassword(ctx, "carol", "a long passphrase") }, identity.ErrUnknownUser},
		{"remove unknown", func() error { return u.Remove(ctx, "carol") }, identity.ErrUnknownUser},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do()
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	fi, err := os.Stat(u.Path())
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("users file mode %v, %v; want 0600", fi.Mode(), err)
	}
	data, _ := os.ReadFile(u.Path())
	if strings.Contains(string(data), "a long passphrase") || !strings.Contains(string(data), "$argon2id$") {
		t.Fatalf("users file does not hold only an Argon2id hash:\n%s", data)
	}

	// Another process's change is seen without reopening.
	other, err := identity.OpenUsers(u.Path())
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Add(ctx, "bob", identity.RoleModality, "bob's passphrase"); err != nil {
		t.Fatal(err)
	}
	if usr, err := u.Get(ctx, "bob"); err != nil || usr.Role != identity.RoleModality {
		t.Fatalf("bob after another process added him: %+v, %v", usr, err)
	}
	if err := other.Remove(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Get(ctx, "bob"); !errors.Is(err, identity.ErrUnknownUser) {
		t.Fatalf("bob after removal: %v", err)
	}

	// A file others may read fails closed.
	if err := os.Chmod(u.Path(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Get(ctx, "alice"); !errors.Is(err, identity.ErrUnavailable) {
		t.Fatalf("users file 0644: %v, want ErrUnavailable", err)
	}
	os.Chmod(u.Path(), 0o600)
	// So does one with an unknown field.
	if err := os.WriteFile(u.Path(), []byte(`{"version":1,"users":[],"extra":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := u.List(ctx); !errors.Is(err, identity.ErrUnavailable) {
		t.Fatalf("users file with an unknown key: %v, want ErrUnavailable", err)
	}
}

func TestPasswordAuthentication(t *testing.T) {
	ctx := context.Background()
	u := newUsers(t)
	if err := u.Add(ctx, "alice", identity.RoleViewer, "a long passphrase"); err != nil {
		t.Fatal(err)
	}
	a := identity.NewAuthenticator(u, nil)
	tests := []struct {
		name       string
		id         ul.UserIdentity
		wantErr    error
		wantRights []policy.Right
		verified   bool
	}{
		{"good", ul.UserIdentity{Type: ul.IdentityUsernamePasscode, Primary: []byte("alice"), Secondary: []byte("a long passphrase")}, nil,
			[]policy.Right{policy.RightEcho, policy.RightFind, policy.RightGet}, true},
		{"wrong password", ul.UserIdentity{Type: ul.IdentityUsernamePasscode, Primary: []byte("alice"), Secondary: []byte("a long passphrasE")}, identity.ErrBadCredentials, nil, false},
		{"empty password", ul.UserIdentity{Type: ul.IdentityUsernamePasscode, Primary: []byte("alice")}, identity.ErrBadCredentials, nil, false},
		{"unknown user", ul.UserIdentity{Type: ul.IdentityUsernamePasscode, Primary: []byte("mallory"), Secondary: []byte("a long passphrase")}, identity.ErrBadCredentials, nil, false},
		{"name with control bytes", ul.UserIdentity{Type: ul.IdentityUsernamePasscode, Primary: []byte("alice\x00"), Secondary: []byte("a long passphrase")}, identity.ErrBadCredentials, nil, false},
		{"username only", ul.UserIdentity{Type: ul.IdentityUsername, Primary: []byte("alice")}, nil, nil, false},
		{"kerberos", ul.UserIdentity{Type: ul.IdentityKerberos, Primary: []byte("ticket")}, identity.ErrUnsupported, nil, false},
		{"saml", ul.UserIdentity{Type: ul.IdentitySAML, Primary: []byte("<x/>")}, identity.ErrUnsupported, nil, false},
		{"jwt without issuer", ul.UserIdentity{Type: ul.IdentityJWT, Primary: []byte("a.b.c")}, identity.ErrUnsupported, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := a.Authenticate(ctx, &tc.id)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("got %+v, %v; want %v", r, err, tc.wantErr)
				}
				if err != nil && len(tc.id.Secondary) > 0 && strings.Contains(err.Error(), string(tc.id.Secondary)) {
					t.Fatalf("error %q shows the password", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Verified != tc.verified || policy.FormatRights(r.Rights) != policy.FormatRights(tc.wantRights) || r.Name != string(tc.id.Primary) {
				t.Fatalf("result %+v", r)
			}
		})
	}
}

func TestRolesIntersect(t *testing.T) {
	peer := []policy.Right{policy.RightEcho, policy.RightStore, policy.RightFind}
	tests := []struct {
		role identity.Role
		want string
	}{
		{identity.RoleModality, "echo,store"},
		{identity.RoleViewer, "echo,find"},
		{identity.RoleReader, "echo,find"},
		{identity.RoleAdmin, "echo,store,find"},
		{identity.Role("nobody"), ""},
	}
	for _, tc := range tests {
		if got := policy.FormatRights(identity.Intersect(peer, identity.RightsOf([]identity.Role{tc.role}))); got != tc.want {
			t.Errorf("%s through peer %v: %q, want %q", tc.role, peer, got, tc.want)
		}
	}
}

func TestJWT(t *testing.T) {
	iss := dicomtest.NewIssuer(t)
	now := time.Unix(1_900_000_000, 0)
	cfg := &identity.JWTConfig{Issuer: "https://idp.test", Audience: "dicomshield", Skew: identity.DefaultClockSkew,
		Keys: &identity.FileKeys{Path: iss.WriteJWKS(t)}, Now: func() time.Time { return now }}
	claims := func(mod func(map[string]any)) map[string]any {
		c := map[string]any{"iss": "https://idp.test", "aud": []string{"other", "dicomshield"}, "sub": "alice",
			"exp": now.Add(5 * time.Minute).Unix(), "nbf": now.Add(-time.Minute).Unix(), "roles": []string{"viewer", "unknown"}}
		if mod != nil {
			mod(c)
		}
		return c
	}
	hmacToken := func() string {
		// The classic confusion: HS256 "signed" with the public key as secret.
		h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","kid":"rsa-1"}`))
		c := base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"https://idp.test","aud":"dicomshield","sub":"alice","exp":1900000300}`))
		m := hmac.New(sha256.New, iss.RSA.PublicKey.N.Bytes())
		m.Write([]byte(h + "." + c))
		return h + "." + c + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	tests := []struct {
		name  string
		token string
		ok    bool
	}{
		{"RS256", iss.Sign(t, nil, claims(nil)), true},
		{"ES256", iss.Sign(t, map[string]any{"alg": "ES256", "kid": "ec-1"}, claims(nil)), true},
		{"ES256 without kid", iss.Sign(t, map[string]any{"alg": "ES256"}, claims(nil)), true},
		{"string aud", iss.Sign(t, nil, claims(func(c map[string]any) { c["aud"] = "dicomshield" })), true},
		{"expired within skew", iss.Sign(t, nil, claims(func(c map[string]any) { c["exp"] = now.Add(-30 * time.Second).Unix() })), true},
		{"expired", iss.Sign(t, nil, claims(func(c map[string]any) { c["exp"] = now.Add(-2 * time.Minute).Unix() })), false},
		{"no exp", iss.Sign(t, nil, claims(func(c map[string]any) { delete(c, "exp") })), false},
		{"not yet valid", iss.Sign(t, nil, claims(func(c map[string]any) { c["nbf"] = now.Add(2 * time.Minute).Unix() })), false},
		{"wrong issuer", iss.Sign(t, nil, claims(func(c map[string]any) { c["iss"] = "https://evil.test" })), false},
		{"wrong audience", iss.Sign(t, nil, claims(func(c map[string]any) { c["aud"] = "someone-else" })), false},
		{"no sub", iss.Sign(t, nil, claims(func(c map[string]any) { delete(c, "sub") })), false},
		{"alg none", iss.Sign(t, map[string]any{"alg": "none"}, claims(nil)), false},
		{"HS256 with the public key", hmacToken(), false},
		{"key not in the set", iss.Sign(t, map[string]any{"alg": "EdDSA"}, claims(nil)), false},
		{"RS256 naming the EC key", iss.Sign(t, map[string]any{"alg": "RS256", "kid": "ec-1"}, claims(nil)), false},
		{"tampered claims", func() string {
			tok := iss.Sign(t, nil, claims(nil))
			p := strings.Split(tok, ".")
			evil := base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"https://idp.test","aud":"dicomshield","sub":"admin","exp":1900000300,"roles":"admin"}`))
			return p[0] + "." + evil + "." + p[2]
		}(), false},
		{"two parts", "abc.def", false},
		{"crit header", iss.Sign(t, map[string]any{"alg": "RS256", "kid": "rsa-1", "crit": []string{"exp"}}, claims(nil)), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := cfg.VerifyJWT(context.Background(), tc.token)
			if !tc.ok {
				if !errors.Is(err, identity.ErrBadCredentials) {
					t.Fatalf("accepted or wrong error: %+v, %v", v, err)
				}
				if strings.Contains(err.Error(), tc.token) {
					t.Fatal("the error holds the token")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v.Name != "alice" || len(v.Roles) != 1 || v.Roles[0] != identity.RoleViewer {
				t.Fatalf("verified %+v, want alice with the viewer role only", v)
			}
		})
	}
}

// TestJWKSOverHTTPS: keys come from an https URL, are cached, refetched
// for an unknown key id at most once per MinJWKSRefetch, and the last good
// set stays in use while the issuer is down.
func TestJWKSOverHTTPS(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	iss := dicomtest.NewIssuer(t)
	var fetches atomic.Int32
	var down atomic.Bool
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(iss.JWKS(t))
	}))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = l
	srv.StartTLS()
	defer srv.Close()
	cl := srv.Client()
	defer cl.CloseIdleConnections()

	ks, err := identity.NewKeySource(srv.URL+"/jwks", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	uk := ks.(*identity.URLKeys)
	uk.Client = cl
	cfg := &identity.JWTConfig{Issuer: "i", Audience: "a", Keys: uk}
	tok := iss.Sign(t, nil, map[string]any{"iss": "i", "aud": "a", "sub": "bob", "exp": time.Now().Add(time.Minute).Unix()})
	for range 3 {
		if _, err := cfg.VerifyJWT(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	if n := fetches.Load(); n != 1 {
		t.Fatalf("%d fetches for three verifications, want 1 (cached)", n)
	}
	down.Store(true)
	unknown := iss.Sign(t, map[string]any{"alg": "RS256", "kid": "rotated"}, map[string]any{"iss": "i", "aud": "a", "sub": "bob", "exp": time.Now().Add(time.Minute).Unix()})
	for range 3 {
		if _, err := cfg.VerifyJWT(context.Background(), unknown); !errors.Is(err, identity.ErrBadCredentials) {
			t.Fatalf("token with an unknown kid: %v", err)
		}
	}
	if n := fetches.Load(); n > 2 {
		t.Fatalf("%d fetches: unknown key ids must not make us refetch more than once per %v", n, identity.MinJWKSRefetch)
	}
	if _, err := cfg.VerifyJWT(context.Background(), tok); err != nil {
		t.Fatalf("with the issuer down, the cached keys should still verify: %v", err)
	}

	for _, spec := range []string{"http://idp.test/jwks", "ftp://x/y", ""} {
		if _, err := identity.NewKeySource(spec, time.Hour); err == nil {
			t.Errorf("NewKeySource(%q) accepted", spec)
		}
	}
}

func TestParseJWKS(t *testing.T) {
	tests := []struct {
		name, set string
		ok        bool
	}{
		{"small RSA", `{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`, false},
		{"private key", `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}]}`, false},
		{"encryption key only", `{"keys":[{"kty":"OKP","crv":"Ed25519","use":"enc","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`, false},
		{"ed25519", `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`, true},
		{"EC off the curve", `{"keys":[{"kty":"EC","crv":"P-256","x":"AQ","y":"AQ"}]}`, false},
		{"symmetric", `{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`, false},
		{"not JSON", `{`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := identity.ParseJWKS([]byte(tc.set))
			if (err == nil) != tc.ok {
				t.Fatalf("ParseJWKS: %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// TestTokenUntil: a verified token's user carries Until, exp plus the
// leeway, and Result.TokenExpired ends it by the rule acceptance applies:
// at every instant around Until, the token is accepted exactly when the
// user it gave is not expired. Other methods never expire.
func TestTokenUntil(t *testing.T) {
	iss := dicomtest.NewIssuer(t)
	keys := &identity.FileKeys{Path: iss.WriteJWKS(t)}
	exp := time.Unix(1_900_000_000, 0)
	tok := iss.Sign(t, nil, map[string]any{"iss": "https://idp.test", "aud": "dicomshield", "sub": "alice",
		"exp": exp.Unix(), "roles": "viewer"})
	id := &ul.UserIdentity{Type: ul.IdentityJWT, Primary: []byte(tok)}
	tests := []struct {
		name string
		skew time.Duration
		want time.Duration // Until - exp
	}{
		{"no leeway (jwt_clock_skew = \"0s\")", 0, 0},
		{"default leeway", identity.DefaultClockSkew, identity.DefaultClockSkew},
		{"30s leeway", 30 * time.Second, 30 * time.Second},
		{"5m leeway", 5 * time.Minute, 5 * time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var now time.Time
			a := identity.NewAuthenticator(nil, &identity.JWTConfig{Issuer: "https://idp.test", Audience: "dicomshield",
				Skew: tc.skew, Keys: keys, Now: func() time.Time { return now }})
			until := exp.Add(tc.want)
			now = exp.Add(-time.Minute)
			res, err := a.Authenticate(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if !res.Until.Equal(until) {
				t.Fatalf("Until %v, want exp + %v = %v", res.Until, tc.want, until)
			}
			for _, d := range []time.Duration{-time.Minute, -time.Second, -time.Nanosecond, 0, time.Nanosecond, time.Second, time.Hour} {
				now = until.Add(d)
				_, err := a.Authenticate(context.Background(), id)
				accepted := err == nil
				if accepted == res.TokenExpired(now) {
					t.Errorf("at Until%+v: accepted %v (%v), but TokenExpired %v", d, accepted, err, res.TokenExpired(now))
				}
				if wantAccepted := d < 0; accepted != wantAccepted {
					t.Errorf("at Until%+v: accepted %v, want %v", d, accepted, wantAccepted)
				}
			}
		})
	}
	pw := &identity.Result{Name: "bob", Verified: true, Method: identity.MethodPassword}
	if pw.TokenExpired(exp.Add(100 * 365 * 24 * time.Hour)) {
		t.Error("a password user expired")
	}
	var none *identity.Result
	if none.TokenExpired(exp) {
		t.Error("no user expired")
	}
}
