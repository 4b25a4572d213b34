package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/dicomshield/dicomshield/internal/scan"
	"github.com/dicomshield/dicomshield/internal/scan/report"
)

// Exit statuses of `scan diff`, as diff(1) has them: 0 nothing became
// worse, 1 something did, 2 the comparison could not be made.
const (
	diffWorse   = 1
	diffTrouble = 2
)

// errWorse is returned (with status 1) when a change made things worse.
var errWorse = errors.New("exposure became worse")

func newScanDiffCmd() *cobra.Command {
	var asJSON bool
	var threshold int
	cmd := &cobra.Command{
		Use:   "diff [flags] OLD.jsonl NEW.jsonl",
		Short: "Say what became exposed and what was fixed between two scans",
		Long: `Compare two scan results (dicomshield scan --json output) service by service
(host and port): services that appeared or went away, operations a stranger
gained or lost (query, retrieve, store), authorization and TLS changes, and
findings that appeared or were fixed. Likely decoys are marked in both scans
first (see the HTML report), so a honeypot coming or going reads as such.

The exit status is 0 when nothing became worse, 1 when something did (for
monitoring: run it after each scan and alert on 1), and 2 when a file
could not be read.`,
		Example: `  dicomshield scan diff monday.jsonl tuesday.jsonl
  dicomshield scan diff --json monday.jsonl tuesday.jsonl | jq '.changes[] | select(.direction=="worse")'`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			old, err := readResults(args[0])
			if err != nil {
				return &exitError{code: diffTrouble, err: err}
			}
			cur, err := readResults(args[1])
			if err != nil {
				return &exitError{code: diffTrouble, err: err}
			}
			marker := report.Decoys{FleetThreshold: threshold}
			marker.Mark(old)
			marker.Mark(cur)
			d := report.Diff(old, cur)
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				err = enc.Encode(d)
			} else {
				err = d.WriteText(out)
			}
			if err != nil {
				return &exitError{code: diffTrouble, err: err}
			}
			if d.Worse() {
				return &exitError{code: diffWorse, err: fmt.Errorf("%w: %d changes", errWorse, d.Count(report.Worse))}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the changes as one JSON object")
	cmd.Flags().IntVar(&threshold, "fleet-threshold", report.DefaultFleetThreshold, "distinct hosts with identical answers that count as a decoy fleet")
	return cmd
}

// readResults reads a JSON Lines file of scan results.
func readResults(path string) ([]scan.Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rs, err := scan.ReadJSONL(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return rs, nil
}
