package archive_test

// User identity end to end: DCMTK's echoscu/storescu/findscu with -usr/-pwd
// and --jwt, and our own client, against a TLS archive whose peers come
// from `peer add` bundles and users from `user add`.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dicomshield/dicomshield/internal/archive"
	"github.com/dicomshield/dicomshield/internal/audit"
	"github.com/dicomshield/dicomshield/internal/cli"
	"github.com/dicomshield/dicomshield/internal/config"
	"github.com/dicomshield/dicomshield/internal/dicomtest"
	"github.com/dicomshield/dicomshield/internal/dimse"
	"github.com/dicomshield/dicomshield/internal/identity"
	"github.com/dicomshield/dicomshield/internal/store"
	"github.com/dicomshield/dicomshield/internal/ul"
)

// The test users' passwords (generated data, not secrets).
const (
	alicePass = "alice-viewer-passphrase"
	ctPass    = "ct-modality-passphrase"
)

// cheapArgon keeps the suite fast: `user add` hashes with it. The
// production parameters are tested in internal/identity.
var cheapArgon = identity.Params{Time: 1, Memory: 64, Threads: 1}

// events collects audit events.
type events struct {
	mu  sync.Mutex
	evs []audit.Event
}

func (e *events) Record(ev audit.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.evs = append(e.evs, ev)
}

func (e *events) auth() []audit.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []audit.Event
	for _, ev := range e.evs {
		if ev.Kind == audit.Authentication {
			out = append(out, ev)
		}
	}
	return out
}

// startAuditedServer is startServer with the audit recorder set before
// Serve starts, and the [identity] options given.
func startAuditedServer(t *testing.T, dir string, rec audit.Recorder, issuer, jwks string) *testServer {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := config.WriteDefault(config.Path(dir)); err != nil {
		t.Fatal(err)
	}
	if issuer != "" {
		b, err := os.ReadFile(config.Path(dir))
		if err != nil {
			t.Fatal(err)
		}
		s := strings.NewReplacer(`jwt_issuer = ""`, `jwt_issuer = "`+issuer+`"`, `jwt_audience = ""`, `jwt_audience = "dicomshield"`,
			`jwks = ""`, `jwks = "`+jwks+`"`).Replace(string(b))
		if err := os.WriteFile(config.Path(dir), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	logs := &logBuffer{}
	a, _, err := archive.Open(dir, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatalf("archive.Open: %v", err)
	}
	a.Audit = rec
	a.Config.ListenTLS, a.Config.Listen, a.Config.Metrics = "127.0.0.1:0", "", ""
	tlsL, _, err := a.Listeners()
	if err != nil {
		a.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &testServer{Dir: dir, A: a, TLSAddr: tlsL.Addr().String(), Logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- a.Serve(ctx, tlsL, nil, serveGrace) }()
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
		a.Close()
		if t.Failed() {
			t.Logf("archive log:\n%s", logs.String())
		}
	})
	return s
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// addUser runs `dicomshield user add` with the password on stdin.
func addUser(t *testing.T, dir, name, role, pass string) {
	t.Helper()
	var out, errb bytes.Buffer
	if code := cli.MainInput([]string{"user", "add", name, "--role", role, "--password-stdin", "--data", dir},
		strings.NewReader(pass+"\n"), &out, &errb); code != 0 {
		t.Fatalf("user add %s: exit %d: %s", name, code, errb.String())
	}
}

func TestUserIdentityDCMTK(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	dicomtest.RequireDCMTK(t, "storescu")
	t.Cleanup(identity.SetParamsForTesting(cheapArgon))
	iss := dicomtest.NewIssuer(t)
	dir := filepath.Join(t.TempDir(), "data")
	rec := &events{}
	s := startAuditedServer(t, dir, rec, "https://idp.test", iss.WriteJWKS(t))
	tlsPort := port(t, s.TLSAddr)
	ws := addPeer(t, dir, "WS1", "--allow", "echo,store,find,get", "--require-user")
	open := addPeer(t, dir, "OPEN1", "--allow", "echo,store,find")
	addUser(t, dir, "alice", "viewer", alicePass)
	addUser(t, dir, "ct-tech", "modality", ctPass)
	if out := runCLI(t, "peer", "list", "--data", dir); !strings.Contains(out, "REQUIRE USER") || !strings.Contains(out, "WS1") {
		t.Errorf("peer list does not show require_user:\n%s", out)
	}
	if out := runCLI(t, "user", "list", "--data", dir); !strings.Contains(out, "alice") || !strings.Contains(out, "viewer") || strings.Contains(out, "argon2") {
		t.Errorf("user list:\n%s", out)
	}

	writeJWT := func(claims map[string]any) string {
		p := filepath.Join(t.TempDir(), "token.jwt")
		if err := os.WriteFile(p, []byte(iss.Sign(t, nil, claims)), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	now := time.Now()
	goodJWT := writeJWT(map[string]any{"iss": "https://idp.test", "aud": "dicomshield", "sub": "dr-token",
		"exp": now.Add(5 * time.Minute).Unix(), "roles": []string{"modality"}})
	expiredJWT := writeJWT(map[string]any{"iss": "https://idp.test", "aud": "dicomshield", "sub": "dr-token",
		"exp": now.Add(-time.Hour).Unix(), "roles": []string{"modality"}})
	foreignJWT := writeJWT(map[string]any{"iss": "https://evil.test", "aud": "dicomshield", "sub": "dr-token",
		"exp": now.Add(5 * time.Minute).Unix(), "roles": []string{"admin"}})

	type outcome int
	const (
		accepted outcome = iota
		rejected         // A-ASSOCIATE-RJ
		refused          // associated, but the service was not offered
	)
	tests := []struct {
		name     string
		peer     bundle
		tool     string
		args     []string
		want     outcome
		authUser string // the user of the audit event ("" : none recorded)
		authOK   bool
	}{
		{"good password", ws, "storescu", []string{"-usr", "ct-tech", "-pwd", ctPass}, accepted, "ct-tech", true},
		{"good password, positive response", ws, "storescu", []string{"-usr", "ct-tech", "-pwd", ctPass, "-rsp"}, accepted, "ct-tech", true},
		{"wrong password", ws, "storescu", []string{"-usr", "ct-tech", "-pwd", "not-the-passphrase"}, rejected, "ct-tech", false},
		{"unknown user", ws, "storescu", []string{"-usr", "mallory", "-pwd", ctPass}, rejected, "mallory", false},
		{"empty password", ws, "storescu", []string{"-usr", "ct-tech", "-epw"}, rejected, "ct-tech", false},
		{"no credentials", ws, "storescu", nil, rejected, "", false},
		{"user name only", ws, "storescu", []string{"-usr", "ct-tech"}, rejected, "ct-tech", false},
		{"no credentials, peer without require_user", open, "storescu", nil, accepted, "-", false},
		{"user name only, peer without require_user", open, "storescu", []string{"-usr", "alice"}, accepted, "alice", true},
		{"wrong password, peer without require_user", open, "storescu", []string{"-usr", "ct-tech", "-pwd", "not-the-passphrase"}, rejected, "ct-tech", false},
		{"store as viewer", ws, "storescu", []string{"-usr", "alice", "-pwd", alicePass}, refused, "alice", true},
		{"store with a token", ws, "storescu", []string{"--jwt", goodJWT, "-rsp"}, accepted, "dr-token", true},
		{"expired token", ws, "storescu", []string{"--jwt", expiredJWT}, rejected, "", false},
		{"token from another issuer", ws, "storescu", []string{"--jwt", foreignJWT}, rejected, "", false},
		// DCMTK 3.6.7's findscu has no user identity options: our client.
		{"find as viewer", ws, "find", []string{"--user", "alice", "--password", alicePass}, accepted, "alice", true},
		{"find as modality", ws, "find", []string{"--user", "ct-tech", "--password", ctPass}, refused, "ct-tech", true},
		{"find with a modality token", ws, "find", []string{"--jwt", string(mustRead(t, goodJWT))}, refused, "dr-token", true},
		{"find without credentials", ws, "find", nil, rejected, "", false},
	}
	files := t.TempDir()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(rec.auth())
			var in *instance
			var r *dicomtest.Result
			if tc.tool == "storescu" {
				in = makeInstance(t, instanceSpec{})
				args := append([]string{"-v", "-aet", tc.peer.AE, "-aec", archiveAE}, tc.peer.DCMTKTLS()...)
				args = append(append(args, tc.args...), "127.0.0.1", tlsPort, in.writeFile(t, files))
				r = dicomtest.RunSCUIn(t, tc.peer.Dir, tc.tool, args...)
			} else {
				args := []string{"find", s.TLSAddr, "--aet", tc.peer.AE, "--aec", archiveAE, "--tls", "--ca", tc.peer.CAPath,
					"--cert", tc.peer.CertPath, "--key", tc.peer.KeyPath, "--level", "STUDY", "-k", "StudyInstanceUID"}
				var stdout, stderr bytes.Buffer
				code := cli.Main(append(args, tc.args...), &stdout, &stderr)
				r = &dicomtest.Result{Cmd: "dicomshield " + strings.Join(args, " "), ExitCode: code, Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
			}
			out := string(r.Stdout) + string(r.Stderr)
			for _, secret := range []string{alicePass, ctPass} {
				if strings.Contains(s.Logs.String(), secret) {
					t.Fatalf("the archive log holds a password")
				}
			}
			switch tc.want {
			case accepted:
				if r.ExitCode != 0 {
					t.Fatalf("want success:\n%s", r.Describe())
				}
			case rejected:
				if r.ExitCode == 0 || !(strings.Contains(out, "Association Rejected") || strings.Contains(out, "rejected permanently")) {
					t.Fatalf("want A-ASSOCIATE-RJ:\n%s", r.Describe())
				}
			case refused:
				if r.ExitCode == 0 || strings.Contains(out, "Association Rejected") || strings.Contains(out, "rejected") {
					t.Fatalf("want an accepted association without the service:\n%s", r.Describe())
				}
				// A storage context stays open to a viewer for C-GET's
				// sub-operations, so its C-STORE is refused with 0124 (not
				// authorized); other services are not negotiated at all.
				lower := strings.ToLower(out)
				if !strings.Contains(lower, "no presentation context") && !strings.Contains(lower, "no accepted presentation context") &&
					!strings.Contains(lower, "status: 0x124") {
					t.Errorf("want a refusal: no presentation context, or status 0124:\n%s", r.Describe())
				}
			}
			if in != nil {
				_, err := s.A.Index.Get(context.Background(), in.UID)
				if stored := err == nil; stored != (tc.want == accepted) {
					t.Errorf("instance stored: %v (index: %v), want %v", stored, err, tc.want == accepted)
				}
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					t.Errorf("index: %v", err)
				}
			}
			evs := rec.auth()[before:]
			if tc.authUser == "-" {
				if len(evs) != 0 {
					t.Errorf("authentication events for an association without identity: %+v", evs)
				}
				return
			}
			if len(evs) != 1 {
				t.Fatalf("%d authentication events, want 1: %+v", len(evs), evs)
			}
			ev := evs[0]
			if ev.User != tc.authUser || (ev.Outcome == audit.Success) != tc.authOK || ev.Peer != tc.peer.AE {
				t.Errorf("audit event %+v; want user %q, success %v, peer %s", ev, tc.authUser, tc.authOK, tc.peer.AE)
			}
			if strings.Contains(ev.Description, alicePass) || strings.Contains(ev.Description, ctPass) {
				t.Error("the audit event holds a password")
			}
		})
	}
}

// TestUserIdentityClient: our own client's --user/--password and --jwt,
// and what the rejection says; a removed user or changed password is
// refused from the next association, without a restart.
func TestUserIdentityClient(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	t.Cleanup(identity.SetParamsForTesting(cheapArgon))
	iss := dicomtest.NewIssuer(t)
	dir := filepath.Join(t.TempDir(), "data")
	s := startAuditedServer(t, dir, audit.Discard{}, "https://idp.test", iss.WriteJWKS(t))
	ws := addPeer(t, dir, "WS1", "--allow", "echo,store,find,get", "--require-user")
	addUser(t, dir, "alice", "viewer", alicePass)
	tok := iss.Sign(t, map[string]any{"alg": "ES256", "kid": "ec-1"}, map[string]any{"iss": "https://idp.test", "aud": "dicomshield",
		"sub": "dr-token", "exp": time.Now().Add(5 * time.Minute).Unix(), "roles": "modality"})
	in := makeInstance(t, instanceSpec{})
	file := in.writeFile(t, t.TempDir())
	tlsArgs := []string{"--aet", ws.AE, "--aec", archiveAE, "--tls", "--ca", ws.CAPath, "--cert", ws.CertPath, "--key", ws.KeyPath}
	run := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := cli.Main(append(args, tlsArgs...), &out, &errb)
		return code, out.String() + errb.String()
	}
	if code, out := run("store", s.TLSAddr, file, "--jwt", tok); code != 0 {
		t.Fatalf("store --jwt: exit %d\n%s", code, out)
	}
	if _, err := s.A.Index.Get(context.Background(), in.UID); err != nil {
		t.Fatalf("stored with a token, not in the index: %v", err)
	}
	t.Setenv("DICOMSHIELD_PASSWORD", "")
	if code, out := run("echo", s.TLSAddr, "--user", "alice", "--password", alicePass); code != 0 {
		t.Fatalf("echo as alice: exit %d\n%s", code, out)
	}
	code, out := run("echo", s.TLSAddr)
	if code == 0 || !strings.Contains(out, "rejected permanently") {
		t.Fatalf("echo without a user: exit %d\n%s", code, out)
	}

	// peer set turns the requirement off and on again, the same
	// certificate still valid; a change takes effect without a restart.
	runCLI(t, "peer", "set", ws.AE, "--require-user=false", "--data", dir)
	if code, out := run("echo", s.TLSAddr); code != 0 {
		t.Fatalf("echo without a user after peer set --require-user=false: exit %d\n%s", code, out)
	}
	runCLI(t, "peer", "set", ws.AE, "--require-user", "--data", dir)
	if code, _ := run("echo", s.TLSAddr); code == 0 {
		t.Fatal("echo without a user accepted after peer set --require-user")
	}
	if c := cli.Main([]string{"peer", "set", ws.AE, "--data", dir}, io.Discard, io.Discard); c == 0 {
		t.Error("peer set with nothing to change succeeded")
	}

	var stdout, stderr bytes.Buffer
	if c := cli.MainInput([]string{"user", "passwd", "alice", "--password-stdin", "--data", dir}, strings.NewReader("a brand new passphrase\n"), &stdout, &stderr); c != 0 {
		t.Fatalf("user passwd: %s", stderr.String())
	}
	if code, out := run("echo", s.TLSAddr, "--user", "alice", "--password", alicePass); code == 0 {
		t.Fatalf("the old password still works after user passwd:\n%s", out)
	}
	if code, out := run("echo", s.TLSAddr, "--user", "alice", "--password", "a brand new passphrase"); code != 0 {
		t.Fatalf("the new password: exit %d\n%s", code, out)
	}
	runCLI(t, "user", "remove", "alice", "--data", dir)
	if code, _ := run("echo", s.TLSAddr, "--user", "alice", "--password", "a brand new passphrase"); code == 0 {
		t.Fatal("a removed user still associates")
	}

	// Our client reports the rejection as an RJ, permanent, service user, no reason.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := dimse.Dial(ctx, s.TLSAddr, &dimse.DialOptions{CallingAE: ws.AE, CalledAE: archiveAE, TLS: ws.TLS(t),
		Identity: &ul.UserIdentity{Type: ul.IdentityUsernamePasscode, Primary: []byte("nobody"), Secondary: []byte("whatever-passphrase")},
		Contexts: proposals(nil, nil)})
	rj := rejection(t, err)
	if rj.Result != ul.RejectPermanent || rj.Source != ul.SourceServiceUser || rj.Reason != ul.ReasonNoReason {
		t.Errorf("rejection %+v, want permanent, service user, no reason given", rj)
	}
}

// TestUserAddRefuses: the password never comes from a flag, a short one is
// refused, and there is no terminal to prompt on in a test.
func TestUserAddRefuses(t *testing.T) {
	t.Cleanup(identity.SetParamsForTesting(cheapArgon))
	dir := filepath.Join(t.TempDir(), "data")
	tests := []struct {
		name  string
		args  []string
		stdin string
		want  string
	}{
		{"no role", []string{"user", "add", "bob", "--password-stdin"}, "a long enough passphrase\n", "--role is required"},
		{"unknown role", []string{"user", "add", "bob", "--role", "root", "--password-stdin"}, "a long enough passphrase\n", "unknown role"},
		{"short password", []string{"user", "add", "bob", "--role", "viewer", "--password-stdin"}, "short\n", "at least 12"},
		{"empty stdin", []string{"user", "add", "bob", "--role", "viewer", "--password-stdin"}, "", "no password"},
		{"no terminal", []string{"user", "add", "bob", "--role", "viewer"}, "a long enough passphrase\n", "--password-stdin"},
		{"password flag", []string{"user", "add", "bob", "--role", "viewer", "--password", "x"}, "", "unknown flag"},
		{"bad name", []string{"user", "add", "bob smith", "--role", "viewer", "--password-stdin"}, "a long enough passphrase\n", "user name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := cli.MainInput(append(tc.args, "--data", dir), strings.NewReader(tc.stdin), &out, &errb)
			if code == 0 || !strings.Contains(errb.String(), tc.want) {
				t.Fatalf("exit %d, stderr %q; want failure mentioning %q", code, errb.String(), tc.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, identity.UsersFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused user add wrote the users file: %v", err)
	}
}

// TestIdentityNegotiation: what the A-ASSOCIATE-AC answers for each
// identity type, peer setting and positive-response flag, seen by our own
// client; and the user's name reaches the handlers.
func TestIdentityNegotiation(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	t.Cleanup(identity.SetParamsForTesting(cheapArgon))
	dir := filepath.Join(t.TempDir(), "data")
	s := startAuditedServer(t, dir, audit.Discard{}, "", "")
	req := addPeer(t, dir, "REQ1", "--allow", "echo,store", "--require-user")
	open := addPeer(t, dir, "OPEN1", "--allow", "echo,store")
	addUser(t, dir, "ct-tech", "modality", ctPass)
	pw := func(pass string, rsp bool) *ul.UserIdentity {
		return &ul.UserIdentity{Type: ul.IdentityUsernamePasscode, PositiveResponseRequested: rsp, Primary: []byte("ct-tech"), Secondary: []byte(pass)}
	}
	tests := []struct {
		name     string
		peer     bundle
		id       *ul.UserIdentity
		accepted bool
		response bool // the AC carries the identity response (0x59)
	}{
		{"password, response requested", req, pw(ctPass, true), true, true},
		{"password, no response requested", req, pw(ctPass, false), true, false},
		{"wrong password, response requested", req, pw("wrong-passphrase", true), false, false},
		{"user name only, response requested", open, &ul.UserIdentity{Type: ul.IdentityUsername, PositiveResponseRequested: true, Primary: []byte("ct-tech")}, true, false},
		{"kerberos, peer without require_user", open, &ul.UserIdentity{Type: ul.IdentityKerberos, Primary: []byte("ticket")}, true, false},
		{"kerberos, peer with require_user", req, &ul.UserIdentity{Type: ul.IdentityKerberos, Primary: []byte("ticket")}, false, false},
		{"token without an issuer configured", req, &ul.UserIdentity{Type: ul.IdentityJWT, Primary: []byte("a.b.c")}, false, false},
		{"oversized passcode", req, pw(strings.Repeat("x", 5000), true), false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cl, err := dimse.Dial(ctx, s.TLSAddr, &dimse.DialOptions{CallingAE: tc.peer.AE, CalledAE: archiveAE, TLS: tc.peer.TLS(t),
				Identity: tc.id, Contexts: proposals([]string{scImage}, allSyntaxes[:1])})
			if !tc.accepted {
				rj := rejection(t, err)
				if rj.Result != ul.RejectPermanent || rj.Source != ul.SourceServiceUser || rj.Reason != ul.ReasonNoReason {
					t.Errorf("rejection %+v, want permanent, service user, no reason given", rj)
				}
				return
			}
			if err != nil {
				t.Fatalf("want accepted: %v", err)
			}
			defer cl.Release()
			if got := cl.Association().AC().User.HasIdentityResp; got != tc.response {
				t.Errorf("identity response in the AC: %v, want %v", got, tc.response)
			}
			if len(cl.Association().AC().User.IdentityResp) != 0 {
				t.Errorf("identity response %q, want empty", cl.Association().AC().User.IdentityResp)
			}
		})
	}

	// The store handler knows the association's user.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := dimse.Dial(ctx, s.TLSAddr, &dimse.DialOptions{CallingAE: req.AE, CalledAE: archiveAE, TLS: req.TLS(t),
		Identity: pw(ctPass, false), Contexts: proposals([]string{scImage}, allSyntaxes[:1])})
	if err != nil {
		t.Fatal(err)
	}
	mustStore(t, cl, makeInstance(t, instanceSpec{}))
	cl.Release()
	if !strings.Contains(s.Logs.String(), `msg=stored calling_ae=REQ1 user=ct-tech`) {
		t.Errorf("the store handler did not see the user:\n%s", s.Logs.String())
	}
}
