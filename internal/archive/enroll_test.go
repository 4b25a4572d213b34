package archive_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/dicomshield/dicomshield/internal/archive"
	"github.com/dicomshield/dicomshield/internal/audit"
	"github.com/dicomshield/dicomshield/internal/cli"
	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/dicomtest"
	"github.com/dicomshield/dicomshield/internal/enroll"
	"github.com/dicomshield/dicomshield/internal/pki"
)

// runCLIFails runs the command line and fails the test if it exits 0; it
// returns stdout and stderr.
func runCLIFails(t testing.TB, args ...string) (string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	if code := cli.Main(args, &out, &errb); code == 0 {
		t.Fatalf("dicomshield %s: succeeded, want a failure\nstdout:\n%s", strings.Join(args, " "), out.String())
	}
	return out.String(), errb.String()
}

// TestEnrolmentDCMTK is the whole story with real DCMTK: "peer add
// --token" on the archive, "enroll" on the device, storescu with the
// enrolled certificate; a second use of the token, a token naming another
// CA; renewal, after which the old certificate is refused; revocation,
// after which the current one is refused, all without a restart.
func TestEnrolmentDCMTK(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	dicomtest.RequireDCMTK(t, "storescu")
	dir := filepath.Join(t.TempDir(), "data")
	logs := &logBuffer{}
	a, _, err := archive.Open(dir, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var alerts []string
	// Only the alerts this test is about: the trail also records every
	// association accepted and refused.
	a.Audit = audit.Func(func(ev audit.Event) {
		switch ev.Alert {
		case "peer-enrolled", "peer-renewed", "enrolment-token-refused", "revoked-certificate":
			mu.Lock()
			defer mu.Unlock()
			alerts = append(alerts, ev.Alert)
		}
	})
	takeAlerts := func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := alerts
		alerts = nil
		return out
	}
	a.Config.ListenTLS, a.Config.Listen, a.Config.Metrics = "127.0.0.1:0", "", ""
	a.Config.Enroll.Listen = "127.0.0.1:0"
	tlsL, _, err := a.Listeners()
	if err != nil {
		t.Fatal(err)
	}
	el, err := a.ListenEnroll()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served, enrolServed := make(chan error, 1), make(chan error, 1)
	go func() { served <- a.Serve(ctx, tlsL, nil, serveGrace) }()
	go func() { enrolServed <- a.ServeEnroll(ctx, el) }()
	t.Cleanup(func() {
		cancel()
		for _, ch := range []chan error{served, enrolServed} {
			if err := <-ch; err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("serve: %v", err)
			}
		}
		a.Close()
		if t.Failed() {
			t.Logf("archive log:\n%s", logs.String())
		}
	})
	enrolAddr, tlsPort := el.Addr().String(), port(t, tlsL.Addr().String())

	out := runCLI(t, "peer", "add", "CT01", "--host", "127.0.0.1", "--allow", "echo,store", "--token", "--data", dir)
	var token string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "dsenroll1.") {
			token = l
		}
	}
	if token == "" {
		t.Fatalf("peer add --token printed no token:\n%s", out)
	}
	if got := runCLI(t, "peer", "list", "--data", dir); !strings.Contains(got, "awaiting enrolment") {
		t.Errorf("peer list before enrolment:\n%s", got)
	}
	tokFile, _ := os.ReadFile(archive.TokensPath(dir))
	if bytes.Contains(tokFile, []byte(strings.Split(token, ".")[1])) {
		t.Error("the token's secret is stored in clear")
	}

	// A token with another CA's fingerprint: enroll refuses the server.
	other, _, err := pki.LoadOrCreate(filepath.Join(t.TempDir(), "other-ca"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := enroll.ParseToken(token)
	if err != nil {
		t.Fatal(err)
	}
	wrong := enroll.Token{Secret: tok.Secret, CAFingerprint: other.Fingerprint()}
	devDir := filepath.Join(t.TempDir(), "ct01")
	if _, stderr := runCLIFails(t, "enroll", "--token", wrong.String(), "--server", enrolAddr, "--out", devDir); !strings.Contains(stderr, "not the one named in the token") {
		t.Errorf("enroll with a wrong fingerprint said:\n%s", stderr)
	}

	// Enrolment, then storescu with the enrolled bundle as it is.
	out = runCLI(t, "enroll", "--token", token, "--server", enrolAddr, "--out", devDir)
	if !strings.Contains(out, "enrolled as CT01") {
		t.Errorf("enroll said:\n%s", out)
	}
	if fi, err := os.Stat(filepath.Join(devDir, "CT01.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("CT01.key: %v %v", fi, err)
	}
	if a := takeAlerts(); len(a) != 1 || a[0] != "peer-enrolled" {
		t.Errorf("audit after enrolment: %v", a)
	}
	file := makeInstance(t, instanceSpec{TS: dicom.ExplicitVRLittleEndianUID}).writeFile(t, t.TempDir())
	storescu := func(bundleDir string) *dicomtest.Result {
		return dicomtest.RunSCUIn(t, bundleDir, "storescu", "-v", "-aet", "CT01", "-aec", archiveAE,
			"+tls", "CT01.key", "CT01.crt", "+cf", "ca.pem", "127.0.0.1", tlsPort, file)
	}
	mustStoreOK := func(what, bundleDir string) {
		t.Helper()
		if r := storescu(bundleDir); r.ExitCode != 0 || !strings.Contains(string(r.Stderr)+string(r.Stdout), "Received Store Response (Success)") {
			t.Fatalf("%s: storescu failed:\n%s", what, r.Describe())
		}
	}
	mustStoreRefused := func(what, bundleDir string) {
		t.Helper()
		r := storescu(bundleDir)
		if out := string(r.Stderr) + string(r.Stdout); strings.Contains(out, "Store Response (Success)") || !strings.Contains(out, "Association Rejected") {
			t.Fatalf("%s: storescu was not refused:\n%s", what, r.Describe())
		}
	}
	mustStoreOK("enrolled certificate", devDir)
	if got := runCLI(t, "peer", "list", "--data", dir); !strings.Contains(got, "active") {
		t.Errorf("peer list after enrolment:\n%s", got)
	}

	// The token worked once.
	if _, stderr := runCLIFails(t, "enroll", "--token", token, "--server", enrolAddr, "--out", t.TempDir()); !strings.Contains(stderr, "refused") {
		t.Errorf("second use of the token said:\n%s", stderr)
	}
	if a := takeAlerts(); len(a) != 1 || a[0] != "enrolment-token-refused" {
		t.Errorf("audit after token reuse: %v", a)
	}

	// Renewal: not due yet without --force; then the old certificate is
	// refused and the new one works.
	if out := runCLI(t, "enroll", "--renew", "--server", enrolAddr, "--out", devDir); !strings.Contains(out, "renewal is due from") {
		t.Errorf("early renewal said:\n%s", out)
	}
	oldDir := filepath.Join(t.TempDir(), "old")
	if err := os.MkdirAll(oldDir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ca.pem", "CT01.crt", "CT01.key"} {
		b, _ := os.ReadFile(filepath.Join(devDir, f))
		if err := os.WriteFile(filepath.Join(oldDir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if out := runCLI(t, "enroll", "--renew", "--force", "--server", enrolAddr, "--out", devDir); !strings.Contains(out, "renewed the certificate of CT01") {
		t.Errorf("renewal said:\n%s", out)
	}
	mustStoreOK("renewed certificate", devDir)
	mustStoreRefused("certificate replaced by renewal", oldDir)
	if a := takeAlerts(); len(a) != 1 || a[0] != "peer-renewed" {
		t.Errorf("audit after renewal: %v", a)
	}

	// Revocation: refused at the next association, no restart.
	if out := runCLI(t, "peer", "revoke", "CT01", "--data", dir); !strings.Contains(out, "revoked certificate") {
		t.Errorf("peer revoke said:\n%s", out)
	}
	takeAlerts()
	mustStoreRefused("revoked certificate", devDir)
	if a := takeAlerts(); len(a) != 1 || a[0] != "revoked-certificate" {
		t.Errorf("audit after a revoked certificate was presented: %v", a)
	}
	if got := runCLI(t, "peer", "list", "--data", dir); !strings.Contains(got, "revoked") {
		t.Errorf("peer list after revocation:\n%s", got)
	}
	if _, stderr := runCLIFails(t, "enroll", "--renew", "--force", "--server", enrolAddr, "--out", devDir); !strings.Contains(stderr, "revoked") {
		t.Errorf("renewal with the revoked certificate said:\n%s", stderr)
	}
}
