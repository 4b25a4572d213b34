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
	"github.com/dicomshield/dicomshield/internal/audit"
	"github.com/dicomshield/dicomshield/internal/config"
	"github.com/dicomshield/dicomshield/internal/dicomtest"
	"github.com/dicomshield/dicomshield/internal/doctor"
)

// startArchiveFromConfig serves the archive in dir as serve would, on the
// listeners its configuration names, until the test ends; rec, if given,
// receives its audit events.
func startArchiveFromConfig(t *testing.T, dir string, rec ...audit.Recorder) {
	t.Helper()
	a, _, err := archive.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rec {
		a.Audit = r
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
			for _, want := range []string{"tls listener " + tlsAddr + " (probed from 127.0.0.1)", "from this archive's CA", "What to do:", "MEDIUM  audit-not-forwarded"} {
				if !strings.Contains(text, want) {
					t.Errorf("text report does not say %q:\n%s", want, text)
				}
			}
		})
	}
}

// TestDoctorCountsItsRejections: doctor says how many rejections each
// run counts against the address its probes come from and after how many
// runs that address is banned, and it is: with rejections_before_ban = 4
// and both listeners on, the third run finds 127.0.0.1 banned. With
// never_ban = ["127.0.0.1"] no run is counted and none finds a ban; the
// list is reported as a weakening of its own.
func TestDoctorCountsItsRejections(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	tests := []struct {
		name     string
		neverBan string
		banned   bool // the third run finds the address banned
		want     map[string]doctor.Severity
		absent   []string
		says     []string // in the probe-counts-rejections finding
	}{
		{"loopback not exempt", "", true,
			map[string]doctor.Severity{"probe-counts-rejections": doctor.Info},
			[]string{"abuse-never-ban"},
			[]string{"counts 2 rejected attempts against this machine's loopback address 127.0.0.1", "4 within 15m ban it", "so 2 runs of doctor within 15m", `never_ban = [\"127.0.0.1\"]`}},
		{"loopback exempt", `never_ban = ["127.0.0.1"]`, false,
			map[string]doctor.Severity{"abuse-never-ban": doctor.Low},
			[]string{"probe-counts-rejections", "probe-refused"}, nil},
		{"another address exempt", `never_ban = ["10.0.4.0/24"]`, true,
			map[string]doctor.Severity{"probe-counts-rejections": doctor.Info, "abuse-never-ban": doctor.Low},
			nil, []string{`add \"127.0.0.1\" to never_ban`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			tlsPort := dicomtest.FreePort(t)
			plainPort := dicomtest.FreePort(t)
			for plainPort == tlsPort {
				plainPort = dicomtest.FreePort(t)
			}
			tlsAddr, plainAddr := fmt.Sprintf("127.0.0.1:%d", tlsPort), fmt.Sprintf("127.0.0.1:%d", plainPort)
			cfg := fmt.Sprintf("version = 1\nlisten_tls = %q\nlisten = %q\naccept_risk = [\"plaintext\"]\nmetrics = \"\"\n[abuse]\nrejections_before_ban = 4\n%s\n", tlsAddr, plainAddr, tt.neverBan)
			if err := writeDataConfig(dir, cfg); err != nil {
				t.Fatal(err)
			}
			bans := make(chan audit.Event, 16)
			startArchiveFromConfig(t, dir, banRecorder(bans))
			run := func(i int) doctor.Report {
				t.Helper()
				var out, errb bytes.Buffer
				Main([]string{"doctor", "--data", dir, "--json"}, &out, &errb)
				var r doctor.Report
				if err := json.Unmarshal(out.Bytes(), &r); err != nil {
					t.Fatalf("run %d: JSON: %v\n%s\n%s", i, err, out.String(), errb.String())
				}
				return r
			}
			for i := 1; i <= 2; i++ {
				r := run(i)
				if len(r.Probes) != 2 {
					t.Fatalf("run %d: probes %+v", i, r.Probes)
				}
				for _, p := range r.Probes {
					if !p.Up || !p.Rejected || p.From != "127.0.0.1" {
						t.Fatalf("run %d: probe %+v, want rejected, from 127.0.0.1", i, p)
					}
				}
				got := map[string]doctor.Finding{}
				for _, f := range r.Findings {
					got[f.Check] = f
				}
				for check, sev := range tt.want {
					if f, ok := got[check]; !ok || f.Severity != sev {
						t.Errorf("run %d: %s: got %+v (present %v), want %v", i, check, f, ok, sev)
					}
				}
				for _, check := range append([]string{"probe-refused"}, tt.absent...) {
					if f, ok := got[check]; ok {
						t.Errorf("run %d: %s reported: %+v", i, check, f)
					}
				}
				counted, _ := json.Marshal(got["probe-counts-rejections"])
				for _, s := range tt.says {
					if !strings.Contains(string(counted), s) {
						t.Errorf("run %d: probe-counts-rejections does not say %q: %s", i, s, counted)
					}
				}
			}
			// The ban, if the two runs made one, is a security alert
			// (recorded a moment after the last rejection).
			select {
			case ev := <-bans:
				if !tt.banned || ev.Remote != "127.0.0.1" {
					t.Fatalf("after two runs: %+v", ev)
				}
			case <-time.After(map[bool]time.Duration{true: 10 * time.Second, false: 200 * time.Millisecond}[tt.banned]):
				if tt.banned {
					t.Fatal("after two runs: no ban")
				}
			}
			r := run(3)
			refused := 0
			for _, f := range r.Findings {
				if f.Check == "probe-refused" {
					refused++
				}
			}
			if want := map[bool]int{true: 2, false: 0}[tt.banned]; refused != want {
				t.Fatalf("third run: %d listeners refused doctor, want %d\n%+v", refused, want, r)
			}

			var out bytes.Buffer
			Main([]string{"doctor", "--data", dir, "--no-probe"}, &out, &bytes.Buffer{})
			if tt.neverBan != "" && !strings.Contains(out.String(), "LOW     abuse-never-ban") {
				t.Errorf("text report does not list never_ban:\n%s", out.String())
			}
		})
	}
}

// banRecorder sends the archive's address-banned alerts to ch.
type banRecorder chan<- audit.Event

func (r banRecorder) Record(ev audit.Event) {
	if ev.Kind == audit.SecurityAlert && ev.Alert == "address-banned" {
		select {
		case r <- ev:
		default:
		}
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
