//go:build linux

package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dicomshield/dicomshield/internal/identity"
)

// openPTY opens a pseudo-terminal pair: the master (what a user types
// into) and the slave (the program's terminal).
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("no pseudo-terminal: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); m.Close() })
	return m, s
}

// TestUserAddPrompt: on a terminal the password is asked twice and not
// echoed; two different answers change nothing.
func TestUserAddPrompt(t *testing.T) {
	t.Cleanup(identity.SetParamsForTesting(identity.Params{Time: 1, Memory: 64, Threads: 1}))
	tests := []struct {
		name, first, second string
		ok                  bool
	}{
		{"same twice", "a terminal passphrase", "a terminal passphrase", true},
		{"differ", "a terminal passphrase", "another passphrase!", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			master, slave := openPTY(t)
			// What the terminal shows: anything echoed back to the master.
			echoed := make(chan []byte, 1)
			go func() {
				var b bytes.Buffer
				io.Copy(&b, master)
				echoed <- b.Bytes()
			}()
			// Each answer is typed once the prompt has turned echo off, as
			// a person would type after seeing it.
			sfd := int(slave.Fd())
			typed := make(chan struct{})
			go func() {
				defer close(typed)
				for _, answer := range []string{tc.first, tc.second} {
					for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
						tio, err := unix.IoctlGetTermios(sfd, unix.TCGETS)
						if err != nil {
							return
						}
						if tio.Lflag&unix.ECHO == 0 {
							break
						}
					}
					master.Write([]byte(answer + "\n"))
				}
			}()
			var out, errb bytes.Buffer
			code := MainInput([]string{"user", "add", "bob", "--role", "viewer", "--data", dir}, slave, &out, &errb)
			<-typed
			slave.Close()
			master.Close()
			shown := string(<-echoed)
			if strings.Contains(shown, "passphrase") {
				t.Fatalf("the password was echoed: %q", shown)
			}
			if prompts := strings.Count(errb.String(), "Password"); prompts != 2 {
				t.Errorf("%d prompts, want 2: %q", prompts, errb.String())
			}
			_, statErr := os.Stat(filepath.Join(dir, identity.UsersFileName))
			if (code == 0) != tc.ok || (statErr == nil) != tc.ok {
				t.Fatalf("exit %d, users file: %v; want ok=%v\n%s", code, statErr, tc.ok, errb.String())
			}
		})
	}
}
