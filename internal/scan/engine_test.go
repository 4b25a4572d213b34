package scan

import (
	"context"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/dicomtest"
	"github.com/dicomshield/dicomshield/internal/dimse"
	"github.com/dicomshield/dicomshield/internal/ul"
)

// fakePeer listens on loopback and runs serve for each connection.
func fakePeer(t *testing.T, serve func(net.Conn)) Endpoint {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() { defer wg.Done(); defer c.Close(); serve(c) }()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	ap := l.Addr().(*net.TCPAddr).AddrPort()
	return Endpoint{Addr: ap.Addr().Unmap(), Port: int(ap.Port())}
}

// acceptAll answers every association request with acceptance of every
// context, then runs after on the association.
func acceptAll(after func(a *ul.Association)) func(net.Conn) {
	return func(c net.Conn) {
		a, _, err := ul.Accept(c, &ul.Config{AssociateTimeout: 5 * time.Second}, func(rq *ul.AssociateRQ) (*ul.AssociateAC, *ul.AssociateRJ) {
			return dimse.Negotiate(rq, func(string) []string { return probeSyntaxes }), nil
		})
		if err == nil {
			after(a)
		}
	}
}

const hostileTimeout = 300 * time.Millisecond

func hostileScanner() *Scanner {
	return New(Options{Rate: -1, ConnectTimeout: hostileTimeout, AssociateTimeout: hostileTimeout, DIMSETimeout: hostileTimeout,
		HTTPPorts: []int{}, MaxAttempts: 3})
}

// TestHostilePeers: a peer that stalls, floods or lies costs one probe,
// bounded by the timeouts, and gets an honest verdict.
func TestHostilePeers(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	for _, tc := range []struct {
		name  string
		serve func(net.Conn)
		check func(t *testing.T, r *Result)
	}{
		{"silent", func(c net.Conn) { io.Copy(io.Discard, c) }, func(t *testing.T, r *Result) {
			if r != nil {
				t.Errorf("a silent peer is no DICOM service: %+v", r)
			}
		}},
		{"http", func(c net.Conn) { c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n")) }, func(t *testing.T, r *Result) {
			if r != nil {
				t.Errorf("an HTTP server is no DICOM service: %+v", r)
			}
		}},
		{"huge pdu length", func(c net.Conn) { c.Write([]byte{0x02, 0, 0xff, 0xff, 0xff, 0xff}); io.Copy(io.Discard, c) }, func(t *testing.T, r *Result) {
			if r != nil && r.Auth != AuthUnknown {
				t.Errorf("verdict from a lying peer: %+v", r)
			}
		}},
		{"stall after accept", acceptAll(func(a *ul.Association) { io.Copy(io.Discard, a.Conn()) }), func(t *testing.T, r *Result) {
			if r == nil || r.Auth != AuthNone || !strings.HasPrefix(r.Echo, "failed") {
				t.Errorf("result %+v", r)
			}
		}},
		{"flood after accept", acceptAll(func(a *ul.Association) {
			// Endless P-DATA, never a response.
			pdv := &ul.PDataTF{PDVs: []ul.PDV{{ContextID: 1, Command: true, Data: make([]byte, 1000)}}}
			for {
				if err := a.SendPData(pdv); err != nil {
					return
				}
			}
		}), func(t *testing.T, r *Result) {
			if r == nil || r.Auth != AuthNone || r.Exposure.Query == ExposureOpen {
				t.Errorf("result %+v", r)
			}
		}},
		{"reject everything transient", func(c net.Conn) {
			ul.Accept(c, nil, func(*ul.AssociateRQ) (*ul.AssociateAC, *ul.AssociateRJ) {
				return nil, &ul.AssociateRJ{Result: ul.RejectTransient, Source: ul.SourceServiceProviderPresenta, Reason: ul.ReasonTemporaryCongestion}
			})
		}, func(t *testing.T, r *Result) {
			if r == nil || r.Auth != AuthUnknown || r.StoppedBy != StoppedByBusy {
				t.Errorf("result %+v", r)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ep := fakePeer(t, tc.serve)
			start := time.Now()
			r := hostileScanner().Probe(context.Background(), ep)
			if d := time.Since(start); d > 30*hostileTimeout+5*time.Second {
				t.Errorf("probe took %v", d)
			}
			tc.check(t, r)
		})
	}
}

// TestDeadHostCostsConnectTimeout: nothing listening costs nothing; a
// refused port yields no result.
func TestClosedPort(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	if r := hostileScanner().Probe(context.Background(), Endpoint{netip.MustParseAddr("127.0.0.1"), port}); r != nil {
		t.Fatalf("closed port gave %+v", r)
	}
}

// TestRunManyListeners scans many loopback listeners that accept every
// association, checking that every one is found once and that the
// engine's concurrency keeps it quick.
func TestRunManyListeners(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	const n = 60
	var ports []int
	for range n {
		ports = append(ports, fakePeer(t, acceptAll(func(a *ul.Association) {
			for {
				if _, err := a.Next(); err != nil {
					return
				}
			}
		})).Port)
	}
	lo := netip.MustParseAddr("127.0.0.1")
	set := &TargetSet{Targets: []Target{{First: lo, End: lo}}, Ports: ports}
	seen := map[int]int{}
	start := time.Now()
	err := New(Options{Rate: -1, PerHost: 64, HTTPPorts: []int{}, DIMSETimeout: 100 * time.Millisecond}).Run(context.Background(), set.Endpoints(), func(r *Result) {
		seen[r.Port]++
		if r.Auth != AuthNone {
			t.Errorf("%d: auth %s", r.Port, r.Auth)
		}
	})
	t.Logf("%d listeners in %v", n, time.Since(start))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ports {
		if seen[p] != 1 {
			t.Errorf("port %d reported %d times", p, seen[p])
		}
	}
}

// TestRunInterrupted: cancelling the scan stops it and Run says so.
func TestRunInterrupted(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	ep := fakePeer(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	set := &TargetSet{Targets: []Target{{First: ep.Addr, End: ep.Addr}}, Ports: []int{ep.Port}}
	err := New(Options{Rate: -1, AssociateTimeout: time.Minute, HTTPPorts: []int{}}).Run(ctx, set.Endpoints(), func(*Result) {})
	if err != context.Canceled {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
}

// TestMaxProbes: the open-file limit caps the probes at once, so that no
// probe fails to open its socket and reports a live service as silent.
func TestMaxProbes(t *testing.T) {
	for _, tc := range []struct {
		limit uint64
		want  int
	}{{0, 1 << 20}, {1, 1}, {64, 1}, {1024, 480}, {4096, 2016}, {1 << 30, 1 << 20}} {
		if got := maxProbes(tc.limit); got != tc.want {
			t.Errorf("maxProbes(%d) = %d, want %d", tc.limit, got, tc.want)
		}
	}
	if c := New(Options{}).o.Concurrency; c < 1 || c > DefaultConcurrency {
		t.Errorf("default concurrency %d", c)
	}
}

// TestDiscoveryMode: --discovery does the ladder, the services and a
// C-ECHO but sends no C-FIND, C-GET or C-MOVE, and says query and
// retrieve are unproven where offered; the full scan sends them.
func TestDiscoveryMode(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	for _, tc := range []struct {
		discovery           bool
		wantFind, wantMoves bool
		wantQuery           string
	}{
		{discovery: true, wantQuery: ExposureUnproven},
		{discovery: false, wantFind: true, wantMoves: true},
	} {
		var mu sync.Mutex
		var finds, retrieves, echoes int
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &dimse.Server{
			Accept: func(r *dimse.AssocRequest) (*ul.AssociateAC, any, *ul.AssociateRJ) {
				return dimse.Negotiate(r.RQ, func(string) []string { return probeSyntaxes }), nil, nil
			},
			Echo: func(context.Context, *dimse.Request) dimse.Status {
				mu.Lock()
				echoes++
				mu.Unlock()
				return dimse.Status{}
			},
			Find: func(context.Context, *dimse.Request, *dicom.DataSet, func(*dicom.DataSet) error) dimse.Status {
				mu.Lock()
				finds++
				mu.Unlock()
				return dimse.Status{}
			},
			Retrieve: func(context.Context, *dimse.Request, *dicom.DataSet) ([]dimse.Instance, dimse.Status) {
				mu.Lock()
				retrieves++
				mu.Unlock()
				return nil, dimse.Status{}
			},
		}
		go srv.Serve(l)
		port := l.Addr().(*net.TCPAddr).Port
		r := New(Options{Rate: -1, HTTPPorts: []int{}, Discovery: tc.discovery}).Probe(context.Background(),
			Endpoint{Addr: netip.MustParseAddr("127.0.0.1"), Port: port})
		srv.Close()
		mu.Lock()
		if echoes != 1 || (finds > 0) != tc.wantFind || (retrieves > 0) != tc.wantMoves {
			t.Errorf("discovery %v: %d C-ECHO, %d C-FIND, %d C-GET/C-MOVE", tc.discovery, echoes, finds, retrieves)
		}
		mu.Unlock()
		if r.Auth != AuthNone || r.Echo != "success" {
			t.Errorf("discovery %v: auth %s echo %s", tc.discovery, r.Auth, r.Echo)
		}
		if tc.wantQuery != "" && (r.Exposure.Query != tc.wantQuery || r.Exposure.Retrieve != tc.wantQuery) {
			t.Errorf("discovery %v: exposure %+v, want query and retrieve %s", tc.discovery, r.Exposure, tc.wantQuery)
		}
	}
}
