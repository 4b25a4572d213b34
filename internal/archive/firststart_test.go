package archive_test

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServeFirstStart runs the real binary on an empty data directory:
// the first start says what it created and the next step, listens for
// DICOM over TLS and for enrolment, and stops on SIGTERM; the second start
// reuses everything (same CA, nothing created).
func TestServeFirstStart(t *testing.T) {
	bin := buildDicomshield(t)
	dir := filepath.Join(t.TempDir(), "data")
	run := func() string {
		t.Helper()
		out := &logBuffer{}
		cmd := exec.Command(bin, "serve", "--data", dir, "--listen-tls", "127.0.0.1:0", "--listen-enroll", "127.0.0.1:0")
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		deadline := time.After(30 * time.Second)
		for !strings.Contains(out.String(), "registered") {
			select {
			case err := <-done:
				t.Fatalf("serve exited early (%v):\n%s", err, out.String())
			case <-deadline:
				cmd.Process.Kill()
				t.Fatalf("serve did not finish starting:\n%s", out.String())
			case <-time.After(20 * time.Millisecond):
			}
		}
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("serve after SIGTERM: %v\n%s", err, out.String())
			}
		case <-time.After(40 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("serve did not stop on SIGTERM:\n%s", out.String())
		}
		return out.String()
	}
	fp := regexp.MustCompile(`CA fingerprint \(SHA-256\): ([0-9A-F:]{95})`)

	first := run()
	for _, want := range []string{
		"created data directory " + dir,
		"wrote " + filepath.Join(dir, "dicomshield.toml"),
		"created a certificate authority",
		"ledger head: seq 0",
		"listening for DICOM over TLS on 127.0.0.1:",
		"listening for certificate enrolment (HTTPS) on 127.0.0.1:",
		"no peer registered yet: nobody can connect",
		"dicomshield peer add", "--token", "dicomshield enroll --token",
		"stopped",
	} {
		if !strings.Contains(first, want) {
			t.Errorf("first start does not say %q:\n%s", want, first)
		}
	}
	if strings.Contains(first, "plain DICOM on") {
		t.Errorf("first start listens for plain DICOM:\n%s", first)
	}
	second := run()
	if strings.Contains(second, "created") || strings.Contains(second, "wrote ") {
		t.Errorf("second start created something again:\n%s", second)
	}
	m1, m2 := fp.FindStringSubmatch(first), fp.FindStringSubmatch(second)
	if m1 == nil || m2 == nil || m1[1] != m2[1] {
		t.Errorf("CA fingerprint not printed or changed between starts: %v / %v", m1, m2)
	}
}
