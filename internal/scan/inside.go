package scan

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"

	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/dimse"
	"github.com/dicomshield/dicomshield/internal/ul"
)

// tagQueryRetrieveLevel is (0008,0052) Query/Retrieve Level.
const tagQueryRetrieveLevel = dicom.Tag(0x00080052)

// inside examines an accepted association: which services were accepted,
// a C-ECHO, and probes that tell a refused query or retrieve from an
// answered one without reading any record. Then it releases, and hands
// over to the follow-up hook.
func (p *probe) inside(ctx context.Context, cl *dimse.Client, calling, called string) {
	r := p.r
	ac := cl.Association().AC()
	r.Implementation = Implementation{ClassUID: printable(ac.User.ImplementationClassUID), VersionName: printable(ac.User.ImplementationVersion)}
	r.Services = map[string]Service{}
	accepted := map[string]bool{}
	for _, pc := range ac.Contexts {
		i := (int(pc.ID) - 1) / 2
		if pc.ID%2 == 0 || i < 0 || i >= len(Services) {
			continue
		}
		ok := pc.Result == ul.ResultAcceptance
		r.Services[Services[i].Name] = Service{SOPClass: Services[i].SOPClass, Accepted: ok}
		accepted[Services[i].Name] = ok
	}
	for _, s := range Services {
		if _, ok := r.Services[s.Name]; !ok {
			r.Services[s.Name] = Service{SOPClass: s.SOPClass}
		}
	}
	if accepted["verification"] {
		if err := p.op(ctx, cl, cl.Echo); err != nil {
			r.Echo = "failed: " + statusOrError(err)
		} else {
			r.Echo = "success"
		}
	} else {
		r.Echo = "verification not accepted"
	}
	var detail []string
	if p.s.o.Discovery {
		r.Exposure.Query, detail = offered("query", accepted, detail)
		r.Exposure.Retrieve, detail = offered("retrieve", accepted, detail)
	} else {
		r.Exposure.Query, detail = p.queryProbe(ctx, cl, accepted, detail)
		if cl.Association().State() != ul.Sta6 && ctx.Err() == nil {
			// The query probe ended the association (Orthanc aborts when it
			// refuses a stranger's C-FIND): a second one for the retrieve probe.
			if o := p.attempt(ctx, p.tlsOn, calling, called); o.cl != nil {
				cl = o.cl
			}
		}
		r.Exposure.Retrieve, detail = p.retrieveProbe(ctx, cl, accepted, calling, detail)
	}
	r.Exposure.Store = ExposureClosed
	for _, s := range Services {
		if s.Kind == "store" && accepted[s.Name] {
			r.Exposure.Store = ExposureUnproven
			detail = append(detail, "store: storage contexts accepted from a stranger; not proven without writing (--test-write proves it)")
			break
		}
	}
	if r.Exposure.Store == ExposureClosed {
		detail = append(detail, "store: no storage context accepted")
	}
	r.ExposureDetail = strings.Join(detail, "; ")
	if cl.Association().State() == ul.Sta6 {
		if err := cl.Release(); err != nil {
			cl.Abort()
		}
	} else {
		cl.Abort() // already ended: close the connection
	}
	if p.s.o.FollowUp != nil && ctx.Err() == nil {
		p.s.o.FollowUp(ctx, p.access(calling, called), r)
	}
}

// op runs one DIMSE exchange within the DIMSE timeout; when the timeout
// (or ctx) ends first, the association is aborted, so that a peer that
// stalls or floods costs one timeout.
func (p *probe) op(ctx context.Context, cl *dimse.Client, fn func(context.Context) error) error {
	octx, cancel := context.WithTimeout(ctx, p.s.o.DIMSETimeout)
	defer cancel()
	stop := context.AfterFunc(octx, func() { cl.Abort() })
	err := fn(octx)
	if !stop() && err == nil {
		err = octx.Err()
	}
	return err
}

// noMatchUID is a fresh UID under 2.25: no record anywhere has it.
func noMatchUID() string {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 122))
	return "2.25." + n.String()
}

// queryProbe sends one C-FIND whose only key is a UID (or patient ID)
// made up on the spot: it matches nothing, so no record is read, and the
// answer tells a refused query (a failure status or an abort) from one the
// server executed for a stranger (success).
func (p *probe) queryProbe(ctx context.Context, cl *dimse.Client, accepted map[string]bool, detail []string) (string, []string) {
	var id dicom.DataSet
	model := ""
	switch {
	case accepted["study-root-find"]:
		model = dimse.StudyRootFind
		id.Set(dicom.NewText(tagQueryRetrieveLevel, dicom.CS, "STUDY"))
		id.Set(dicom.NewText(dicom.TagStudyInstanceUID, dicom.UI, noMatchUID()))
	case accepted["patient-root-find"]:
		model = dimse.PatientRootFind
		id.Set(dicom.NewText(tagQueryRetrieveLevel, dicom.CS, "PATIENT"))
		id.Set(dicom.NewText(dicom.TagPatientID, dicom.LO, "DS"+RandomAETitle()))
	default:
		return ExposureClosed, append(detail, "query: no query context accepted")
	}
	matches := 0
	err := p.op(ctx, cl, func(c context.Context) error {
		_, err := cl.Find(c, model, &id, func(*dicom.DataSet) error {
			matches++ // counted, never read
			return dimse.ErrStop
		})
		return err
	})
	return verdict("query: C-FIND", err, matches, detail)
}

// offered is the discovery-mode verdict for a kind of service ("query",
// "retrieve"): unproven when a stranger was offered one of its contexts,
// closed otherwise; no probe was sent.
func offered(kind string, accepted map[string]bool, detail []string) (string, []string) {
	for _, s := range Services {
		if s.Kind == kind && accepted[s.Name] {
			return ExposureUnproven, append(detail, kind+": contexts accepted from a stranger; not probed (--discovery)")
		}
	}
	return ExposureClosed, append(detail, kind+": no "+kind+" context accepted")
}

// retrieveProbe sends a C-GET (and a C-MOVE to the stranger's own title)
// for a study that does not exist, to the same end as queryProbe.
func (p *probe) retrieveProbe(ctx context.Context, cl *dimse.Client, accepted map[string]bool, calling string, detail []string) (string, []string) {
	identifier := func() *dicom.DataSet {
		var id dicom.DataSet
		id.Set(dicom.NewText(tagQueryRetrieveLevel, dicom.CS, "STUDY"))
		id.Set(dicom.NewText(dicom.TagStudyInstanceUID, dicom.UI, noMatchUID()))
		return &id
	}
	pick := func(study, patient string) string {
		switch {
		case accepted[study]:
			return map[string]string{"study-root-get": dimse.StudyRootGet, "study-root-move": dimse.StudyRootMove}[study]
		case accepted[patient]:
			return map[string]string{"patient-root-get": dimse.PatientRootGet, "patient-root-move": dimse.PatientRootMove}[patient]
		}
		return ""
	}
	get, move := pick("study-root-get", "patient-root-get"), pick("study-root-move", "patient-root-move")
	if get == "" && move == "" {
		return ExposureClosed, append(detail, "retrieve: no C-GET or C-MOVE context accepted")
	}
	out := ExposureClosed
	if get != "" {
		err := p.op(ctx, cl, func(c context.Context) error {
			_, err := cl.Get(c, get, identifier(), func(*dimse.Request, io.Reader) dimse.Status {
				return dimse.Status{Code: dimse.StatusOutOfResources} // nothing is kept
			})
			return err
		})
		var v string
		v, detail = verdict("retrieve: C-GET", err, 0, detail)
		out = worse(out, v)
	}
	if move != "" && out != ExposureOpen && cl.Association().State() == ul.Sta6 {
		err := p.op(ctx, cl, func(c context.Context) error {
			_, err := cl.Move(c, move, calling, identifier())
			return err
		})
		if dimse.IsStatus(err, dimse.StatusMoveDestinationUnknown) {
			out = worse(out, ExposureUnproven)
			detail = append(detail, "retrieve: C-MOVE got as far as the destination check (move destination unknown): the move itself is not proven (--prove)")
		} else {
			var v string
			v, detail = verdict("retrieve: C-MOVE", err, 0, detail)
			out = worse(out, v)
		}
	}
	return out, detail
}

// verdict turns the answer to a no-match request into an exposure.
func verdict(what string, err error, matches int, detail []string) (string, []string) {
	var se *dimse.StatusError
	switch {
	case err == nil && matches > 0:
		return ExposureOpen, append(detail, fmt.Sprintf("%s from a stranger answered with matches for a key that matches nothing (counted, not read)", what))
	case err == nil:
		return ExposureOpen, append(detail, what+" from a stranger was executed: success for a key that matches nothing (no record read)")
	case errors.As(err, &se) && refusal(se.Status):
		return ExposureClosed, append(detail, fmt.Sprintf("%s refused: %s (0x%04X)", what, dimse.StatusText(se.Status), se.Status))
	case errors.As(err, &se):
		// "Unable to process" and the like: the server looked for the
		// study that does not exist, which a refusing server does not do
		// (Orthanc answers 0xC000 when it allows a stranger's C-GET).
		return ExposureUnproven, append(detail, fmt.Sprintf("%s failed with %s (0x%04X) for a key that matches nothing, not with a refusal: unproven (--prove)", what, dimse.StatusText(se.Status), se.Status))
	case errors.Is(err, ul.ErrAborted):
		return ExposureClosed, append(detail, what+" answered with an abort of the association")
	case errors.Is(err, context.DeadlineExceeded):
		return ExposureUnproven, append(detail, what+" got no answer in time: unproven")
	}
	return ExposureUnproven, append(detail, what+" failed ("+errorText(err)+"): unproven")
}

// refusal reports whether a failure status refuses the request rather
// than failing to carry it out: not authorized, SOP class not supported,
// and the "Refused" statuses of C-FIND, C-MOVE and C-GET (0xA7xx, PS3.4
// C.4.1.1.4, C.4.2.1.5, C.4.3.1.4).
func refusal(status uint16) bool {
	return status == dimse.StatusNotAuthorized || status == dimse.StatusSOPClassNotSupported ||
		status&0xFF00 == 0xA700 || status == dimse.StatusMoveDestinationUnknown
}

// worse returns the more exposed of two verdicts.
func worse(a, b string) string {
	rank := map[string]int{ExposureClosed: 0, ExposureUnproven: 1, ExposureOpen: 2}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

// statusOrError describes a failed exchange by status code when there is
// one: never the peer's error comment, which is free text.
func statusOrError(err error) string {
	var se *dimse.StatusError
	if errors.As(err, &se) {
		return fmt.Sprintf("%s (0x%04X)", dimse.StatusText(se.Status), se.Status)
	}
	return errorText(err)
}

// printable keeps the printable ASCII of a peer-supplied identifier, at
// most 64 characters (the longest a UID item holds).
func printable(s string) string {
	b := make([]byte, 0, min(len(s), 64))
	for i := 0; i < len(s) && len(b) < 64; i++ {
		if s[i] >= 0x20 && s[i] < 0x7f {
			b = append(b, s[i])
		}
	}
	return string(b)
}
