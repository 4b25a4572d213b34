package dimse

import (
	"time"

	"github.com/dicomshield/dicomshield/internal/ul"
)

// abortWriteTimeout bounds how long Abort waits to send the A-ABORT: a
// peer that stopped reading (its receive window full in the middle of a
// C-GET) would otherwise hold the write, and with it the abort, until the
// idle timeout. Past it the connection is closed without the PDU.
const abortWriteTimeout = 2 * time.Second

// Associations returns the associations established now, for a caller
// that re-decides them from outside (the archive, when a peer is revoked
// or loses a right). The values are the ones handlers see; do not change
// them.
func (s *Server) Associations() []*Assoc {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Assoc, 0, len(s.sessions))
	for ss := range s.sessions {
		out = append(out, ss.info)
	}
	return out
}

// Abort ends the established association id at once: an A-ABORT (source
// service-user) and the connection closed, whatever operation is in
// progress. A C-STORE being received fails and is not answered; a C-GET
// or C-MOVE stops sending. reason is logged (never patient data). Abort
// reports whether the association was open; it returns once the
// connection is closed.
func (s *Server) Abort(id uint64, reason string) bool {
	s.mu.Lock()
	var found *session
	for ss := range s.sessions {
		if ss.info.ID == id {
			found = ss
			break
		}
	}
	s.mu.Unlock()
	if found == nil {
		return false
	}
	found.log.Warn("association aborted", "reason", reason)
	a := found.c.a
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.Abort()
	}()
	t := time.NewTimer(abortWriteTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		// The A-ABORT could not be written: close under it, which ends
		// the write too.
		a.Conn().Close()
		<-done
	}
	return true
}

// acceptedAbstracts lists the abstract syntaxes of the presentation
// contexts accepted on a, each once, in the order proposed.
func acceptedAbstracts(a *ul.Association) []string {
	accepted := map[byte]bool{}
	for _, pc := range a.AC().Contexts {
		if pc.Result == ul.ResultAcceptance {
			accepted[pc.ID] = true
		}
	}
	var out []string
	seen := map[string]bool{}
	for _, pc := range a.RQ().Contexts {
		if accepted[pc.ID] && !seen[pc.AbstractSyntax] {
			seen[pc.AbstractSyntax] = true
			out = append(out, pc.AbstractSyntax)
		}
	}
	return out
}
