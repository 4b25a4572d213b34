package dimse

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/ul"
)

// Server defaults. Each is a Server field whose zero value selects it.
const (
	// DefaultMaxAssociations bounds concurrent associations: far above what
	// a clinic's modalities open, and it keeps a connection flood from
	// exhausting memory (each association holds one PDU buffer).
	DefaultMaxAssociations = 256
	// DefaultMaxIdentifierSize bounds a C-FIND/C-GET/C-MOVE identifier:
	// query keys are a few hundred bytes.
	DefaultMaxIdentifierSize = 1 << 20
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("dimse: server closed")

// Status is a handler's answer: a status code and an optional comment
// (sent as Error Comment, at most 64 characters, never with patient data).
type Status struct {
	Code    uint16
	Comment string
}

// Assoc describes an established association to handlers.
type Assoc struct {
	ID         uint64
	CallingAE  string
	CalledAE   string
	RemoteAddr net.Addr
	// TLS is the connection state when the association runs over TLS.
	TLS *tls.ConnectionState
	// Identity is the user identity the requestor presented, if any.
	Identity *ul.UserIdentity
	// Values lets the acceptor hook hand per-association facts (the
	// registered peer, the authenticated user) to handlers.
	Values any
	// AbstractSyntaxes are the abstract syntaxes of the accepted
	// presentation contexts: the services the association can use.
	AbstractSyntaxes []string
}

// Request is one DIMSE request given to a handler.
type Request struct {
	Assoc          *Assoc
	ContextID      byte
	AbstractSyntax string
	TransferSyntax string
	Command        *Command
}

// Instance is one SOP instance a retrieve handler offers for C-GET or
// C-MOVE: its data set (without meta header) encoded in TransferSyntax.
type Instance struct {
	SOPClassUID    string
	SOPInstanceUID string
	TransferSyntax string
	Open           func() (io.ReadCloser, error)
	// Done, when set, is called with the status of the instance's
	// C-STORE sub-operation once it is over (the audit trail records what
	// was actually sent). Sub-operations never attempted (cancelled) are
	// not reported.
	Done func(status uint16)
}

// Destination is where a C-MOVE sends its sub-operations.
type Destination struct {
	Addr    string
	Options DialOptions
}

// AssocRequest is what the acceptor hook decides on.
type AssocRequest struct {
	RQ   *ul.AssociateRQ
	Conn net.Conn
	TLS  *tls.ConnectionState
}

// Server accepts associations and runs DIMSE handlers. The zero Server
// rejects every association (Accept is nil); fields must not change after
// Serve is called.
type Server struct {
	// Accept decides on each association request: it returns the
	// A-ASSOCIATE-AC to send (Negotiate builds its presentation contexts)
	// and a value for Assoc.Values, or a rejection. Nil rejects all.
	Accept func(r *AssocRequest) (*ul.AssociateAC, any, *ul.AssociateRJ)

	Echo func(ctx context.Context, r *Request) Status
	// Store receives the data set as a stream in r.TransferSyntax; it need
	// not read all of it (the rest is discarded). A nil Store refuses.
	Store func(ctx context.Context, r *Request, data io.Reader) Status
	// Find calls emit for each match; emit fails once the requestor
	// cancelled or the association ended.
	Find func(ctx context.Context, r *Request, identifier *dicom.DataSet, emit func(*dicom.DataSet) error) Status
	// Retrieve lists the instances a C-GET or C-MOVE identifier selects.
	Retrieve func(ctx context.Context, r *Request, identifier *dicom.DataSet) ([]Instance, Status)
	// MoveDestination resolves a C-MOVE destination AE title; an error
	// refuses the move with "move destination unknown".
	MoveDestination func(ctx context.Context, r *Request, ae string) (*Destination, error)

	// TLS, when set, makes every connection TLS (handshake within the
	// associate timeout).
	TLS *tls.Config
	// UL configures timers and the PDU size of every association.
	UL ul.Config
	// MaxAssociations: zero means DefaultMaxAssociations.
	MaxAssociations int
	// MaxDataSetSize bounds a C-STORE data set; zero means no bound beyond
	// what Store accepts.
	MaxDataSetSize int64
	// Logger receives association events (never patient data); nil
	// discards them.
	Logger *slog.Logger
	// ConnState, when set, is called as associations start and end (for
	// tests and metrics).
	ConnState func(a *Assoc, open bool)
	// NotEstablished, when set, is called when a connection ends before
	// an association was established: its TLS handshake failed, no valid
	// A-ASSOCIATE-RQ arrived in time, or Accept rejected it (err is then
	// a *ul.RejectedError). Connections refused because MaxAssociations
	// were open are not reported. It runs on the connection's goroutine.
	NotEstablished func(remote net.Addr, err error)

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{}
	sessions  map[*session]struct{}
	closing   atomic.Bool
	nextID    atomic.Uint64
	active    atomic.Int64
	wg        sync.WaitGroup
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// ListenAndServe listens on addr (TCP) and serves.
func (s *Server) ListenAndServe(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return s.Serve(l)
}

// Serve accepts connections on l until Shutdown or Close, one goroutine
// per association. It returns ErrServerClosed after those.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	if s.listeners == nil {
		s.listeners = map[net.Listener]struct{}{}
		s.conns = map[net.Conn]struct{}{}
		s.sessions = map[*session]struct{}{}
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	max := s.MaxAssociations
	if max <= 0 {
		max = DefaultMaxAssociations
	}
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max2(delay*2, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		// track adds to the wait group under the lock Shutdown takes, so a
		// Shutdown never waits on a group that grows after it looked.
		if !s.track(c, true) {
			c.Close()
			continue
		}
		if s.active.Add(1) > int64(max) {
			go s.refuseBusy(c)
			continue
		}
		go s.serveConn(c)
	}
}

func max2(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}

func (s *Server) track(c net.Conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.closing.Load() {
			return false
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
	} else {
		delete(s.conns, c)
	}
	return true
}

func (s *Server) done(c net.Conn) {
	s.track(c, false)
	s.active.Add(-1)
	s.wg.Done()
}

// refuseBusy answers a connection over the association limit with a
// transient rejection, without reading more than the request.
func (s *Server) refuseBusy(c net.Conn) {
	defer s.done(c)
	defer c.Close()
	cfg := s.UL
	cfg.AssociateTimeout = 2 * time.Second
	cfg.CloseTimeout = 100 * time.Millisecond
	nc := c
	if s.TLS != nil {
		nc = tls.Server(c, s.TLS)
	}
	ul.Accept(nc, &cfg, func(*ul.AssociateRQ) (*ul.AssociateAC, *ul.AssociateRJ) {
		return nil, &ul.AssociateRJ{Result: ul.RejectTransient, Source: ul.SourceServiceProviderPresenta, Reason: ul.ReasonLocalLimitExceeded}
	})
	s.logger().Warn("association refused: too many associations", "remote", c.RemoteAddr().String())
}

func (s *Server) serveConn(c net.Conn) {
	defer s.done(c)
	id := s.nextID.Add(1)
	log := s.logger().With("assoc", id, "remote", c.RemoteAddr().String())
	defer func() {
		if r := recover(); r != nil {
			log.Error("association handler panicked; association closed", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			c.Close()
		}
	}()
	cfg := s.UL
	nc := c
	var tlsState *tls.ConnectionState
	if s.TLS != nil {
		tc := tls.Server(c, s.TLS)
		timeout := cfg.AssociateTimeout
		if timeout <= 0 {
			timeout = ul.DefaultAssociateTimeout
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			log.Info("TLS handshake failed", "err", err)
			c.Close()
			s.notEstablished(c, fmt.Errorf("dimse: TLS handshake: %w", err))
			return
		}
		st := tc.ConnectionState()
		tlsState = &st
		nc = tc
	}
	var values any
	a, rq, err := ul.Accept(nc, &cfg, func(rq *ul.AssociateRQ) (*ul.AssociateAC, *ul.AssociateRJ) {
		if s.Accept == nil {
			return nil, &ul.AssociateRJ{Result: ul.RejectPermanent, Source: ul.SourceServiceUser, Reason: ul.ReasonNoReason}
		}
		ac, v, rj := s.Accept(&AssocRequest{RQ: rq, Conn: c, TLS: tlsState})
		values = v
		return ac, rj
	})
	if err != nil {
		attrs := []any{"err", err}
		if rq != nil {
			attrs = append(attrs, "calling_ae", rq.CallingAE, "called_ae", rq.CalledAE)
		}
		log.Info("association not established", attrs...)
		s.notEstablished(c, err)
		return
	}
	info := &Assoc{ID: id, CallingAE: rq.CallingAE, CalledAE: rq.CalledAE, RemoteAddr: c.RemoteAddr(),
		TLS: tlsState, Identity: rq.User.Identity, Values: values, AbstractSyntaxes: acceptedAbstracts(a)}
	log = log.With("calling_ae", rq.CallingAE, "called_ae", rq.CalledAE)
	log.Info("association accepted", "contexts", len(a.AC().Contexts))
	if s.ConnState != nil {
		s.ConnState(info, true)
		defer s.ConnState(info, false)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ss := &session{s: s, c: newConn(a), info: info, log: log, ctx: ctx, waiters: map[uint16]chan *Command{}}
	s.mu.Lock()
	s.sessions[ss] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.sessions, ss)
		s.mu.Unlock()
	}()
	ss.run()
}

func (s *Server) notEstablished(c net.Conn, err error) {
	if s.NotEstablished != nil {
		s.NotEstablished(c.RemoteAddr(), err)
	}
}

// Shutdown stops accepting, lets in-flight associations finish (peers
// release them), and at ctx's deadline aborts the rest.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closeListeners()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.closeConns()
		<-done
		return ctx.Err()
	}
}

// Close stops accepting and closes every connection at once.
func (s *Server) Close() error {
	s.closeListeners()
	s.closeConns()
	s.wg.Wait()
	return nil
}

func (s *Server) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closing.Store(true)
	for l := range s.listeners {
		l.Close()
	}
}

func (s *Server) closeConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

// session runs one association.
type session struct {
	s    *Server
	c    *conn
	info *Assoc
	log  *slog.Logger
	ctx  context.Context

	op      *operation
	wmu     sync.Mutex
	waiters map[uint16]chan *Command
}

type operation struct {
	msgID  uint16
	cancel context.CancelFunc
	done   chan struct{}
}

func (ss *session) waitOp() {
	if ss.op != nil {
		<-ss.op.done
		ss.op = nil
	}
}

func (ss *session) run() {
	defer func() {
		if ss.op != nil {
			ss.op.cancel()
			<-ss.op.done
		}
	}()
	for {
		cmd, ctxID, err := ss.c.readCommand()
		if err == errReleaseRequested {
			ss.waitOp()
			ss.c.a.RespondRelease()
			ss.log.Info("association released")
			return
		}
		if err != nil {
			ss.log.Info("association ended", "err", err)
			return
		}
		if cmd.IsResponse() {
			if err := ss.route(cmd, ctxID); err != nil {
				ss.log.Info("association ended", "err", err)
				return
			}
			continue
		}
		if cmd.Field == CCancelRQ {
			if ss.op != nil && ss.op.msgID == cmd.RespondingTo {
				ss.op.cancel()
			}
			continue
		}
		ss.waitOp()
		pc := ss.c.contexts[ctxID]
		req := &Request{Assoc: ss.info, ContextID: ctxID, AbstractSyntax: pc.abstract, TransferSyntax: pc.ts, Command: cmd}
		if err := ss.dispatch(req); err != nil {
			ss.log.Info("association ended", "err", err)
			return
		}
	}
}

// route hands a response (a C-STORE-RSP of a C-GET sub-operation) to the
// operation waiting for it.
func (ss *session) route(cmd *Command, ctxID byte) error {
	if cmd.HasDataSet {
		if _, err := ss.c.copyDataSet(ctxID, nil, 0); err != nil {
			return err
		}
	}
	ss.wmu.Lock()
	ch := ss.waiters[cmd.RespondingTo]
	delete(ss.waiters, cmd.RespondingTo)
	ss.wmu.Unlock()
	if ch == nil || cmd.Field != CStoreRSP {
		return ss.c.protocolError("unexpected %s for message %d", cmd.Name(), cmd.RespondingTo)
	}
	ch <- cmd
	return nil
}

func (ss *session) respond(req *Request, field uint16, st Status, data []byte, sub *SubOps) error {
	rsp := &Command{Field: field, RespondingTo: req.Command.MessageID, AffectedSOPClass: req.Command.AffectedSOPClass,
		AffectedSOPInstance: req.Command.AffectedSOPInstance, Status: st.Code, ErrorComment: st.Comment}
	if field == CFindRSP || field == CGetRSP || field == CMoveRSP {
		rsp.AffectedSOPInstance = ""
	}
	if sub != nil {
		rsp.SubOps, rsp.HasSubOps = *sub, true
	}
	return ss.c.sendBytes(req.ContextID, rsp, data)
}

func (ss *session) dispatch(req *Request) error {
	cmd := req.Command
	switch cmd.Field {
	case CEchoRQ:
		if cmd.HasDataSet {
			if _, err := ss.c.copyDataSet(req.ContextID, nil, 0); err != nil {
				return err
			}
		}
		st := Status{Code: StatusSuccess}
		if ss.s.Echo != nil {
			st = ss.s.Echo(ss.ctx, req)
		}
		return ss.respond(req, CEchoRSP, st, nil, nil)
	case CStoreRQ:
		return ss.store(req)
	case CFindRQ, CGetRQ, CMoveRQ:
		id, err := ss.identifier(req)
		if err != nil {
			if errors.Is(err, dicom.ErrTruncated) || errors.Is(err, dicom.ErrMalformed) || errors.Is(err, dicom.ErrLimit) || errors.Is(err, errNoIdentifier) {
				return ss.respond(req, cmd.Field|0x8000, Status{Code: StatusCannotUnderstand, Comment: "identifier could not be decoded"}, nil, nil)
			}
			return err
		}
		ctx, cancel := context.WithCancel(ss.ctx)
		op := &operation{msgID: cmd.MessageID, cancel: cancel, done: make(chan struct{})}
		ss.op = op
		go func() {
			defer close(op.done)
			defer cancel()
			defer func() {
				if r := recover(); r != nil {
					ss.log.Error("handler panicked; association aborted", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
					ss.c.a.Abort()
				}
			}()
			var err error
			switch cmd.Field {
			case CFindRQ:
				err = ss.find(ctx, req, id)
			default:
				err = ss.retrieve(ctx, req, id)
			}
			if err != nil {
				ss.log.Info("operation failed", "op", cmd.Name(), "err", err)
			}
		}()
		return nil
	}
	// N-services and unknown commands: consume and refuse.
	if cmd.HasDataSet {
		if _, err := ss.c.copyDataSet(req.ContextID, nil, 0); err != nil {
			return err
		}
	}
	return ss.respond(req, cmd.Field|0x8000, Status{Code: StatusUnrecognizedOperation}, nil, nil)
}

var errNoIdentifier = errors.New("dimse: request without identifier")

func (ss *session) identifier(req *Request) (*dicom.DataSet, error) {
	if !req.Command.HasDataSet {
		return nil, errNoIdentifier
	}
	var buf bytes.Buffer
	_, werr := ss.c.copyDataSet(req.ContextID, &limitedBuffer{b: &buf, left: DefaultMaxIdentifierSize}, 0)
	if werr != nil {
		var le *limitError
		if errors.As(werr, &le) {
			return nil, fmt.Errorf("%w: identifier over %d bytes", dicom.ErrLimit, DefaultMaxIdentifierSize)
		}
		return nil, werr
	}
	ts := dicom.LookupTransferSyntax(req.TransferSyntax)
	return dicom.Parse(buf.Bytes(), ts, &dicom.ReadOptions{Limits: dicom.Limits{MaxElements: 10000, MaxDepth: 16, MaxValueLength: DefaultMaxIdentifierSize}})
}

type limitError struct{}

func (*limitError) Error() string { return "limit exceeded" }

type limitedBuffer struct {
	b    *bytes.Buffer
	left int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if len(p) > l.left {
		return 0, &limitError{}
	}
	l.left -= len(p)
	return l.b.Write(p)
}

func (ss *session) store(req *Request) error {
	cmd := req.Command
	if !cmd.HasDataSet {
		return ss.respond(req, CStoreRSP, Status{Code: StatusCannotUnderstand, Comment: "C-STORE without data set"}, nil, nil)
	}
	if ss.s.Store == nil {
		if _, err := ss.c.copyDataSet(req.ContextID, nil, 0); err != nil {
			return err
		}
		return ss.respond(req, CStoreRSP, Status{Code: StatusNotAuthorized}, nil, nil)
	}
	// The handler runs on this goroutine and reads the fragments as they
	// arrive: no pipe and no goroutine hand-off per fragment.
	dr := &dataReader{c: ss.c, ctx: req.ContextID, limit: ss.s.MaxDataSetSize}
	st := func() (st Status) {
		defer func() {
			if r := recover(); r != nil {
				ss.log.Error("store handler panicked", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				st = Status{Code: StatusProcessingFailure, Comment: "store handler failed"}
			}
		}()
		return ss.s.Store(ss.ctx, req, dr)
	}()
	if err := dr.drain(); err != nil {
		// The association broke mid-transfer; the handler saw the error.
		return err
	}
	if dr.overLimit && Kind(st.Code) != KindFailure {
		st = Status{Code: StatusOutOfResources, Comment: "data set larger than allowed"}
	}
	return ss.respond(req, CStoreRSP, st, nil, nil)
}

var errDataSetLimit = errors.New("dimse: data set larger than the limit")

func (ss *session) find(ctx context.Context, req *Request, id *dicom.DataSet) error {
	if ss.s.Find == nil {
		return ss.respond(req, CFindRSP, Status{Code: StatusSOPClassNotSupported}, nil, nil)
	}
	ts := dicom.LookupTransferSyntax(req.TransferSyntax)
	emit := func(ds *dicom.DataSet) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		b, err := dicom.MarshalDataSet(ds, ts)
		if err != nil {
			return err
		}
		return ss.respond(req, CFindRSP, Status{Code: StatusPending}, b, nil)
	}
	st := ss.s.Find(ctx, req, id, emit)
	if ss.ctx.Err() != nil {
		return ss.ctx.Err()
	}
	if ctx.Err() != nil && Kind(st.Code) != KindFailure {
		st = Status{Code: StatusCancel}
	}
	return ss.respond(req, CFindRSP, st, nil, nil)
}
