package dimse

import (
	"context"
	"fmt"

	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/ul"
)

// tagFailedSOPInstanceUIDList is sent in the final C-GET/C-MOVE response
// when sub-operations failed (PS3.4 C.4.2.1.4.2).
const tagFailedSOPInstanceUIDList = dicom.Tag(0x00080058)

// subStorer performs one C-STORE sub-operation.
type subStorer interface {
	store(ctx context.Context, inst Instance) (uint16, error)
}

// retrieve runs a C-GET (sub-operations on this association) or a C-MOVE
// (sub-operations on a new association to the destination).
func (ss *session) retrieve(ctx context.Context, req *Request, id *dicom.DataSet) error {
	rspField := req.Command.Field | 0x8000
	if ss.s.Retrieve == nil {
		return ss.respond(req, rspField, Status{Code: StatusSOPClassNotSupported}, nil, nil)
	}
	var storer subStorer
	if req.Command.Field == CMoveRQ {
		if ss.s.MoveDestination == nil {
			return ss.respond(req, rspField, Status{Code: StatusMoveDestinationUnknown}, nil, nil)
		}
		dest, err := ss.s.MoveDestination(ctx, req, req.Command.MoveDestination)
		if err != nil {
			return ss.respond(req, rspField, Status{Code: StatusMoveDestinationUnknown, Comment: "move destination unknown"}, nil, nil)
		}
		ms := &moveStorer{dest: dest, originAE: ss.info.CallingAE, originID: req.Command.MessageID}
		defer ms.close(ctx)
		storer = ms
	} else {
		storer = &getStorer{ss: ss}
	}
	insts, st := ss.s.Retrieve(ctx, req, id)
	if Kind(st.Code) == KindFailure {
		return ss.respond(req, rspField, st, nil, nil)
	}
	if ms, ok := storer.(*moveStorer); ok && len(insts) > 0 {
		if err := ms.connect(ctx, insts); err != nil {
			ss.log.Info("C-MOVE destination unreachable", "dest_ae", req.Command.MoveDestination, "err", err)
			return ss.respond(req, rspField, Status{Code: StatusOutOfResourcesSubOps, Comment: "move destination unreachable"}, nil, nil)
		}
	}
	sub := SubOps{Remaining: uint16(min(len(insts), 0xFFFF))}
	var failed []string
	cancelled := false
	for i, inst := range insts {
		if ctx.Err() != nil {
			cancelled = true
			break
		}
		code, err := storer.store(ctx, inst)
		if err != nil {
			if ss.ctx.Err() != nil {
				return err
			}
			code = StatusProcessingFailure
		}
		if inst.Done != nil {
			inst.Done(code)
		}
		sub.Remaining--
		switch Kind(code) {
		case KindSuccess:
			sub.Completed++
		case KindWarning:
			sub.Warning++
		default:
			sub.Failed++
			failed = append(failed, inst.SOPInstanceUID)
		}
		if i < len(insts)-1 {
			s := sub
			if err := ss.respond(req, rspField, Status{Code: StatusPending}, nil, &s); err != nil {
				return err
			}
		}
	}
	final := Status{Code: StatusSuccess}
	switch {
	case cancelled:
		final.Code = StatusCancel
	case sub.Failed > 0 && sub.Completed+sub.Warning == 0:
		final.Code = StatusOutOfResourcesSubOps
	case sub.Failed > 0 || sub.Warning > 0:
		final.Code = StatusSubOpsCompleteFailures
	}
	var data []byte
	if len(failed) > 0 {
		var ds dicom.DataSet
		ds.Set(dicom.NewText(tagFailedSOPInstanceUIDList, dicom.UI, failed...))
		data, _ = dicom.MarshalDataSet(&ds, dicom.LookupTransferSyntax(req.TransferSyntax))
	}
	if !cancelled {
		sub.Remaining = 0
	}
	return ss.respond(req, rspField, final, data, &sub)
}

// getStorer sends sub-operations back over the C-GET association, on a
// context the requestor proposed for the SOP class with the SCP role.
type getStorer struct{ ss *session }

func (g *getStorer) store(ctx context.Context, inst Instance) (uint16, error) {
	c := g.ss.c
	ctxID, ts, st := chooseContext(c.contexts, inst.SOPClassUID, inst.TransferSyntax, g.scpRole)
	if ctxID == 0 {
		return st, nil
	}
	rc, err := openAs(inst, ts)
	if err != nil {
		g.ss.log.Info("C-GET sub-operation not attempted", "sop_class", inst.SOPClassUID, "err", err)
		return StatusProcessingFailure, nil
	}
	defer rc.Close()
	id := c.nextMessageID()
	ch := make(chan *Command, 1)
	g.ss.wmu.Lock()
	g.ss.waiters[id] = ch
	g.ss.wmu.Unlock()
	rq := &Command{Field: CStoreRQ, MessageID: id, AffectedSOPClass: inst.SOPClassUID, AffectedSOPInstance: inst.SOPInstanceUID}
	if err := c.send(ctxID, rq, rc); err != nil {
		return 0, err
	}
	// ctx ends when the association does (session.run cancels it before
	// waiting for this operation), so a requestor that vanishes instead of
	// answering does not leave this wait, and the association, hanging.
	select {
	case rsp := <-ch:
		return rsp.Status, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-g.ss.ctx.Done():
		return 0, g.ss.ctx.Err()
	}
}

// scpRole reports whether the acceptor granted the requestor the SCP role
// for the class (PS3.7 D.3.3.4), which C-GET sub-operations need.
func (g *getStorer) scpRole(class string) bool {
	for _, r := range g.ss.c.a.AC().User.Roles {
		if r.SOPClassUID == class {
			return r.SCP
		}
	}
	return false
}

// moveStorer opens an association to the C-MOVE destination.
type moveStorer struct {
	dest     *Destination
	originAE string
	originID uint16
	cl       *Client
}

func (m *moveStorer) connect(ctx context.Context, insts []Instance) error {
	opts := m.dest.Options
	opts.Contexts = moveProposals(insts)
	cl, err := Dial(ctx, m.dest.Addr, &opts)
	if err != nil {
		return err
	}
	m.cl = cl
	return nil
}

// moveProposals lists the contexts proposed to a C-MOVE destination: one
// per SOP class and syntax the instances are held in, so each can go as
// it is, then per SOP class with an instance in a native syntax one more
// with fallbackSyntaxes, for a destination that takes none of those as
// they are. Exact contexts come first when the PS3.8 limit cuts the list.
func moveProposals(insts []Instance) []Proposal {
	var exact, fallback []Proposal
	seen := map[[2]string]bool{}
	for _, in := range insts {
		k := [2]string{in.SOPClassUID, in.TransferSyntax}
		if !seen[k] {
			seen[k] = true
			exact = append(exact, Proposal{AbstractSyntax: in.SOPClassUID, TransferSyntaxes: []string{in.TransferSyntax}})
		}
		k = [2]string{in.SOPClassUID, ""}
		if isNative(in.TransferSyntax) && !seen[k] {
			seen[k] = true
			fallback = append(fallback, Proposal{AbstractSyntax: in.SOPClassUID, TransferSyntaxes: fallbackSyntaxes})
		}
	}
	out := append(exact, fallback...)
	if len(out) > ul.DefaultMaxPresentationContexts {
		out = out[:ul.DefaultMaxPresentationContexts]
	}
	return out
}

func (m *moveStorer) store(ctx context.Context, inst Instance) (uint16, error) {
	ctxID, ts, st := chooseContext(m.cl.c.contexts, inst.SOPClassUID, inst.TransferSyntax, func(string) bool { return true })
	if ctxID == 0 {
		return st, nil
	}
	rc, err := openAs(inst, ts)
	if err != nil {
		return StatusProcessingFailure, nil
	}
	defer rc.Close()
	// The operation's end (cancel, association gone, server closing)
	// interrupts a destination that does not answer.
	defer m.cl.watch(ctx)()
	st, err = m.cl.store(ctx, inst.SOPClassUID, inst.SOPInstanceUID, ts, rc, &Command{
		MoveOriginatorAE: m.originAE, MoveOriginatorID: m.originID, HasMoveOriginator: true})
	if err != nil {
		if _, ok := err.(*noContextError); ok {
			return StatusSOPClassNotSupported, nil
		}
		return StatusProcessingFailure, fmt.Errorf("dimse: C-MOVE sub-operation: %w", err)
	}
	return st, nil
}

// close releases the sub-association, or aborts it when the operation
// ended early: a release would wait for the destination.
func (m *moveStorer) close(ctx context.Context) {
	if m.cl == nil {
		return
	}
	if ctx.Err() != nil {
		m.cl.Abort()
		return
	}
	m.cl.Release()
}
