package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"

	"github.com/dicomshield/dicomshield/internal/scan"
)

// resumeFlags are --resume STATE and --resume-force of `dicomshield scan`.
type resumeFlags struct {
	path  string
	force bool

	state   *scan.ResumeState
	resumed bool // the state file held an earlier run
}

func (r *resumeFlags) addFlags(fl *pflag.FlagSet) {
	fl.StringVar(&r.path, "resume", "", "record finished endpoints in `STATE` as the scan goes; run the same command again after Ctrl-C or a crash "+
		"and only what is left is probed, its results appended to the --json file (the other outputs hold that run's results)")
	fl.BoolVar(&r.force, "resume-force", false, "resume even though the state was written for other targets, exclusions or ports (its finished endpoints are still skipped)")
}

// open opens the state (when --resume is given) and sets the scan to use
// it.
func (r *resumeFlags) open(set *scan.TargetSet, o *scan.Options, stderr io.Writer) error {
	if r.path == "" {
		if r.force {
			return fmt.Errorf("--resume-force goes with --resume STATE")
		}
		return nil
	}
	st, resumed, err := scan.OpenResume(r.path, set, r.force)
	if errors.Is(err, scan.ErrResumeMismatch) {
		return fmt.Errorf("--resume: %w (start afresh with another state file, or add --resume-force)", err)
	}
	if err != nil {
		return fmt.Errorf("--resume: %w", err)
	}
	r.state, r.resumed = st, resumed
	st.Options(o)
	if resumed {
		fmt.Fprintf(stderr, "resuming: %d endpoint(s) finished by earlier runs are skipped\n", st.Finished())
	}
	return nil
}

// outputFlags are the open flags of an output file: a resumed scan
// appends to the --json file; every other file is written afresh.
func (r *resumeFlags) outputFlags(isJSON bool) int {
	if isJSON && r.resumed {
		return os.O_WRONLY | os.O_CREATE | os.O_APPEND
	}
	return os.O_WRONLY | os.O_CREATE | os.O_TRUNC
}

// opened notes the --json file, flushed to stable storage before each
// flush of the state.
func (r *resumeFlags) opened(fh *os.File) {
	if r.state != nil {
		r.state.SyncFirst = append(r.state.SyncFirst, fh)
	}
}

// close flushes and closes the state, after the scan and before its
// output files are closed.
func (r *resumeFlags) close(ctx context.Context, stderr io.Writer) error {
	if r.state == nil {
		return nil
	}
	n := r.state.Finished()
	err := r.state.Close()
	if ctx.Err() != nil && err == nil {
		fmt.Fprintf(stderr, "%d endpoint(s) finished; run the same command again (--resume %s) to probe the rest\n", n, r.path)
	}
	return err
}
