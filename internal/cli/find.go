package cli

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/dicom/charset"
	"github.com/dicomshield/dicomshield/internal/dimse"
)

func newFindCmd() *cobra.Command {
	var nf *netOptions
	var q *queryOptions
	var asJSON bool
	var maxMatches int
	cmd := &cobra.Command{
		Use:   "find [flags] HOST:PORT",
		Short: "Query a DICOM service (C-FIND)",
		Long: `Query the DICOM service at HOST:PORT with a C-FIND and print the matches:
a table with one row per match and one column per -k key, or with --json
an array of data sets in the DICOM JSON model (PS3.18 Annex F) holding
everything the peer returned. Without -k, the unique key of the level
(StudyInstanceUID for STUDY...) is asked for.

The matches hold what you ask for, patient data included. --max cancels the
query (C-CANCEL) once that many matches arrived.
` + queryKeysHelp + `
` + netFlagsHelp,
		Example: `  dicomshield find pacs.example.org:104 --level STUDY -k PatientID=PAT* -k PatientName -k StudyDate=20240101-20241231
  dicomshield find pacs.example.org:104 --level SERIES -k StudyInstanceUID=1.2.3.4 -k Modality -k SeriesDescription
  dicomshield find pacs.example.org:104 --model patient --level PATIENT -k PatientName=DOE^* -k PatientID --json
  dicomshield find pacs.example.org:104 -k 0008,0020=20240315 -k 0020,000D --max 10`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			addr := args[0]
			model, err := q.sopClass("find")
			if err != nil {
				return err
			}
			id, columns, err := q.identifier()
			if err != nil {
				return err
			}
			if maxMatches < 0 {
				return usageError("--max must not be negative")
			}
			base, err := nf.prepare(addr, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			ctx, stop := interruptible(cmd)
			defer stop()
			cl, err := nf.open(ctx, addr, base, []dimse.Proposal{{AbstractSyntax: model, TransferSyntaxes: uncompressedTS}})
			if err != nil {
				return err
			}
			out := bufio.NewWriter(cmd.OutOrStdout())
			defer out.Flush()
			var p matchPrinter
			if asJSON {
				p = &jsonPrinter{w: out}
			} else {
				p = newTablePrinter(out, columns)
			}
			shown := 0
			n, err := cl.Find(ctx, model, id, func(ds *dicom.DataSet) error {
				if err := p.match(ds); err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "dicomshield: match %d: %v\n", shown+1, err)
				}
				shown++
				if maxMatches > 0 && shown >= maxMatches {
					return dimse.ErrStop
				}
				return nil
			})
			finish(cl, err)
			p.end()
			out.Flush()
			if err != nil {
				return fmt.Errorf("%s: %w", nf.peer(addr), serviceError("C-FIND", err))
			}
			switch {
			case maxMatches > 0 && shown >= maxMatches:
				fmt.Fprintf(cmd.ErrOrStderr(), "%d matches shown; query cancelled at --max %d\n", shown, maxMatches)
			default:
				fmt.Fprintf(cmd.ErrOrStderr(), "%d matches\n", n)
			}
			return nil
		},
	}
	nf = addNetFlags(cmd)
	q = addQueryFlags(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array of DICOM JSON data sets")
	cmd.Flags().IntVar(&maxMatches, "max", 0, "cancel the query after `N` matches (0: no limit)")
	return cmd
}

// matchPrinter prints C-FIND matches as they arrive.
type matchPrinter interface {
	match(*dicom.DataSet) error
	end()
}

// jsonPrinter streams a JSON array.
type jsonPrinter struct {
	w *bufio.Writer
	n int
}

func (j *jsonPrinter) match(ds *dicom.DataSet) error {
	b, err := dicom.MarshalJSON(ds, nil)
	if err != nil {
		return err
	}
	if j.n == 0 {
		j.w.WriteString("[\n")
	} else {
		j.w.WriteString(",\n")
	}
	j.n++
	j.w.Write(b)
	return nil
}

func (j *jsonPrinter) end() {
	if j.n == 0 {
		j.w.WriteString("[]\n")
		return
	}
	j.w.WriteString("\n]\n")
}

// tablePrinter aligns the requested keys in columns.
type tablePrinter struct {
	tw      *tabwriter.Writer
	columns []dicom.Tag
}

func newTablePrinter(w io.Writer, columns []dicom.Tag) *tablePrinter {
	t := &tablePrinter{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0), columns: columns}
	head := make([]string, len(columns))
	for i, c := range columns {
		head[i] = c.Keyword()
		if head[i] == "" {
			head[i] = c.String()
		}
	}
	fmt.Fprintln(t.tw, strings.Join(head, "\t"))
	return t
}

func (t *tablePrinter) match(ds *dicom.DataSet) error {
	dec, csErr := ds.TextDecoder(nil)
	cells := make([]string, len(t.columns))
	for i, c := range t.columns {
		if e := ds.Get(c); e != nil {
			cells[i] = cellText(e, dec)
		}
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
	if csErr != nil {
		return fmt.Errorf("%v; text shown undecoded", csErr)
	}
	return nil
}

func (t *tablePrinter) end() { t.tw.Flush() }

// cellText renders a value for the table, safe for a terminal: the peer
// chooses these bytes.
func cellText(e *dicom.Element, dec *charset.Decoder) string {
	var s string
	if e.VR.IsText() {
		vals, err := e.Text(dec)
		if err != nil {
			vals = e.Strings()
		}
		s = strings.Join(vals, `\`)
	} else {
		s = describe(e, dec)
	}
	return sanitize(s)
}
