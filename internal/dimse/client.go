package dimse

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/ul"
)

// DefaultConnectTimeout bounds the TCP connect (and TLS handshake) of Dial.
const DefaultConnectTimeout = 10 * time.Second

// Well-known abstract syntaxes.
const (
	VerificationSOPClass      = "1.2.840.10008.1.1"
	PatientRootFind           = "1.2.840.10008.5.1.4.1.2.1.1"
	PatientRootMove           = "1.2.840.10008.5.1.4.1.2.1.2"
	PatientRootGet            = "1.2.840.10008.5.1.4.1.2.1.3"
	StudyRootFind             = "1.2.840.10008.5.1.4.1.2.2.1"
	StudyRootMove             = "1.2.840.10008.5.1.4.1.2.2.2"
	StudyRootGet              = "1.2.840.10008.5.1.4.1.2.2.3"
	ModalityWorklistFind      = "1.2.840.10008.5.1.4.31"
	ImplementationClassUID    = dicom.ImplementationClassUID
	ImplementationVersionName = dicom.ImplementationVersionName
)

// Proposal is a presentation context to propose.
type Proposal struct {
	AbstractSyntax   string
	TransferSyntaxes []string
	// SCPRole asks for the SCP role (PS3.7 D.3.3.4), as C-GET needs for
	// the storage classes it will receive.
	SCPRole bool
}

// DialOptions configure an association request. Zero fields take
// defaults: calling AE "DICOMSHIELD", called AE "ANY-SCP".
type DialOptions struct {
	CallingAE string
	CalledAE  string
	Contexts  []Proposal
	// TLS, when set, runs the association over TLS.
	TLS *tls.Config
	// Identity is sent as user identity negotiation.
	Identity *ul.UserIdentity
	UL       ul.Config
	// ConnectTimeout: zero means DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// LocalAddr, when set, is the local address connections are made
	// from (tests use 127.0.0.x to be several peers).
	LocalAddr net.Addr
	// ImplementationClassUID and ImplementationVersion override the
	// identity the request announces (default: dicomshield's own).
	ImplementationClassUID string
	ImplementationVersion  string
}

// Client is one association as requestor. It is used by one goroutine at
// a time.
type Client struct {
	c  *conn
	a  *ul.Association
	ac *ul.AssociateAC
}

// noContextError says no accepted context fits a request.
type noContextError struct{ abstract, ts string }

func (e *noContextError) Error() string {
	if e.ts != "" {
		return fmt.Sprintf("dimse: no accepted presentation context for %s in transfer syntax %s", e.abstract, e.ts)
	}
	return fmt.Sprintf("dimse: no accepted presentation context for %s", e.abstract)
}

// ErrNoContext is matched (errors.Is) by errors for requests no accepted
// presentation context can carry.
var ErrNoContext = errors.New("dimse: no accepted presentation context")

func (e *noContextError) Is(target error) bool { return target == ErrNoContext }

// BuildRQ returns the A-ASSOCIATE-RQ for o.
func BuildRQ(o *DialOptions) *ul.AssociateRQ {
	rq := &ul.AssociateRQ{}
	rq.CallingAE, rq.CalledAE = o.CallingAE, o.CalledAE
	if rq.CallingAE == "" {
		rq.CallingAE = "DICOMSHIELD"
	}
	if rq.CalledAE == "" {
		rq.CalledAE = "ANY-SCP"
	}
	rq.User.ImplementationClassUID = o.ImplementationClassUID
	if rq.User.ImplementationClassUID == "" {
		rq.User.ImplementationClassUID = ImplementationClassUID
	}
	rq.User.ImplementationVersion = o.ImplementationVersion
	if rq.User.ImplementationVersion == "" {
		rq.User.ImplementationVersion = ImplementationVersionName
	}
	rq.User.Identity = o.Identity
	roles := map[string]bool{}
	for i, p := range o.Contexts {
		rq.Contexts = append(rq.Contexts, ul.PresentationContext{ID: byte(2*i + 1), AbstractSyntax: p.AbstractSyntax, TransferSyntaxes: p.TransferSyntaxes})
		// PS3.7 D.3.3.4: one role selection item per SOP class.
		if p.SCPRole && !roles[p.AbstractSyntax] {
			roles[p.AbstractSyntax] = true
			rq.User.Roles = append(rq.User.Roles, ul.RoleSelection{SOPClassUID: p.AbstractSyntax, SCU: true, SCP: true})
		}
	}
	return rq
}

// Dial connects to addr and requests an association. A rejection is a
// *ul.RejectedError whose message says who rejected and why.
func Dial(ctx context.Context, addr string, o *DialOptions) (*Client, error) {
	if len(o.Contexts) == 0 || len(o.Contexts) > ul.DefaultMaxPresentationContexts {
		return nil, fmt.Errorf("dimse: %d presentation contexts proposed (1 to %d allowed)", len(o.Contexts), ul.DefaultMaxPresentationContexts)
	}
	timeout := o.ConnectTimeout
	if timeout <= 0 {
		timeout = DefaultConnectTimeout
	}
	d := net.Dialer{Timeout: timeout, LocalAddr: o.LocalAddr}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if o.TLS != nil {
		tc := tls.Client(nc, o.TLS)
		hctx, cancel := context.WithTimeout(ctx, timeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("dimse: TLS handshake with %s: %w", addr, err)
		}
		nc = tc
	}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Now()) })
	a, err := ul.Request(nc, BuildRQ(o), &o.UL)
	stop()
	if err != nil {
		if o.TLS != nil {
			return nil, tlsRefusal(addr, err)
		}
		return nil, err
	}
	return &Client{c: newConn(a), a: a, ac: a.AC()}, nil
}

// tlsRefusal explains a failure right after a TLS handshake. In TLS 1.3
// the server checks the client certificate after the client finished its
// side of the handshake, so a refused certificate shows up as an alert or
// as a reset on the first write of the association request.
func tlsRefusal(addr string, err error) error {
	var rj *ul.RejectedError
	var ab *ul.AbortError
	var pe *ul.ProtocolError
	if errors.As(err, &rj) || errors.As(err, &ab) || errors.As(err, &pe) {
		return err
	}
	if strings.Contains(err.Error(), "remote error: tls:") {
		return fmt.Errorf("dimse: TLS with %s: the server refused the connection: %w", addr, err)
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, ul.ErrAborted) {
		return fmt.Errorf("dimse: TLS with %s: the server closed the connection right after the handshake, "+
			"which is how a server refuses a client certificate: %w", addr, err)
	}
	return err
}

// Association returns the underlying association (negotiated contexts,
// the peer's implementation identity).
func (cl *Client) Association() *ul.Association { return cl.a }

// contextFor returns an accepted context for the abstract syntax, in ts
// when ts is not empty.
func (cl *Client) contextFor(abstract, ts string) (byte, string, error) {
	best := byte(0)
	bestTS := ""
	for id, pc := range cl.c.contexts {
		if pc.abstract != abstract || (ts != "" && pc.ts != ts) {
			continue
		}
		if best == 0 || id < best {
			best, bestTS = id, pc.ts
		}
	}
	if best == 0 {
		return 0, "", &noContextError{abstract: abstract, ts: ts}
	}
	return best, bestTS, nil
}

// watch makes ctx's cancellation abort the association. It closes the
// connection: a deadline would not do, since every later write and read
// of the association sets its own.
func (cl *Client) watch(ctx context.Context) func() bool {
	return context.AfterFunc(ctx, func() { cl.a.Close() })
}

// Echo sends a C-ECHO.
func (cl *Client) Echo(ctx context.Context) error {
	id, _, err := cl.contextFor(VerificationSOPClass, "")
	if err != nil {
		return err
	}
	defer cl.watch(ctx)()
	rq := &Command{Field: CEchoRQ, MessageID: cl.c.nextMessageID(), AffectedSOPClass: VerificationSOPClass}
	if err := cl.c.send(id, rq, nil); err != nil {
		return err
	}
	rsp, err := cl.response(rq, nil)
	if err != nil {
		return err
	}
	return statusErr("C-ECHO", rsp)
}

func statusErr(op string, rsp *Command) error {
	k := Kind(rsp.Status)
	if k == KindFailure || k == KindCancel {
		return &StatusError{Op: op, Status: rsp.Status, Comment: rsp.ErrorComment}
	}
	return nil
}

// response reads messages until the response to rq. C-STORE requests
// that arrive meanwhile (C-GET sub-operations) go to onStore. A response
// data set is returned in data when data is not nil.
func (cl *Client) response(rq *Command, onStore func(*Request, io.Reader) Status) (*Command, error) {
	rsp, _, err := cl.responseData(rq, onStore, nil)
	return rsp, err
}

func (cl *Client) responseData(rq *Command, onStore func(*Request, io.Reader) Status, data *bytes.Buffer) (*Command, byte, error) {
	for {
		cmd, ctxID, err := cl.c.readCommand()
		if err == errReleaseRequested {
			cl.a.RespondRelease()
			return nil, 0, fmt.Errorf("dimse: the peer released the association before answering %s", rq.Name())
		}
		if err != nil {
			return nil, 0, err
		}
		if cmd.Field == CStoreRQ && onStore != nil {
			if err := cl.serveStore(cmd, ctxID, onStore); err != nil {
				return nil, 0, err
			}
			continue
		}
		if !cmd.IsResponse() || cmd.RespondingTo != rq.MessageID || cmd.Field != rq.Field|0x8000 {
			cl.a.Abort()
			return nil, 0, fmt.Errorf("%w: unexpected %s while waiting for the response to %s", ErrProtocol, cmd.Name(), rq.Name())
		}
		if cmd.HasDataSet {
			var w io.Writer
			if data != nil {
				w = &limitedBuffer{b: data, left: DefaultMaxIdentifierSize}
			}
			if _, err := cl.c.copyDataSet(ctxID, w, 0); err != nil {
				return nil, 0, err
			}
		}
		return cmd, ctxID, nil
	}
}

// serveStore answers a C-STORE sub-operation of a C-GET.
func (cl *Client) serveStore(cmd *Command, ctxID byte, onStore func(*Request, io.Reader) Status) error {
	pc := cl.c.contexts[ctxID]
	req := &Request{ContextID: ctxID, AbstractSyntax: pc.abstract, TransferSyntax: pc.ts, Command: cmd}
	dr := &dataReader{c: cl.c, ctx: ctxID}
	st := onStore(req, dr)
	if err := dr.drain(); err != nil {
		return err
	}
	rsp := &Command{Field: CStoreRSP, RespondingTo: cmd.MessageID, AffectedSOPClass: cmd.AffectedSOPClass,
		AffectedSOPInstance: cmd.AffectedSOPInstance, Status: st.Code, ErrorComment: st.Comment}
	return cl.c.send(ctxID, rsp, nil)
}

// Store sends one instance: its data set (without meta header) read from
// data, encoded in ts. The status of the response is returned; failures
// are also an error.
func (cl *Client) Store(ctx context.Context, sopClass, sopInstance, ts string, data io.Reader) (uint16, error) {
	defer cl.watch(ctx)()
	rsp, err := cl.storeRSP(ctx, sopClass, sopInstance, ts, data, nil)
	if err != nil {
		return 0, err
	}
	return rsp.Status, statusErr("C-STORE", rsp)
}

func (cl *Client) store(ctx context.Context, sopClass, sopInstance, ts string, data io.Reader, extra *Command) (uint16, error) {
	rsp, err := cl.storeRSP(ctx, sopClass, sopInstance, ts, data, extra)
	if err != nil {
		return 0, err
	}
	return rsp.Status, nil
}

func (cl *Client) storeRSP(ctx context.Context, sopClass, sopInstance, ts string, data io.Reader, extra *Command) (*Command, error) {
	id, _, err := cl.contextFor(sopClass, ts)
	if err != nil {
		return nil, err
	}
	rq := &Command{Field: CStoreRQ, MessageID: cl.c.nextMessageID(), AffectedSOPClass: sopClass, AffectedSOPInstance: sopInstance, Priority: PriorityMedium}
	if extra != nil && extra.HasMoveOriginator {
		rq.HasMoveOriginator, rq.MoveOriginatorAE, rq.MoveOriginatorID = true, extra.MoveOriginatorAE, extra.MoveOriginatorID
	}
	if err := cl.c.send(id, rq, data); err != nil {
		return nil, err
	}
	return cl.response(rq, nil)
}

// ErrStop, returned by a Find callback, cancels the query with C-CANCEL.
var ErrStop = errors.New("dimse: stop")

// Find runs a C-FIND with the information model model (e.g.
// StudyRootFind) and calls fn with each match. When fn returns ErrStop (or
// ctx ends) the query is cancelled with C-CANCEL and Find returns after
// the SCP's final response. It returns the number of matches received.
func (cl *Client) Find(ctx context.Context, model string, identifier *dicom.DataSet, fn func(*dicom.DataSet) error) (int, error) {
	id, ts, err := cl.contextFor(model, "")
	if err != nil {
		return 0, err
	}
	syntax := dicom.LookupTransferSyntax(ts)
	body, err := dicom.MarshalDataSet(identifier, syntax)
	if err != nil {
		return 0, err
	}
	rq := &Command{Field: CFindRQ, MessageID: cl.c.nextMessageID(), AffectedSOPClass: model, Priority: PriorityMedium}
	if err := cl.c.sendBytes(id, rq, body); err != nil {
		return 0, err
	}
	n := 0
	cancelled := false
	var fnErr error
	var buf bytes.Buffer
	for {
		buf.Reset()
		rsp, _, err := cl.responseData(rq, nil, &buf)
		if err != nil {
			return n, err
		}
		if Kind(rsp.Status) != KindPending {
			if fnErr != nil && !errors.Is(fnErr, ErrStop) {
				return n, fnErr
			}
			if cancelled && rsp.Status == StatusCancel {
				return n, nil
			}
			return n, statusErr("C-FIND", rsp)
		}
		if cancelled {
			continue
		}
		n++
		match, err := dicom.Parse(buf.Bytes(), syntax, &dicom.ReadOptions{Limits: dicom.Limits{MaxElements: 10000, MaxDepth: 16}})
		if err == nil {
			fnErr = fn(match)
		} else {
			fnErr = fmt.Errorf("dimse: C-FIND response %d: %w", n, err)
		}
		if fnErr == nil && ctx.Err() != nil {
			fnErr = ErrStop
		}
		if fnErr != nil {
			cancelled = true
			if err := cl.c.send(id, &Command{Field: CCancelRQ, RespondingTo: rq.MessageID}, nil); err != nil {
				return n, err
			}
		}
	}
}

// Get runs a C-GET; each instance arrives as a C-STORE handled by onStore
// (the context must have been proposed with SCPRole). It returns the
// sub-operation counts of the final response.
func (cl *Client) Get(ctx context.Context, model string, identifier *dicom.DataSet, onStore func(*Request, io.Reader) Status) (SubOps, error) {
	return cl.retrieve(ctx, CGetRQ, model, "", identifier, onStore)
}

// Move runs a C-MOVE to the destination AE title and returns the
// sub-operation counts of the final response.
func (cl *Client) Move(ctx context.Context, model, dest string, identifier *dicom.DataSet) (SubOps, error) {
	return cl.retrieve(ctx, CMoveRQ, model, dest, identifier, nil)
}

func (cl *Client) retrieve(ctx context.Context, field uint16, model, dest string, identifier *dicom.DataSet, onStore func(*Request, io.Reader) Status) (SubOps, error) {
	id, ts, err := cl.contextFor(model, "")
	if err != nil {
		return SubOps{}, err
	}
	body, err := dicom.MarshalDataSet(identifier, dicom.LookupTransferSyntax(ts))
	if err != nil {
		return SubOps{}, err
	}
	rq := &Command{Field: field, MessageID: cl.c.nextMessageID(), AffectedSOPClass: model, MoveDestination: dest, Priority: PriorityMedium}
	if err := cl.c.sendBytes(id, rq, body); err != nil {
		return SubOps{}, err
	}
	stop := context.AfterFunc(ctx, func() {
		cl.c.send(id, &Command{Field: CCancelRQ, RespondingTo: rq.MessageID}, nil)
	})
	defer stop()
	for {
		rsp, err := cl.response(rq, onStore)
		if err != nil {
			return SubOps{}, err
		}
		if Kind(rsp.Status) == KindPending {
			continue
		}
		return rsp.SubOps, statusErr(CommandName(field)[:5], rsp)
	}
}

// Release releases the association.
func (cl *Client) Release() error { return cl.a.Release() }

// Abort aborts the association.
func (cl *Client) Abort() error { return cl.a.Abort() }
