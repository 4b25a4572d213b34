package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/dicomshield/dicomshield/internal/archive"
	"github.com/dicomshield/dicomshield/internal/audit"
	"github.com/dicomshield/dicomshield/internal/config"
)

func newAuditCmd() *cobra.Command {
	var dir, since, kind, peer, outcome string
	var asXML, asJSON, verifyChain bool
	var expect string
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "List and filter the audit trail",
		Long: `audit lists the archive's audit trail (audit/audit.log in the data directory):
who associated or was refused, who queried, stored and retrieved which
patients and studies, security alerts and configuration changes. It shows
patient and study identifiers because you asked for them; reading the trail
is itself recorded (Audit Log Used).

--since takes a duration ("24h") or a time ("2026-03-14", RFC 3339).
--kind is one of: application-start, application-stop, association-accepted,
association-refused, user-authentication, query, instances-stored,
instances-sent, security-alert, configuration-change, audit-log-used.

--verify walks the log's hash chain instead of listing it: each record
carries its number and the SHA-256 of the line before it, so an edited
record, deleted records and a line cut short are reported with their line
number (exit status 1). It prints the head (last record number and the
SHA-256 of its line): record it somewhere else, and --expect SEQ:HASH later
shows a log cut short at its end, or rewritten with every later link
recomputed, which the chain alone cannot. The hashed bytes are described in
internal/audit/chain.go.`,
		Example: `  dicomshield audit --data /srv/pacs --since 24h
  dicomshield audit --kind association-refused --outcome failure
  dicomshield audit --peer CT01 --json
  dicomshield audit --verify                      # the chain, and its head to record elsewhere
  dicomshield audit --verify --expect 5210:9c1e...   # a head recorded earlier`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := filter{kind: audit.Kind(kind), peer: strings.ToUpper(strings.TrimSpace(peer))}
			switch outcome {
			case "", "any":
			case "failure":
				f.failures = true
			case "success":
				f.successes = true
			default:
				return fmt.Errorf("--outcome %q: use success or failure", outcome)
			}
			if since != "" {
				t, err := parseSince(since, time.Now())
				if err != nil {
					return err
				}
				f.since = t
			}
			var want *audit.Head
			if expect != "" {
				if !verifyChain {
					return usageError("--expect goes with --verify")
				}
				h, err := audit.ParseHead(expect)
				if err != nil {
					return usageError("--expect: %v", err)
				}
				want = h
			}
			if asXML && asJSON {
				return errors.New("--xml and --json exclude each other")
			}
			path := audit.LogPath(dir)
			file, err := os.Open(path)
			if err != nil {
				return fmt.Errorf("no audit log to read: %w", err)
			}
			defer file.Close()
			// Reading the trail is an event of its own, recorded before
			// the records are shown.
			if cfg, err := config.Load(config.Path(dir)); err == nil {
				if err := archive.RecordLocal(dir, cfg, audit.Event{Kind: audit.AuditLogUsed, User: archive.OSUser(),
					Object: "file://" + path, Description: "audit log read with dicomshield audit"}); err != nil {
					return fmt.Errorf("recording the audit log use: %w", err)
				}
			}
			if verifyChain {
				return verifyAudit(cmd.OutOrStdout(), file, want, asJSON)
			}
			return printAudit(cmd.OutOrStdout(), file, f, asXML, asJSON)
		},
	}
	addDataFlag(cmd, &dir)
	cmd.Flags().StringVar(&since, "since", "", "only records from this long ago (\"24h\") or this time on (\"2026-03-14\")")
	cmd.Flags().StringVar(&kind, "kind", "", "only records of this kind")
	cmd.Flags().StringVar(&peer, "peer", "", "only records about this AE title (registered peer or calling AE)")
	cmd.Flags().StringVar(&outcome, "outcome", "", "only success or failure")
	cmd.Flags().BoolVar(&asXML, "xml", false, "print each record's DICOM audit message, one per line")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print each record as a JSON line")
	cmd.Flags().BoolVar(&verifyChain, "verify", false, "walk the log's hash chain: report edited, deleted and cut records, print the head")
	cmd.Flags().StringVar(&expect, "expect", "", "with --verify: SEQ:HASH, a head recorded earlier that the log must still hold")
	return cmd
}

type filter struct {
	since               time.Time
	kind                audit.Kind
	peer                string
	failures, successes bool
}

func (f filter) match(e audit.Entry) bool {
	switch {
	case !f.since.IsZero() && e.Time.Before(f.since):
		return false
	case f.kind != "" && e.Kind != f.kind:
		return false
	case f.peer != "" && !strings.EqualFold(e.Peer, f.peer) && !strings.EqualFold(e.CallingAE, f.peer) && !strings.EqualFold(e.Destination, f.peer):
		return false
	case f.failures && e.Outcome == audit.Success, f.successes && e.Outcome != audit.Success:
		return false
	}
	return true
}

// parseSince reads a duration back from now, or a date or time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--since %q: write a duration such as \"24h\" or a time such as \"2026-03-14\" or \"2026-03-14T08:00:00Z\"", s)
}

func printAudit(w io.Writer, r io.Reader, f filter, asXML, asJSON bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if !asXML && !asJSON {
		fmt.Fprintln(tw, "TIME\tKIND\tOUTCOME\tPEER\tREMOTE\tPATIENTS\tSTUDIES\tN\tDETAIL")
	}
	enc := json.NewEncoder(w)
	err := audit.ReadLog(r, func(e audit.Entry) error {
		if !f.match(e) {
			return nil
		}
		switch {
		case asXML:
			_, err := fmt.Fprintln(w, e.XML)
			return err
		case asJSON:
			return enc.Encode(e)
		}
		who := e.Peer
		if who == "" {
			who = e.CallingAE
		}
		if e.User != "" {
			who = strings.TrimPrefix(who+" ("+e.User+")", " ")
		}
		detail := e.Description
		if e.Alert != "" {
			detail = e.Alert + ": " + detail
		}
		if e.Destination != "" {
			detail = "to " + e.Destination + "; " + detail
		}
		n := ""
		if e.Instances > 0 {
			n = fmt.Sprint(e.Instances)
		}
		_, err := fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.Local().Format("2006-01-02 15:04:05"), e.Kind,
			outcomeWord(e.Outcome), clean(dash(who)), dash(e.Remote), clean(dash(strings.Join(e.Patients, ","))), clean(dash(strings.Join(e.Studies, ","))), dash(n), clean(detail))
		return err
	})
	if ferr := tw.Flush(); err == nil {
		err = ferr
	}
	if errors.Is(err, audit.ErrMalformed) {
		return &exitError{code: 1, err: err}
	}
	return err
}

func outcomeWord(o audit.Outcome) string {
	switch o {
	case audit.Success:
		return "success"
	case audit.MinorFailure:
		return "minor failure"
	case audit.SeriousFailure:
		return "serious failure"
	}
	return "major failure"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// clean keeps a table cell on one line and free of terminal escapes.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// verifyAudit walks the chain of the log r and prints what it found and
// the head; problems give exit status 1.
func verifyAudit(w io.Writer, r io.Reader, expect *audit.Head, asJSON bool) error {
	rep, err := audit.VerifyChain(r, expect)
	if err != nil {
		return err
	}
	if asJSON {
		if err := writeJSON(w, struct {
			OK bool `json:"ok"`
			*audit.ChainReport
		}{rep.OK(), rep}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(w, "audit log head: seq %d hash %s\n", rep.Head.Seq, rep.Head.Hash)
		fmt.Fprintf(w, "checked %d chained records", rep.Records)
		if rep.Unchained > 0 {
			fmt.Fprintf(w, " (and %d older records from before the log was chained, which nothing protects)", rep.Unchained)
		}
		fmt.Fprintln(w)
		if rep.OK() {
			fmt.Fprintln(w, "OK: no record edited, deleted or cut short; record the head elsewhere to detect a log cut at its end")
		} else {
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PROBLEM\tLINE\tSEQ\tDETAIL")
			for _, p := range rep.Problems {
				line, seq := "-", "-"
				if p.Line > 0 {
					line = fmt.Sprint(p.Line)
				}
				if p.Seq > 0 {
					seq = fmt.Sprint(p.Seq)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Kind, line, seq, p.Detail)
			}
			tw.Flush()
		}
	}
	if !rep.OK() {
		return &exitError{code: 1, err: fmt.Errorf("audit: %d problem(s) in the log's chain", len(rep.Problems))}
	}
	return nil
}
