package archive_test

// The audit trail against a real collector: rsyslogd listening for syslog
// over TLS (imtcp with the gtls stream driver), certificates from a test
// CA, writing what it receives to a file.

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dicomshield/dicomshield/internal/archive"
	"github.com/dicomshield/dicomshield/internal/audit"
	"github.com/dicomshield/dicomshield/internal/dicomtest"
)

const rsyslogd = "/usr/sbin/rsyslogd"

// rsyslogOutSep separates the fields rsyslog writes for each record.
const rsyslogOutSep = "|#|"

// startRsyslog runs rsyslogd in the foreground with its own config, pid
// file and work directory, listening for TLS on 127.0.0.1:port, and
// returns the file it writes records to. It checks the config with -N1
// first. It is killed when the test ends.
func startRsyslog(t *testing.T, pki *dicomtest.PKI) (addr, out string) {
	t.Helper()
	if _, err := os.Stat(rsyslogd); err != nil {
		t.Fatalf("rsyslogd is required (apt-get install rsyslog rsyslog-gnutls): %v", err)
	}
	for attempt := 0; attempt < 3; attempt++ {
		dir := t.TempDir()
		work := filepath.Join(dir, "work")
		if err := os.Mkdir(work, 0o700); err != nil {
			t.Fatal(err)
		}
		out = filepath.Join(dir, "received.log")
		port := dicomtest.FreePort(t)
		conf := fmt.Sprintf(`global(
  workDirectory=%q
  maxMessageSize="64k"
  defaultNetstreamDriver="gtls"
  defaultNetstreamDriverCAFile=%q
  defaultNetstreamDriverCertFile=%q
  defaultNetstreamDriverKeyFile=%q
)
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
input(type="imtcp" address="127.0.0.1" port="%d")
template(name="fields" type="string" string="%%app-name%%%s%%msgid%%%s%%hostname%%%s%%pri%%%s%%protocol-version%%%s%%msg%%\n")
action(type="omfile" file=%q template="fields")
`, work, pki.CAFile, pki.ServerCert, pki.ServerKey, port, rsyslogOutSep, rsyslogOutSep, rsyslogOutSep, rsyslogOutSep, rsyslogOutSep, out)
		cf := filepath.Join(dir, "rsyslog.conf")
		if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		if b, err := exec.Command(rsyslogd, "-N1", "-f", cf).CombinedOutput(); err != nil {
			t.Fatalf("rsyslogd -N1 refuses the config: %v\n%s\n%s", err, b, conf)
		}
		var logs bytes.Buffer
		cmd := exec.Command(rsyslogd, "-n", "-f", cf, "-i", filepath.Join(dir, "rsyslogd.pid"))
		cmd.Stdout, cmd.Stderr = &logs, &logs
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		t.Cleanup(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-exited
			}
			if t.Failed() {
				t.Logf("rsyslogd output:\n%s", logs.String())
			}
		})
		addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		// Ready when a TLS handshake verified against the test CA works.
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			select {
			case <-exited:
				deadline = time.Time{}
				continue
			default:
			}
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{RootCAs: pki.Client.RootCAs, ServerName: "127.0.0.1"})
			if err == nil {
				c.Close()
				return addr, out
			}
			time.Sleep(50 * time.Millisecond)
		}
		cmd.Process.Signal(syscall.SIGTERM)
		<-exited
		if !strings.Contains(logs.String(), "in use") {
			t.Fatalf("rsyslogd did not listen on %s:\n%s", addr, logs.String())
		}
	}
	t.Fatal("rsyslogd found no free port")
	return "", ""
}

// TestAuditToRsyslogOverTLS is the end-to-end check: DCMTK associations
// with the archive, accepted and refused, reach a real rsyslog over TLS
// as RFC 5424 records whose messages pass the schema check with the
// right EventIDs.
func TestAuditToRsyslogOverTLS(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	pki := dicomtest.NewPKI(t, "unused")
	addr, out := startRsyslog(t, pki)
	dir := filepath.Join(t.TempDir(), "data")
	var trail *audit.Trail
	s := startServerWith(t, dir, func(a *archive.Archive) {
		a.Config.Audit.Syslog, a.Config.Audit.SyslogCA = addr, pki.CAFile
		var err error
		if trail, err = a.StartAudit(func(err error) { t.Logf("audit: %v", err) }); err != nil {
			t.Fatal(err)
		}
		a.Audit = trail
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			trail.Close(ctx)
		})
	})
	ct := addPeer(t, dir, "CT01", "--allow", "echo,store")
	host, port, _ := net.SplitHostPort(s.TLSAddr)
	dicomtest.MustRunSCUIn(t, ct.Dir, "echoscu", append(ct.DCMTKTLS(), "-aet", "CT01", "-aec", archiveAE, host, port)...)
	file := makeInstance(t, instanceSpec{Patient: "PAT-RS1", Class: ctImage}).writeFile(t, t.TempDir())
	dicomtest.MustRunSCUIn(t, ct.Dir, "storescu", append(ct.DCMTKTLS(), "-aet", "CT01", "-aec", archiveAE, host, port, file)...)
	if r := dicomtest.RunSCUIn(t, ct.Dir, "echoscu", append(ct.DCMTKTLS(), "-aet", "STRANGER", "-aec", archiveAE, host, port)...); r.ExitCode == 0 {
		t.Fatalf("STRANGER was accepted:\n%s", r.Describe())
	}

	// Expected: start, 2 accepted, 1 refused, 1 instances-stored.
	want := map[string]int{"110100": 1, "110113": 3, "110104": 1}
	var got map[string]int
	var checked []*audit.Checked
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, checked = map[string]int{}, nil
		b, _ := os.ReadFile(out)
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if line == "" {
				continue
			}
			f := strings.Split(line, rsyslogOutSep)
			if len(f) != 6 {
				t.Fatalf("record %q", line)
			}
			if f[0] != "dicomshield" || f[1] != "IHE+RFC-3881" || f[3] != "85" || f[4] != "1" {
				t.Errorf("header app-name %q msgid %q pri %q version %q: not the RFC 5424 header sent", f[0], f[1], f[3], f[4])
			}
			msg := strings.TrimPrefix(strings.TrimPrefix(f[5], " "), "\xef\xbb\xbf")
			c, err := audit.Check([]byte(msg))
			if err != nil {
				t.Fatalf("rsyslog received an invalid message: %v\n%s", err, msg)
			}
			got[c.EventID]++
			checked = append(checked, c)
		}
		if fmt.Sprint(got) == fmt.Sprint(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("rsyslog received EventIDs %v, want %v", got, want)
	}
	refused, stored := 0, 0
	for _, c := range checked {
		switch {
		case c.EventID == "110113" && c.Outcome == 4:
			refused++
			if c.Participants[1].UserID != "STRANGER" || c.Objects[0].Details["Alert Description"] == "" {
				t.Errorf("refusal %+v", c)
			}
		case c.EventID == "110104":
			stored++
			if c.ActionCode != "C" || len(c.Objects) != 2 || c.Objects[1].ID != "PAT-RS1" || c.Objects[0].SOPClasses[ctImage] != 1 {
				t.Errorf("stored %+v", c)
			}
		}
	}
	if refused != 1 || stored != 1 {
		t.Fatalf("refused %d, stored %d", refused, stored)
	}
}
