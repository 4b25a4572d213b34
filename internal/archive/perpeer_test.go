package archive_test

import (
	"crypto/tls"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/dicomshield/dicomshield/internal/archive"
	"github.com/dicomshield/dicomshield/internal/audit"
	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/dicomtest"
	"github.com/dicomshield/dicomshield/internal/dimse"
	"github.com/dicomshield/dicomshield/internal/ul"
)

// TestPerPeerLimitUnderRace: N+5 associations from one peer at the same
// moment get exactly N accepted and 5 transient "local limit exceeded"
// rejections; the slots come back when those associations end, and a
// refusal later in accept (user identity) gives its slot back at once.
// A slow audit sink holds each accepted association in accept for a
// while, as a slow syslog collector could: a limit counted only once the
// association started let every request through that window.
func TestPerPeerLimitUnderRace(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	for _, n := range []int{1, 3, 6} {
		t.Run(fmt.Sprintf("limit %d", n), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			s := startServerWith(t, dir, func(a *archive.Archive) {
				a.Config.Limits.MaxAssociationsPerPeer = n
				a.Audit = slowAudit{}
			})
			b := addPeer(t, dir, "MODALITY", "--allow", "echo")
			tc := b.TLS(t)
			opts := &dimse.DialOptions{CallingAE: b.AE, CalledAE: archiveAE,
				Contexts: []dimse.Proposal{{AbstractSyntax: dimse.VerificationSOPClass, TransferSyntaxes: []string{dicom.ImplicitVRLittleEndianUID}}}}
			round := func() (accepted []*ul.Association, rejected int) {
				t.Helper()
				var mu sync.Mutex
				var wg sync.WaitGroup
				start := make(chan struct{})
				for range n + 5 {
					// Connections and TLS handshakes first; then every
					// association request at once, so that the requests
					// meet in accept.
					conn, err := tls.Dial("tcp", s.TLSAddr, tc)
					if err != nil {
						t.Fatal(err)
					}
					if err := conn.Handshake(); err != nil {
						t.Fatal(err)
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						as, err := ul.Request(conn, dimse.BuildRQ(opts), &ul.Config{}) // Request fills in its RQ
						mu.Lock()
						defer mu.Unlock()
						var rj *ul.RejectedError
						switch {
						case err == nil:
							accepted = append(accepted, as)
						case errors.As(err, &rj) && rj.RJ.Result == ul.RejectTransient && rj.RJ.Reason == ul.ReasonLocalLimitExceeded:
							rejected++
						default:
							t.Errorf("association: %v", err)
						}
						if err != nil {
							conn.Close()
						}
					}()
				}
				close(start)
				wg.Wait()
				return accepted, rejected
			}
			for i := range 5 { // later rounds find every slot given back
				accepted, rejected := round()
				if len(accepted) != n || rejected != 5 {
					t.Errorf("round %d: %d accepted, %d rejected; want %d and 5", i+1, len(accepted), rejected, n)
				}
				for _, as := range accepted {
					if err := as.Release(); err != nil {
						t.Errorf("release: %v", err)
					}
				}
				waitPeerAssociations(t, s, b.AE, 0)
			}
		})
	}
	t.Run("refused after the slot was reserved", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data")
		s := startServerWith(t, dir, func(a *archive.Archive) { a.Config.Limits.MaxAssociationsPerPeer = 1 })
		b := addPeer(t, dir, "WORKSTATION", "--allow", "echo", "--require-user")
		for i := range 3 {
			// No user identity: refused by accept after the limit let it
			// through, and its slot is given back there and then.
			if _, err := dialAs(testCtx(t), s.TLSAddr, b.AE, b.TLS(t)); err == nil {
				t.Fatalf("attempt %d without a user was accepted", i+1)
			}
			if n := s.A.PeerAssociations(b.AE); n != 0 {
				t.Fatalf("after refusal %d, %d slots held", i+1, n)
			}
		}
	})
}

// waitPeerAssociations waits until the archive counts want associations
// for ae (the server ends an association just after the peer's release).
func waitPeerAssociations(t *testing.T, s *testServer, ae string, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.A.PeerAssociations(ae) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d associations counted, want %d", ae, s.A.PeerAssociations(ae), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// slowAudit takes its time over each accepted association's record.
type slowAudit struct{}

func (slowAudit) Record(ev audit.Event) {
	if ev.Kind == audit.AssocAccepted {
		time.Sleep(20 * time.Millisecond)
	}
}
