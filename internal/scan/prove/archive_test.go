package prove_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/dicomshield/dicomshield/internal/archive/archivetest"
	"github.com/dicomshield/dicomshield/internal/cli"
	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/dicomtest"
	"github.com/dicomshield/dicomshield/internal/dimse"
	"github.com/dicomshield/dicomshield/internal/scan"
	"github.com/dicomshield/dicomshield/internal/scan/prove"
	"github.com/dicomshield/dicomshield/internal/ul"
)

// startArchive serves dicomshield's archive in dir on loopback with a
// plain listener too, and a peer ECHOONLY registered for echo on it.
func startArchive(t *testing.T) string {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	if code := cli.Main([]string{"peer", "add", "ECHOONLY", "--data", dir, "--allow", "echo", "--plaintext",
		"--host", "127.0.0.1", "--bundle", t.TempDir()}, &out, &errb); code != 0 {
		t.Fatalf("peer add: %d: %s", code, errb.String())
	}
	_, _, plain := archivetest.Start(t, dir, true)
	return plain
}

// TestArchiveShowsNothing: dicomshield serve lets a stranger neither read
// nor write, and neither does a registered peer with echo rights only.
func TestArchiveShowsNothing(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	addr := startArchive(t)
	for _, tc := range []struct {
		name    string
		calling string
		wantErr error
	}{
		{"stranger", "STRANGER" + dicomtest.RandomString(t, dicomtest.Upper, 6), prove.ErrNoAccess},
		{"echo-only peer", "ECHOONLY", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			a := scan.Access{Addr: addr, CallingAE: tc.calling, CalledAE: "DICOMSHIELD", Timeout: 5 * time.Second}
			p, err := prove.Read(ctx, a, nil)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Read: %v, want %v", err, tc.wantErr)
			}
			if p.Records[prove.LevelPatient] != -1 || p.Records[prove.LevelStudy] != -1 || p.Fields != nil ||
				p.Get != scan.ExposureClosed || p.Move != scan.ExposureClosed || p.MoveAnyDest != scan.ExposureClosed {
				t.Errorf("proof %+v, want every read refused", p)
			}
			w := prove.Write(ctx, a)
			if w.Stored || w.Append != prove.WriteUntested || w.Overwrite != prove.WriteUntested || len(w.Created) != 0 {
				t.Errorf("write test %+v, want nothing stored", w)
			}
			r := &scan.Result{Proof: p, WriteTest: w}
			prove.Apply(r)
			if r.Exposure.Query != scan.ExposureClosed || r.Exposure.Retrieve != scan.ExposureClosed || len(r.Findings) > 1 {
				b, _ := json.Marshal(r)
				t.Errorf("result %s: want query and retrieve closed, no finding beyond user identity", b)
			}
		})
	}
}

// TestMoveDestinations: fake servers that differ only in how they treat a
// C-MOVE destination the stranger named.
func TestMoveDestinations(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	// A port nobody listens on: where a careless server "sends".
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	inst := dimse.Instance{SOPClassUID: "1.2.840.10008.5.1.4.1.1.7", SOPInstanceUID: "1.2.3.4", TransferSyntax: dicom.ExplicitVRLittleEndianUID,
		Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(make([]byte, 8))), nil }}
	for _, tc := range []struct {
		name      string
		dest      func(ae string) (*dimse.Destination, error)
		matches   []dimse.Instance
		move, any string
	}{
		{"any destination", func(string) (*dimse.Destination, error) { return &dimse.Destination{Addr: deadAddr}, nil },
			[]dimse.Instance{inst}, scan.ExposureOpen, scan.ExposureOpen},
		{"known destinations only", func(string) (*dimse.Destination, error) { return nil, errors.New("unknown") },
			[]dimse.Instance{inst}, scan.ExposureClosed, scan.ExposureClosed},
		{"any destination, nothing matched", func(string) (*dimse.Destination, error) { return &dimse.Destination{Addr: deadAddr}, nil },
			nil, scan.ExposureUnproven, scan.ExposureUnproven},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &dimse.Server{
				Accept: func(r *dimse.AssocRequest) (*ul.AssociateAC, any, *ul.AssociateRJ) {
					return dimse.Negotiate(r.RQ, func(string) []string { return []string{dicom.ExplicitVRLittleEndianUID} }), nil, nil
				},
				Retrieve: func(context.Context, *dimse.Request, *dicom.DataSet) ([]dimse.Instance, dimse.Status) {
					return tc.matches, dimse.Status{}
				},
				MoveDestination: func(_ context.Context, _ *dimse.Request, ae string) (*dimse.Destination, error) { return tc.dest(ae) },
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
			if p.Move != tc.move || p.MoveAnyDest != tc.any {
				t.Errorf("move %s, any destination %s; want %s, %s", p.Move, p.MoveAnyDest, tc.move, tc.any)
			}
		})
	}
}

// TestFollowUp: the hook the scan engine calls fills the result as the
// flags ask, and is nil when they ask for nothing.
func TestFollowUp(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	if prove.FollowUp(prove.Config{}) != nil {
		t.Fatal("FollowUp without --prove or --test-write is not nil")
	}
	addr := startArchive(t)
	for _, tc := range []struct {
		name         string
		cfg          prove.Config
		proof, write bool
	}{
		{"prove", prove.Config{Prove: true}, true, false},
		{"test-write", prove.Config{TestWrite: true}, false, true},
		{"both", prove.Config{Prove: true, TestWrite: true, Options: prove.Options{MaxRecords: 5, HashSalt: "s"}}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &scan.Result{Exposure: scan.Exposure{Query: scan.ExposureUnproven, Retrieve: scan.ExposureUnproven}}
			prove.FollowUp(tc.cfg)(context.Background(), scan.Access{Addr: addr, CallingAE: "ECHOONLY", CalledAE: "DICOMSHIELD", Timeout: 5 * time.Second}, r)
			if (r.Proof != nil) != tc.proof || (r.WriteTest != nil) != tc.write {
				t.Fatalf("proof %+v, write test %+v", r.Proof, r.WriteTest)
			}
			if tc.proof && (r.Exposure.Query != scan.ExposureClosed || r.Exposure.Retrieve != scan.ExposureClosed) {
				t.Errorf("exposure %+v, want query and retrieve closed from proof", r.Exposure)
			}
		})
	}
}
