package prove

import (
	"context"

	"github.com/dicomshield/dicomshield/internal/scan"
)

// Read proves what a stranger can read from the service of a: the counts
// and presence flags of C-FIND at PATIENT and STUDY level, whether C-GET
// and C-MOVE are honoured and to whom, and how user identity is treated.
// It returns ErrNoAccess (with a proof of refusals) when the association
// a describes is refused. o may be nil.
func Read(ctx context.Context, a scan.Access, o *Options) (*scan.Proof, error) {
	if o == nil {
		o = &Options{}
	}
	p := &scan.Proof{Records: map[string]int{}}
	t, err := count(ctx, a, o, p)
	if err != nil {
		if o.MoveListener != nil {
			o.MoveListener.Close()
		}
		v := verdictDial(err)
		p.Get, p.Move, p.MoveAnyDest = v, v, v
		p.UserIdentity = proveIdentity(ctx, a)
		return p, err
	}
	p.Get = proveGet(ctx, a, t)
	p.Move, p.MoveAnyDest = proveMove(ctx, a, o, t)
	p.UserIdentity = proveIdentity(ctx, a)
	return p, nil
}
