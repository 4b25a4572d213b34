package cli

import (
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/spf13/pflag"
)

// addProfileFlag adds the hidden --cpuprofile FILE flag (for finding
// where a scan's time goes; not a user feature) and returns a function
// that starts the profile and returns the one that stops it.
func addProfileFlag(fl *pflag.FlagSet) func() (func(), error) {
	path := fl.String("cpuprofile", "", "write a CPU profile of the scan to `FILE`")
	fl.MarkHidden("cpuprofile")
	return func() (func(), error) {
		if *path == "" {
			return func() {}, nil
		}
		fh, err := os.Create(*path)
		if err != nil {
			return nil, fmt.Errorf("--cpuprofile: %w", err)
		}
		if err := pprof.StartCPUProfile(fh); err != nil {
			fh.Close()
			return nil, fmt.Errorf("--cpuprofile: %w", err)
		}
		return func() { pprof.StopCPUProfile(); fh.Close() }, nil
	}
}
