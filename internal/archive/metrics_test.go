package archive_test

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestMetrics scrapes the loopback metrics endpoint after an accepted and
// a refused association and a C-ECHO.
func TestMetrics(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	metricsAddr = addr
	defer func() { metricsAddr = "" }()
	dir := t.TempDir()
	b := addPeer(t, dir, "METRICS1", "--allow", "echo")
	s := startServer(t, dir)
	ctx := testCtx(t)
	cl := mustDial(t, s.TLSAddr, "METRICS1", b.TLS(t))
	if err := cl.Echo(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := dialAs(ctx, s.TLSAddr, "STRANGER", b.TLS(t)); err == nil {
		t.Fatal("stranger accepted")
	}
	var body string
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err == nil {
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(raw)
			if resp.StatusCode == 200 && strings.Contains(body, "dicomshield_associations_open 1") {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics not as expected: %v\n%s", err, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, want := range []string{
		"dicomshield_associations_accepted_total 1",
		"dicomshield_associations_refused_total 1",
		`dicomshield_operations_total{op="echo",outcome="success"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "METRICS1") || strings.Contains(body, "STRANGER") {
		t.Errorf("metrics name peers:\n%s", body)
	}
	cl.Release()
}
