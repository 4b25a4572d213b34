package enroll

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dicomshield/dicomshield/internal/audit"
	"github.com/dicomshield/dicomshield/internal/dicomtest"
	"github.com/dicomshield/dicomshield/internal/pki"
	"github.com/dicomshield/dicomshield/internal/policy"
)

func TestParseToken(t *testing.T) {
	good := Token{Secret: bytes.Repeat([]byte{7}, secretBytes), CAFingerprint: colonHex(bytes.Repeat([]byte{0xAB}, 32))}
	s := good.String()
	for _, tc := range []struct {
		name string
		in   string
		ok   bool
	}{
		{"round trip", s, true},
		{"spaces around", "  " + s + "\n", true},
		{"empty", "", false},
		{"other prefix", strings.Replace(s, tokenPrefix, "dsenroll2", 1), false},
		{"truncated", s[:len(s)-3], false},
		{"extra part", s + ".x", false},
		{"not base64", strings.Replace(s, ".", ".!", 1), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseToken(tc.in)
			if !tc.ok {
				if !errors.Is(err, ErrMalformedToken) {
					t.Fatalf("err = %v, want ErrMalformedToken", err)
				}
				return
			}
			if err != nil || !bytes.Equal(got.Secret, good.Secret) || got.CAFingerprint != good.CAFingerprint {
				t.Fatalf("ParseToken = %+v, %v", got, err)
			}
		})
	}
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestTokens(t *testing.T) {
	clk := &clock{t: time.Date(2030, 5, 1, 8, 0, 0, 0, time.UTC)}
	path := filepath.Join(t.TempDir(), TokensFileName)
	st := &Tokens{Path: path, Now: clk.now}
	make := func(ae string) Token {
		tok, exp, err := st.Create(ae, time.Hour, "AA:BB")
		if err != nil {
			t.Fatal(err)
		}
		if !exp.Equal(clk.now().Add(time.Hour)) {
			t.Fatalf("expires %v", exp)
		}
		return tok
	}
	a := make("CT01")
	b := make("MR01")
	stale := make("US01")
	fresh := make("US01") // replaces stale
	expiring := make("XA01")
	checked := make("DX01")

	// At rest: hashes only, owner-only.
	data, _ := os.ReadFile(path)
	for _, tok := range []Token{a, b, fresh} {
		if bytes.Contains(data, []byte(b64.EncodeToString(tok.Secret))) || bytes.Contains(data, []byte(hex.EncodeToString(tok.Secret))) {
			t.Fatal("the token file holds a secret")
		}
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v", fi.Mode())
	}

	for _, tc := range []struct {
		name    string
		before  func()
		secret  []byte
		check   func(string) error
		wantAE  string
		wantErr error
	}{
		{name: "first use", secret: a.Secret, wantAE: "CT01"},
		{name: "second use refused", secret: a.Secret, wantAE: "CT01", wantErr: ErrTokenUsed},
		{name: "unknown", secret: bytes.Repeat([]byte{1}, secretBytes), wantErr: ErrTokenUnknown},
		{name: "replaced by a newer token", secret: stale.Secret, wantErr: ErrTokenUnknown},
		{name: "the newer one works", secret: fresh.Secret, wantAE: "US01"},
		{name: "check refuses: token kept", secret: checked.Secret, check: func(string) error { return errors.New("wrong host") }, wantAE: "DX01", wantErr: errors.New("wrong host")},
		{name: "then works", secret: checked.Secret, wantAE: "DX01"},
		{name: "expired", before: func() { clk.add(time.Hour) }, secret: expiring.Secret, wantAE: "XA01", wantErr: ErrTokenExpired},
		{name: "expired, other peer", secret: b.Secret, wantAE: "MR01", wantErr: ErrTokenExpired},
		{name: "used token still reported as used after expiry", secret: a.Secret, wantAE: "CT01", wantErr: ErrTokenUsed},
		{name: "gone a day after expiry", before: func() { clk.add(keepExpired + time.Second) }, secret: a.Secret, wantErr: ErrTokenUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.before != nil {
				tc.before()
			}
			ae, err := st.Redeem(tc.secret, tc.check)
			if ae != tc.wantAE {
				t.Errorf("AE %q, want %q", ae, tc.wantAE)
			}
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("err = %v", err)
			case tc.wantErr != nil && (err == nil || !errors.Is(err, tc.wantErr) && err.Error() != tc.wantErr.Error()):
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			case errors.Is(tc.wantErr, ErrTokenRefused) && !errors.Is(err, ErrTokenRefused):
				t.Fatalf("err = %v does not wrap ErrTokenRefused", err)
			}
		})
	}
}

// TestTokenRace: many redeemers at once (two Tokens values, as the server
// and a second process would have), exactly one wins.
func TestTokenRace(t *testing.T) {
	path := filepath.Join(t.TempDir(), TokensFileName)
	tok, _, err := (&Tokens{Path: path}).Create("CT01", time.Hour, "AA")
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	var wg sync.WaitGroup
	wins := make(chan string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ae, err := (&Tokens{Path: path}).Redeem(tok.Secret, nil); err == nil {
				wins <- ae
			} else if !errors.Is(err, ErrTokenUsed) {
				t.Errorf("Redeem: %v", err)
			}
		}()
	}
	wg.Wait()
	close(wins)
	if got := len(wins); got != 1 {
		t.Fatalf("%d redeemers won, want 1", got)
	}
}

// fixture is an archive's CA, registry and token file with the enrolment
// listener on loopback.
type fixture struct {
	ca     *pki.CA
	reg    *policy.FileRegistry
	tokens *Tokens
	srv    *Server
	addr   string
	clk    *clock

	mu     sync.Mutex
	events []audit.Event
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dicomtest.CheckGoroutines(t)
	dir := t.TempDir()
	ca, _, err := pki.LoadOrCreate(filepath.Join(dir, "pki"))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := policy.OpenFileRegistry(filepath.Join(dir, policy.PeersFileName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	f := &fixture{ca: ca, reg: reg, clk: &clock{t: time.Now()}}
	f.tokens = &Tokens{Path: filepath.Join(dir, TokensFileName), Now: f.clk.now}
	f.srv = &Server{CA: ca, Registry: reg, Tokens: f.tokens, CertLifetime: 48 * time.Hour, Now: f.clk.now,
		Audit: audit.Func(func(ev audit.Event) { f.mu.Lock(); f.events = append(f.events, ev); f.mu.Unlock() })}
	tc, err := ca.EnrolTLSConfig([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = l.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.srv.Serve(ctx, l, tc) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return f
}

func (f *fixture) register(t *testing.T, ae, host string) Token {
	t.Helper()
	if err := f.reg.Put(context.Background(), policy.Peer{AETitle: ae, Hosts: []netip.Prefix{netip.MustParsePrefix(host)}, Rights: []policy.Right{policy.RightEcho}}); err != nil {
		t.Fatal(err)
	}
	tok, _, err := f.tokens.Create(ae, time.Hour, f.ca.Fingerprint())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (f *fixture) alerts() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, ev := range f.events {
		out = append(out, ev.Alert)
	}
	f.events = nil
	return out
}

func (f *fixture) pinned(t *testing.T, ae string) *policy.Peer {
	t.Helper()
	p, err := f.reg.Get(context.Background(), ae)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestEnrolAndRenew walks a device through enrolment and renewal, with
// the refusals on the way.
func TestEnrolAndRenew(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tok := f.register(t, "CT 01", "127.0.0.1/32")
	out := filepath.Join(t.TempDir(), "bundle")

	// A token naming another CA: the device refuses the server, and the
	// token is not spent.
	other, _, err := pki.LoadOrCreate(filepath.Join(t.TempDir(), "other"))
	if err != nil {
		t.Fatal(err)
	}
	wrong := Token{Secret: tok.Secret, CAFingerprint: other.Fingerprint()}
	if _, err := Enrol(ctx, f.addr, wrong.String(), out); !errors.Is(err, pki.ErrFingerprint) {
		t.Fatalf("Enrol with another CA's fingerprint: %v, want ErrFingerprint", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("something was written after refusing the server: %v", err)
	}

	res, err := Enrol(ctx, f.addr, tok.String(), out)
	if err != nil {
		t.Fatalf("Enrol: %v", err)
	}
	if res.AETitle != "CT 01" || filepath.Base(res.CertFile) != "CT_01.crt" {
		t.Errorf("result %+v", res)
	}
	if fi, err := os.Stat(res.KeyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v %v", fi, err)
	}
	p := f.pinned(t, "CT 01")
	if !policy.SameSerial(p.CertSerial, res.Serial) || !p.CertNotAfter.Equal(res.NotAfter) {
		t.Errorf("registry pins %s until %v, want %s until %v", p.CertSerial, p.CertNotAfter, res.Serial, res.NotAfter)
	}
	if got := res.NotAfter.Sub(f.clk.now()); got > 49*time.Hour || got < 47*time.Hour {
		t.Errorf("lifetime %v, want the configured 48h", got)
	}
	if a := f.alerts(); len(a) != 1 || a[0] != "peer-enrolled" {
		t.Errorf("audit %v", a)
	}

	// The token worked once.
	if _, err := Enrol(ctx, f.addr, tok.String(), t.TempDir()); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("reused token: %v", err)
	}
	if a := f.alerts(); len(a) != 1 || a[0] != "enrolment-token-refused" {
		t.Errorf("audit %v", a)
	}

	// Renewal: a new key and serial, pinned; the old certificate can no
	// longer renew.
	old := filepath.Join(t.TempDir(), "old")
	copyDir(t, out, old)
	first := res.Serial
	res2, err := Renew(ctx, f.addr, out, "")
	if err != nil {
		t.Fatalf("Renew: %v", err)
	}
	if res2.Serial == first || !policy.SameSerial(f.pinned(t, "CT 01").CertSerial, res2.Serial) {
		t.Errorf("renewed serial %s (was %s), pinned %s", res2.Serial, first, f.pinned(t, "CT 01").CertSerial)
	}
	if bytes.Equal(readFile(t, filepath.Join(old, "CT_01.key")), readFile(t, res2.KeyFile)) {
		t.Error("renewal kept the old key")
	}
	if _, err := Renew(ctx, f.addr, old, ""); err == nil || !strings.Contains(err.Error(), "not the peer's current certificate") {
		t.Errorf("renewal with the replaced certificate: %v", err)
	}
	if a := f.alerts(); len(a) != 1 || a[0] != "peer-renewed" {
		t.Errorf("audit %v", a)
	}

	// Revoked: renewal refused and reported.
	if err := f.reg.Modify(ctx, "CT 01", func(p *policy.Peer) error { p.Revoke(); return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := Renew(ctx, f.addr, out, ""); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("renewal with a revoked certificate: %v", err)
	}
	if a := f.alerts(); len(a) != 1 || a[0] != "revoked-certificate" {
		t.Errorf("audit %v", a)
	}
}

func TestEnrolRefusals(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	expired := f.register(t, "LATE", "127.0.0.0/8")
	f.clk.add(time.Hour)
	elsewhere := f.register(t, "REMOTE", "10.9.9.9/32")
	removed := f.register(t, "GONE", "127.0.0.1/32")
	if err := f.reg.Remove(ctx, "GONE"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		tok  Token
	}{
		{"from an address not registered for the peer", elsewhere},
		{"expired token", expired},
		{"peer removed after the token was made", removed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Enrol(ctx, f.addr, tc.tok.String(), t.TempDir()); err == nil || !strings.Contains(err.Error(), "403") {
				t.Fatalf("Enrol: %v, want a refusal", err)
			}
			if a := f.alerts(); len(a) != 1 || a[0] != "enrolment-token-refused" {
				t.Errorf("audit %v", a)
			}
		})
	}
	// The refused tokens for REMOTE and GONE were not spent.
	pending, err := f.tokens.Pending()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := pending["REMOTE"]; !ok {
		t.Errorf("pending tokens %v: REMOTE's was spent by a refused request", pending)
	}
}

// TestRateLimit: one address gets RequestsPerMinute requests a minute.
func TestRateLimit(t *testing.T) {
	f := newFixture(t)
	f.srv.RequestsPerMinute = 2
	ctx := context.Background()
	try := func() error {
		_, err := Enrol(ctx, f.addr, Token{Secret: make([]byte, secretBytes), CAFingerprint: f.ca.Fingerprint()}.String(), t.TempDir())
		return err
	}
	for i, want := range []string{"403", "403", "429", "429"} {
		if err := try(); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("request %d: %v, want %s", i+1, err, want)
		}
	}
	f.clk.add(time.Minute)
	if err := try(); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("next minute: %v, want 403", err)
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(from)
	for _, e := range entries {
		if err := os.WriteFile(filepath.Join(to, e.Name()), readFile(t, filepath.Join(from, e.Name())), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
