package scan

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dicomshield/dicomshield/internal/dicomtest"
	"github.com/dicomshield/dicomshield/internal/dimse"
	"github.com/dicomshield/dicomshield/internal/ul"
)

// TestOrthancLookupOverlapsLadder: Orthanc's GET /system is asked while
// the DICOM probe is under way, not after it. The DICOM service holds its
// answer to the C-ECHO until the GET has arrived: a scanner that asked
// only after the probe would wait out the fallback and fail.
func TestOrthancLookupOverlapsLadder(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	asked := make(chan struct{})
	var once sync.Once
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(asked) })
		w.Write([]byte(`{"Name":"LAB","Version":"1.12.4","DicomAet":"LABAET","DicomPort":1}`))
	})}
	go hs.Serve(hl)
	defer hs.Close()

	dl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var late atomic.Bool
	srv := &dimse.Server{
		Accept: func(r *dimse.AssocRequest) (*ul.AssociateAC, any, *ul.AssociateRJ) {
			return dimse.Negotiate(r.RQ, func(string) []string { return probeSyntaxes }), nil, nil
		},
		Echo: func(ctx context.Context, r *dimse.Request) dimse.Status {
			select {
			case <-asked:
			case <-time.After(5 * time.Second): // the fallback: no overlap
				late.Store(true)
			}
			return dimse.Status{Code: dimse.StatusSuccess}
		},
	}
	go srv.Serve(dl)
	defer srv.Close()

	ep := Endpoint{Addr: netip.MustParseAddr("127.0.0.1"), Port: dl.Addr().(*net.TCPAddr).Port}
	r := New(Options{Rate: -1, HTTPPorts: []int{hl.Addr().(*net.TCPAddr).Port}}).Probe(context.Background(), ep)
	if r == nil || r.Echo != "success" || r.Auth != AuthNone {
		t.Fatalf("result %+v", r)
	}
	if late.Load() {
		t.Error("GET /system came only after the C-ECHO: the lookup does not overlap the probe")
	}
}
