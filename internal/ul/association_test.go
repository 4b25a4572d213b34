package ul

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/dicomshield/dicomshield/internal/dicomtest"
)

// Association tests run over net.Pipe (synchronous, unbuffered: every
// write waits for the peer's read) and over loopback TCP (buffered).

const verification = "1.2.840.10008.1.1"

func testConfig() *Config {
	return &Config{AssociateTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second, CloseTimeout: time.Second}
}

func verificationRQ() *AssociateRQ {
	return &AssociateRQ{Associate{
		CalledAE:  "ARCHIVE",
		CallingAE: "MODALITY",
		Contexts: []PresentationContext{
			{ID: 1, AbstractSyntax: verification, TransferSyntaxes: []string{"1.2.840.10008.1.2"}},
			{ID: 3, AbstractSyntax: "1.2.840.10008.5.1.4.1.1.2", TransferSyntaxes: []string{"1.2.840.10008.1.2.1", "1.2.840.10008.1.2"}},
		},
		User: UserInfo{ImplementationClassUID: "2.25.7"},
	}}
}

// acceptAll accepts every proposed context in its first transfer syntax.
func acceptAll(rq *AssociateRQ) (*AssociateAC, *AssociateRJ) {
	ac := &AssociateAC{}
	for _, pc := range rq.Contexts {
		ac.Contexts = append(ac.Contexts, PresentationContext{ID: pc.ID, Result: ResultAcceptance, TransferSyntaxes: pc.TransferSyntaxes[:1]})
	}
	return ac, nil
}

type pairFunc func(t *testing.T) (acceptor, requestor net.Conn)

var transports = []struct {
	name string
	pair pairFunc
}{{"pipe", pipePair}, {"tcp", tcpPair}}

func pipePair(t *testing.T) (net.Conn, net.Conn) {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			c = nil
		}
		ch <- c
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-ch
	if s == nil {
		c.Close()
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { s.Close(); c.Close() })
	return s, c
}

type acceptResult struct {
	a   *Association
	rq  *AssociateRQ
	err error
}

func goAccept(conn net.Conn, cfg *Config, decide func(*AssociateRQ) (*AssociateAC, *AssociateRJ)) <-chan acceptResult {
	ch := make(chan acceptResult, 1)
	go func() {
		a, rq, err := Accept(conn, cfg, decide)
		ch <- acceptResult{a, rq, err}
	}()
	return ch
}

// goErr runs f in a goroutine and returns its error on a channel.
func goErr(f func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	return ch
}

// wait returns what ch delivers, failing the test after d.
func wait[T any](t *testing.T, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("%s: no result after %v", what, d)
		panic("unreachable")
	}
}

// establish sets up an association over a fresh pair and returns the
// acceptor and the requestor.
func establish(t *testing.T, pair pairFunc, acfg, rcfg *Config, rq *AssociateRQ) (*Association, *Association) {
	t.Helper()
	sc, cc := pair(t)
	if rq == nil {
		rq = verificationRQ()
	}
	ach := goAccept(sc, acfg, acceptAll)
	req, err := Request(cc, rq, rcfg)
	if err != nil {
		t.Fatalf("Request: %v", err)
	}
	res := wait(t, ach, 5*time.Second, "Accept")
	if res.err != nil {
		t.Fatalf("Accept: %v", res.err)
	}
	return res.a, req
}

// readRaw reads one PDU from the raw connection of a hand-driven peer.
func readRaw(t *testing.T, c net.Conn, d time.Duration) PDU {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	p, _, err := ReadPDU(c, 0, nil)
	if err != nil {
		t.Fatalf("peer reading a PDU: %v", err)
	}
	return p
}

// expectClosed checks that the other end closes c within d.
func expectClosed(t *testing.T, c net.Conn, d time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	n, err := io.Copy(io.Discard, c)
	if err != nil && !errors.Is(err, io.ErrClosedPipe) && !isConnReset(err) {
		t.Fatalf("connection not closed by the other side (read %d bytes): %v", n, err)
	}
}

func isConnReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && !ne.Timeout()
}

func expectAbort(t *testing.T, p PDU, source, reason byte) {
	t.Helper()
	ab, ok := p.(*Abort)
	if !ok {
		t.Fatalf("peer received %T, want A-ABORT", p)
	}
	if ab.Source != source || ab.Reason != reason {
		t.Fatalf("A-ABORT source %d reason %d, want source %d reason %d", ab.Source, ab.Reason, source, reason)
	}
}

func TestAssociateAndRelease(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			dicomtest.CheckGoroutines(t)
			acfg := testConfig()
			acfg.MaxReceivePDU = 32768
			rcfg := testConfig()
			rcfg.MaxReceivePDU = 16384
			acc, req := establish(t, tr.pair, acfg, rcfg, nil)
			if acc.State() != Sta6 || req.State() != Sta6 {
				t.Fatalf("states %v %v, want Sta6", acc.State(), req.State())
			}
			if acc.Requestor() || !req.Requestor() {
				t.Fatal("Requestor() wrong")
			}
			ac := req.AC()
			if ac.CalledAE != "ARCHIVE" || ac.CallingAE != "MODALITY" || ac.User.MaxLength != 32768 || len(ac.Contexts) != 2 {
				t.Fatalf("AC = %+v", ac.Associate)
			}
			if acc.RQ().User.MaxLength != 16384 || acc.RQ().CallingAE != "MODALITY" {
				t.Fatalf("RQ seen by the acceptor: %+v", acc.RQ().Associate)
			}
			if req.MaxPDVData() != 32768-6 || acc.MaxPDVData() != 16384-6 {
				t.Fatalf("MaxPDVData %d %d", req.MaxPDVData(), acc.MaxPDVData())
			}
			// One message each way.
			for _, dir := range []struct {
				name     string
				from, to *Association
			}{{"requestor to acceptor", req, acc}, {"acceptor to requestor", acc, req}} {
				msg := bytes.Repeat([]byte("dicom"), 10000)
				sent := goErr(func() error {
					w := dir.from.PDVWriter(1, false)
					if _, err := w.Write(msg); err != nil {
						return err
					}
					return w.Close()
				})
				got, err := readMessage(dir.to)
				if err != nil {
					t.Fatalf("%s: %v", dir.name, err)
				}
				if err := wait(t, sent, 5*time.Second, "send"); err != nil {
					t.Fatalf("%s: send: %v", dir.name, err)
				}
				if !bytes.Equal(got, msg) {
					t.Fatalf("%s: message differs", dir.name)
				}
			}
			// The requestor releases.
			rel := goErr(req.Release)
			p, err := acc.Next()
			if _, ok := p.(*ReleaseRQ); !ok || err != nil {
				t.Fatalf("acceptor Next = %T, %v; want A-RELEASE-RQ", p, err)
			}
			if acc.State() != Sta8 {
				t.Fatalf("acceptor in %v after A-RELEASE-RQ", acc.State())
			}
			if err := acc.RespondRelease(); err != nil {
				t.Fatalf("RespondRelease: %v", err)
			}
			if err := wait(t, rel, 5*time.Second, "Release"); err != nil {
				t.Fatalf("Release: %v", err)
			}
			if acc.State() != Sta1 || req.State() != Sta1 {
				t.Fatalf("states after release %v %v", acc.State(), req.State())
			}
			if err := req.SendPData(&PDataTF{PDVs: []PDV{{ContextID: 1, Last: true}}}); !errors.Is(err, ErrInvalidState) {
				t.Fatalf("P-DATA after release: %v", err)
			}
		})
	}
}

// readMessage reads P-DATA-TF PDUs until a PDV flagged last and returns
// the concatenated data.
func readMessage(a *Association) ([]byte, error) {
	var out []byte
	for {
		p, err := a.Next()
		if err != nil {
			return out, err
		}
		pd, ok := p.(*PDataTF)
		if !ok {
			return out, errors.New("not P-DATA-TF")
		}
		for _, v := range pd.PDVs {
			out = append(out, v.Data...)
			if v.Last {
				return out, nil
			}
		}
	}
}

func TestReleaseByAcceptor(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			dicomtest.CheckGoroutines(t)
			acc, req := establish(t, tr.pair, testConfig(), testConfig(), nil)
			rel := goErr(acc.Release)
			p, err := req.Next()
			if _, ok := p.(*ReleaseRQ); !ok || err != nil {
				t.Fatalf("requestor Next = %T, %v; want A-RELEASE-RQ", p, err)
			}
			// Data may still flow from the side that received the request.
			w := req.PDVWriter(1, false)
			w.Write([]byte("late"))
			sent := goErr(w.Close)
			if err := wait(t, sent, 5*time.Second, "late P-DATA"); err != nil {
				t.Fatalf("P-DATA after A-RELEASE-RQ received: %v", err)
			}
			if err := req.RespondRelease(); err != nil {
				t.Fatalf("RespondRelease: %v", err)
			}
			if err := wait(t, rel, 5*time.Second, "Release"); err != nil {
				t.Fatalf("Release: %v", err)
			}
			if acc.State() != Sta1 || req.State() != Sta1 {
				t.Fatalf("states after release %v %v", acc.State(), req.State())
			}
		})
	}
}

// TestReleaseCollision has both sides send A-RELEASE-RQ before either
// reads (PS3.8 9.2.6): over TCP both requests cross on the wire, and both
// sides must end released, without error, within the timers. (net.Pipe
// cannot carry a collision: its writes wait for a reader, so two
// simultaneous writers block each other.)
func TestReleaseCollision(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	for i := 0; i < 20; i++ {
		cfg := testConfig()
		acc, req := establish(t, tcpPair, cfg, cfg, nil)
		start := make(chan struct{})
		ar := goErr(func() error { <-start; return acc.Release() })
		rr := goErr(func() error { <-start; return req.Release() })
		close(start)
		if err := wait(t, ar, 5*time.Second, "acceptor Release"); err != nil {
			t.Fatalf("round %d: acceptor Release: %v", i, err)
		}
		if err := wait(t, rr, 5*time.Second, "requestor Release"); err != nil {
			t.Fatalf("round %d: requestor Release: %v", i, err)
		}
		if acc.State() != Sta1 || req.State() != Sta1 {
			t.Fatalf("round %d: states %v %v, want Sta1", i, acc.State(), req.State())
		}
	}
}

func TestReject(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			dicomtest.CheckGoroutines(t)
			for _, tt := range []struct {
				rj   *AssociateRJ
				want string
			}{
				{&AssociateRJ{Result: RejectPermanent, Source: SourceServiceUser, Reason: ReasonCallingAENotRecognized},
					"association rejected permanently by the called application: calling AE title not recognized"},
				{&AssociateRJ{Result: RejectTransient, Source: SourceServiceProviderPresenta, Reason: ReasonLocalLimitExceeded},
					"association rejected for now (transient) by the peer's presentation layer: local limit exceeded"},
				// Neither AC nor RJ: a permanent rejection without reason.
				{nil, "association rejected permanently by the called application: no reason given"},
			} {
				sc, cc := tr.pair(t)
				ach := goAccept(sc, testConfig(), func(*AssociateRQ) (*AssociateAC, *AssociateRJ) { return nil, tt.rj })
				_, err := Request(cc, verificationRQ(), testConfig())
				var rj *RejectedError
				if !errors.As(err, &rj) || err.Error() != tt.want {
					t.Fatalf("Request: %v, want %q", err, tt.want)
				}
				res := wait(t, ach, 5*time.Second, "Accept")
				if !errors.As(res.err, &rj) || res.a != nil || res.rq == nil || res.rq.CallingAE != "MODALITY" {
					t.Fatalf("Accept = %v, %+v, %v", res.a, res.rq, res.err)
				}
			}
		})
	}
}

func TestAbort(t *testing.T) {
	for _, tr := range transports {
		for _, side := range []string{"requestor", "acceptor"} {
			t.Run(tr.name+"/by "+side, func(t *testing.T) {
				dicomtest.CheckGoroutines(t)
				acc, req := establish(t, tr.pair, testConfig(), testConfig(), nil)
				aborter, peer := req, acc
				if side == "acceptor" {
					aborter, peer = acc, req
				}
				next := make(chan error, 1)
				go func() { _, err := peer.Next(); next <- err }()
				if err := aborter.Abort(); err != nil {
					t.Fatalf("Abort: %v", err)
				}
				err := wait(t, next, 5*time.Second, "Next")
				var ae *AbortError
				if !errors.As(err, &ae) || !errors.Is(err, ErrAborted) {
					t.Fatalf("peer Next: %v, want *AbortError matching ErrAborted", err)
				}
				if ae.Abort.Source != AbortSourceUser {
					t.Fatalf("abort source %d", ae.Abort.Source)
				}
				if peer.State() != Sta1 || aborter.State() != Sta1 {
					t.Fatalf("states %v %v", peer.State(), aborter.State())
				}
				// Nothing can be sent after an abort.
				if err := peer.SendPData(&PDataTF{PDVs: []PDV{{ContextID: 1, Last: true}}}); !errors.Is(err, ErrInvalidState) {
					t.Fatalf("P-DATA after abort: %v", err)
				}
			})
		}
	}
}

// TestPeerClosesTransport: a connection that ends without release is an
// abort for the other side.
func TestPeerClosesTransport(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	acc, req := establish(t, tcpPair, testConfig(), testConfig(), nil)
	req.Close()
	_, err := acc.Next()
	if !errors.Is(err, ErrAborted) {
		t.Fatalf("Next after the peer closed: %v", err)
	}
}

// TestARTIMSilentPeer: a peer that connects and says nothing is dropped
// after the associate timeout.
func TestARTIMSilentPeer(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	sc, cc := tcpPair(t)
	cfg := &Config{AssociateTimeout: 200 * time.Millisecond}
	start := time.Now()
	res := wait(t, goAccept(sc, cfg, acceptAll), 5*time.Second, "Accept")
	el := time.Since(start)
	if !errors.Is(res.err, os.ErrDeadlineExceeded) {
		t.Fatalf("Accept: %v, want a deadline error", res.err)
	}
	if el < 150*time.Millisecond || el > 3*time.Second {
		t.Fatalf("dropped after %v, want about 200ms", el)
	}
	expectClosed(t, cc, 2*time.Second)
}

// TestARTIMHalfHeader: a peer that sends part of a PDU header and stalls
// is dropped after the associate timeout before the association is up,
// and after the idle timeout once it is.
func TestARTIMHalfHeader(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	t.Run("associating", func(t *testing.T) {
		sc, cc := tcpPair(t)
		cfg := &Config{AssociateTimeout: 200 * time.Millisecond, IdleTimeout: time.Hour}
		start := time.Now()
		ach := goAccept(sc, cfg, acceptAll)
		cc.Write([]byte{TypeAssociateRQ, 0, 0})
		res := wait(t, ach, 5*time.Second, "Accept")
		el := time.Since(start)
		if !errors.Is(res.err, os.ErrDeadlineExceeded) {
			t.Fatalf("Accept: %v", res.err)
		}
		if el < 150*time.Millisecond || el > 3*time.Second {
			t.Fatalf("dropped after %v, want about 200ms", el)
		}
		expectClosed(t, cc, 2*time.Second)
	})
	t.Run("established", func(t *testing.T) {
		acfg := &Config{AssociateTimeout: 100 * time.Millisecond, IdleTimeout: 500 * time.Millisecond, CloseTimeout: time.Second}
		acc, req := establish(t, tcpPair, acfg, testConfig(), nil)
		raw := req.Conn()
		// Longer than the associate timeout, shorter than the idle one:
		// the association must not be dropped by the associate timer.
		time.Sleep(200 * time.Millisecond)
		start := time.Now()
		raw.Write([]byte{TypePDataTF, 0, 0})
		_, err := acc.Next()
		el := time.Since(start)
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Next: %v, want a deadline error", err)
		}
		if el < 400*time.Millisecond || el > 3*time.Second {
			t.Fatalf("dropped after %v, want about 500ms", el)
		}
		expectAbort(t, readRaw(t, raw, 2*time.Second), AbortSourceProvider, AbortReasonNotSpecified)
		expectClosed(t, raw, 2*time.Second)
	})
	t.Run("trickle", func(t *testing.T) {
		// Bytes that keep arriving reset the idle timer: a long transfer
		// is not cut.
		acfg := &Config{IdleTimeout: 300 * time.Millisecond, CloseTimeout: time.Second}
		acc, req := establish(t, tcpPair, acfg, testConfig(), nil)
		pdu := (&PDataTF{PDVs: []PDV{{ContextID: 1, Last: true, Data: []byte("slow")}}}).Append(nil)
		sent := goErr(func() error {
			for _, b := range pdu {
				time.Sleep(40 * time.Millisecond)
				if _, err := req.Conn().Write([]byte{b}); err != nil {
					return err
				}
			}
			return nil
		})
		p, err := acc.Next()
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if pd := p.(*PDataTF); string(pd.PDVs[0].Data) != "slow" {
			t.Fatalf("got %q", pd.PDVs[0].Data)
		}
		wait(t, sent, 5*time.Second, "trickle")
		req.Abort()
		acc.Next()
	})
}

// TestPDataOverMax: a P-DATA-TF longer than the maximum the receiver
// announced is answered with A-ABORT (service provider, invalid parameter
// value), and one of exactly that length is accepted.
func TestPDataOverMax(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			dicomtest.CheckGoroutines(t)
			acfg := testConfig()
			acfg.MaxReceivePDU = 16384
			acc, req := establish(t, tr.pair, acfg, testConfig(), nil)
			raw := req.Conn()
			// Exactly the maximum: accepted.
			exact := (&PDataTF{PDVs: []PDV{{ContextID: 1, Last: true, Data: make([]byte, 16384-6)}}}).Append(nil)
			sent := goErr(func() error { _, err := raw.Write(exact); return err })
			if p, err := acc.Next(); err != nil || len(p.(*PDataTF).PDVs[0].Data) != 16384-6 {
				t.Fatalf("PDU of exactly the maximum: %v", err)
			}
			wait(t, sent, 5*time.Second, "write")
			// The local side refuses to send what the peer would refuse.
			if err := req.SendPData(&PDataTF{PDVs: []PDV{{ContextID: 1, Data: make([]byte, 16384)}}}); err == nil {
				t.Fatal("SendPData over the peer's maximum succeeded")
			}
			// One byte over, sent raw: the header alone decides.
			over := []byte{TypePDataTF, 0, 0, 0, 0x40, 0x01}
			over = append(over, make([]byte, 64)...)
			next := make(chan error, 1)
			go func() { _, err := acc.Next(); next <- err }()
			go raw.Write(over)
			expectAbort(t, readRaw(t, raw, 5*time.Second), AbortSourceProvider, AbortReasonInvalidParameter)
			raw.Close()
			err := wait(t, next, 5*time.Second, "Next")
			var pe *ProtocolError
			if !errors.As(err, &pe) || pe.Reason != AbortReasonInvalidParameter {
				t.Fatalf("Next: %v", err)
			}
		})
	}
}

// TestUnexpectedPDU: PDUs out of turn during data transfer are answered
// with A-ABORT (unexpected PDU); an unknown PDU type with "unrecognized
// PDU"; and before the association, anything but A-ASSOCIATE-RQ.
func TestUnexpectedPDU(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	tests := []struct {
		name   string
		pdu    []byte
		reason byte
	}{
		{"A-ASSOCIATE-RQ", verificationRQ().Append(nil), AbortReasonUnexpectedPDU},
		{"A-ASSOCIATE-AC", (&AssociateAC{Associate{Contexts: []PresentationContext{{ID: 1, TransferSyntaxes: []string{"1.2.840.10008.1.2"}}}}}).Append(nil), AbortReasonUnexpectedPDU},
		{"A-ASSOCIATE-RJ", (&AssociateRJ{Result: 1, Source: 1, Reason: 1}).Append(nil), AbortReasonUnexpectedPDU},
		{"A-RELEASE-RP", (&ReleaseRP{}).Append(nil), AbortReasonUnexpectedPDU},
		{"unknown type", []byte{0x09, 0, 0, 0, 0, 4, 0, 0, 0, 0}, AbortReasonUnrecognizedPDU},
		{"malformed P-DATA", []byte{TypePDataTF, 0, 0, 0, 0, 6, 0, 0, 0, 9, 1, 3}, AbortReasonInvalidParameter},
	}
	for _, tr := range transports {
		for _, tt := range tests {
			t.Run(tr.name+"/"+tt.name, func(t *testing.T) {
				acc, req := establish(t, tr.pair, testConfig(), testConfig(), nil)
				raw := req.Conn()
				next := make(chan error, 1)
				go func() { _, err := acc.Next(); next <- err }()
				go raw.Write(tt.pdu)
				expectAbort(t, readRaw(t, raw, 5*time.Second), AbortSourceProvider, tt.reason)
				raw.Close()
				err := wait(t, next, 5*time.Second, "Next")
				var pe *ProtocolError
				if !errors.As(err, &pe) || pe.Reason != tt.reason {
					t.Fatalf("Next: %v, want protocol error with reason %d", err, tt.reason)
				}
			})
		}
		t.Run(tr.name+"/before association", func(t *testing.T) {
			sc, cc := tr.pair(t)
			ach := goAccept(sc, testConfig(), acceptAll)
			go cc.Write((&ReleaseRQ{}).Append(nil))
			expectAbort(t, readRaw(t, cc, 5*time.Second), AbortSourceProvider, AbortReasonUnexpectedPDU)
			cc.Close()
			res := wait(t, ach, 5*time.Second, "Accept")
			var pe *ProtocolError
			if !errors.As(res.err, &pe) || pe.Reason != AbortReasonUnexpectedPDU {
				t.Fatalf("Accept: %v", res.err)
			}
		})
	}
}

// TestPDVWriterFragments sends a 1 MiB message to a peer that announced
// 16 KiB: every P-DATA-TF fits the peer's maximum, each carries one PDV,
// only the last PDV is flagged last, and the data arrives unchanged.
func TestPDVWriterFragments(t *testing.T) {
	const peerMax = 16384
	for _, tt := range []struct {
		name   string
		size   int
		chunks []int // write sizes, cycled
	}{
		{"1 MiB in mixed writes", 1 << 20, []int{1, 100, peerMax - 6, 50000, 7, 300000, peerMax}},
		{"1 MiB in one write", 1 << 20, []int{1 << 20}},
		{"exact multiple", 3 * (peerMax - 6), []int{3 * (peerMax - 6)}},
		{"exact multiple, small writes", 2 * (peerMax - 6), []int{1000}},
		{"empty", 0, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dicomtest.CheckGoroutines(t)
			rcfg := testConfig()
			rcfg.MaxReceivePDU = peerMax
			acc, req := establish(t, tcpPair, testConfig(), rcfg, nil)
			msg := make([]byte, tt.size)
			for i := range msg {
				msg[i] = byte(i * 7)
			}
			sent := goErr(func() error {
				w := acc.PDVWriter(3, true)
				rest := msg
				for i := 0; len(rest) > 0; i++ {
					n := min(tt.chunks[i%len(tt.chunks)], len(rest))
					if m, err := w.Write(rest[:n]); err != nil {
						return err
					} else if m != n {
						return errors.New("short write")
					}
					rest = rest[n:]
				}
				return w.Close()
			})
			var got []byte
			pdvs, lasts := 0, 0
			for lasts == 0 {
				p, err := req.Next()
				if err != nil {
					t.Fatalf("Next after %d PDVs: %v", pdvs, err)
				}
				pd := p.(*PDataTF)
				size := 0
				for _, v := range pd.PDVs {
					size += 6 + len(v.Data)
					pdvs++
					if v.ContextID != 3 || !v.Command {
						t.Fatalf("PDV %d: context %d command %v", pdvs, v.ContextID, v.Command)
					}
					if v.Last {
						lasts++
					}
					got = append(got, v.Data...)
				}
				if size > peerMax {
					t.Fatalf("P-DATA-TF of %d bytes exceeds the peer's %d", size, peerMax)
				}
			}
			if err := wait(t, sent, 5*time.Second, "send"); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, msg) {
				t.Fatalf("received %d bytes, sent %d, or they differ", len(got), len(msg))
			}
			want := max(1, (tt.size+peerMax-7)/(peerMax-6))
			if pdvs != want {
				t.Fatalf("%d PDVs, want %d", pdvs, want)
			}
			req.Abort()
			acc.Next()
		})
	}
}

// TestSendMessage: a command and data set sent in one write arrive as
// PDVWriter would send them (a P-DATA-TF each, flagged last), and a
// message too large for one PDV is left to PDVWriter.
func TestSendMessage(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	const peerMax = 1024
	rcfg := testConfig()
	rcfg.MaxReceivePDU = peerMax
	acc, req := establish(t, tcpPair, testConfig(), rcfg, nil)
	if sent, err := acc.SendMessage(1, make([]byte, peerMax), nil); sent || err != nil {
		t.Fatalf("oversized command: sent %v, %v; want left to PDVWriter", sent, err)
	}
	for _, data := range [][]byte{nil, {}, []byte("data set")} {
		cmd := []byte("command")
		sent := goErr(func() error {
			ok, err := acc.SendMessage(5, cmd, data)
			if !ok {
				return errors.New("not sent")
			}
			return err
		})
		want := []PDV{{ContextID: 5, Command: true, Last: true, Data: cmd}}
		if data != nil {
			want = append(want, PDV{ContextID: 5, Last: true, Data: data})
		}
		for i, w := range want {
			p, err := req.Next()
			if err != nil {
				t.Fatal(err)
			}
			pd, ok := p.(*PDataTF)
			if !ok || len(pd.PDVs) != 1 {
				t.Fatalf("PDU %d: %#v, want a P-DATA-TF with one PDV", i, p)
			}
			v := pd.PDVs[0]
			if v.ContextID != w.ContextID || v.Command != w.Command || v.Last != w.Last || !bytes.Equal(v.Data, w.Data) {
				t.Fatalf("PDU %d: %+v, want %+v", i, v, w)
			}
		}
		if err := wait(t, sent, 5*time.Second, "send"); err != nil {
			t.Fatal(err)
		}
	}
	req.Abort()
	acc.Next()
}

// TestReadBufferGrows: an association reads through a small buffer
// while the peer sends small PDUs, and through the large one from the
// first PDU larger than the small buffer on.
func TestReadBufferGrows(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	acc, req := establish(t, tcpPair, testConfig(), testConfig(), nil)
	for _, size := range []int{100, 16 << 10, 100} {
		sent := goErr(func() error {
			w := acc.PDVWriter(1, false)
			w.Write(make([]byte, size))
			return w.Close()
		})
		if _, err := req.Next(); err != nil {
			t.Fatal(err)
		}
		if err := wait(t, sent, 5*time.Second, "send"); err != nil {
			t.Fatal(err)
		}
		want := smallReadBuffer
		if size > smallReadBuffer || req.rd.Size() == largeReadBuffer && size == 100 {
			want = largeReadBuffer
		}
		if req.rd.Size() != want {
			t.Fatalf("after a %d-byte PDU: read buffer %d, want %d", size, req.rd.Size(), want)
		}
	}
	req.Abort()
	acc.Next()
}

// TestSmallPeerMaxLength: a peer may announce any maximum length. One too
// small to carry a PDV with data must not make the sender panic or loop
// sending empty PDVs.
func TestSmallPeerMaxLength(t *testing.T) {
	for _, peerMax := range []uint32{1, 5, 6, 7, 8, 100} {
		t.Run("", func(t *testing.T) {
			dicomtest.CheckGoroutines(t)
			rq := verificationRQ()
			rq.User.MaxLength = peerMax
			acc, req := establish(t, tcpPair, testConfig(), testConfig(), rq)
			if acc.MaxPDVData() < 1 {
				t.Fatalf("peer max %d: MaxPDVData %d", peerMax, acc.MaxPDVData())
			}
			msg := bytes.Repeat([]byte{0xAB}, 200)
			sent := goErr(func() error {
				w := acc.PDVWriter(1, false)
				if _, err := w.Write(msg); err != nil {
					return err
				}
				return w.Close()
			})
			got, err := readMessage(req)
			if err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("peer max %d: got %d bytes, %v", peerMax, len(got), err)
			}
			if err := wait(t, sent, 5*time.Second, "send"); err != nil {
				t.Fatal(err)
			}
			req.Abort()
			acc.Next()
		})
	}
}

// TestAssociateItemsNotOverwritten: the byte fields of the A-ASSOCIATE-RQ
// (user identity, extended negotiation) and -AC (identity response) stay
// intact while P-DATA-TF PDUs are received afterwards.
func TestAssociateItemsNotOverwritten(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	sc, cc := tcpPair(t)
	rq := verificationRQ()
	rq.User.Identity = &UserIdentity{Type: IdentityUsernamePasscode, Primary: []byte("alice"), Secondary: []byte("secret")}
	rq.User.Extended = []SOPClassExtended{{SOPClassUID: verification, Info: []byte{1, 2, 3}}}
	ach := goAccept(sc, testConfig(), func(rq *AssociateRQ) (*AssociateAC, *AssociateRJ) {
		ac, _ := acceptAll(rq)
		ac.User.IdentityResp, ac.User.HasIdentityResp = []byte("welcome"), true
		return ac, nil
	})
	req, err := Request(cc, rq, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	res := wait(t, ach, 5*time.Second, "Accept")
	if res.err != nil {
		t.Fatal(res.err)
	}
	acc := res.a
	// P-DATA-TF PDUs exactly as long as the association PDU each side
	// received, which a reused receive buffer would hold.
	rqBody := len(acc.RQ().Append(nil)) - 6
	acBody := len(req.AC().Append(nil)) - 6
	for _, dir := range []struct {
		from, to *Association
		size     int
	}{{req, acc, rqBody}, {acc, req, acBody}} {
		for _, size := range []int{8, dir.size - 6} {
			junk := bytes.Repeat([]byte{0xEE}, size)
			sent := goErr(func() error {
				w := dir.from.PDVWriter(1, false)
				w.Write(junk)
				return w.Close()
			})
			if _, err := readMessage(dir.to); err != nil {
				t.Fatal(err)
			}
			wait(t, sent, 5*time.Second, "send")
		}
	}
	id := acc.RQ().User.Identity
	if string(id.Primary) != "alice" || string(id.Secondary) != "secret" {
		t.Fatalf("identity became %q / %q after P-DATA", id.Primary, id.Secondary)
	}
	if x := acc.RQ().User.Extended; !bytes.Equal(x[0].Info, []byte{1, 2, 3}) {
		t.Fatalf("extended negotiation info became %v", x[0].Info)
	}
	if r := req.AC().User.IdentityResp; string(r) != "welcome" {
		t.Fatalf("identity response became %q", r)
	}
	req.Abort()
	acc.Next()
}

// TestReadPDUMemoryFollowsData: a PDU announcing a large body holds
// memory in proportion to the bytes that arrived, not to the announcement,
// and large bodies still read whole whatever scratch is passed.
func TestReadPDUMemoryFollowsData(t *testing.T) {
	stalled := io.MultiReader(bytes.NewReader([]byte{TypeAssociateRQ, 0, 0, 0x10, 0, 0}), bytes.NewReader(make([]byte, 100)))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, scratch, err := ReadPDU(stalled, 0, nil)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated PDU: %v", err)
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 64<<10 || cap(scratch) > 64<<10 {
		t.Fatalf("%d bytes allocated, buffer of %d, for a 1 MiB announcement and 100 bytes", d, cap(scratch))
	}
	data := make([]byte, 3<<20)
	for i := range data {
		data[i] = byte(i * 13)
	}
	enc := (&PDataTF{PDVs: []PDV{{ContextID: 1, Last: true, Data: data}}}).Append(nil)
	for _, sc := range [][]byte{nil, make([]byte, 10), make([]byte, 5<<20)} {
		p, _, err := ReadPDU(bytes.NewReader(enc), 4<<20, sc)
		if err != nil || !bytes.Equal(p.(*PDataTF).PDVs[0].Data, data) {
			t.Fatalf("scratch of %d bytes: %v", cap(sc), err)
		}
	}
}

// TestProtocolVersionRegression is the crasher FuzzDecodePDU found
// (testdata/fuzz/FuzzDecodePDU/820976eaf7119c87): an A-ASSOCIATE-AC with
// protocol version 0 decoded, but re-encoded as version 1, since 0 selects
// the default when encoding. A protocol version without bit 0 (version 1)
// is now a protocol error, and a requestor sending one is aborted.
func TestProtocolVersionRegression(t *testing.T) {
	for _, v := range []uint16{0, 2} {
		ac := sampleAC()
		enc := ac.Append(nil)
		binary.BigEndian.PutUint16(enc[6:], v)
		_, err := DecodePDU(TypeAssociateAC, enc[6:])
		var pe *ProtocolError
		if !errors.As(err, &pe) || pe.Reason != AbortReasonInvalidParameter {
			t.Fatalf("A-ASSOCIATE-AC with protocol version %d: %v", v, err)
		}
	}
	dicomtest.CheckGoroutines(t)
	sc, cc := tcpPair(t)
	ach := goAccept(sc, testConfig(), acceptAll)
	rq := sampleRQ().Append(nil)
	binary.BigEndian.PutUint16(rq[6:], 0)
	cc.Write(rq)
	expectAbort(t, readRaw(t, cc, 5*time.Second), AbortSourceProvider, AbortReasonInvalidParameter)
	cc.Close()
	if res := wait(t, ach, 5*time.Second, "Accept"); !errors.Is(res.err, ErrProtocol) {
		t.Fatalf("Accept: %v", res.err)
	}
}

// TestAssociateRoundTripRegressions covers what FuzzDecodePDU found
// decoding to a value that re-encodes differently
// (testdata/fuzz/FuzzDecodePDU/68aab7fa0543883d: an empty application
// context name, which encoding replaces by the default) and the other
// defaults of the encoder: an answered presentation context without a
// transfer syntax, or with two.
func TestAssociateRoundTripRegressions(t *testing.T) {
	// An empty application context name is malformed.
	rq := sampleRQ()
	enc := rq.Append(nil)
	i := bytes.Index(enc, []byte(ApplicationContextName))
	bad := append(append(append([]byte(nil), enc[:i-2]...), 0, 0), enc[i+len(ApplicationContextName):]...)
	_, err := DecodePDU(TypeAssociateRQ, bad[6:])
	var pe *ProtocolError
	if !errors.As(err, &pe) || pe.Reason != AbortReasonInvalidParameter {
		t.Fatalf("empty application context: %v", err)
	}
	// An answered context without a transfer syntax stays without one.
	ac := sampleAC()
	ac.Contexts[1].TransferSyntaxes = nil
	enc = ac.Append(nil)
	p, err := DecodePDU(TypeAssociateAC, enc[6:])
	if err != nil {
		t.Fatal(err)
	}
	if got := p.(*AssociateAC).Contexts[1].TransferSyntaxes; got != nil {
		t.Fatalf("transfer syntaxes %q, want none", got)
	}
	if enc2 := p.Append(nil); !bytes.Equal(enc, enc2) {
		t.Fatal("A-ASSOCIATE-AC re-encodes differently")
	}
	// Two transfer syntaxes answering one context are malformed.
	ac = sampleAC()
	one := ac.Append(nil)
	ac.Contexts[0].TransferSyntaxes = []string{"1.2.840.10008.1.2"}
	item := appendItem(nil, itemTransferSyntax, func(b []byte) []byte { return append(b, "1.2.840.10008.1.2"...) })
	j := bytes.Index(one, item) + len(item)
	two := append(append(append([]byte(nil), one[:j]...), item...), one[j:]...)
	binary.BigEndian.PutUint32(two[2:], uint32(len(two)-6))
	binary.BigEndian.PutUint16(two[j-len(item)-6:], binary.BigEndian.Uint16(two[j-len(item)-6:])+uint16(len(item)))
	if _, err := DecodePDU(TypeAssociateAC, two[6:]); !errors.As(err, &pe) || !strings.Contains(pe.Msg, "more than one transfer syntax") {
		t.Fatalf("two transfer syntaxes in an answered context: %v", err)
	}
}

// acceptorSeeds are inputs for FuzzAcceptor: what a requestor might send.
func acceptorSeeds() [][]byte {
	rq := sampleRQ().Append(nil)
	pdata := (&PDataTF{PDVs: []PDV{{ContextID: 1, Command: true, Last: true, Data: []byte{1, 2, 3, 4}}}}).Append(nil)
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	return [][]byte{
		rq,
		cat(rq, pdata, (&ReleaseRQ{}).Append(nil)),
		cat(rq, pdata, (&Abort{Source: AbortSourceUser}).Append(nil)),
		cat(rq, []byte{TypePDataTF, 0, 0xFF, 0xFF, 0xFF, 0xFF}),
		cat(rq, verificationRQ().Append(nil)),
		{TypeAssociateRQ, 0, 0xFF, 0xFF, 0xFF, 0xFF},
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
	}
}

// FuzzAcceptor feeds arbitrary bytes, as the requestor, to Accept (which
// accepts whatever is proposed) and then to Next until the association
// ends. It must neither panic nor hang, and memory allocated per input
// stays bounded whatever lengths the input announces.
func FuzzAcceptor(f *testing.F) {
	for _, s := range acceptorSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 256<<10 {
			return // inputs are kept small
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		sc, cc := net.Pipe()
		cfg := &Config{AssociateTimeout: 200 * time.Millisecond, IdleTimeout: 200 * time.Millisecond,
			CloseTimeout: 50 * time.Millisecond, MaxReceivePDU: 64 << 10}
		peerDone := make(chan struct{})
		go func() {
			defer close(peerDone)
			cc.SetDeadline(time.Now().Add(2 * time.Second))
			drained := make(chan struct{})
			go func() { io.Copy(io.Discard, cc); close(drained) }()
			cc.Write(in)
			cc.Close()
			<-drained
		}()
		done := make(chan error, 1)
		go func() {
			a, _, err := Accept(sc, cfg, acceptAll)
			if err != nil {
				done <- nil
				return
			}
			// Every PDU consumes at least 6 bytes of the input.
			for range len(in)/6 + 1 {
				p, err := a.Next()
				if err != nil {
					done <- nil
					return
				}
				if _, ok := p.(*ReleaseRQ); ok {
					a.RespondRelease()
					done <- nil
					return
				}
			}
			a.Abort()
			done <- errors.New("more PDUs than the input holds")
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			sc.Close()
			cc.Close()
			t.Fatal("acceptor hangs")
		}
		select {
		case <-peerDone:
		case <-time.After(5 * time.Second):
			t.Fatal("peer still blocked")
		}
		runtime.ReadMemStats(&after)
		// Association PDUs may announce up to 1 MiB and P-DATA 64 KiB here;
		// decoding adds a bounded factor of what actually arrived.
		if d := after.TotalAlloc - before.TotalAlloc; d > 4<<20+64*uint64(len(in)) {
			t.Fatalf("%d bytes allocated for a %d-byte input", d, len(in))
		}
	})
}

// TestFuzzAcceptorSeedsParse checks that the seeds are what they claim
// (a valid A-ASSOCIATE-RQ first), so that the fuzzer starts from inputs
// that reach data transfer.
func TestFuzzAcceptorSeedsParse(t *testing.T) {
	for i, s := range acceptorSeeds()[:5] {
		p, _, err := ReadPDU(bytes.NewReader(s), 0, nil)
		if _, ok := p.(*AssociateRQ); !ok || err != nil {
			t.Fatalf("seed %d: %T %v", i, p, err)
		}
		if binary.BigEndian.Uint32(s[2:]) == 0 {
			t.Fatalf("seed %d: empty", i)
		}
	}
}
