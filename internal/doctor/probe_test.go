package doctor_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/dicomshield/dicomshield/internal/dicomtest"
	"github.com/dicomshield/dicomshield/internal/doctor"
)

// serveRaw runs handle on each connection to l until the test ends.
func serveRaw(t *testing.T, l net.Listener, handle func(net.Conn)) {
	t.Helper()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() { l.Close(); wg.Wait() })
}

// TestProbes: what doctor says of listeners that are not a healthy
// dicomshield serve (the healthy one is tested end to end in cli).
func TestProbes(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	imposter := dicomtest.NewPKI(t, "IMPOSTER")
	tests := []struct {
		name   string
		listen func(t *testing.T) string // returns listen_tls
		want   map[string]doctor.Severity
		up     bool
	}{
		{"nothing listening", func(t *testing.T) string {
			return fmt.Sprintf("127.0.0.1:%d", dicomtest.FreePort(t))
		}, map[string]doctor.Severity{"listener-down": doctor.Medium}, false},
		{"not TLS", func(t *testing.T) string {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			serveRaw(t, l, func(c net.Conn) { io.WriteString(c, "HTTP/1.0 400 Bad Request\r\n\r\n") })
			return l.Addr().String()
		}, map[string]doctor.Severity{"tls-listener-not-tls": doctor.High}, true},
		{"another CA's certificate, no client certificate asked", func(t *testing.T) string {
			conf := imposter.Server.Clone()
			conf.ClientAuth = tls.NoClientCert
			l, err := tls.Listen("tcp", "127.0.0.1:0", conf)
			if err != nil {
				t.Fatal(err)
			}
			serveRaw(t, l, func(c net.Conn) {
				if err := c.(*tls.Conn).Handshake(); err == nil {
					io.Copy(io.Discard, c)
				}
			})
			return l.Addr().String()
		}, map[string]doctor.Severity{"tls-wrong-certificate": doctor.High, "tls-no-client-certificate": doctor.High}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, _, _ := dataDir(t)
			writeConfig(t, dir, fmt.Sprintf("listen_tls = %q\n", tt.listen(t)))
			r, err := doctor.Inspect(context.Background(), doctor.Options{Dir: dir, ProbeTimeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Probes) != 1 || r.Probes[0].Listener != "tls" || r.Probes[0].Up != tt.up {
				t.Fatalf("probes %+v", r.Probes)
			}
			if r.Probes[0].Rejected {
				t.Errorf("probe %+v counted as a rejection by a listener that is not dicomshield", r.Probes[0])
			}
			got := map[string]doctor.Severity{}
			for _, f := range r.Findings {
				got[f.Check] = f.Severity
			}
			if _, ok := got["probe-counts-rejections"]; ok {
				t.Errorf("probe-counts-rejections reported though no listener rejected the probe: %+v", r.Findings)
			}
			for check, sev := range tt.want {
				if s, ok := got[check]; !ok || s != sev {
					t.Errorf("%s: got %v (present %v), want %v\nfindings: %+v", check, s, ok, sev, r.Findings)
				}
			}
		})
	}
}
