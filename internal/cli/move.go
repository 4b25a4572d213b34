package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/dicomshield/dicomshield/internal/dimse"
)

func newMoveCmd() *cobra.Command {
	var nf *netOptions
	var q *queryOptions
	var dest string
	cmd := &cobra.Command{
		Use:   "move [flags] HOST:PORT --dest AE",
		Short: "Have a DICOM service send instances to an AE (C-MOVE)",
		Long: `Ask the DICOM service at HOST:PORT to send the instances an identifier
selects to the application entity --dest, with a C-MOVE. The service opens
its own association to that AE, at the address it has registered for the
title: --dest must be known to it, and may be this machine only if a
storage service listens here. The sub-operation counts are printed; the
exit status is 1 when any sub-operation failed.
` + queryKeysHelp + `
` + netFlagsHelp,
		Example: `  dicomshield move pacs.example.org:104 --dest WORKSTATION1 --level STUDY -k StudyInstanceUID=1.2.840.113619.2.1.1
  dicomshield move pacs.example.org:104 --dest ARCHIVE2 --level SERIES -k StudyInstanceUID=1.2.3 -k SeriesInstanceUID=1.2.3.4`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			addr := args[0]
			if err := checkAETitle("dest", dest); err != nil {
				return err
			}
			model, err := q.sopClass("move")
			if err != nil {
				return err
			}
			id, _, err := q.identifier()
			if err != nil {
				return err
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
			sub, err := cl.Move(ctx, model, dest, id)
			finish(cl, err)
			fmt.Fprintf(cmd.OutOrStdout(), "C-MOVE to %s via %s: %s\n", dest, nf.peer(addr), subOpsText(sub))
			switch {
			case err != nil:
				return fmt.Errorf("%s: %w", nf.peer(addr), serviceError("C-MOVE", err))
			case sub.Failed > 0:
				return &exitError{code: 1, err: fmt.Errorf("%d sub-operations failed", sub.Failed)}
			}
			return nil
		},
	}
	nf = addNetFlags(cmd)
	q = addQueryFlags(cmd)
	cmd.Flags().StringVar(&dest, "dest", "", "`AE` title the instances are sent to (required)")
	cmd.MarkFlagRequired("dest")
	return cmd
}
