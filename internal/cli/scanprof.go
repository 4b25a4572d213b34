package cli

import (
	"fmt"
	"os"
	"runtime/debug"
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

// scanGCPercent is the garbage collector's target while a scan runs
// (GOGC, when set, overrides it). A scan's live heap is small (a few KiB
// per probe under way, and the results), so at the default of 100 the
// collector ran every few megabytes of probes: about a fifth of a scan's
// CPU on the 500-listener benchmark. At 400 it runs a quarter as often,
// for a peak heap of five times the live one, bounded by
// scanMemoryLimit.
const scanGCPercent = 400

// scanMemoryLimit is the soft memory limit set with scanGCPercent
// (GOMEMLIMIT, when set, overrides it): past it the collector runs as
// often as it must, so the lower GC frequency never costs more than this.
const scanMemoryLimit = 1 << 30

// tuneScanGC sets the collector for a scan and returns the function
// that restores the previous settings.
func tuneScanGC() func() {
	if os.Getenv("GOGC") != "" {
		return func() {}
	}
	old := debug.SetGCPercent(scanGCPercent)
	oldLimit := int64(-1)
	if os.Getenv("GOMEMLIMIT") == "" {
		oldLimit = debug.SetMemoryLimit(scanMemoryLimit)
	}
	return func() {
		debug.SetGCPercent(old)
		if oldLimit >= 0 {
			debug.SetMemoryLimit(oldLimit)
		}
	}
}
