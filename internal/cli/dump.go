package cli

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/dicom/charset"
)

// dumpMaxValues is how many values of a multi-valued binary element the
// listing shows before it summarises the rest.
const dumpMaxValues = 12

func newDumpCmd() *cobra.Command {
	var asJSON, headerOnly bool
	cmd := &cobra.Command{
		Use:   "dump FILE...",
		Short: "Print DICOM files as a readable listing or as DICOM JSON",
		Long: `Print each DICOM file (Part 10, or a bare data set whose encoding is
detected) as a listing of tag, VR, keyword and value, or with --json in the
DICOM JSON model (PS3.18 Annex F).

The listing shows the values in the files, patient data included: it is for
inspecting files you are entitled to read. A malformed file is reported with
the offset and the element where decoding failed, and the exit status is 1.`,
		Example: `  dicomshield dump image.dcm
  dicomshield dump --header-only study/*.dcm
  dicomshield dump --json image.dcm | jq .`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := bufio.NewWriter(cmd.OutOrStdout())
			defer out.Flush()
			opts := &dicom.ReadOptions{}
			if headerOnly {
				opts.StopAt = dicom.TagPixelData
			}
			failed := 0
			for i, path := range args {
				f, err := dicom.ReadFile(path, opts)
				if err != nil {
					out.Flush()
					fmt.Fprintf(cmd.ErrOrStderr(), "dicomshield: %s: %v\n", path, err)
					failed++
					continue
				}
				if asJSON {
					err = dumpJSON(out, f, i == 0, len(args) > 1)
				} else {
					err = dumpText(out, path, f)
				}
				if err != nil {
					out.Flush()
					fmt.Fprintf(cmd.ErrOrStderr(), "dicomshield: %s: %v\n", path, err)
					failed++
				}
			}
			if asJSON && len(args) > 1 {
				fmt.Fprintln(out, "]")
			}
			if failed > 0 {
				return &exitError{code: 1, err: fmt.Errorf("%d of %d files could not be read", failed, len(args))}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the DICOM JSON model (an array when several files are given)")
	cmd.Flags().BoolVar(&headerOnly, "header-only", false, "stop before Pixel Data without reading it")
	return cmd
}

func dumpJSON(w io.Writer, f *dicom.File, first, many bool) error {
	b, err := dicom.MarshalJSON(&f.DataSet, nil)
	if err != nil {
		return err
	}
	switch {
	case many && first:
		io.WriteString(w, "[\n")
	case many:
		io.WriteString(w, ",\n")
	}
	_, err = w.Write(b)
	if !many {
		io.WriteString(w, "\n")
	}
	return err
}

func dumpText(w io.Writer, path string, f *dicom.File) error {
	fmt.Fprintf(w, "# %s\n", path)
	if f.Preamble == nil && f.Meta.Len() == 0 {
		fmt.Fprintf(w, "# no file meta information; detected %s\n", f.TransferSyntax.Name)
	} else {
		fmt.Fprintf(w, "# file meta information (transfer syntax: %s)\n", f.TransferSyntax.Name)
		if err := dumpDataSet(w, &f.Meta, 0, nil); err != nil {
			return err
		}
	}
	fmt.Fprintln(w, "# data set")
	if err := dumpDataSet(w, &f.DataSet, 0, nil); err != nil {
		return err
	}
	if f.HeaderOnly {
		fmt.Fprintln(w, "# stopped before Pixel Data (--header-only)")
	}
	return nil
}

func dumpDataSet(w io.Writer, ds *dicom.DataSet, depth int, inherited *charset.Decoder) error {
	dec, csErr := ds.TextDecoder(inherited)
	if csErr != nil {
		fmt.Fprintf(w, "%s# %v; text shown undecoded\n", strings.Repeat("  ", depth), csErr)
	}
	indent := strings.Repeat("  ", depth)
	for i := range ds.Elements {
		e := &ds.Elements[i]
		kw := e.Tag.Keyword()
		if kw == "" {
			kw = "?"
		}
		fmt.Fprintf(w, "%s%s %s %-36s %s\n", indent, e.Tag, e.VR, kw, describe(e, dec))
		for n, it := range e.Items {
			fmt.Fprintf(w, "%s  > item %d\n", indent, n+1)
			if err := dumpDataSet(w, it, depth+2, dec); err != nil {
				return err
			}
		}
	}
	return nil
}

// describe renders a value for the listing.
func describe(e *dicom.Element, dec *charset.Decoder) string {
	switch {
	case e.Streamed:
		return fmt.Sprintf("(%d bytes, streamed)", e.Length)
	case e.IsSequence():
		return fmt.Sprintf("(%d items)", len(e.Items))
	case e.IsEncapsulated():
		total := 0
		for _, f := range e.Fragments {
			total += len(f)
		}
		return fmt.Sprintf("(encapsulated: offset table of %d bytes, %d fragments, %d bytes)",
			len(e.Fragments[0]), max(len(e.Fragments)-1, 0), total)
	case e.VR.IsText():
		vals, err := e.Text(dec)
		if err != nil {
			vals = e.Strings()
		}
		return "[" + strings.Join(vals, `\`) + "]"
	}
	var parts []string
	switch e.VR {
	case dicom.US, dicom.SS, dicom.UL, dicom.SL, dicom.SV:
		vals, err := e.Ints()
		if err != nil {
			return fmt.Sprintf("(%d bytes, %v)", len(e.Value), err)
		}
		for _, v := range vals {
			parts = append(parts, fmt.Sprint(v))
		}
	case dicom.UV:
		vals, err := e.Uint64s()
		if err != nil {
			return fmt.Sprintf("(%d bytes, %v)", len(e.Value), err)
		}
		for _, v := range vals {
			parts = append(parts, fmt.Sprint(v))
		}
	case dicom.FL, dicom.FD:
		vals, err := e.Floats()
		if err != nil {
			return fmt.Sprintf("(%d bytes, %v)", len(e.Value), err)
		}
		for _, v := range vals {
			parts = append(parts, fmt.Sprint(v))
		}
	case dicom.AT:
		vals, err := e.Tags()
		if err != nil {
			return fmt.Sprintf("(%d bytes, %v)", len(e.Value), err)
		}
		for _, v := range vals {
			parts = append(parts, v.String())
		}
	default:
		b := e.Value
		more := ""
		if len(b) > 16 {
			b, more = b[:16], "..."
		}
		return fmt.Sprintf("%s%s (%d bytes)", hex.EncodeToString(b), more, len(e.Value))
	}
	if len(parts) > dumpMaxValues {
		n := len(parts)
		parts = append(parts[:dumpMaxValues], fmt.Sprintf("... (%d values)", n))
	}
	return strings.Join(parts, `\`)
}
