package dimse

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dicomshield/dicomshield/internal/dicomtest"
	"github.com/dicomshield/dicomshield/internal/ul"
)

// TestNotEstablished: the hook hears of every connection that ended before
// an association, with a cause the caller can tell apart, and of no
// association that was established.
func TestNotEstablished(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	pki := dicomtest.NewPKI(t, "MODALITY")
	noCert := pki.Client.Clone()
	noCert.Certificates = nil
	type call struct {
		remote net.Addr
		err    error
	}
	isHandshake := func(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "dimse: TLS handshake: ") }
	tests := []struct {
		name    string
		tls     bool
		connect func(addr string) error
		want    func(error) bool // nil: the hook must not be called
	}{
		{"accepted", false, func(addr string) error {
			cl, err := Dial(context.Background(), addr, &DialOptions{CallingAE: "MODALITY", Contexts: allProposals()})
			if err == nil {
				err = cl.Release()
			}
			return err
		}, nil},
		{"rejected", false, func(addr string) error {
			_, err := Dial(context.Background(), addr, &DialOptions{CallingAE: "STRANGER", Contexts: allProposals()})
			if err == nil {
				return errors.New("accepted")
			}
			return nil
		}, func(err error) bool { var rj *ul.RejectedError; return errors.As(err, &rj) }},
		{"not DICOM", false, func(addr string) error {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return err
			}
			c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			c.Read(make([]byte, 64))
			return c.Close()
		}, func(err error) bool { return errors.Is(err, ul.ErrProtocol) }},
		{"TLS without a client certificate", true, func(addr string) error {
			_, err := Dial(context.Background(), addr, &DialOptions{CallingAE: "MODALITY", Contexts: allProposals(), TLS: noCert})
			if err == nil {
				return errors.New("accepted")
			}
			return nil
		}, isHandshake},
		{"plain TCP to TLS", true, func(addr string) error {
			_, err := Dial(context.Background(), addr, &DialOptions{CallingAE: "MODALITY", Contexts: allProposals(), ConnectTimeout: 2 * time.Second})
			if err == nil {
				return errors.New("accepted")
			}
			return nil
		}, isHandshake},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tc *tls.Config
			if tt.tls {
				tc = pki.Server
			}
			s := newMemArchive().server(tc)
			s.UL.AssociateTimeout = 2 * time.Second
			var mu sync.Mutex
			var calls []call
			got := make(chan struct{}, 1)
			s.NotEstablished = func(remote net.Addr, err error) {
				mu.Lock()
				calls = append(calls, call{remote, err})
				mu.Unlock()
				got <- struct{}{}
			}
			addr := startServer(t, s)
			if err := tt.connect(addr); err != nil {
				t.Fatal(err)
			}
			if tt.want == nil {
				// An established association: nothing may be reported
				// by the time the server has shut down.
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				s.Shutdown(ctx)
				mu.Lock()
				defer mu.Unlock()
				if len(calls) != 0 {
					t.Fatalf("hook called for an established association: %v", calls[0].err)
				}
				return
			}
			select {
			case <-got:
			case <-time.After(10 * time.Second):
				t.Fatal("hook not called")
			}
			mu.Lock()
			defer mu.Unlock()
			c := calls[0]
			if !tt.want(c.err) {
				t.Fatalf("hook err = %v (%T)", c.err, c.err)
			}
			if ip, _, _ := net.SplitHostPort(c.remote.String()); ip != "127.0.0.1" {
				t.Fatalf("remote = %v", c.remote)
			}
		})
	}
}
