package archive

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/dicomshield/dicomshield/internal/audit"
	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/dimse"
	"github.com/dicomshield/dicomshield/internal/pki"
	"github.com/dicomshield/dicomshield/internal/policy"
	"github.com/dicomshield/dicomshield/internal/store"
	"github.com/dicomshield/dicomshield/internal/ul"
)

// storageSyntaxes are the transfer syntaxes the archive accepts for
// storage, in order of preference. Instances are stored as received, never
// transcoded.
var storageSyntaxes = []string{
	dicom.ExplicitVRLittleEndianUID, dicom.ImplicitVRLittleEndianUID,
	"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70",
	"1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91",
	"1.2.840.10008.1.2.4.92", "1.2.840.10008.1.2.4.93", "1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.4.101",
	"1.2.840.10008.1.2.4.102", "1.2.840.10008.1.2.4.103", "1.2.840.10008.1.2.4.104", "1.2.840.10008.1.2.4.105",
	"1.2.840.10008.1.2.4.106", "1.2.840.10008.1.2.4.107", "1.2.840.10008.1.2.4.108", "1.2.840.10008.1.2.4.201",
	"1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.1.98",
	dicom.DeflatedExplicitVRLittleEndianUID, dicom.ExplicitVRBigEndianUID,
}

var plainSyntaxes = []string{dicom.ExplicitVRLittleEndianUID, dicom.ImplicitVRLittleEndianUID}

// isStorageClass reports whether uid is a storage SOP class (PS3.4 annex
// B): the image and object storage classes, RT and the newer families.
func isStorageClass(uid string) bool {
	for _, p := range []string{"1.2.840.10008.5.1.4.1.1.", "1.2.840.10008.5.1.4.34.", "1.2.840.10008.5.1.4.38.", "1.2.840.10008.5.1.4.43."} {
		if strings.HasPrefix(uid, p) {
			return true
		}
	}
	return false
}

// peerOf returns the association's peer, its rights narrowed to its
// user's (identity.go); nil if none.
func peerOf(r *dimse.Request) *policy.Peer {
	if s, _ := r.Assoc.Values.(*session); s != nil {
		return s.peer
	}
	return nil
}

// accept decides an association with the policy, then offers only the
// services the peer was allowed.
func (a *Archive) accept(r *dimse.AssocRequest) (*ul.AssociateAC, any, *ul.AssociateRJ) {
	req := policy.Request{CallingAE: r.RQ.CallingAE, CalledAE: r.RQ.CalledAE, TLS: r.TLS != nil}
	if ap, err := netip.ParseAddrPort(r.Conn.RemoteAddr().String()); err == nil {
		req.Remote = ap.Addr()
	}
	if r.TLS != nil {
		req.CertAE, _ = pki.PeerAETitle(r.TLS)
		if len(r.TLS.PeerCertificates) > 0 {
			req.CertSerial = pki.Serial(r.TLS.PeerCertificates[0])
		}
	}
	d := a.Policy.Associate(context.Background(), req)
	ev := audit.Event{CallingAE: strings.TrimSpace(r.RQ.CallingAE), CalledAE: strings.TrimSpace(r.RQ.CalledAE),
		Remote: remoteIP(r.Conn.RemoteAddr()), Local: remoteIP(r.Conn.LocalAddr()), Description: d.Reason}
	if !d.Allowed {
		ev.Kind, ev.Outcome = audit.AssocRefused, audit.MinorFailure
		a.Audit.Record(ev)
		a.Logger.Warn("association refused", "reason", d.Reason, "remote", r.Conn.RemoteAddr().String())
		if d.RevokedCert {
			a.Audit.Record(audit.Event{Kind: audit.SecurityAlert, Outcome: audit.SeriousFailure, Alert: "revoked-certificate",
				Description: d.Reason, CallingAE: r.RQ.CallingAE, CalledAE: r.RQ.CalledAE, Remote: req.Remote.String()})
		}
		result := ul.RejectPermanent
		if d.Transient {
			result = ul.RejectTransient
		}
		a.metrics.assocRefused.Add(1)
		return nil, nil, &ul.AssociateRJ{Result: result, Source: ul.SourceServiceUser, Reason: d.RejectReason}
	}
	sl, n := a.reserveSlot(d.Peer.AETitle, a.Config.Limits.MaxAssociationsPerPeer)
	if sl == nil {
		ev.Kind, ev.Outcome, ev.Peer = audit.AssocRefused, audit.MinorFailure, d.Peer.AETitle
		ev.Description = fmt.Sprintf("peer already has %d associations open, the most allowed", n)
		a.Audit.Record(ev)
		a.Logger.Warn("association refused: peer has too many open", "calling_ae", d.Peer.AETitle, "open", n)
		a.metrics.assocRefused.Add(1)
		return nil, nil, &ul.AssociateRJ{Result: ul.RejectTransient, Source: ul.SourceServiceProviderPresenta, Reason: ul.ReasonLocalLimitExceeded}
	}
	// The slot is held from here: given back below if accept refuses or
	// fails, else when the association ends or never comes to be.
	handedOver := false
	defer func() {
		if !handedOver {
			sl.release()
		}
	}()
	sess, respond, rj := a.authenticate(r, d.Peer, req.Remote)
	if rj != nil {
		ev.Kind, ev.Outcome, ev.Peer = audit.AssocRefused, audit.MinorFailure, d.Peer.AETitle
		ev.Description = "user identity not accepted"
		a.Audit.Record(ev)
		a.metrics.assocRefused.Add(1)
		return nil, nil, rj
	}
	peer := sess.peer
	ac := dimse.Negotiate(r.RQ, func(abstract string) []string {
		switch {
		case abstract == dimse.VerificationSOPClass && peer.Can(policy.RightEcho):
			return plainSyntaxes
		case isStorageClass(abstract) && (peer.Can(policy.RightStore) || peer.Can(policy.RightGet)):
			return storageSyntaxes
		case (abstract == dimse.PatientRootFind || abstract == dimse.StudyRootFind) && peer.Can(policy.RightFind):
			return plainSyntaxes
		case (abstract == dimse.PatientRootGet || abstract == dimse.StudyRootGet) && peer.Can(policy.RightGet):
			return plainSyntaxes
		case (abstract == dimse.PatientRootMove || abstract == dimse.StudyRootMove) && peer.Can(policy.RightMove):
			return plainSyntaxes
		}
		return nil
	})
	ac.CalledAE = a.Config.AETitle
	if respond {
		// PS3.7 D.3.3.7.2: the server response is empty for types 1 and 2;
		// for a token we issue none of our own, and an empty response still
		// tells the requestor its identity was accepted.
		ac.User.HasIdentityResp = true
	}
	sess.slot = sl
	a.holdSlot(r.Conn.RemoteAddr(), sl)
	handedOver = true
	ev.Kind, ev.Peer, ev.User = audit.AssocAccepted, peer.AETitle, sess.user
	a.Audit.Record(ev)
	a.metrics.assocAccepted.Add(1)
	a.Logger.Info("association accepted", "reason", d.Reason)
	return ac, sess, nil
}

func (a *Archive) echo(ctx context.Context, r *dimse.Request) dimse.Status {
	if !peerOf(r).Can(policy.RightEcho) {
		return dimse.Status{Code: dimse.StatusNotAuthorized}
	}
	a.metrics.op("echo", "success")
	return dimse.Status{Code: dimse.StatusSuccess}
}

// metaSkipLimit bounds the meta header of a stored blob when it is read
// back: we wrote it, and it is a few hundred bytes.
const metaSkipLimit = 64 << 10

// store writes the instance as a Part 10 file (our meta header, then the
// data set exactly as received) into a new blob while reading its header
// for the index; the blob is synced and in place before the index row is
// committed, and only then is success answered.
func (a *Archive) store(ctx context.Context, r *dimse.Request, data io.Reader) dimse.Status {
	st, inst := a.storeInstance(ctx, r, data)
	a.metrics.op("store", outcome(st.Code))
	if inst == nil {
		inst = &store.Instance{SOPClassUID: r.Command.AffectedSOPClass}
	}
	why := "stored"
	if auditOutcome(st.Code) != audit.Success {
		why = "refused: " + firstOf(st.Comment, fmt.Sprintf("status 0x%04X", st.Code))
	}
	a.transfers.add(a, r.Assoc, audit.InstancesStored, "", inst, auditOutcome(st.Code), why)
	return st
}

func firstOf(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// outcome names a status class for the metrics.
func outcome(code uint16) string {
	switch dimse.Kind(code) {
	case dimse.KindSuccess:
		return "success"
	case dimse.KindWarning:
		return "warning"
	case dimse.KindCancel:
		return "cancel"
	}
	return "failure"
}

func (a *Archive) storeInstance(ctx context.Context, r *dimse.Request, data io.Reader) (dimse.Status, *store.Instance) {
	peer := peerOf(r)
	if !peer.Can(policy.RightStore) {
		return dimse.Status{Code: dimse.StatusNotAuthorized}, nil
	}
	cmd := r.Command
	if !store.ValidUID(cmd.AffectedSOPInstance) || !store.ValidUID(cmd.AffectedSOPClass) {
		return dimse.Status{Code: dimse.StatusInvalidObjectInstance, Comment: "invalid SOP instance or class UID"}, nil
	}
	w, err := a.Blobs.Create()
	if err != nil {
		a.Logger.Error("store: cannot create blob", "err", err)
		return dimse.Status{Code: dimse.StatusOutOfResources}, nil
	}
	committed := false
	defer func() {
		if !committed {
			w.Abort()
		}
	}()
	ts := dicom.LookupTransferSyntax(r.TransferSyntax)
	var ids dicom.DataSet
	ids.Set(dicom.NewText(dicom.TagSOPClassUID, dicom.UI, cmd.AffectedSOPClass))
	ids.Set(dicom.NewText(dicom.TagSOPInstanceUID, dicom.UI, cmd.AffectedSOPInstance))
	// The meta header alone: WriteFile encodes the (empty) data set after
	// it, and in a deflated syntax even an empty data set is a few bytes
	// of deflate stream, which would end up before the received one.
	metaTS := ts
	metaTS.Deflated = false
	meta := dicom.NewFile(&ids, metaTS)
	meta.DataSet = dicom.DataSet{}
	bw := bufio.NewWriterSize(w, 256<<10)
	if err := dicom.WriteFile(bw, meta); err != nil {
		return dimse.Status{Code: dimse.StatusOutOfResources}, nil
	}
	// The decoder reads the header through the tee, which copies every
	// byte it takes into the blob; the rest is copied after it.
	dec := dicom.NewDecoder(io.TeeReader(data, bw), ts, &dicom.ReadOptions{StopAt: dicom.TagPixelData,
		Limits: dicom.Limits{MaxValueLength: 64 << 20}})
	hdr, err := dec.Decode()
	if err != nil {
		io.Copy(io.Discard, data)
		a.Logger.Info("store refused: data set could not be decoded", "calling_ae", peer.AETitle, "err", err)
		return dimse.Status{Code: dimse.StatusCannotUnderstand, Comment: "data set could not be decoded"}, nil
	}
	// The header says where the instance goes: what the index would
	// refuse (a sealed series, another peer's study) is refused before
	// the rest is written and synced. Add checks again.
	inst, err := store.ExtractInstance(hdr)
	if err != nil {
		io.Copy(io.Discard, data)
		return dimse.Status{Code: dimse.StatusDataSetDoesNotMatch, Comment: "data set lacks its UIDs"}, nil
	}
	if inst.SOPInstanceUID != cmd.AffectedSOPInstance || inst.SOPClassUID != cmd.AffectedSOPClass {
		io.Copy(io.Discard, data)
		return dimse.Status{Code: dimse.StatusDataSetDoesNotMatch, Comment: "data set UIDs differ from the command"}, inst
	}
	inst.Sender, inst.ReceivedAt = peer.AETitle, a.now()
	if err := a.Index.Precheck(ctx, inst, a.storeGuard(peer)); err != nil {
		io.Copy(io.Discard, data)
		if st, refused := a.tamperRefusal(r, peer, inst, err); refused {
			return st, inst
		}
		a.Logger.Error("store: index", "err", err)
		return dimse.Status{Code: dimse.StatusOutOfResources}, inst
	}
	if _, err := io.Copy(blobSink{bw: bw, w: w}, data); err != nil {
		a.Logger.Info("store: transfer ended early", "calling_ae", peer.AETitle, "err", err)
		return dimse.Status{Code: dimse.StatusProcessingFailure}, nil
	}
	if err := bw.Flush(); err != nil {
		return dimse.Status{Code: dimse.StatusOutOfResources}, nil
	}
	key, size, err := w.Commit()
	if err != nil {
		a.Logger.Error("store: cannot commit blob", "err", err)
		return dimse.Status{Code: dimse.StatusOutOfResources}, inst
	}
	committed = true
	inst.BlobKey, inst.Size, inst.TransferSyntaxUID = key, size, r.TransferSyntax
	inst.ReceivedAt = a.now()
	err = a.Index.Add(ctx, inst, a.storeGuard(peer))
	if st, refused := a.tamperRefusal(r, peer, inst, err); refused {
		a.removeUnreferenced(ctx, key)
		return st, inst
	}
	switch {
	case err == nil:
		a.metrics.storeBytes.Add(size)
		a.Logger.Debug("stored", "calling_ae", peer.AETitle, "user", userOf(r), "sop_class", inst.SOPClassUID, "bytes", size)
		return dimse.Status{Code: dimse.StatusSuccess}, inst
	case errors.Is(err, store.ErrDuplicate):
		return dimse.Status{Code: dimse.StatusSuccess}, inst
	default:
		a.removeUnreferenced(ctx, key)
		a.Logger.Error("store: index", "err", err)
		return dimse.Status{Code: dimse.StatusOutOfResources}, inst
	}
}

// directWrite is the fragment size from which the rest of a data set goes
// to the blob writer as it arrives rather than through the 256 KiB
// buffer: a PDV of 64 KiB or more (DCMTK sends 128 KiB) is already a good
// write, and copying it into the buffer first would cost a pass over every
// byte. Smaller fragments (a peer that sends 16 KiB PDUs) are still
// gathered into large writes.
const directWrite = 64 << 10

// blobSink writes large fragments straight to the blob (after what the
// buffer holds, so the order is kept) and small ones through the buffer.
type blobSink struct {
	bw *bufio.Writer
	w  io.Writer
}

func (s blobSink) Write(p []byte) (int, error) {
	if len(p) < directWrite {
		return s.bw.Write(p)
	}
	if err := s.bw.Flush(); err != nil {
		return 0, err
	}
	return s.w.Write(p)
}

// removeUnreferenced deletes a blob no index row refers to. When the
// index cannot tell, the blob stays: recovery quarantines it at the next
// start if it is still unreferenced then.
func (a *Archive) removeUnreferenced(ctx context.Context, key string) {
	used, err := a.Index.HasBlob(ctx, key)
	if err != nil {
		a.Logger.Error("store: cannot tell whether a refused blob is referenced; kept", "err", err)
		return
	}
	if !used {
		a.Blobs.Remove(key)
	}
}

func model(abstract string) string {
	switch abstract {
	case dimse.PatientRootFind, dimse.PatientRootGet, dimse.PatientRootMove:
		return "PATIENT"
	}
	return "STUDY"
}

func (a *Archive) find(ctx context.Context, r *dimse.Request, id *dicom.DataSet, emit func(*dicom.DataSet) error) dimse.Status {
	st := a.findMatches(ctx, r, id, emit)
	ev := assocEvent(r.Assoc, audit.Query)
	ev.Outcome, ev.SOPClasses = auditOutcome(st.Code), []string{r.AbstractSyntax}
	if ev.Outcome != audit.Success {
		ev.Description = firstOf(st.Comment, fmt.Sprintf("status 0x%04X", st.Code))
	}
	ev.Query, _ = dicom.MarshalDataSet(id, dicom.LookupTransferSyntax(dicom.ExplicitVRLittleEndianUID))
	a.Audit.Record(ev)
	return st
}

func (a *Archive) findMatches(ctx context.Context, r *dimse.Request, id *dicom.DataSet, emit func(*dicom.DataSet) error) dimse.Status {
	peer := peerOf(r)
	if !peer.Can(policy.RightFind) {
		return dimse.Status{Code: dimse.StatusNotAuthorized}
	}
	q := &store.Query{Model: model(r.AbstractSyntax), Identifier: id, Limit: a.Config.Limits.MaxFindResults}
	truncated, err := a.Index.Find(ctx, q, emit)
	switch {
	case errors.Is(err, store.ErrInvalid):
		return dimse.Status{Code: dimse.StatusIdentifierDoesNotMatch, Comment: "identifier not valid for the model"}
	case err != nil && ctx.Err() != nil:
		return dimse.Status{Code: dimse.StatusCancel}
	case err != nil:
		a.Logger.Error("find", "err", err)
		return dimse.Status{Code: dimse.StatusOutOfResourcesMatches}
	}
	if truncated {
		a.Logger.Warn("find: results cut at max_find_results", "calling_ae", peer.AETitle, "limit", q.Limit)
	}
	a.metrics.op("find", "success")
	return dimse.Status{Code: dimse.StatusSuccess}
}

func (a *Archive) retrieve(ctx context.Context, r *dimse.Request, id *dicom.DataSet) ([]dimse.Instance, dimse.Status) {
	peer := peerOf(r)
	right := policy.RightGet
	if r.Command.Field == dimse.CMoveRQ {
		right = policy.RightMove
	}
	if !peer.Can(right) {
		return nil, dimse.Status{Code: dimse.StatusNotAuthorized}
	}
	insts, err := a.Index.Instances(ctx, &store.Query{Model: model(r.AbstractSyntax), Identifier: id})
	if errors.Is(err, store.ErrInvalid) {
		return nil, dimse.Status{Code: dimse.StatusIdentifierDoesNotMatch, Comment: "identifier not valid for the model"}
	}
	if err != nil {
		a.Logger.Error("retrieve", "err", err)
		return nil, dimse.Status{Code: dimse.StatusOutOfResourcesMatches}
	}
	if r.Command.Field == dimse.CMoveRQ {
		a.metrics.op("move", "started")
	} else {
		a.metrics.op("get", "started")
	}
	dest := ""
	if r.Command.Field == dimse.CMoveRQ {
		dest = strings.TrimSpace(r.Command.MoveDestination)
	}
	out := make([]dimse.Instance, 0, len(insts))
	for _, in := range insts {
		key := in.BlobKey
		sent := &store.Instance{PatientID: in.PatientID, StudyInstanceUID: in.StudyInstanceUID, SOPClassUID: in.SOPClassUID}
		out = append(out, dimse.Instance{SOPClassUID: in.SOPClassUID, SOPInstanceUID: in.SOPInstanceUID,
			TransferSyntax: in.TransferSyntaxUID, Open: func() (io.ReadCloser, error) { return a.openDataSet(key) },
			Done: func(code uint16) {
				why := "sent"
				if auditOutcome(code) != audit.Success {
					why = fmt.Sprintf("sub-operation failed: status 0x%04X", code)
				}
				a.transfers.add(a, r.Assoc, audit.InstancesSent, dest, sent, auditOutcome(code), why)
			}})
	}
	return out, dimse.Status{Code: dimse.StatusSuccess}
}

// openDataSet opens a stored blob positioned after its meta header.
func (a *Archive) openDataSet(key string) (io.ReadCloser, error) {
	rc, err := a.Blobs.Open(key)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(rc, 64<<10)
	var head [144]byte
	if _, err := io.ReadFull(br, head[:]); err != nil {
		rc.Close()
		return nil, fmt.Errorf("archive: blob %s: %w", key, err)
	}
	// 128-byte preamble, "DICM", then (0002,0000) UL 4 <group length>.
	if string(head[128:132]) != "DICM" || binary.LittleEndian.Uint32(head[132:]) != 0x00000002 || string(head[136:138]) != "UL" {
		rc.Close()
		return nil, fmt.Errorf("archive: blob %s has no meta header of ours", key)
	}
	n := binary.LittleEndian.Uint32(head[140:])
	if n > metaSkipLimit {
		rc.Close()
		return nil, fmt.Errorf("archive: blob %s: meta header of %d bytes", key, n)
	}
	if _, err := br.Discard(int(n)); err != nil {
		rc.Close()
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{br, rc}, nil
}

// moveDestination resolves a C-MOVE destination: only a registered peer
// with a port; over TLS unless the peer is registered for plain DICOM.
func (a *Archive) moveDestination(ctx context.Context, r *dimse.Request, ae string) (*dimse.Destination, error) {
	dest, err := a.Registry.Get(ctx, strings.TrimSpace(ae))
	if err != nil {
		return nil, err
	}
	addr, ok := dest.MoveAddr()
	if !ok {
		return nil, fmt.Errorf("archive: peer %q has no address and port to receive moves", dest.AETitle)
	}
	opts := dimse.DialOptions{CallingAE: a.Config.AETitle, CalledAE: dest.AETitle}
	if !dest.Plaintext {
		// Over TLS the destination must show the certificate its bundle
		// holds (this CA, bound to its AE title); the archive shows its
		// own.
		tc, err := a.CA.ClientTLSConfig(dest.AETitle, a.hosts())
		if err != nil {
			return nil, err
		}
		// ... and the one the registry pins now: a certificate replaced
		// or revoked since is refused here as it is on our listener.
		chain := tc.VerifyConnection
		tc.VerifyConnection = func(cs tls.ConnectionState) error {
			if err := chain(cs); err != nil {
				return err
			}
			serial := pki.Serial(cs.PeerCertificates[0])
			if dest.IsRevoked(serial) {
				return fmt.Errorf("archive: move destination %q presented certificate %s, which was revoked", dest.AETitle, serial)
			}
			if !policy.SameSerial(serial, dest.CertSerial) {
				return fmt.Errorf("archive: move destination %q presented certificate %s, not its current one", dest.AETitle, serial)
			}
			return nil
		}
		opts.TLS = tc
	}
	return &dimse.Destination{Addr: addr.String(), Options: opts}, nil
}
