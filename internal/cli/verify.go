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
	"github.com/dicomshield/dicomshield/internal/audit"
	"github.com/dicomshield/dicomshield/internal/config"
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
	var asJSON, headOnly, clearQuarantine bool
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
ledger rewritten consistently from some entry on passes every other check.

Files "serve" found in the blob store at start with no index row are not
deleted: they are moved into the quarantine folder of the data directory and
reported here as "quarantined" (exit status 1) until an operator removes them.
Such a file was added outside dicomshield, or is a store a crash cut short
between the file and its index row (expected after a crash: that store was
never acknowledged, so the sender sends it again). Look at them, then
--clear-quarantine deletes them (recorded in the audit trail), as does
deleting the folder.`,
		Example: `  dicomshield verify --data /srv/pacs
  dicomshield verify --data /srv/pacs --json
  dicomshield verify --data /srv/pacs --head    # record this elsewhere
  dicomshield verify --data /srv/pacs --expect 1041:3f9a...   # a head recorded earlier
  dicomshield verify --data /srv/pacs --clear-quarantine      # after looking at the quarantined files`,
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
			if clearQuarantine {
				if err := clearQuarantined(cmd, dir, out); err != nil {
					return err
				}
			}
			rep, err := store.Verify(cmd.Context(), ix, bl, want)
			if err != nil {
				return err
			}
			if err := addQuarantined(dir, rep); err != nil {
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
	cmd.Flags().BoolVar(&clearQuarantine, "clear-quarantine", false, "delete the files recovery moved into quarantine (after looking at them), then verify")
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

// addQuarantined adds a problem for each file in the quarantine folder.
func addQuarantined(dir string, rep *store.VerifyReport) error {
	files, err := archive.Quarantined(dir)
	if err != nil {
		return err
	}
	for _, q := range files {
		detail := "added outside dicomshield / quarantined: a file found in the blob store with no index row, moved here by recovery; " +
			"expected after a crash (a store cut short, never acknowledged); remove with verify --clear-quarantine"
		if q.Key != "" && !q.HashMatches {
			detail = "added outside dicomshield / quarantined: its content does not hash to the name it had in the blob store, " +
				"so it is no store of dicomshield's; remove with verify --clear-quarantine"
		}
		rep.Problems = append(rep.Problems, store.Problem{Kind: ProblemQuarantined,
			Name: filepath.Join(archive.QuarantineDir, q.Name), Detail: detail})
	}
	return nil
}

// ProblemQuarantined is the kind of problem verify reports for a file in
// the quarantine folder.
const ProblemQuarantined = "quarantined"

// clearQuarantined deletes the quarantined files and records it in the
// audit trail: deleting evidence is an act someone must answer for.
func clearQuarantined(cmd *cobra.Command, dir string, out io.Writer) error {
	files, err := archive.Quarantined(dir)
	if err != nil || len(files) == 0 {
		return err
	}
	cfg, err := config.Load(config.Path(dir))
	if err != nil {
		return err
	}
	n, err := archive.ClearQuarantine(dir)
	if rerr := archive.RecordLocal(dir, cfg, audit.Event{Kind: audit.ConfigChange, Alert: "quarantine-cleared", User: archive.OSUser(),
		Object: archive.QuarantinePath(dir), Description: fmt.Sprintf("%d quarantined file(s) deleted with verify --clear-quarantine", n)}); rerr != nil && err == nil {
		err = fmt.Errorf("quarantine cleared, but the audit trail could not record it: %w", rerr)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "deleted %d quarantined file(s)\n", n)
	return nil
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
