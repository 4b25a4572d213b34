package archive_test

// Revocation at once: a peer revoked, removed or narrowed while it holds an
// association open loses it (A-ABORT), with a security alert; changes that
// take nothing the association can use leave it alone.

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dicomshield/dicomshield/internal/archive"
	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/dicomtest"
	"github.com/dicomshield/dicomshield/internal/dimse"
	"github.com/dicomshield/dicomshield/internal/ul"
)

// abortWithin bounds how long after a registry change an open association
// must be gone: the archive looks every half second.
const abortWithin = 10 * time.Second

// waitAborted waits until an alert about ae's aborted association has
// been recorded, and returns its description.
func waitAborted(t *testing.T, al *alerts, ae string) string {
	t.Helper()
	timeout := time.After(abortWithin)
	for {
		if why, ok := al.find(archive.AlertAbortedRevoked, ae); ok {
			return why
		}
		select {
		case <-al.ch:
		case <-timeout:
			t.Fatalf("no %q alert for %s within %v", archive.AlertAbortedRevoked, ae, abortWithin)
			return ""
		}
	}
}

// find returns the description of the first alert named name about
// calling AE title ae.
func (r *alerts) find(name, ae string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range r.evs {
		if ev.Alert == name && ev.CallingAE == ae {
			return ev.Description, true
		}
	}
	return "", false
}

// TestRevokeAbortsOpenAssociations: each registry change is made with the
// command line while the peer holds an association open (over TLS, with
// every service proposed unless said otherwise); the association is
// aborted and no C-STORE is answered after it, or it is kept when the
// change takes nothing it can use.
func TestRevokeAbortsOpenAssociations(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	dir := filepath.Join(t.TempDir(), "data")
	s, al := startGuarded(t, dir, newFakeClock(), nil)
	tests := []struct {
		name      string
		allow     string
		storeOnly bool // propose only verification and storage
		change    func(ae string) []string
		aborted   bool
		why       string // in the alert's description
	}{
		{"peer revoke", "echo,store", false, func(ae string) []string { return []string{"peer", "revoke", ae} }, true, "revoked"},
		{"peer remove", "echo,store", false, func(ae string) []string { return []string{"peer", "remove", ae} }, true, "not a registered peer"},
		{"certificate re-issued", "echo,store", false, func(ae string) []string {
			return []string{"peer", "add", ae, "--host", "127.0.0.1", "--allow", "echo,store", "--bundle", filepath.Join(t.TempDir(), "reissued")}
		}, true, "revoked"}, // re-issuing revokes the old certificate
		{"store withdrawn", "echo,store", false, func(ae string) []string { return []string{"peer", "set", ae, "--allow", "echo"} }, true, "may no longer store"},
		{"user now required", "echo,store", false, func(ae string) []string { return []string{"peer", "set", ae, "--require-user"} }, true, "requires a user"},
		{"find withdrawn, never negotiated", "echo,store,find", true, func(ae string) []string { return []string{"peer", "set", ae, "--allow", "echo,store"} }, false, ""},
		{"right added", "echo,store", false, func(ae string) []string { return []string{"peer", "set", ae, "--allow", "echo,store,find"} }, false, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ae := "PEER" + string(rune('A'+i))
			b := addPeer(t, dir, ae, "--allow", tt.allow)
			props := proposals([]string{scImage}, []string{dicom.ExplicitVRLittleEndianUID})
			if tt.storeOnly {
				props = []dimse.Proposal{props[0], props[len(props)-1]}
			}
			cl, err := dimse.Dial(testCtx(t), s.TLSAddr, &dimse.DialOptions{CallingAE: ae, CalledAE: archiveAE, TLS: b.TLS(t), Contexts: props})
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Abort()
			mustStore(t, cl, makeInstance(t, instanceSpec{}))
			// A witness peer, revoked after the change, shows that the
			// archive has looked at the registry since the change.
			w := addPeer(t, dir, ae+"W", "--allow", "echo")
			wcl := mustDial(t, s.TLSAddr, w.AE, w.TLS(t))
			runCLI(t, append(tt.change(ae), "--data", dir)...)
			runCLI(t, "peer", "revoke", w.AE, "--data", dir)
			waitAborted(t, al, w.AE)
			if err := wcl.Echo(testCtx(t)); err == nil {
				t.Errorf("the witness's association still answers after its revocation")
			}
			if !tt.aborted {
				if al.countFor(archive.AlertAbortedRevoked, ae) != 0 {
					t.Errorf("association aborted by a change that takes nothing it uses")
				}
				mustStore(t, cl, makeInstance(t, instanceSpec{}))
				return
			}
			why := waitAborted(t, al, ae)
			if !strings.Contains(why, tt.why) {
				t.Errorf("alert says %q, want it to say %q", why, tt.why)
			}
			st, err := storeInst(t, cl, makeInstance(t, instanceSpec{}))
			if err == nil {
				t.Fatalf("C-STORE after the abort answered 0x%04X", st)
			}
			if !errors.Is(err, ul.ErrAborted) && !strings.Contains(err.Error(), "closed") &&
				!strings.Contains(err.Error(), "reset") && !strings.Contains(err.Error(), "broken pipe") {
				t.Errorf("C-STORE after the abort: %v, want the association aborted", err)
			}
		})
	}
}

// TestRevokeAbortsDCMTK: DCMTK's storescu sends the same instance over and
// over on one association (a stolen certificate keeping a transfer going);
// `peer revoke` ends it within a bounded time, storescu reports the abort,
// and the archive answers nothing more.
func TestRevokeAbortsDCMTK(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	dicomtest.RequireDCMTK(t, "storescu")
	dir := filepath.Join(t.TempDir(), "data")
	s, al := startGuarded(t, dir, newFakeClock(), nil)
	b := addPeer(t, dir, "MODALITY1", "--allow", "echo,store")
	in := makeInstance(t, instanceSpec{PixelBytes: 64 << 10})
	file := in.writeFile(t, b.Dir)
	p := dicomtest.StartDCMTK(t, "storescu", "+tls", b.KeyPath, b.CertPath, "+cf", b.CAPath, "-v", "--repeat", "1000000",
		"-aet", b.AE, "-aec", archiveAE, "127.0.0.1", port(t, s.TLSAddr), file)
	// Wait until the instance is stored: the association is up and busy.
	deadline := time.Now().Add(30 * time.Second)
	for !storedAny(s.A) {
		if exited, _ := p.Wait(0); exited || time.Now().After(deadline) {
			t.Fatalf("storescu stored nothing (exited: %v):\n%s", exited, p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	revoked := time.Now()
	runCLI(t, "peer", "revoke", b.AE, "--data", dir)
	why := waitAborted(t, al, b.AE)
	if !strings.Contains(why, "revoked") {
		t.Errorf("alert says %q, want revoked", why)
	}
	exited, err := p.Wait(abortWithin)
	if !exited {
		t.Fatalf("storescu still running %v after the revocation", abortWithin)
	}
	if err == nil {
		t.Errorf("storescu exited 0 after its association was aborted")
	}
	out := p.Output()
	if !strings.Contains(strings.ToLower(out), "abort") {
		t.Errorf("storescu did not report an abort:\n%s", tail(out, 20))
	}
	t.Logf("association aborted %v after peer revoke; storescu had %d answers", time.Since(revoked).Round(time.Millisecond), strings.Count(out, "Received Store Response"))
}

// storedAny reports whether the archive holds an instance.
func storedAny(a *archive.Archive) bool {
	ok := false
	a.Index.BlobKeys(context.Background(), func(string) error { ok = true; return errors.New("stop") })
	return ok
}

// countFor counts the alerts named name about calling AE title ae.
func (r *alerts) countFor(name, ae string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, ev := range r.evs {
		if ev.Alert == name && ev.CallingAE == ae {
			n++
		}
	}
	return n
}

func tail(s string, n int) string {
	lines := bytes.Split([]byte(s), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
