package prove

import (
	"strings"

	"github.com/dicomshield/dicomshield/internal/scan"
)

// Apply turns r.Proof and r.WriteTest into r.Exposure verdicts - query
// and retrieve become open or closed from what was done, no longer from
// what was negotiated; store becomes open when the synthetic instance was
// stored - and adds their findings (scan.ProofFindings). A retrieve the
// proof could not settle (nothing matched) keeps the engine's verdict.
func Apply(r *scan.Result) {
	if p := r.Proof; p != nil {
		r.Exposure.Query = queryExposure(p)
		if v := retrieveExposure(p); v != "" {
			r.Exposure.Retrieve = v
		}
	}
	if w := r.WriteTest; w != nil {
		switch {
		case w.Stored:
			r.Exposure.Store = scan.ExposureOpen
		case w.Detail == noAssociation || w.Detail == noContext ||
			(strings.HasPrefix(w.Detail, storeRefused) && !strings.HasSuffix(w.Detail, assocFailed)):
			r.Exposure.Store = scan.ExposureClosed
		}
	}
	scan.ProofFindings(r)
}

// queryExposure: open when a query was answered (PS3.4: success after
// zero or more matches), closed when every level was refused.
func queryExposure(p *scan.Proof) string {
	for _, n := range p.Records {
		if n >= 0 {
			return scan.ExposureOpen
		}
	}
	return scan.ExposureClosed
}

// retrieveExposure: open when C-GET or C-MOVE was honoured, closed when
// both were refused, "" when the proof did not settle it.
func retrieveExposure(p *scan.Proof) string {
	switch {
	case p.Get == scan.ExposureOpen || p.Move == scan.ExposureOpen || p.MoveAnyDest == scan.ExposureOpen:
		return scan.ExposureOpen
	case p.Get == scan.ExposureClosed && p.Move == scan.ExposureClosed:
		return scan.ExposureClosed
	}
	return ""
}
