package prove

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/dimse"
	"github.com/dicomshield/dicomshield/internal/scan"
	"github.com/dicomshield/dicomshield/internal/ul"
)

// How a retrieve is proved without downloading images.
//
// C-GET: the scanner asks for the first study a count saw (or, when none
// was seen, a study UID that exists nowhere), offering to receive the
// common storage classes. A server that starts a C-STORE sub-operation has
// honoured the C-GET: the scanner answers that sub-operation with a
// failure status, cancels the C-GET with C-CANCEL, and discards the data
// set unread (aborting if it is larger than one image). A final response
// that reports sub-operations (completed, failed or warning) also shows
// the server went to work for the stranger. A failure status without
// sub-operations, or no accepted context, is a refusal. Success with no
// sub-operation (nothing matched) proves nothing: "unproven".
//
// C-MOVE: the scanner asks the server to send the same study to two
// destinations the stranger names: the scanner's own AE title, served by a
// listener that refuses every association (so nothing arrives), and a
// random AE title no one configured. "move destination unknown" (0xA801)
// is a refusal of the destination. A connection to the listener, or a
// response that reports sub-operations or "unable to perform
// sub-operations" (0xA702, it tried to reach the destination), means the
// server accepted the destination; for the random title that is the
// exfiltration path (MoveAnyDest).

// storageClasses are offered (with the SCP role) to receive a C-GET's
// sub-operations: the image and document classes most archives hold.
var storageClasses = []string{
	"1.2.840.10008.5.1.4.1.1.1",      // CR
	"1.2.840.10008.5.1.4.1.1.1.1",    // DX for presentation
	"1.2.840.10008.5.1.4.1.1.1.1.1",  // DX for processing
	"1.2.840.10008.5.1.4.1.1.1.2",    // MG for presentation
	"1.2.840.10008.5.1.4.1.1.2",      // CT
	"1.2.840.10008.5.1.4.1.1.2.1",    // Enhanced CT
	"1.2.840.10008.5.1.4.1.1.3.1",    // US multi-frame
	"1.2.840.10008.5.1.4.1.1.4",      // MR
	"1.2.840.10008.5.1.4.1.1.4.1",    // Enhanced MR
	"1.2.840.10008.5.1.4.1.1.6.1",    // US
	"1.2.840.10008.5.1.4.1.1.7",      // Secondary Capture
	"1.2.840.10008.5.1.4.1.1.12.1",   // XA
	"1.2.840.10008.5.1.4.1.1.12.2",   // RF
	"1.2.840.10008.5.1.4.1.1.20",     // NM
	"1.2.840.10008.5.1.4.1.1.128",    // PET
	"1.2.840.10008.5.1.4.1.1.481.1",  // RT Image
	"1.2.840.10008.5.1.4.1.1.481.2",  // RT Dose
	"1.2.840.10008.5.1.4.1.1.481.3",  // RT Structure Set
	"1.2.840.10008.5.1.4.1.1.88.11",  // Basic Text SR
	"1.2.840.10008.5.1.4.1.1.88.22",  // Enhanced SR
	"1.2.840.10008.5.1.4.1.1.104.1",  // Encapsulated PDF
	"1.2.840.10008.5.1.4.1.1.77.1.4", // VL Photographic
}

// retrieveIdentifier selects the study t (or a UID that exists nowhere)
// at STUDY level in model.
func retrieveIdentifier(model string, t *target) *dicom.DataSet {
	uid, pid := newUID(), ""
	if t != nil {
		uid, pid = t.StudyUID, t.PatientID
	}
	ds := &dicom.DataSet{}
	ds.Set(dicom.NewText(tagQueryRetrieveLevel, dicom.CS, LevelStudy))
	ds.Set(dicom.NewText(dicom.TagStudyInstanceUID, dicom.UI, uid))
	if model == dimse.PatientRootGet || model == dimse.PatientRootMove {
		ds.Set(dicom.NewText(dicom.TagPatientID, dicom.LO, pid))
	}
	return ds
}

// verdict classifies the outcome of one retrieve request.
func verdict(sub dimse.SubOps, err error, tried bool) string {
	if tried || sub.Completed+sub.Failed+sub.Warning > 0 {
		return scan.ExposureOpen
	}
	if err == nil {
		return scan.ExposureUnproven // nothing matched: nothing to show
	}
	var se *dimse.StatusError
	if errors.As(err, &se) {
		switch {
		case se.Status == dimse.StatusOutOfResourcesSubOps:
			return scan.ExposureOpen // it tried to perform sub-operations
		case dimse.Kind(se.Status) == dimse.KindCancel:
			return scan.ExposureUnproven
		}
		return scan.ExposureClosed
	}
	// An A-ABORT in answer to the request is how some servers (Orthanc)
	// refuse an unknown peer; a reset or a timeout proves nothing.
	var ab *ul.AbortError
	if errors.Is(err, dimse.ErrNoContext) || errors.As(err, &ab) {
		return scan.ExposureClosed
	}
	return scan.ExposureUnproven // transport trouble: no verdict
}

// retrieveModel returns the first accepted model of the two.
func retrieveModel(cl *dimse.Client, study, patient string) string {
	if accepted(cl, study) {
		return study
	}
	if accepted(cl, patient) {
		return patient
	}
	return ""
}

// proveGet tries a C-GET as the stranger and returns open, closed or
// unproven.
func proveGet(ctx context.Context, a scan.Access, t *target) string {
	props := proposals(dimse.StudyRootGet, dimse.PatientRootGet)
	for _, c := range storageClasses {
		props = append(props, dimse.Proposal{AbstractSyntax: c, TransferSyntaxes: syntaxes, SCPRole: true})
	}
	cl, done, err := dial(ctx, a, props, nil)
	if err != nil {
		return verdictDial(err)
	}
	defer done()
	model := retrieveModel(cl, dimse.StudyRootGet, dimse.PatientRootGet)
	if model == "" {
		return scan.ExposureClosed
	}
	gctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stores := 0
	sub, err := cl.Get(gctx, model, retrieveIdentifier(model, t), func(_ *dimse.Request, data io.Reader) dimse.Status {
		stores++
		// Honoured. Refuse, cancel, discard: never parse or keep.
		cancel()
		n, _ := io.CopyN(io.Discard, data, maxDrain+1)
		if n > maxDrain || stores > maxRefusedSubOps {
			cl.Abort()
		}
		return dimse.Status{Code: dimse.StatusOutOfResources}
	})
	return verdict(sub, err, stores > 0)
}

// verdictDial classifies a refused association: refused is closed,
// anything else (timeouts, resets) unproven.
func verdictDial(err error) string {
	var rj *ul.RejectedError
	if errors.As(err, &rj) {
		return scan.ExposureClosed
	}
	return scan.ExposureUnproven
}

// moveProbe is the listener of the scanner's own AE title: it records
// that a server connected and refuses the association.
type moveProbe struct {
	s         *dimse.Server
	connected atomic.Bool
	wg        sync.WaitGroup
}

func startMoveProbe(l net.Listener) *moveProbe {
	m := &moveProbe{}
	m.s = &dimse.Server{Accept: func(*dimse.AssocRequest) (*ul.AssociateAC, any, *ul.AssociateRJ) {
		m.connected.Store(true)
		return nil, nil, &ul.AssociateRJ{Result: ul.RejectPermanent, Source: ul.SourceServiceUser, Reason: ul.ReasonNoReason}
	}}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.s.Serve(l)
	}()
	return m
}

func (m *moveProbe) close() {
	m.s.Close()
	m.wg.Wait()
}

// moveListener returns o.MoveListener, or a loopback listener when the
// target is on loopback, or nil.
func moveListener(a scan.Access, o *Options) net.Listener {
	if o.MoveListener != nil {
		return o.MoveListener
	}
	host, _, err := net.SplitHostPort(a.Addr)
	if err != nil {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return nil
	}
	l, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
	if err != nil {
		return nil
	}
	return l
}

// proveMove tries C-MOVE to the scanner's own AE title and to a random
// one, each on an association of its own (a refusal may end the
// association); it returns the verdict for C-MOVE and for any
// destination.
func proveMove(ctx context.Context, a scan.Access, o *Options, t *target) (move, anyDest string) {
	var probe *moveProbe
	if l := moveListener(a, o); l != nil {
		probe = startMoveProbe(l)
		defer probe.close()
	}
	own := moveOnce(ctx, a, o.moveAE(a), t, probe)
	anyDest = moveOnce(ctx, a, randomAE(), t, nil)
	switch {
	case own == scan.ExposureOpen || anyDest == scan.ExposureOpen:
		move = scan.ExposureOpen
	case own == scan.ExposureClosed && anyDest == scan.ExposureClosed:
		move = scan.ExposureClosed
	default:
		move = scan.ExposureUnproven
	}
	return move, anyDest
}

// moveOnce asks for a C-MOVE to dest; probe, when not nil, is the
// listener of dest.
func moveOnce(ctx context.Context, a scan.Access, dest string, t *target, probe *moveProbe) string {
	cl, done, err := dial(ctx, a, proposals(dimse.StudyRootMove, dimse.PatientRootMove), nil)
	if err != nil {
		return verdictDial(err)
	}
	defer done()
	model := retrieveModel(cl, dimse.StudyRootMove, dimse.PatientRootMove)
	if model == "" {
		return scan.ExposureClosed
	}
	sub, err := cl.Move(ctx, model, dest, retrieveIdentifier(model, t))
	return verdict(sub, err, probe != nil && probe.connected.Load())
}
