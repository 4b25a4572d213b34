package dimse

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/dicomtest"
	"github.com/dicomshield/dicomshield/internal/ul"
)

const ctImage = "1.2.840.10008.5.1.4.1.1.2"

// memArchive is a minimal in-memory SCP used to exercise every service.
type memArchive struct {
	mu   sync.Mutex
	data map[string][]byte // SOP instance UID -> data set bytes
	ts   map[string]string
	// movedTo records the destinations resolved for C-MOVE.
	dests map[string]string
}

func newMemArchive() *memArchive {
	return &memArchive{data: map[string][]byte{}, ts: map[string]string{}, dests: map[string]string{}}
}

func (m *memArchive) server(tlsConf *tls.Config) *Server {
	s := &Server{
		TLS: tlsConf,
		UL:  ul.Config{CloseTimeout: 200 * time.Millisecond},
		Accept: func(r *AssocRequest) (*ul.AssociateAC, any, *ul.AssociateRJ) {
			if r.RQ.CallingAE == "STRANGER" {
				return nil, nil, &ul.AssociateRJ{Result: ul.RejectPermanent, Source: ul.SourceServiceUser, Reason: ul.ReasonCallingAENotRecognized}
			}
			return Negotiate(r.RQ, func(string) []string {
				return []string{dicom.ExplicitVRLittleEndianUID, dicom.ImplicitVRLittleEndianUID}
			}), nil, nil
		},
		Store: func(ctx context.Context, r *Request, data io.Reader) Status {
			b, err := io.ReadAll(data)
			if err != nil {
				return Status{Code: StatusProcessingFailure}
			}
			m.mu.Lock()
			defer m.mu.Unlock()
			m.data[r.Command.AffectedSOPInstance] = b
			m.ts[r.Command.AffectedSOPInstance] = r.TransferSyntax
			return Status{Code: StatusSuccess}
		},
		Find: func(ctx context.Context, r *Request, id *dicom.DataSet, emit func(*dicom.DataSet) error) Status {
			for _, uid := range m.uids() {
				res := &dicom.DataSet{}
				res.Set(dicom.NewText(dicom.TagSOPInstanceUID, dicom.UI, uid))
				res.Set(dicom.NewText(dicom.NewTag(0x0008, 0x0052), dicom.CS, id.String(dicom.NewTag(0x0008, 0x0052))))
				if err := emit(res); err != nil {
					return Status{Code: StatusCancel}
				}
			}
			return Status{Code: StatusSuccess}
		},
		Retrieve: func(ctx context.Context, r *Request, id *dicom.DataSet) ([]Instance, Status) {
			var out []Instance
			for _, uid := range m.uids() {
				m.mu.Lock()
				b, ts := m.data[uid], m.ts[uid]
				m.mu.Unlock()
				out = append(out, Instance{SOPClassUID: ctImage, SOPInstanceUID: uid, TransferSyntax: ts,
					Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }})
			}
			return out, Status{Code: StatusSuccess}
		},
	}
	s.MoveDestination = func(ctx context.Context, r *Request, ae string) (*Destination, error) {
		m.mu.Lock()
		defer m.mu.Unlock()
		addr, ok := m.dests[ae]
		if !ok {
			return nil, errors.New("unknown")
		}
		return &Destination{Addr: addr, Options: DialOptions{CallingAE: "MEMARCHIVE", CalledAE: ae, TLS: tlsClientFor(tlsConf)}}, nil
	}
	return s
}

var clientTLS *tls.Config

func tlsClientFor(server *tls.Config) *tls.Config {
	if server == nil {
		return nil
	}
	return clientTLS
}

func (m *memArchive) uids() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for k := range m.data {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func startServer(t *testing.T, s *Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		if err := <-done; err != ErrServerClosed {
			t.Errorf("Serve returned %v", err)
		}
	})
	return l.Addr().String()
}

func instance(uid string) []byte {
	ds := &dicom.DataSet{}
	ds.Set(dicom.NewText(dicom.TagSOPClassUID, dicom.UI, ctImage))
	ds.Set(dicom.NewText(dicom.TagSOPInstanceUID, dicom.UI, uid))
	ds.Set(dicom.NewText(dicom.TagPatientID, dicom.LO, "P1"))
	ds.Set(dicom.NewBytes(dicom.TagPixelData, dicom.OW, bytes.Repeat([]byte{1, 2, 3, 4}, 100000)))
	b, _ := dicom.MarshalDataSet(ds, dicom.ExplicitVRLittleEndian)
	return b
}

func allProposals() []Proposal {
	ts := []string{dicom.ExplicitVRLittleEndianUID, dicom.ImplicitVRLittleEndianUID}
	return []Proposal{
		{AbstractSyntax: VerificationSOPClass, TransferSyntaxes: ts},
		{AbstractSyntax: ctImage, TransferSyntaxes: ts, SCPRole: true},
		{AbstractSyntax: StudyRootFind, TransferSyntaxes: ts},
		{AbstractSyntax: StudyRootGet, TransferSyntaxes: ts},
		{AbstractSyntax: StudyRootMove, TransferSyntaxes: ts},
	}
}

// TestServices runs every service between our client and server, in
// plain TCP and in mutual TLS.
func TestServices(t *testing.T) {
	pki := dicomtest.NewPKI(t, "MODALITY")
	clientTLS = pki.Client
	for _, mode := range []string{"plain", "tls"} {
		t.Run(mode, func(t *testing.T) {
			var serverTLS, cTLS *tls.Config
			if mode == "tls" {
				serverTLS, cTLS = pki.Server, pki.Client
			}
			arch := newMemArchive()
			addr := startServer(t, arch.server(serverTLS))
			ctx := context.Background()
			opts := &DialOptions{CallingAE: "MODALITY", CalledAE: "ARCHIVE", Contexts: allProposals(), TLS: cTLS}
			cl, err := Dial(ctx, addr, opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := cl.Echo(ctx); err != nil {
				t.Fatalf("echo: %v", err)
			}
			want := map[string][]byte{}
			for i := 0; i < 3; i++ {
				uid := fmt.Sprintf("1.2.3.%d", i)
				want[uid] = instance(uid)
				if _, err := cl.Store(ctx, ctImage, uid, dicom.ExplicitVRLittleEndianUID, bytes.NewReader(want[uid])); err != nil {
					t.Fatalf("store: %v", err)
				}
			}
			for uid, b := range want {
				if !bytes.Equal(arch.data[uid], b) {
					t.Fatalf("stored %s differs (%d vs %d bytes)", uid, len(arch.data[uid]), len(b))
				}
			}
			q := &dicom.DataSet{}
			q.Set(dicom.NewText(dicom.NewTag(0x0008, 0x0052), dicom.CS, "IMAGE"))
			var got []string
			n, err := cl.Find(ctx, StudyRootFind, q, func(ds *dicom.DataSet) error {
				got = append(got, ds.String(dicom.TagSOPInstanceUID))
				return nil
			})
			if err != nil || n != 3 || len(got) != 3 || got[0] != "1.2.3.0" {
				t.Fatalf("find: n=%d got=%v err=%v", n, got, err)
			}
			// Cancel after the first match.
			n, err = cl.Find(ctx, StudyRootFind, q, func(*dicom.DataSet) error { return ErrStop })
			if err != nil || n < 1 || n > 3 {
				t.Fatalf("find with cancel: n=%d err=%v", n, err)
			}
			// C-GET: the instances come back on this association.
			received := map[string][]byte{}
			sub, err := cl.Get(ctx, StudyRootGet, q, func(r *Request, data io.Reader) Status {
				b, _ := io.ReadAll(data)
				received[r.Command.AffectedSOPInstance] = b
				return Status{Code: StatusSuccess}
			})
			if err != nil || sub.Completed != 3 || sub.Failed != 0 {
				t.Fatalf("get: %+v %v", sub, err)
			}
			for uid, b := range want {
				if !bytes.Equal(received[uid], b) {
					t.Fatalf("C-GET %s differs", uid)
				}
			}
			// C-MOVE to a second archive.
			dest := newMemArchive()
			destAddr := startServer(t, dest.server(serverTLS))
			arch.dests["DEST"] = destAddr
			sub, err = cl.Move(ctx, StudyRootMove, "DEST", q)
			if err != nil || sub.Completed != 3 {
				t.Fatalf("move: %+v %v", sub, err)
			}
			for uid, b := range want {
				if !bytes.Equal(dest.data[uid], b) {
					t.Fatalf("C-MOVE %s differs", uid)
				}
			}
			_, err = cl.Move(ctx, StudyRootMove, "NOWHERE", q)
			if !IsStatus(err, StatusMoveDestinationUnknown) {
				t.Fatalf("move to unknown AE: %v", err)
			}
			if err := cl.Release(); err != nil {
				t.Fatalf("release: %v", err)
			}
		})
	}
}

func TestRejection(t *testing.T) {
	arch := newMemArchive()
	addr := startServer(t, arch.server(nil))
	_, err := Dial(context.Background(), addr, &DialOptions{CallingAE: "STRANGER", Contexts: allProposals()})
	var rj *ul.RejectedError
	if !errors.As(err, &rj) || err.Error() != "association rejected permanently by the called application: calling AE title not recognized" {
		t.Fatalf("err = %v", err)
	}
	// The zero Server rejects everything.
	addr = startServer(t, &Server{UL: ul.Config{CloseTimeout: 100 * time.Millisecond}})
	if _, err := Dial(context.Background(), addr, &DialOptions{Contexts: allProposals()}); !errors.As(err, &rj) {
		t.Fatalf("zero server: %v", err)
	}
}

func TestCommandRoundTrip(t *testing.T) {
	cmds := []*Command{
		{Field: CStoreRQ, MessageID: 7, AffectedSOPClass: ctImage, AffectedSOPInstance: "1.2.3", Priority: PriorityHigh, HasDataSet: true,
			HasMoveOriginator: true, MoveOriginatorAE: "MOVER", MoveOriginatorID: 3},
		{Field: CStoreRSP, RespondingTo: 7, AffectedSOPClass: ctImage, AffectedSOPInstance: "1.2.3", Status: StatusDuplicateInstance, ErrorComment: "already stored"},
		{Field: CMoveRQ, MessageID: 9, AffectedSOPClass: StudyRootMove, MoveDestination: "DEST", HasDataSet: true},
		{Field: CMoveRSP, RespondingTo: 9, AffectedSOPClass: StudyRootMove, Status: StatusPending, HasSubOps: true, SubOps: SubOps{Remaining: 2, Completed: 1}},
		{Field: CCancelRQ, RespondingTo: 9},
		{Field: CEchoRQ, MessageID: 1, AffectedSOPClass: VerificationSOPClass},
	}
	for _, c := range cmds {
		got, err := DecodeCommand(c.Encode())
		if err != nil {
			t.Fatalf("%s: %v", c.Name(), err)
		}
		if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", c) {
			t.Errorf("%s:\n got %+v\nwant %+v", c.Name(), got, c)
		}
	}
}

func FuzzDecodeCommand(f *testing.F) {
	f.Add((&Command{Field: CEchoRQ, MessageID: 1, AffectedSOPClass: VerificationSOPClass}).Encode())
	f.Add((&Command{Field: CMoveRSP, RespondingTo: 9, Status: StatusPending, HasSubOps: true}).Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommand(b)
		if err != nil {
			return
		}
		if _, err := DecodeCommand(c.Encode()); err != nil {
			t.Fatalf("re-encoded command does not decode: %v", err)
		}
	})
}
