package dimse

import "github.com/dicomshield/dicomshield/internal/ul"

// Negotiate builds the A-ASSOCIATE-AC answering rq. supported returns, for
// an abstract syntax, the transfer syntaxes accepted for it in order of
// preference (nil: abstract syntax not supported); the first of them that
// rq proposed is chosen. Role selection items are granted as proposed for
// accepted classes, so that C-GET requestors can receive their
// sub-operations.
func Negotiate(rq *ul.AssociateRQ, supported func(abstract string) []string) *ul.AssociateAC {
	ac := &ul.AssociateAC{}
	ac.CalledAE, ac.CallingAE = rq.CalledAE, rq.CallingAE
	ac.User.ImplementationClassUID = ImplementationClassUID
	ac.User.ImplementationVersion = ImplementationVersionName
	accepted := map[string]bool{}
	for _, pc := range rq.Contexts {
		out := ul.PresentationContext{ID: pc.ID, Result: ul.ResultAbstractSyntaxNotSupported, TransferSyntaxes: []string{pc.TransferSyntaxes[0]}}
		if pc.ID%2 == 0 {
			out.Result = ul.ResultNoReason // PS3.8: context IDs are odd
		} else if ok := supported(pc.AbstractSyntax); ok != nil {
			out.Result = ul.ResultTransferSyntaxNotSupported
		choose:
			for _, want := range ok {
				for _, ts := range pc.TransferSyntaxes {
					if ts == want {
						out.Result, out.TransferSyntaxes = ul.ResultAcceptance, []string{ts}
						accepted[pc.AbstractSyntax] = true
						break choose
					}
				}
			}
		}
		ac.Contexts = append(ac.Contexts, out)
	}
	for _, r := range rq.User.Roles {
		if accepted[r.SOPClassUID] {
			ac.User.Roles = append(ac.User.Roles, r)
		}
	}
	return ac
}
