package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/dicomshield/dicomshield/internal/archive"
	"github.com/dicomshield/dicomshield/internal/store"
	"github.com/dicomshield/dicomshield/internal/store/fs"
	"github.com/dicomshield/dicomshield/internal/store/sqlite"
)

// headJSON is the ledger head as `verify --head --json` prints it.
type headJSON struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
}

func newVerifyCmd() *cobra.Command {
	var dir, expect string
	var asJSON, headOnly bool
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Re-hash every stored file and walk the ledger's hash chain",
		Long: `verify checks the archive against its ledger, the append-only hash chain
dicomshield keeps over everything it stores. It re-hashes every stored file
and reports each one changed, missing, or added outside dicomshield, and
every break in the chain (an entry edited, removed or reordered). It prints
the chain head (sequence number and hash): record it somewhere else, and a
later rewrite of the whole ledger shows as a head that no longer matches.

It reads the data directory without changing anything, and may run beside
"serve". The exit status is 1 when anything is wrong. Output names files by
their hash and instances by SOP Instance UID, never by patient data.

--head prints only the chain head, without checking anything. --expect
SEQ:HASH checks that the chain still holds a head you recorded earlier: a
ledger rewritten consistently from some entry on passes every other check.`,
		Example: `  dicomshield verify --data /srv/pacs
  dicomshield verify --data /srv/pacs --json
  dicomshield verify --data /srv/pacs --head    # record this elsewhere
  dicomshield verify --data /srv/pacs --expect 1041:3f9a...   # a head recorded earlier`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var want *store.LedgerEntry
			if expect != "" {
				e, err := parseHead(expect)
				if err != nil {
					return usageError("%v", err)
				}
				want = e
			}
			ixPath := filepath.Join(dir, archive.IndexFile)
			// Open would create a missing index: say so instead.
			if _, err := os.Stat(ixPath); err != nil {
				return fmt.Errorf("no archive index in %s: %w", dir, err)
			}
			ix, err := sqlite.Open(ixPath)
			if err != nil {
				return err
			}
			defer ix.Close()
			out := cmd.OutOrStdout()
			if headOnly {
				h, err := ix.LedgerHead(cmd.Context())
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(out, headJSON{Seq: h.Seq, Hash: h.Hash})
				}
				fmt.Fprintf(out, "%d %s\n", h.Seq, h.Hash)
				return nil
			}
			blobDir := filepath.Join(dir, archive.BlobsDir)
			if _, err := os.Stat(blobDir); err != nil {
				return fmt.Errorf("no blob directory in %s: %w", dir, err)
			}
			bl, err := fs.Open(blobDir)
			if err != nil {
				return err
			}
			rep, err := store.Verify(cmd.Context(), ix, bl, want)
			if err != nil {
				return err
			}
			if asJSON {
				if err := writeJSON(out, struct {
					OK bool `json:"ok"`
					*store.VerifyReport
				}{rep.OK(), rep}); err != nil {
					return err
				}
			} else {
				printReport(out, rep)
			}
			if !rep.OK() {
				return &exitError{code: 1, err: fmt.Errorf("verify: %d problems found", len(rep.Problems))}
			}
			return nil
		},
	}
	addDataFlag(cmd, &dir)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report (or the head) as JSON")
	cmd.Flags().BoolVar(&headOnly, "head", false, "print only the ledger's head: sequence number and hash")
	cmd.Flags().StringVar(&expect, "expect", "", "SEQ:HASH, a head recorded earlier that the chain must still hold")
	return cmd
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printReport(w io.Writer, r *store.VerifyReport) {
	fmt.Fprintf(w, "ledger head: seq %d hash %s\n", r.HeadSeq, r.HeadHash)
	fmt.Fprintf(w, "checked %d ledger entries and %d files\n", r.Entries, r.Files)
	if r.OK() {
		fmt.Fprintln(w, "OK: no file changed, missing or added, and the chain is unbroken")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROBLEM\tSEQ\tFILE\tSOP INSTANCE UID\tDETAIL")
	for _, p := range r.Problems {
		seq, file, uid := "-", "-", "-"
		if p.Seq > 0 {
			seq = fmt.Sprint(p.Seq)
		}
		if p.BlobKey != "" {
			file = p.BlobKey
		} else if p.Name != "" {
			file = p.Name
		}
		if p.SOPInstanceUID != "" {
			uid = p.SOPInstanceUID
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Kind, seq, file, uid, p.Detail)
	}
	tw.Flush()
}

// parseHead parses a recorded head, "SEQ:HASH" (or "SEQ HASH", as --head
// prints it).
func parseHead(s string) (*store.LedgerEntry, error) {
	seqText, hash, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		seqText, hash, ok = strings.Cut(strings.TrimSpace(s), " ")
	}
	seq, err := strconv.ParseInt(seqText, 10, 64)
	if !ok || err != nil || seq < 1 || len(hash) != 64 || strings.Trim(hash, "0123456789abcdef") != "" {
		return nil, fmt.Errorf("--expect %q: write the recorded head as SEQ:HASH, the sequence number and the 64 hex digits verify --head printed", s)
	}
	return &store.LedgerEntry{Seq: seq, Hash: hash}, nil
}
