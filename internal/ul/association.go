package ul

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Default timers. Each is a Config field whose zero value selects it.
const (
	// DefaultAssociateTimeout is ARTIM while an association is set up: the
	// whole time from transport connection to A-ASSOCIATE-AC. Real peers
	// need milliseconds; 30 s tolerates slow links and TLS handshakes, and a
	// peer that connects and says nothing costs no more than this.
	DefaultAssociateTimeout = 30 * time.Second
	// DefaultIdleTimeout bounds a silent peer once the association is up.
	// It is reset whenever bytes arrive, so a long C-STORE that keeps
	// sending never hits it.
	DefaultIdleTimeout = 2 * time.Minute
	// DefaultCloseTimeout is ARTIM after a release response, a rejection or
	// an abort: how long to wait for the peer to close the connection.
	DefaultCloseTimeout = 5 * time.Second
	// DefaultMaxReceivePDU is the P-DATA-TF size advertised to peers and
	// enforced on what they send: big enough to amortise per-PDU costs,
	// small enough to bound memory per association.
	DefaultMaxReceivePDU = 1 << 20
	// DefaultMaxSendPDU is used when the peer announces no limit (0).
	DefaultMaxSendPDU = 1 << 20
)

// Config configures an association. The zero Config uses every default.
type Config struct {
	AssociateTimeout time.Duration
	IdleTimeout      time.Duration
	CloseTimeout     time.Duration
	// MaxReceivePDU is announced in the user information and enforced.
	MaxReceivePDU uint32
}

func (c *Config) withDefaults() Config {
	var out Config
	if c != nil {
		out = *c
	}
	if out.AssociateTimeout <= 0 {
		out.AssociateTimeout = DefaultAssociateTimeout
	}
	if out.IdleTimeout <= 0 {
		out.IdleTimeout = DefaultIdleTimeout
	}
	if out.CloseTimeout <= 0 {
		out.CloseTimeout = DefaultCloseTimeout
	}
	if out.MaxReceivePDU == 0 {
		out.MaxReceivePDU = DefaultMaxReceivePDU
	}
	return out
}

// Errors of an association.
var (
	// ErrAborted: the association ended with an A-ABORT (either side) or
	// the transport closed without release.
	ErrAborted = errors.New("ul: association aborted")
	// ErrReleased: the association was released; no more data flows.
	ErrReleased = errors.New("ul: association released")
	// ErrInvalidState: the local user asked for something the state does
	// not allow (a bug in the caller).
	ErrInvalidState = errors.New("ul: not allowed in this association state")
)

// RejectedError is returned by Request when the peer sends A-ASSOCIATE-RJ.
type RejectedError struct{ RJ AssociateRJ }

func (e *RejectedError) Error() string { return e.RJ.String() }

// AbortError reports an A-ABORT received from the peer.
type AbortError struct{ Abort Abort }

func (e *AbortError) Error() string { return e.Abort.String() }

// Unwrap lets errors.Is(err, ErrAborted) match.
func (e *AbortError) Unwrap() error { return ErrAborted }

// Association is one DICOM association over a connection (TCP or TLS).
// Next must be called from one goroutine at a time; the sending methods are
// safe for concurrent use with it and with each other.
type Association struct {
	conn      net.Conn
	cfg       Config
	requestor bool
	rq        *AssociateRQ
	ac        *AssociateAC
	maxSend   int // largest P-DATA-TF body the peer accepts

	mu      sync.Mutex // guards state and serialises writes
	state   State
	scratch []byte // receive buffer, reused across PDUs
	wbuf    []byte
	pdvBuf  []byte // fragment buffer of PDVWriter, reused across messages
	rd      *bufio.Reader
	// readIdle is the silence allowed per read: the idle timeout, or the
	// close timeout once a release was sent.
	readIdle atomic.Int64
}

// Sizes of the receive buffer of an association: small while the peer
// sends small PDUs (commands, query responses: a server with hundreds of
// associations, or a scanner with hundreds of probes, holds 4 KiB rather
// than 64 KiB for each), large once it sends bulk data.
const (
	smallReadBuffer = 4 << 10
	largeReadBuffer = 64 << 10
)

// reader returns the buffered reader of the established association: a
// PDU header and a small PDU cost one read rather than two, which matters
// with peers that send 16 KiB PDUs (DCMTK's default). It is made only once
// the association is up, so set-up reads never take bytes past their PDU.
func (a *Association) reader() *bufio.Reader {
	if a.rd == nil {
		a.readIdle.Store(int64(a.cfg.IdleTimeout))
		a.rd = bufio.NewReaderSize(deadlineReader{c: a.conn, idle: &a.readIdle}, smallReadBuffer)
	}
	return a.rd
}

// grow swaps the small receive buffer for the large one after a PDU
// larger than it, when nothing is buffered (a PDU body larger than the
// buffer is read past it, so after one nothing usually is).
func (a *Association) grow(pduBody int) {
	if pduBody > smallReadBuffer && a.rd != nil && a.rd.Size() < largeReadBuffer && a.rd.Buffered() == 0 {
		a.rd = bufio.NewReaderSize(deadlineReader{c: a.conn, idle: &a.readIdle}, largeReadBuffer)
	}
}

// deadlineReader resets the read deadline before every read, so that the
// idle timeout counts silence, not the length of a transfer.
type deadlineReader struct {
	c    net.Conn
	idle *atomic.Int64
}

func (d deadlineReader) Read(p []byte) (int, error) {
	d.c.SetReadDeadline(time.Now().Add(time.Duration(d.idle.Load())))
	return d.c.Read(p)
}

// Accept runs the acceptor side of association establishment on conn:
// it reads the A-ASSOCIATE-RQ within the associate timeout and asks decide.
// decide returns either an A-ASSOCIATE-AC to send (its called and calling
// AE titles, application context and maximum length are filled in when
// empty) or an A-ASSOCIATE-RJ. After a rejection the connection is closed
// and the returned error is a *RejectedError; the request is returned in
// every case where one was read, for logging.
func Accept(conn net.Conn, cfg *Config, decide func(*AssociateRQ) (*AssociateAC, *AssociateRJ)) (*Association, *AssociateRQ, error) {
	a := &Association{conn: conn, cfg: cfg.withDefaults(), state: Sta2}
	deadline := time.Now().Add(a.cfg.AssociateTimeout)
	conn.SetDeadline(deadline)
	// The request's byte fields (user identity, extended negotiation)
	// alias its buffer, so it is not kept as the receive buffer.
	p, _, err := ReadPDU(conn, DefaultMaxAssociatePDULength, nil)
	if err != nil {
		a.abortOnError(err)
		return nil, nil, err
	}
	rq, ok := p.(*AssociateRQ)
	if !ok {
		// Evt3/4/10/12/13 in Sta2: AA-1.
		a.sendAbort(AbortSourceProvider, AbortReasonUnexpectedPDU)
		a.closeAfterARTIM()
		return nil, nil, protoErr(AbortReasonUnexpectedPDU, "expected A-ASSOCIATE-RQ, received PDU type 0x%02x", p.Type())
	}
	a.rq = rq
	a.state = Sta3
	acc, rj := decide(rq)
	if acc == nil {
		if rj == nil {
			rj = &AssociateRJ{Result: RejectPermanent, Source: SourceServiceUser, Reason: ReasonNoReason}
		}
		a.write(rj)
		a.state = Sta13
		a.closeAfterARTIM()
		return nil, rq, &RejectedError{RJ: *rj}
	}
	if acc.CalledAE == "" {
		acc.CalledAE = rq.CalledAE
	}
	if acc.CallingAE == "" {
		acc.CallingAE = rq.CallingAE
	}
	if acc.User.MaxLength == 0 {
		acc.User.MaxLength = a.cfg.MaxReceivePDU
	}
	a.ac = acc
	a.setMaxSend(rq.User.MaxLength)
	if err := a.write(acc); err != nil {
		conn.Close()
		return nil, rq, err
	}
	a.state = Sta6
	conn.SetDeadline(time.Time{})
	return a, rq, nil
}

// Request runs the requestor side on a connected conn: it sends rq and
// waits, within the associate timeout, for the answer. A rejection is a
// *RejectedError; an abort an *AbortError.
func Request(conn net.Conn, rq *AssociateRQ, cfg *Config) (*Association, error) {
	a := &Association{conn: conn, cfg: cfg.withDefaults(), requestor: true, state: Sta5, rq: rq}
	if rq.User.MaxLength == 0 {
		rq.User.MaxLength = a.cfg.MaxReceivePDU
	}
	conn.SetDeadline(time.Now().Add(a.cfg.AssociateTimeout))
	if err := a.write(rq); err != nil {
		conn.Close()
		return nil, err
	}
	// Not kept as the receive buffer: the AC's byte fields alias it.
	p, _, err := ReadPDU(conn, DefaultMaxAssociatePDULength, nil)
	if err != nil {
		a.abortOnError(err)
		return nil, err
	}
	switch p := p.(type) {
	case *AssociateAC:
		a.ac = p
		a.setMaxSend(p.User.MaxLength)
		a.state = Sta6
		conn.SetDeadline(time.Time{})
		return a, nil
	case *AssociateRJ:
		conn.Close()
		return nil, &RejectedError{RJ: *p}
	case *Abort:
		conn.Close()
		return nil, &AbortError{Abort: *p}
	}
	a.sendAbort(AbortSourceProvider, AbortReasonUnexpectedPDU)
	a.closeAfterARTIM()
	return nil, protoErr(AbortReasonUnexpectedPDU, "expected A-ASSOCIATE-AC or -RJ, received PDU type 0x%02x", p.Type())
}

func (a *Association) setMaxSend(peerMax uint32) {
	if peerMax == 0 || peerMax > DefaultMaxPDULength {
		a.maxSend = DefaultMaxSendPDU
		if peerMax > DefaultMaxSendPDU && peerMax <= DefaultMaxPDULength {
			a.maxSend = int(peerMax)
		}
		return
	}
	// A maximum too small for a PDV header and one data byte cannot be
	// honoured (a PDV writer would loop on empty PDVs): send one byte per
	// PDV instead.
	a.maxSend = max(int(peerMax), 6+1)
}

// RQ returns the A-ASSOCIATE-RQ of the association.
func (a *Association) RQ() *AssociateRQ { return a.rq }

// AC returns the A-ASSOCIATE-AC of the association.
func (a *Association) AC() *AssociateAC { return a.ac }

// Conn returns the underlying connection (for addresses and TLS state).
func (a *Association) Conn() net.Conn { return a.conn }

// Requestor reports whether this side requested the association.
func (a *Association) Requestor() bool { return a.requestor }

// MaxPDVData is the largest number of data bytes one PDV may carry when
// sending: the peer's maximum PDU length less the PDV header.
func (a *Association) MaxPDVData() int { return a.maxSend - 6 }

// State returns the current state.
func (a *Association) State() State {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.state
}

// write encodes and sends p. The caller holds no lock.
func (a *Association) write(p PDU) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.writeLocked(p)
}

func (a *Association) writeLocked(p PDU) error {
	a.wbuf = p.Append(a.wbuf[:0])
	a.conn.SetWriteDeadline(time.Now().Add(a.cfg.IdleTimeout))
	_, err := a.conn.Write(a.wbuf)
	return err
}

func (a *Association) sendAbort(source, reason byte) {
	a.write(&Abort{Source: source, Reason: reason})
}

// abortOnError answers a read failure: a protocol error gets an A-ABORT
// with its reason; every failure closes the connection.
func (a *Association) abortOnError(err error) {
	var pe *ProtocolError
	if errors.As(err, &pe) {
		a.sendAbort(AbortSourceProvider, pe.Reason)
		a.closeAfterARTIM()
		return
	}
	a.conn.Close()
}

// closeAfterARTIM waits up to the close timeout for the peer to close its
// end (reading and discarding what it still sends), then closes.
func (a *Association) closeAfterARTIM() {
	a.mu.Lock()
	a.state = Sta13
	a.mu.Unlock()
	a.conn.SetReadDeadline(time.Now().Add(a.cfg.CloseTimeout))
	// Sta13: PDUs still arriving are ignored (AA-6) up to a bound, and an
	// A-ABORT or the peer's close ends the wait at once (AA-2, AR-5).
	// Bytes already buffered first, then the connection itself, so that
	// the close timeout is one deadline rather than an idle timer.
	var r io.Reader = a.conn
	if a.rd != nil {
		buffered, _ := a.rd.Peek(a.rd.Buffered())
		r = io.MultiReader(bytes.NewReader(buffered), a.conn)
	}
	lr := &io.LimitedReader{R: r, N: 64 << 10}
	for lr.N > 0 {
		p, _, err := ReadPDU(lr, DefaultMaxAssociatePDULength, nil)
		if err != nil {
			break
		}
		if _, ok := p.(*Abort); ok {
			break
		}
	}
	a.conn.Close()
	a.mu.Lock()
	a.state = Sta1
	a.mu.Unlock()
}

// Next returns the next PDU from the peer: a *PDataTF, or a *ReleaseRQ
// (answer it with RespondRelease once the last responses are sent). An
// A-ABORT from the peer is an *AbortError; a malformed or out-of-turn PDU
// is answered with an A-ABORT and returned as a *ProtocolError; a silent
// peer past the idle timeout is aborted with a timeout error.
func (a *Association) Next() (PDU, error) {
	p, scratch, err := ReadPDU(a.reader(), a.cfg.MaxReceivePDU, a.scratch)
	a.scratch = scratch
	if err != nil {
		var pe *ProtocolError
		switch {
		case errors.As(err, &pe):
			a.event(Evt19)
			a.sendAbort(AbortSourceProvider, pe.Reason)
			a.closeAfterARTIM()
		case errors.Is(err, os.ErrDeadlineExceeded):
			a.sendAbort(AbortSourceProvider, AbortReasonNotSpecified)
			a.conn.Close()
			a.setState(Sta1)
			err = fmt.Errorf("ul: peer silent for %v: %w", a.cfg.IdleTimeout, err)
		default:
			a.event(Evt17)
			a.conn.Close()
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				err = fmt.Errorf("%w: connection closed by the peer", ErrAborted)
			}
		}
		return nil, err
	}
	if pd, ok := p.(*PDataTF); ok {
		n := 0
		for _, v := range pd.PDVs {
			n += 6 + len(v.Data)
		}
		a.grow(n)
	}
	act, _ := a.event(pduEvent(p))
	switch act {
	case DT2, AR6:
		return p, nil
	case AR2, AR8:
		return p, nil
	case AR3:
		a.conn.Close()
		return p, ErrReleased
	case AA3:
		a.conn.Close()
		ab := p.(*Abort)
		return nil, &AbortError{Abort: *ab}
	case AA6:
		return a.Next()
	}
	// AA-8 or AA-7: a PDU out of turn.
	a.sendAbort(AbortSourceProvider, AbortReasonUnexpectedPDU)
	a.closeAfterARTIM()
	return nil, protoErr(AbortReasonUnexpectedPDU, "unexpected PDU type 0x%02x in state %v", p.Type(), a.State())
}

func (a *Association) setState(s State) {
	a.mu.Lock()
	a.state = s
	a.mu.Unlock()
}

// event runs the state machine for e and returns its action.
func (a *Association) event(e Event) (Action, State) {
	a.mu.Lock()
	defer a.mu.Unlock()
	act, next := Transition(a.state, e, a.requestor)
	if act != ActInvalid {
		a.state = next
	}
	return act, next
}

// SendPData sends one P-DATA-TF. The PDVs must fit the peer's maximum
// length (see MaxPDVData); PDVWriter fragments for you.
func (a *Association) SendPData(p *PDataTF) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	act, next := Transition(a.state, Evt9, a.requestor)
	if act != DT1 && act != AR7 {
		return fmt.Errorf("%w: P-DATA in %v", ErrInvalidState, a.state)
	}
	a.state = next
	size := 0
	for _, v := range p.PDVs {
		size += 6 + len(v.Data)
	}
	if size > a.maxSend {
		return fmt.Errorf("ul: P-DATA-TF of %d bytes exceeds the peer's maximum of %d", size, a.maxSend)
	}
	return a.writeLocked(p)
}

// sendPDV writes one PDV as a P-DATA-TF without building PDU structures,
// so that large transfers cost no allocation per fragment.
func (a *Association) sendPDV(ctx byte, command, last bool, data []byte) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	act, next := Transition(a.state, Evt9, a.requestor)
	if act != DT1 && act != AR7 {
		return fmt.Errorf("%w: P-DATA in %v", ErrInvalidState, a.state)
	}
	a.state = next
	// One write per PDV: header and data copied together, so that a TLS
	// connection sends one record rather than two.
	a.wbuf = appendPDV(a.wbuf[:0], ctx, command, last, data)
	a.conn.SetWriteDeadline(time.Now().Add(a.cfg.IdleTimeout))
	_, err := a.conn.Write(a.wbuf)
	return err
}

// appendPDV appends a P-DATA-TF PDU holding one PDV.
func appendPDV(b []byte, ctx byte, command, last bool, data []byte) []byte {
	i := len(b)
	b = append(b, TypePDataTF, 0, 0, 0, 0, 0, 0, 0, 0, 0, ctx, 0)
	binary.BigEndian.PutUint32(b[i+2:], uint32(len(data)+6))
	binary.BigEndian.PutUint32(b[i+6:], uint32(len(data)+2))
	if command {
		b[i+11] |= 1
	}
	if last {
		b[i+11] |= 2
	}
	return append(b, data...)
}

// maxCoalesced bounds the message SendMessage writes at once.
const maxCoalesced = 64 << 10

// SendMessage writes a DIMSE message held in memory, a command and, when
// data is not nil, its data set, each as one PDV in a P-DATA-TF of its
// own (as PDVWriter would), with a single write: the peer gets the
// message in one segment and wakes once, not once per PDU. It reports
// false and writes nothing when the command or data set does not fit one
// PDV, or both exceed 64 KiB; the caller then uses PDVWriter.
func (a *Association) SendMessage(ctx byte, command, data []byte) (bool, error) {
	if len(command) > a.MaxPDVData() || len(data) > a.MaxPDVData() || len(command)+len(data) > maxCoalesced {
		return false, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	act, next := Transition(a.state, Evt9, a.requestor)
	if act != DT1 && act != AR7 {
		return true, fmt.Errorf("%w: P-DATA in %v", ErrInvalidState, a.state)
	}
	a.state = next
	b := appendPDV(a.wbuf[:0], ctx, true, true, command)
	if data != nil {
		b = appendPDV(b, ctx, false, true, data)
	}
	a.wbuf = b
	a.conn.SetWriteDeadline(time.Now().Add(a.cfg.IdleTimeout))
	_, err := a.conn.Write(b)
	return true, err
}

// PDVWriter returns a writer that sends what is written to it as PDVs of
// the given presentation context, each as large as the peer allows; Close
// sends the final fragment flagged last. The writer holds at most one PDV.
func (a *Association) PDVWriter(ctx byte, command bool) *PDVWriter {
	// One fragment buffer per association, handed from writer to writer:
	// a message costs no allocation of its own. It grows with what is
	// written, up to one PDV, so that an association that only exchanges
	// commands (a C-ECHO, a scanner's probes) never holds a buffer of the
	// peer's maximum PDU size (often 1 MiB) for a hundred bytes.
	a.mu.Lock()
	buf := a.pdvBuf
	a.pdvBuf = nil
	a.mu.Unlock()
	return &PDVWriter{a: a, ctx: ctx, command: command, max: a.MaxPDVData(), buf: buf[:0]}
}

// PDVWriter fragments a command or data set into PDVs.
type PDVWriter struct {
	a       *Association
	ctx     byte
	command bool
	max     int // data bytes of one PDV
	buf     []byte
	closed  bool
}

// Write buffers p and sends every full PDV.
func (w *PDVWriter) Write(p []byte) (int, error) {
	if w.closed {
		return 0, errors.New("ul: write to closed PDV writer")
	}
	n := len(p)
	for len(p) > 0 {
		if len(w.buf) == 0 && len(p) > w.max {
			// A whole PDV straight from the caller's buffer. Keep at
			// least one byte back so that Close has a last fragment.
			chunk := p[:w.max]
			if err := w.a.sendPDV(w.ctx, w.command, false, chunk); err != nil {
				return n - len(p), err
			}
			p = p[w.max:]
			continue
		}
		m := min(w.max-len(w.buf), len(p))
		w.buf = append(w.buf, p[:m]...)
		p = p[m:]
		if len(w.buf) == w.max && len(p) > 0 {
			if err := w.a.sendPDV(w.ctx, w.command, false, w.buf); err != nil {
				return n - len(p), err
			}
			w.buf = w.buf[:0]
		}
	}
	return n, nil
}

// Close sends the last fragment (possibly empty).
func (w *PDVWriter) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	err := w.a.sendPDV(w.ctx, w.command, true, w.buf)
	w.a.mu.Lock()
	w.a.pdvBuf = w.buf[:0]
	w.a.mu.Unlock()
	w.buf = nil
	return err
}

// Release asks the peer to release the association and waits for its
// answer (within the close timeout). PDUs that still arrive are dropped; a
// release collision is resolved as PS3.8 9.2.6 says.
func (a *Association) Release() error {
	a.mu.Lock()
	act, next := Transition(a.state, Evt11, a.requestor)
	if act != AR1 {
		st := a.state
		a.mu.Unlock()
		return fmt.Errorf("%w: release in %v", ErrInvalidState, st)
	}
	a.state = next
	err := a.writeLocked(&ReleaseRQ{})
	a.mu.Unlock()
	if err != nil {
		a.conn.Close()
		return err
	}
	rd := a.reader()
	a.readIdle.Store(int64(a.cfg.CloseTimeout))
	for {
		p, scratch, err := ReadPDU(rd, a.cfg.MaxReceivePDU, a.scratch)
		a.scratch = scratch
		if err != nil {
			a.conn.Close()
			a.setState(Sta1)
			return fmt.Errorf("ul: waiting for A-RELEASE-RP: %w", err)
		}
		act, _ := a.event(pduEvent(p))
		switch act {
		case AR3: // release confirmed
			a.conn.Close()
			return nil
		case AR6: // late P-DATA: dropped
		case AR8: // collision
			if a.requestor {
				a.event(Evt14) // AR-9: send RP, await RP (Sta11)
				a.write(&ReleaseRP{})
			}
			// The acceptor side waits for the RP first (Sta10), then
			// answers (AR-10, Sta12, then AR-4).
		case AR10:
			a.event(Evt14)
			a.write(&ReleaseRP{})
			a.closeAfterARTIM()
			return nil
		case AA3:
			a.conn.Close()
			return &AbortError{Abort: *p.(*Abort)}
		default:
			a.sendAbort(AbortSourceProvider, AbortReasonUnexpectedPDU)
			a.closeAfterARTIM()
			return protoErr(AbortReasonUnexpectedPDU, "unexpected PDU type 0x%02x while releasing", p.Type())
		}
	}
}

// RespondRelease answers a received A-RELEASE-RQ with A-RELEASE-RP and
// closes the association once the peer has closed (or ARTIM expired).
func (a *Association) RespondRelease() error {
	act, _ := a.event(Evt14)
	if act != AR4 {
		return fmt.Errorf("%w: release response in %v", ErrInvalidState, a.State())
	}
	err := a.write(&ReleaseRP{})
	a.closeAfterARTIM()
	return err
}

// Abort sends an A-ABORT (service user source) and closes the connection.
func (a *Association) Abort() error {
	a.event(Evt15)
	err := a.write(&Abort{Source: AbortSourceUser})
	a.conn.Close()
	a.setState(Sta1)
	return err
}

// Close closes the connection without any PDU (for shutdown paths where
// the peer is gone).
func (a *Association) Close() error {
	a.setState(Sta1)
	return a.conn.Close()
}
