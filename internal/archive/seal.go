package archive

import (
	"errors"
	"net/netip"
	"strings"

	"github.com/dicomshield/dicomshield/internal/audit"
	"github.com/dicomshield/dicomshield/internal/config"
	"github.com/dicomshield/dicomshield/internal/dimse"
	"github.com/dicomshield/dicomshield/internal/policy"
	"github.com/dicomshield/dicomshield/internal/store"
)

// Tamper protection in the archive: the Guard each C-STORE is indexed
// under, and what a refusal answers and records. Received instances are
// stamped with the archive's clock (Archive.Now), which decides when a
// series is sealed.
//
// A refused C-STORE (series sealed, study of another peer, other content
// under a stored SOP Instance UID) stores nothing. The hierarchy checks run
// first on the header (Index.Precheck), so that a sealed series or another
// peer's study is refused before the pixel data is written; they run again
// inside the index transaction, which is what decides, and then records
// nothing: a blob already written (other content under a stored UID, or a
// series sealed in between) is removed unless another instance uses the
// same bytes. The
// peer gets a failure status, and the audit trail a security alert.

// Alert names of the tamper refusals in the audit trail.
const (
	AlertSeriesSealed      = "series-sealed"
	AlertForeignStudy      = "foreign-study"
	AlertInstanceOverwrite = "instance-overwrite"
)

// storeGuard returns the tamper checks for a store by peer.
func (a *Archive) storeGuard(peer *policy.Peer) store.Guard {
	return store.Guard{
		SealAfter:         a.Config.Tamper.SealAfter.Duration(),
		MayReopen:         peer != nil && peer.MayReopen,
		AllowForeignStudy: a.Config.Tamper.ForeignStudy == config.ForeignStudyAllow,
	}
}

// tamperRefusal answers a C-STORE that Index.Add refused as tampering and
// records the security alert; ok is false for other errors.
func (a *Archive) tamperRefusal(r *dimse.Request, peer *policy.Peer, inst *store.Instance, err error) (dimse.Status, bool) {
	var alert, desc string
	st := dimse.Status{Code: dimse.StatusNotAuthorized}
	switch {
	case errors.Is(err, store.ErrSealed):
		alert, desc = AlertSeriesSealed, "C-STORE refused: new instance for a sealed series"
		st.Comment = "series sealed: its last instance arrived too long ago"
	case errors.Is(err, store.ErrForeignStudy):
		alert, desc = AlertForeignStudy, "C-STORE refused: new instance for a study another peer created"
		st.Comment = "study created by another peer"
	case errors.Is(err, store.ErrConflict):
		alert, desc = AlertInstanceOverwrite, "C-STORE refused: other content for a stored SOP instance, or an instance contradicting the stored hierarchy"
		st = dimse.Status{Code: dimse.StatusDuplicateInstance, Comment: "already stored with different content"}
	default:
		return dimse.Status{}, false
	}
	ev := audit.Event{Kind: audit.SecurityAlert, Alert: alert, Outcome: audit.SeriousFailure, Description: desc,
		CallingAE: strings.TrimSpace(r.Assoc.CallingAE), CalledAE: strings.TrimSpace(r.Assoc.CalledAE),
		SOPClasses: []string{inst.SOPClassUID}, Studies: []string{inst.StudyInstanceUID}, Patients: []string{inst.PatientID}}
	if peer != nil {
		ev.Peer = peer.AETitle
	}
	ev.User = userOf(r)
	if r.Assoc.RemoteAddr != nil {
		if ap, perr := netip.ParseAddrPort(r.Assoc.RemoteAddr.String()); perr == nil {
			ev.Remote = ap.Addr().Unmap().String()
		}
	}
	a.Audit.Record(ev)
	// The log says who and why, never which patient or study.
	a.Logger.Warn("store refused", "alert", alert, "calling_ae", ev.CallingAE, "remote", ev.Remote)
	return st, true
}
