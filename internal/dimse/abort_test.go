package dimse

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/dicomtest"
	"github.com/dicomshield/dicomshield/internal/ul"
)

// TestAbortFromOutside: Server.Abort ends an established association at
// once, idle or in the middle of a C-STORE or C-GET, in plain TCP and in
// TLS; the peer sees an A-ABORT and nothing is answered after it.
func TestAbortFromOutside(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	p := dicomtest.NewPKI(t, "MODALITY")
	tests := []struct {
		name string
		// busy starts an operation that is in progress (inside the
		// server's handler) when it returns, and returns its result.
		busy func(t *testing.T, cl *Client, m *memArchive, inside, gone chan struct{}) <-chan error
	}{
		{"idle", func(t *testing.T, cl *Client, m *memArchive, inside, gone chan struct{}) <-chan error {
			return nil
		}},
		{"during C-STORE", func(t *testing.T, cl *Client, m *memArchive, inside, gone chan struct{}) <-chan error {
			pr, pw := io.Pipe()
			t.Cleanup(func() { pr.Close() })
			data := instance("1.2.3.9")
			res := make(chan error, 1)
			go func() {
				st, err := cl.Store(context.Background(), ctImage, "1.2.3.9", dicom.ExplicitVRLittleEndianUID, pr)
				if err == nil {
					err = errors.New("C-STORE answered")
					if st != StatusSuccess {
						err = errors.New("C-STORE answered with a failure")
					}
				}
				res <- err
			}()
			// Half the data set, so that the server's handler is reading
			// when the abort comes; the rest after it, as a peer that
			// goes on sending would.
			go func() {
				pw.Write(data[:len(data)/2])
				<-gone
				pw.Write(data[len(data)/2:])
				pw.Close()
			}()
			<-inside
			return res
		}},
		{"during C-GET", func(t *testing.T, cl *Client, m *memArchive, inside, gone chan struct{}) <-chan error {
			for _, uid := range []string{"1.2.3.1", "1.2.3.2"} {
				m.data[uid], m.ts[uid] = instance(uid), dicom.ExplicitVRLittleEndianUID
			}
			q := &dicom.DataSet{}
			q.Set(dicom.NewText(dicom.NewTag(0x0008, 0x0052), dicom.CS, "STUDY"))
			res := make(chan error, 1)
			first := true
			go func() {
				_, err := cl.Get(context.Background(), StudyRootGet, q, func(r *Request, data io.Reader) Status {
					io.Copy(io.Discard, data)
					if first {
						first = false
						close(inside)
						// Hold the sub-operation's answer until the
						// association is gone.
						<-gone
					}
					return Status{Code: StatusSuccess}
				})
				if err == nil {
					err = errors.New("C-GET completed")
				}
				res <- err
			}()
			<-inside
			return res
		}},
	}
	for _, mode := range []string{"plain", "tls"} {
		for _, tt := range tests {
			t.Run(mode+"/"+tt.name, func(t *testing.T) {
				var serverTLS, clientTLS *tls.Config
				if mode == "tls" {
					serverTLS, clientTLS = p.Server, p.Client
				}
				m := newMemArchive()
				s := m.server(serverTLS)
				inside := make(chan struct{})
				if tt.name == "during C-STORE" {
					store := s.Store
					s.Store = func(ctx context.Context, r *Request, data io.Reader) Status {
						close(inside)
						return store(ctx, r, data)
					}
				}
				closed := make(chan *Assoc, 1)
				s.ConnState = func(a *Assoc, open bool) {
					if !open {
						closed <- a
					}
				}
				addr := startServer(t, s)
				cl, err := Dial(context.Background(), addr, &DialOptions{CallingAE: "MODALITY", CalledAE: "ARCHIVE",
					Contexts: allProposals(), TLS: clientTLS})
				if err != nil {
					t.Fatal(err)
				}
				gone := make(chan struct{})
				defer cl.Abort()
				if err := cl.Echo(context.Background()); err != nil {
					t.Fatal(err)
				}
				open := s.Associations()
				if len(open) != 1 || open[0].CallingAE != "MODALITY" {
					t.Fatalf("Associations() = %v, want the one of MODALITY", open)
				}
				as := open[0]
				if !slices.Contains(as.AbstractSyntaxes, VerificationSOPClass) || !slices.Contains(as.AbstractSyntaxes, StudyRootGet) {
					t.Errorf("AbstractSyntaxes = %v, want the accepted ones", as.AbstractSyntaxes)
				}
				res := tt.busy(t, cl, m, inside, gone)
				if s.Abort(as.ID+1000, "test") {
					t.Errorf("Abort of an association that does not exist reported true")
				}
				if !s.Abort(as.ID, "test") {
					t.Fatalf("Abort(%d) = false for an open association", as.ID)
				}
				close(gone)
				select {
				case a := <-closed:
					if a.ID != as.ID {
						t.Errorf("closed association %d, want %d", a.ID, as.ID)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("the association did not end within 10 s of Abort")
				}
				if res != nil {
					select {
					case err := <-res:
						if !errors.Is(err, ul.ErrAborted) && !isClosed(err) {
							t.Errorf("operation in progress ended with %v, want the abort", err)
						}
					case <-time.After(10 * time.Second):
						t.Fatal("the operation in progress did not end within 10 s of Abort")
					}
				} else if err := cl.Echo(context.Background()); !errors.Is(err, ul.ErrAborted) {
					t.Errorf("C-ECHO after Abort: %v, want A-ABORT", err)
				}
				if n := len(s.Associations()); n != 0 {
					t.Errorf("%d associations listed after the abort", n)
				}
			})
		}
	}
}

// isClosed reports whether err says the connection went away (the abort
// PDU can be lost when the peer was writing as it came).
func isClosed(err error) bool {
	return err != nil && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		bytes.Contains([]byte(err.Error()), []byte("connection reset")) || bytes.Contains([]byte(err.Error()), []byte("broken pipe")))
}
