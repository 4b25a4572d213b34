package dimse

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/dicomshield/dicomshield/internal/ul"
)

// errReleaseRequested is returned by the reader when the peer asked to
// release the association.
var errReleaseRequested = errors.New("dimse: release requested")

// ErrProtocol is wrapped by errors for DIMSE messages that break PS3.7:
// a data PDV where a command belongs, a context that was not accepted.
var ErrProtocol = errors.New("dimse: protocol error")

// conn carries DIMSE messages over an association. One goroutine reads;
// sending is serialised per message by sendMu.
type conn struct {
	a       *ul.Association
	pending []ul.PDV
	sendMu  sync.Mutex
	// contexts accepted, by ID, with their transfer syntax.
	contexts map[byte]acceptedContext
	msgID    uint16
	idMu     sync.Mutex
}

type acceptedContext struct {
	abstract string
	ts       string
}

func newConn(a *ul.Association) *conn {
	c := &conn{a: a, contexts: map[byte]acceptedContext{}}
	abstract := map[byte]string{}
	for _, pc := range a.RQ().Contexts {
		abstract[pc.ID] = pc.AbstractSyntax
	}
	for _, pc := range a.AC().Contexts {
		if pc.Result == ul.ResultAcceptance && len(pc.TransferSyntaxes) == 1 {
			c.contexts[pc.ID] = acceptedContext{abstract: abstract[pc.ID], ts: pc.TransferSyntaxes[0]}
		}
	}
	return c
}

func (c *conn) nextMessageID() uint16 {
	c.idMu.Lock()
	defer c.idMu.Unlock()
	c.msgID++
	if c.msgID == 0 {
		c.msgID = 1
	}
	return c.msgID
}

// nextPDV returns the next PDV. Its Data aliases the association's
// receive buffer and is valid until the next call.
func (c *conn) nextPDV() (ul.PDV, error) {
	for len(c.pending) == 0 {
		p, err := c.a.Next()
		if err != nil {
			return ul.PDV{}, err
		}
		switch p := p.(type) {
		case *ul.PDataTF:
			c.pending = p.PDVs
		case *ul.ReleaseRQ:
			return ul.PDV{}, errReleaseRequested
		default:
			return ul.PDV{}, fmt.Errorf("%w: unexpected %T", ErrProtocol, p)
		}
	}
	v := c.pending[0]
	c.pending = c.pending[1:]
	return v, nil
}

// readCommand reads the fragments of the next command set.
func (c *conn) readCommand() (*Command, byte, error) {
	var buf []byte
	var ctx byte
	first := true
	for {
		v, err := c.nextPDV()
		if err != nil {
			return nil, 0, err
		}
		if !v.Command {
			return nil, 0, c.protocolError("data set fragment where a command was expected")
		}
		if first {
			ctx, first = v.ContextID, false
		} else if v.ContextID != ctx {
			return nil, 0, c.protocolError("command fragments on two presentation contexts")
		}
		if len(buf)+len(v.Data) > maxCommandLength {
			return nil, 0, c.protocolError("command set longer than %d bytes", maxCommandLength)
		}
		buf = append(buf, v.Data...)
		if v.Last {
			break
		}
	}
	if _, ok := c.contexts[ctx]; !ok {
		return nil, 0, c.protocolError("command on presentation context %d, which was not accepted", ctx)
	}
	cmd, err := DecodeCommand(buf)
	if err != nil {
		c.a.Abort()
		return nil, 0, err
	}
	return cmd, ctx, nil
}

// protocolError aborts the association and returns the error.
func (c *conn) protocolError(format string, args ...any) error {
	c.a.Abort()
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}

// copyDataSet hands the data set fragments that follow a command to w,
// up to the last one. w may be nil to discard. An error from w does not
// stop the reading (the fragments must be consumed to keep the
// association in step); it is returned once the data set ended.
func (c *conn) copyDataSet(ctx byte, w io.Writer, limit int64) (int64, error) {
	var n int64
	var werr error
	for {
		v, err := c.nextPDV()
		if err != nil {
			return n, err
		}
		if v.Command {
			return n, c.protocolError("command fragment inside a data set")
		}
		if v.ContextID != ctx {
			return n, c.protocolError("data set fragment on context %d, command on %d", v.ContextID, ctx)
		}
		n += int64(len(v.Data))
		if limit > 0 && n > limit && werr == nil {
			werr = fmt.Errorf("%w (%d bytes)", errDataSetLimit, limit)
		}
		if w != nil && werr == nil {
			if _, err := w.Write(v.Data); err != nil {
				werr = err
			}
		}
		if v.Last {
			return n, werr
		}
	}
}

// send writes one message: the command and, when data is non-nil, the
// data set read from it.
func (c *conn) send(ctx byte, cmd *Command, data io.Reader) error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	cmd.HasDataSet = data != nil
	w := c.a.PDVWriter(ctx, true)
	if _, err := w.Write(cmd.Encode()); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	if data == nil {
		return nil
	}
	dw := c.a.PDVWriter(ctx, false)
	if _, err := io.Copy(dw, data); err != nil {
		return err
	}
	return dw.Close()
}

// sendBytes writes a message whose data set is held in memory.
func (c *conn) sendBytes(ctx byte, cmd *Command, data []byte) error {
	c.sendMu.Lock()
	cmd.HasDataSet = data != nil
	sent, err := c.a.SendMessage(ctx, cmd.Encode(), data)
	c.sendMu.Unlock()
	if sent {
		return err
	}
	if data == nil {
		return c.send(ctx, cmd, nil)
	}
	return c.send(ctx, cmd, &byteReader{b: data})
}

type byteReader struct{ b []byte }

func (r *byteReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// WriteTo lets io.Copy hand the whole buffer to the PDV writer at once.
func (r *byteReader) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(r.b)
	r.b = r.b[n:]
	return int64(n), err
}

// dataReader reads the data set that follows a command, fragment by
// fragment as the peer sends it, for a handler running on the reading
// goroutine. A broken association is an error to the reader, never EOF,
// so a handler cannot mistake a cut transfer for a complete one.
type dataReader struct {
	c     *conn
	ctx   byte
	limit int64
	cur   []byte
	n     int64
	last  bool
	// fatal ends the association; err is what Read returns.
	fatal, err error
	overLimit  bool
}

func (r *dataReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.last {
			return 0, io.EOF
		}
		r.next()
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// WriteTo hands w each fragment as it arrives, so that io.Copy passes the
// association's receive buffer to w instead of copying it through a buffer
// of its own. w must not keep the slice (io.Writer's rule): it is
// overwritten by the next PDU.
func (r *dataReader) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for {
		for len(r.cur) == 0 {
			if r.err != nil {
				return n, r.err
			}
			if r.last {
				return n, nil
			}
			r.next()
		}
		m, err := w.Write(r.cur)
		n += int64(m)
		r.cur = r.cur[m:]
		if err != nil {
			return n, err
		}
	}
}

// next takes the next fragment into cur, or records why there is none.
func (r *dataReader) next() {
	v, err := r.c.nextPDV()
	switch {
	case err != nil:
		r.fatal = err
	case v.Command:
		r.fatal = r.c.protocolError("command fragment inside a data set")
	case v.ContextID != r.ctx:
		r.fatal = r.c.protocolError("data set fragment on context %d, command on %d", v.ContextID, r.ctx)
	}
	if r.fatal != nil {
		r.err = fmt.Errorf("dimse: data set incomplete: %w", r.fatal)
		r.cur = nil
		return
	}
	r.n += int64(len(v.Data))
	r.cur, r.last = v.Data, v.Last
	if r.limit > 0 && r.n > r.limit && !r.overLimit {
		r.overLimit = true
		r.err = fmt.Errorf("%w (%d bytes)", errDataSetLimit, r.limit)
		r.cur = nil
	}
}

// drain consumes what the handler left of the data set, so that the
// association stays in step; it returns the error that ended the
// association, if one did.
func (r *dataReader) drain() error {
	for !r.last && r.fatal == nil {
		r.next()
	}
	return r.fatal
}
