package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dicomshield/dicomshield/internal/archive"
	"github.com/dicomshield/dicomshield/internal/config"
	"github.com/dicomshield/dicomshield/internal/dicomtest"
	"github.com/dicomshield/dicomshield/internal/doctor"
)

// startArchiveFromConfig serves the archive in dir as serve would, on the
// listeners its configuration names, until the test ends.
func startArchiveFromConfig(t *testing.T, dir string) {
	t.Helper()
	a, _, err := archive.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	tlsL, plainL, err := a.Listeners()
	if err != nil {
		a.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, tlsL, plainL, 5*time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		a.Close()
	})
}

// TestDoctorAgainstServe runs doctor against a running archive, as an
// administrator would, in JSON and in text.
func TestDoctorAgainstServe(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	tests := []struct {
		name      string
		plain     bool
		wantExit  int
		wantHigh  []string
		wantPlain string
	}{
		{"TLS only", false, 0, nil, ""},
		{"plain listener on the network", true, doctorHighExit, []string{"plaintext-listener", "peer-plaintext"}, "rejects unregistered AE titles"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			tlsAddr := fmt.Sprintf("127.0.0.1:%d", dicomtest.FreePort(t))
			cfg := fmt.Sprintf("version = 1\nlisten_tls = %q\nmetrics = \"\"\n", tlsAddr)
			var plainAddr string
			if tt.plain {
				plainAddr = fmt.Sprintf("0.0.0.0:%d", dicomtest.FreePort(t))
				cfg += fmt.Sprintf("listen = %q\naccept_risk = [\"plaintext\"]\n", plainAddr)
			}
			if err := writeDataConfig(dir, cfg); err != nil {
				t.Fatal(err)
			}
			args := []string{"peer", "add", "CT01", "--host", "10.0.4.21", "--allow", "echo,store", "--bundle", t.TempDir(), "--data", dir}
			if tt.plain {
				args = append(args, "--plaintext")
			}
			if code := Main(args, &bytes.Buffer{}, &bytes.Buffer{}); code != 0 {
				t.Fatalf("peer add: exit %d", code)
			}
			startArchiveFromConfig(t, dir)

			var out, errb bytes.Buffer
			code := Main([]string{"doctor", "--data", dir, "--json"}, &out, &errb)
			if code != tt.wantExit {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantExit, out.String(), errb.String())
			}
			var r doctor.Report
			if err := json.Unmarshal(out.Bytes(), &r); err != nil {
				t.Fatalf("JSON: %v\n%s", err, out.String())
			}
			tlsProbe := r.Probes[0]
			if tlsProbe.Listener != "tls" || tlsProbe.Address != tlsAddr || !tlsProbe.Up || tlsProbe.Certificate == nil ||
				!tlsProbe.Certificate.FromOurCA || !strings.Contains(tlsProbe.Result, "refuses clients without one") {
				t.Fatalf("TLS probe %+v", tlsProbe)
			}
			if tt.plain {
				if len(r.Probes) != 2 || !r.Probes[1].Up || !strings.Contains(r.Probes[1].Result, tt.wantPlain) ||
					!strings.HasPrefix(r.Probes[1].Address, "127.0.0.1:") {
					t.Fatalf("plain probe %+v", r.Probes)
				}
			}
			high := map[string]bool{}
			for _, f := range r.Findings {
				if f.Severity == doctor.High {
					high[f.Check] = true
				}
				if strings.HasPrefix(f.Check, "tls-") || f.Check == "listener-down" || f.Check == "probe-refused" || f.Check == "plain-accepts-strangers" {
					t.Errorf("a healthy listener reported: %+v", f)
				}
			}
			if len(high) != len(tt.wantHigh) {
				t.Errorf("high findings %v, want %v", high, tt.wantHigh)
			}
			for _, c := range tt.wantHigh {
				if !high[c] {
					t.Errorf("%s not reported as high: %+v", c, r.Findings)
				}
			}

			out.Reset()
			Main([]string{"doctor", "--data", dir}, &out, &errb)
			text := out.String()
			for _, want := range []string{"tls listener " + tlsAddr, "from this archive's CA", "What to do:", "MEDIUM  audit-not-forwarded"} {
				if !strings.Contains(text, want) {
					t.Errorf("text report does not say %q:\n%s", want, text)
				}
			}
		})
	}
}

// writeDataConfig makes the data directory dir with cfg as its
// configuration, as an administrator would before the first start.
func writeDataConfig(dir, cfg string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return os.WriteFile(config.Path(dir), []byte(cfg), 0o600)
}
