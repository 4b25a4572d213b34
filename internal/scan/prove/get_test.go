package prove_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/dicomtest"
	"github.com/dicomshield/dicomshield/internal/dimse"
	"github.com/dicomshield/dicomshield/internal/scan"
	"github.com/dicomshield/dicomshield/internal/scan/prove"
	"github.com/dicomshield/dicomshield/internal/ul"
)

// TestGetWithoutDownloading: fake C-GET servers; the scanner must call a
// started sub-operation "open" and stop the flow after at most a few
// small instances (C-CANCEL, which dimse.Server heeds between
// sub-operations) or at once when an instance is larger than one image
// (A-ABORT).
func TestGetWithoutDownloading(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	for _, tc := range []struct {
		name      string
		n         int // instances the study holds
		size      int // bytes of each
		refuse    uint16
		want      string
		maxOpened int64 // sub-operations the server may have started
	}{
		{"honoured, small", 20, 1 << 10, 0, scan.ExposureOpen, 3},
		{"honoured, one huge image", 3, 8 << 20, 0, scan.ExposureOpen, 1},
		{"refused", 5, 1 << 10, dimse.StatusNotAuthorized, scan.ExposureClosed, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opened atomic.Int64
			var insts []dimse.Instance
			for i := range tc.n {
				insts = append(insts, dimse.Instance{SOPClassUID: "1.2.840.10008.5.1.4.1.1.7",
					SOPInstanceUID: "1.2.3.4." + string(rune('1'+i%9)), TransferSyntax: dicom.ExplicitVRLittleEndianUID,
					Open: func() (io.ReadCloser, error) {
						opened.Add(1)
						return io.NopCloser(bytes.NewReader(make([]byte, tc.size))), nil
					}})
			}
			s := &dimse.Server{
				Accept: func(r *dimse.AssocRequest) (*ul.AssociateAC, any, *ul.AssociateRJ) {
					return dimse.Negotiate(r.RQ, func(string) []string { return []string{dicom.ExplicitVRLittleEndianUID} }), nil, nil
				},
				Retrieve: func(context.Context, *dimse.Request, *dicom.DataSet) ([]dimse.Instance, dimse.Status) {
					if tc.refuse != 0 {
						return nil, dimse.Status{Code: tc.refuse}
					}
					return insts, dimse.Status{}
				},
			}
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go s.Serve(l)
			defer s.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			p, err := prove.Read(ctx, scan.Access{Addr: l.Addr().String(), CallingAE: "STRANGER", CalledAE: "ANY"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if p.Get != tc.want {
				t.Errorf("get %s, want %s", p.Get, tc.want)
			}
			if n := opened.Load(); n > tc.maxOpened {
				t.Errorf("the server started %d sub-operations; the scanner should have stopped it after %d", n, tc.maxOpened)
			}
		})
	}
}
