package prove

import (
	"context"
	"errors"

	"github.com/dicomshield/dicomshield/internal/dimse"
	"github.com/dicomshield/dicomshield/internal/scan"
	"github.com/dicomshield/dicomshield/internal/ul"
)

// User identity verdicts (Proof.UserIdentity), defined in package scan:
//   - ignored: an association offering a made-up user (positive response
//     requested) was accepted without a server response; the server does
//     not take part in user identity negotiation (PS3.7 D.3.3.7 lets an
//     acceptor ignore it).
//   - accepted: the server took part - it answered the identity sub-item,
//     or refused the made-up user - but admits associations without one.
//   - required: an association without user identity was refused and one
//     with it was not.
//   - unknown: neither association got an answer to judge by.
const (
	IdentityIgnored  = scan.IdentityIgnored
	IdentityAccepted = scan.IdentityAccepted
	IdentityRequired = scan.IdentityRequired
	IdentityUnknown  = scan.IdentityUnknown
)

// probeUser is the made-up user name offered: it names the scanner, so a
// server log that records it says who asked.
const probeUser = "dicomshield-scan-probe"

// proveIdentity opens two Verification associations as the stranger, one
// without user identity and one with a made-up user name asking for a
// positive response, and compares the answers.
func proveIdentity(ctx context.Context, a scan.Access) string {
	try := func(id *ul.UserIdentity) (accepted, answered, rejected bool) {
		cl, done, err := dial(ctx, a, proposals(dimse.VerificationSOPClass), id)
		if err != nil {
			var rj *ul.RejectedError
			return false, false, errors.As(err, &rj)
		}
		defer done()
		return true, cl.Association().AC().User.HasIdentityResp, false
	}
	plainOK, _, plainRJ := try(nil)
	idOK, idAnswered, idRJ := try(&ul.UserIdentity{Type: ul.IdentityUsername, PositiveResponseRequested: true,
		Primary: []byte(probeUser)})
	switch {
	case plainOK && idOK && idAnswered:
		return IdentityAccepted
	case plainOK && idOK:
		return IdentityIgnored
	case plainOK && idRJ:
		return IdentityAccepted
	case plainRJ && idOK:
		return IdentityRequired
	}
	return IdentityUnknown
}
