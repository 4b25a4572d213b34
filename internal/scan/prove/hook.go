package prove

import (
	"context"

	"github.com/dicomshield/dicomshield/internal/scan"
)

// Config is what the scan command's flags ask for: --prove (with
// --max-records and --hash-ids in Options) and --test-write.
type Config struct {
	Prove     bool
	TestWrite bool
	// Options for Read. MoveListener must be nil: the hook runs for many
	// services, possibly at once, and each gets a listener of its own
	// when it is on loopback.
	Options Options
}

// FollowUp returns the scan engine's follow-up hook for c, called for a
// service a stranger got into: it fills r.Proof and r.WriteTest and
// applies them to r's exposure and findings. It returns nil when c asks
// for nothing.
func FollowUp(c Config) func(ctx context.Context, a scan.Access, r *scan.Result) {
	if !c.Prove && !c.TestWrite {
		return nil
	}
	return func(ctx context.Context, a scan.Access, r *scan.Result) {
		if c.Prove {
			o := c.Options
			o.MoveListener = nil
			r.Proof, _ = Read(ctx, a, &o) // a refusal is in the proof itself
		}
		if c.TestWrite {
			r.WriteTest = Write(ctx, a)
		}
		Apply(r)
	}
}
