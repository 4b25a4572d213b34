package archive_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"

	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/dicomtest"
	"github.com/dicomshield/dicomshield/internal/dimse"
	"github.com/dicomshield/dicomshield/internal/ul"
)

// tlsDestination is a storage SCP that serves TLS with the certificate of
// bundle b and requires a client certificate of the archive's CA, as a
// registered C-MOVE destination would.
func tlsDestination(t *testing.T, b bundle, port int) (*sync.Map, func()) {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(b.CertPath, b.KeyPath)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(b.CAPath)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	got := &sync.Map{}
	srv := &dimse.Server{
		TLS: &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12},
		Accept: func(r *dimse.AssocRequest) (*ul.AssociateAC, any, *ul.AssociateRJ) {
			return dimse.Negotiate(r.RQ, func(string) []string {
				return []string{dicom.ExplicitVRLittleEndianUID, dicom.ImplicitVRLittleEndianUID}
			}), nil, nil
		},
		Store: func(_ context.Context, r *dimse.Request, data io.Reader) dimse.Status {
			bs, err := io.ReadAll(data)
			if err != nil {
				return dimse.Status{Code: dimse.StatusProcessingFailure}
			}
			got.Store(r.Command.AffectedSOPInstance, bs)
			return dimse.Status{Code: dimse.StatusSuccess}
		},
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { srv.Serve(l); close(done) }()
	return got, func() { srv.Close(); <-done }
}

// TestMoveOverTLS sends C-MOVE sub-operations to a destination registered
// without --plaintext: over TLS, to the certificate its bundle holds, and
// to nothing else.
func TestMoveOverTLS(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	dir := t.TempDir()
	s := startServer(t, dir)
	v := addPeer(t, dir, "VIEWER", "--allow", "store,move")
	port := dicomtest.FreePort(t)
	dest := addPeer(t, dir, "TLSDEST", "--allow=", "--port", strconv.Itoa(port))
	impostor := addPeer(t, dir, "IMPOSTOR", "--allow=")
	cl := mustDial(t, s.TLSAddr, v.AE, v.TLS(t))
	defer cl.Release()
	in := makeInstance(t, instanceSpec{})
	mustStore(t, cl, in)
	id := identifier("STUDY", dicom.TagStudyInstanceUID, in.Study)

	got, stop := tlsDestination(t, dest, port)
	sub, err := cl.Move(testCtx(t), dimse.StudyRootMove, "TLSDEST", id)
	stop()
	if err != nil || sub.Completed != 1 || sub.Failed != 0 {
		t.Fatalf("C-MOVE over TLS: %+v, %v", sub, err)
	}
	_, want := storedData(t, s.A, in.UID)
	if b, ok := got.Load(in.UID); !ok || string(b.([]byte)) != string(want) {
		t.Fatalf("the destination did not receive the data set byte for byte")
	}

	// Another peer's certificate on the destination's port is refused.
	got, stop = tlsDestination(t, impostor, port)
	_, err = cl.Move(testCtx(t), dimse.StudyRootMove, "TLSDEST", id)
	stop()
	if err == nil {
		t.Fatal("C-MOVE to a destination showing another peer's certificate succeeded")
	}
	n := 0
	got.Range(func(any, any) bool { n++; return true })
	if n != 0 {
		t.Fatalf("the impostor received %d instances", n)
	}

	// Once revoked, the destination's old certificate is refused too,
	// though it still chains to the CA and names TLSDEST.
	runCLI(t, "peer", "revoke", "TLSDEST", "--data", dir)
	got, stop = tlsDestination(t, dest, port)
	_, err = cl.Move(testCtx(t), dimse.StudyRootMove, "TLSDEST", id)
	stop()
	if err == nil {
		t.Fatal("C-MOVE to a destination showing its revoked certificate succeeded")
	}
	n = 0
	got.Range(func(any, any) bool { n++; return true })
	if n != 0 {
		t.Fatalf("the revoked destination received %d instances", n)
	}
}
