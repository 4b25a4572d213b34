package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/dicomtest"
	"github.com/dicomshield/dicomshield/internal/dimse"
	"github.com/dicomshield/dicomshield/internal/ul"
)

const (
	ctImage      = "1.2.840.10008.5.1.4.1.1.2"
	mrImage      = "1.2.840.10008.5.1.4.1.1.4"
	scImage      = "1.2.840.10008.5.1.4.1.1.7"
	comprehensSR = "1.2.840.10008.5.1.4.1.1.88.33"
	pdfStorage   = "1.2.840.10008.5.1.4.1.1.104.1"
	// unsupportedClass is not accepted by the test archive.
	unsupportedClass = "1.2.826.0.1.3680043.10.1.999"
	// refusedInstance is answered with a failure status by the test archive.
	refusedInstance = "1.2.826.0.1.3680043.10.2.999"
)

// testArchive is an in-memory SCP for the network commands: it stores,
// answers queries from a fixed list, retrieves what it holds, and records
// what it was sent.
type testArchive struct {
	mu         sync.Mutex
	data       map[string][]byte // SOP instance UID -> data set bytes
	ts         map[string]string
	class      map[string]string
	extra      []dimse.Instance // offered by C-GET/C-MOVE besides data
	identities []*ul.UserIdentity
	queries    []*dicom.DataSet
	matches    []*dicom.DataSet
	matchDelay time.Duration
	emitted    int
	cancelled  bool
	assocs     int
	dests      map[string]string
	destTLS    *tls.Config
}

func newTestArchive() *testArchive {
	return &testArchive{data: map[string][]byte{}, ts: map[string]string{}, class: map[string]string{}, dests: map[string]string{}}
}

func (a *testArchive) put(class, inst, ts string, data []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.data[inst], a.ts[inst], a.class[inst] = data, ts, class
}

func (a *testArchive) get(inst string) ([]byte, string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	b, ok := a.data[inst]
	return b, a.ts[inst], ok
}

func (a *testArchive) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.data)
}

func (a *testArchive) associations() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.assocs
}

func (a *testArchive) server(tlsConf *tls.Config) *dimse.Server {
	return &dimse.Server{
		TLS: tlsConf,
		UL:  ul.Config{CloseTimeout: 200 * time.Millisecond},
		Accept: func(r *dimse.AssocRequest) (*ul.AssociateAC, any, *ul.AssociateRJ) {
			switch {
			case r.RQ.CallingAE == "STRANGER":
				return nil, nil, &ul.AssociateRJ{Result: ul.RejectPermanent, Source: ul.SourceServiceUser, Reason: ul.ReasonCallingAENotRecognized}
			case r.RQ.CalledAE != "ARCHIVE":
				return nil, nil, &ul.AssociateRJ{Result: ul.RejectPermanent, Source: ul.SourceServiceUser, Reason: ul.ReasonCalledAENotRecognized}
			}
			a.mu.Lock()
			a.assocs++
			a.identities = append(a.identities, r.RQ.User.Identity)
			a.mu.Unlock()
			return dimse.Negotiate(r.RQ, func(abstract string) []string {
				if abstract == unsupportedClass {
					return nil
				}
				return []string{dicom.ExplicitVRLittleEndianUID, dicom.ImplicitVRLittleEndianUID, dicom.DeflatedExplicitVRLittleEndianUID}
			}), nil, nil
		},
		Store: func(ctx context.Context, r *dimse.Request, data io.Reader) dimse.Status {
			b, err := io.ReadAll(data)
			if err != nil {
				return dimse.Status{Code: dimse.StatusProcessingFailure}
			}
			if r.Command.AffectedSOPInstance == refusedInstance {
				return dimse.Status{Code: dimse.StatusOutOfResources, Comment: "disk full"}
			}
			a.put(r.Command.AffectedSOPClass, r.Command.AffectedSOPInstance, r.TransferSyntax, b)
			return dimse.Status{Code: dimse.StatusSuccess}
		},
		Find: func(ctx context.Context, r *dimse.Request, id *dicom.DataSet, emit func(*dicom.DataSet) error) dimse.Status {
			a.mu.Lock()
			a.queries = append(a.queries, id)
			matches, delay := a.matches, a.matchDelay
			a.mu.Unlock()
			for _, m := range matches {
				if err := emit(m); err != nil {
					a.mu.Lock()
					a.cancelled = true
					a.mu.Unlock()
					return dimse.Status{Code: dimse.StatusCancel}
				}
				a.mu.Lock()
				a.emitted++
				a.mu.Unlock()
				time.Sleep(delay)
			}
			return dimse.Status{Code: dimse.StatusSuccess}
		},
		Retrieve: func(ctx context.Context, r *dimse.Request, id *dicom.DataSet) ([]dimse.Instance, dimse.Status) {
			a.mu.Lock()
			defer a.mu.Unlock()
			a.queries = append(a.queries, id)
			uids := make([]string, 0, len(a.data))
			for uid := range a.data {
				uids = append(uids, uid)
			}
			sort.Strings(uids)
			var out []dimse.Instance
			for _, uid := range uids {
				b := a.data[uid]
				out = append(out, dimse.Instance{SOPClassUID: a.class[uid], SOPInstanceUID: uid, TransferSyntax: a.ts[uid],
					Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }})
			}
			return append(out, a.extra...), dimse.Status{Code: dimse.StatusSuccess}
		},
		MoveDestination: func(ctx context.Context, r *dimse.Request, ae string) (*dimse.Destination, error) {
			a.mu.Lock()
			defer a.mu.Unlock()
			addr, ok := a.dests[ae]
			if !ok {
				return nil, errors.New("unknown destination")
			}
			return &dimse.Destination{Addr: addr, Options: dimse.DialOptions{CallingAE: "ARCHIVE", CalledAE: "ARCHIVE", TLS: a.destTLS}}, nil
		},
	}
}

// startServer serves s on 127.0.0.1 until the test ends.
func startServer(t *testing.T, s *dimse.Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		if err := <-done; err != dimse.ErrServerClosed {
			t.Errorf("Serve returned %v", err)
		}
	})
	return l.Addr().String()
}

// closedPort returns a 127.0.0.1 address nothing listens on.
func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Main(args, &out, &errb)
	return code, out.String(), errb.String()
}

// cliCase is one command line and what its outcome must contain.
type cliCase struct {
	name   string
	args   []string
	code   int
	stdout []string
	stderr []string
}

func (c cliCase) check(t *testing.T) (string, string) {
	t.Helper()
	code, out, errs := runCLI(c.args...)
	if code != c.code {
		t.Errorf("exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", code, c.code, out, errs)
	}
	for _, s := range c.stdout {
		if !strings.Contains(out, s) {
			t.Errorf("stdout lacks %q:\n%s", s, out)
		}
	}
	for _, s := range c.stderr {
		if !strings.Contains(errs, s) {
			t.Errorf("stderr lacks %q:\n%s", s, errs)
		}
	}
	return out, errs
}

func TestEcho(t *testing.T) {
	pki := dicomtest.NewPKI(t, "MODALITY")
	other := dicomtest.NewPKI(t, "MODALITY")
	arch := newTestArchive()
	plain := startServer(t, arch.server(nil))
	secure := startServer(t, arch.server(pki.Server))
	tlsFlags := []string{"--tls", "--ca", pki.CAFile, "--cert", pki.ClientCert, "--key", pki.ClientKey}
	with := func(cmd string, more ...string) []string { return append(append([]string{cmd}, tlsFlags...), more...) }

	tests := []cliCase{
		{"ok", []string{"echo", "--aec", "ARCHIVE", plain}, 0,
			[]string{"C-ECHO to ARCHIVE@" + plain + ": success ("}, nil},
		{"called AE rejected", []string{"echo", plain}, 1, nil,
			[]string{"ANY-SCP@" + plain + ": association rejected permanently by the called application: called AE title not recognized"}},
		{"calling AE rejected", []string{"echo", "--aet", "STRANGER", "--aec", "ARCHIVE", plain}, 1, nil,
			[]string{"association rejected permanently by the called application: calling AE title not recognized"}},
		{"closed port", []string{"echo", "--aec", "ARCHIVE", closedPort(t)}, 1, nil,
			[]string{"connection refused (no service listens on that port)"}},
		{"not an address", []string{"echo", "127.0.0.1"}, 1, nil, []string{`"127.0.0.1" is not HOST:PORT`}},
		{"bad port", []string{"echo", "127.0.0.1:70000"}, 1, nil, []string{"port must be a number from 1 to 65535"}},
		{"long AE title", []string{"echo", "--aet", "ABCDEFGHIJKLMNOPQ", plain}, 1, nil, []string{"1 to 16 characters"}},
		{"tls", with("echo", "--aec", "ARCHIVE", secure), 0,
			[]string{"C-ECHO to ARCHIVE@" + secure + ": success"}, nil},
		{"tls without ca", []string{"echo", "--tls", "--aec", "ARCHIVE", secure}, 1, nil,
			[]string{"--tls needs --ca FILE", "impersonate"}},
		{"ca without tls", []string{"echo", "--ca", pki.CAFile, "--aec", "ARCHIVE", secure}, 1, nil,
			[]string{"add --tls"}},
		{"cert without key", []string{"echo", "--tls", "--ca", pki.CAFile, "--cert", pki.ClientCert, "--aec", "ARCHIVE", secure}, 1, nil,
			[]string{"--cert and --key go together"}},
		{"tls unknown CA", []string{"echo", "--tls", "--ca", other.CAFile, "--cert", pki.ClientCert, "--key", pki.ClientKey, "--aec", "ARCHIVE", secure}, 1, nil,
			[]string{"TLS with " + secure + " failed", "unknown authority"}},
		{"tls without client certificate", []string{"echo", "--tls", "--ca", pki.CAFile, "--aec", "ARCHIVE", secure}, 1, nil,
			[]string{"TLS"}},
		{"tls to a plain server", with("echo", "--aec", "ARCHIVE", plain), 1, nil,
			[]string{"TLS with " + plain + " failed"}},
		{"plain to a tls server", []string{"echo", "--aec", "ARCHIVE", secure}, 1, nil,
			[]string{"add --tls"}},
		{"insecure skip verify", []string{"echo", "--tls", "--insecure-skip-verify", "--cert", pki.ClientCert, "--key", pki.ClientKey, "--aec", "ARCHIVE", secure}, 0,
			[]string{"success"}, nil},
		{"password without user", []string{"echo", "--password", "x", "--aec", "ARCHIVE", plain}, 1, nil,
			[]string{"--password needs --user"}},
		{"jwt and user", []string{"echo", "--jwt", "x", "--user", "u", "--aec", "ARCHIVE", plain}, 1, nil,
			[]string{"give one"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.check(t) })
	}
}

// TestEchoIdentity checks the user identity each flag combination sends.
func TestEchoIdentity(t *testing.T) {
	arch := newTestArchive()
	addr := startServer(t, arch.server(nil))
	tests := []struct {
		name      string
		flags     []string
		typ       byte
		primary   string
		secondary string
	}{
		{"none", nil, 0, "", ""},
		{"user", []string{"--user", "alice"}, ul.IdentityUsername, "alice", ""},
		{"user and password", []string{"--user", "alice", "--password", "s3cret"}, ul.IdentityUsernamePasscode, "alice", "s3cret"},
		{"jwt", []string{"--jwt", "eyJhbGciOi.x.y"}, ul.IdentityJWT, "eyJhbGciOi.x.y", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(passwordEnv, "")
			args := append([]string{"echo", "--aec", "ARCHIVE", addr}, tc.flags...)
			code, _, errs := runCLI(args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			if tc.typ != 0 && !strings.Contains(errs, "clear text") {
				t.Errorf("no clear-text warning: %q", errs)
			}
			arch.mu.Lock()
			id := arch.identities[len(arch.identities)-1]
			arch.mu.Unlock()
			switch {
			case tc.typ == 0 && id != nil:
				t.Fatalf("identity sent: %+v", id)
			case tc.typ == 0:
			case id == nil || id.Type != tc.typ || string(id.Primary) != tc.primary || string(id.Secondary) != tc.secondary:
				t.Fatalf("identity %+v, want type %d %q %q", id, tc.typ, tc.primary, tc.secondary)
			}
		})
	}
	t.Run("password from environment", func(t *testing.T) {
		t.Setenv(passwordEnv, "fromenv")
		if code, _, errs := runCLI("echo", "--aec", "ARCHIVE", "--user", "bob", addr); code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		arch.mu.Lock()
		id := arch.identities[len(arch.identities)-1]
		arch.mu.Unlock()
		if id == nil || id.Type != ul.IdentityUsernamePasscode || string(id.Secondary) != "fromenv" {
			t.Fatalf("identity %+v", id)
		}
	})
}

func TestSanitizeAndUID(t *testing.T) {
	for in, want := range map[string]string{
		"Doe^John":       "Doe^John",
		"M\u00fcller":    "M\u00fcller",
		"red\x1b[31mX":   `red\x1b[31mX`,
		"tab\there":      `tab\there`,
		"bad\xffutf8":    `bad\xffutf8`,
		"c1\u009bcsi":    `c1\u009bcsi`,
		"line\nfeed\r\n": `line\nfeed\r\n`,
	} {
		if got := sanitize(in); got != want {
			t.Errorf("sanitize(%q) = %q, want %q", in, got, want)
		}
	}
	for s, want := range map[string]bool{
		"1.2.840.10008.1.1": true, "1.2.03": true, "": false, ".": false, "..": false, "../../evil": false,
		"1..2": false, "1.2.": false, ".1.2": false, "1.2/3": false, "1.2.3a": false, strings.Repeat("1", 65): false,
	} {
		if isUID(s) != want {
			t.Errorf("isUID(%q) = %v", s, !want)
		}
	}
}

// TestEchoTimeout has a peer accept the connection and never answer.
func TestEchoTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	start := time.Now()
	cliCase{args: []string{"echo", "--timeout", "300ms", l.Addr().String()}, code: 1,
		stderr: []string{"no answer from ANY-SCP@" + l.Addr().String() + " within 300ms"}}.check(t)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v", d)
	}
}
