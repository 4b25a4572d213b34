package scan

import (
	"context"
	"net"
	"net/netip"
	"testing"

	"github.com/dicomshield/dicomshield/internal/dimse"
	"github.com/dicomshield/dicomshield/internal/ul"
)

// acceptAnyone starts n DICOM servers that accept every calling and
// called AE title and every context (the exposed servers of the research),
// one per loopback address from 127.3.0.1 on port 11112, and returns the
// target set that covers them.
func acceptAnyone(tb testing.TB, n int) *TargetSet {
	tb.Helper()
	first := netip.MustParseAddr("127.3.0.1")
	a := first
	for range n {
		l, err := net.Listen("tcp", netip.AddrPortFrom(a, 11112).String())
		if err != nil {
			tb.Fatal(err)
		}
		srv := &dimse.Server{Accept: func(r *dimse.AssocRequest) (*ul.AssociateAC, any, *ul.AssociateRJ) {
			return dimse.Negotiate(r.RQ, func(string) []string { return probeSyntaxes }), nil, nil
		}}
		go srv.Serve(l)
		tb.Cleanup(func() { srv.Close() })
		if n--; n > 0 {
			a = a.Next()
		}
	}
	return &TargetSet{Targets: []Target{{First: first, End: a}}, Ports: []int{11112}}
}

// BenchmarkRunAcceptAnyone is the whole scan (ladder, services, C-ECHO,
// query and retrieve probes, release) of 100 services that accept
// anyone, for profiling the scanner's own cost per service.
func BenchmarkRunAcceptAnyone(b *testing.B) {
	const n = 100
	set := acceptAnyone(b, n)
	b.ReportAllocs()
	for b.Loop() {
		found := 0
		err := New(Options{Rate: -1, Concurrency: n}).Run(context.Background(), set.Endpoints(), func(r *Result) {
			if r.Auth == AuthNone && r.Echo == "success" {
				found++
			}
		})
		if err != nil || found != n {
			b.Fatalf("found %d of %d: %v", found, n, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/service")
}
