package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/dicomshield/dicomshield/internal/dimse"
)

func newEchoCmd() *cobra.Command {
	var nf *netOptions
	cmd := &cobra.Command{
		Use:   "echo [flags] HOST:PORT",
		Short: "Check that a DICOM service answers (C-ECHO)",
		Long: `Open an association to the DICOM service at HOST:PORT, send a C-ECHO
(verification, the DICOM "ping") and release. It shows that the peer is
reachable, accepts this calling AE title, and, with --tls, that its
certificate verifies. The time shown is the C-ECHO round trip, association
set-up excluded.

The exit status is 0 when the peer answered with success, 1 otherwise: a
rejected association, a failure status, or no connection at all.
` + netFlagsHelp,
		Example: `  dicomshield echo pacs.example.org:104
  dicomshield echo --aet MODALITY1 --aec ARCHIVE 10.0.0.5:11112
  dicomshield echo --tls --ca ca.pem --cert me.pem --key me.key pacs.example.org:2762
  dicomshield echo [2001:db8::10]:11112`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			addr := args[0]
			base, err := nf.prepare(addr, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			ctx, stop := interruptible(cmd)
			defer stop()
			cl, err := nf.open(ctx, addr, base, []dimse.Proposal{{AbstractSyntax: dimse.VerificationSOPClass, TransferSyntaxes: uncompressedTS}})
			if err != nil {
				return err
			}
			start := time.Now()
			err = cl.Echo(ctx)
			rtt := time.Since(start)
			finish(cl, err)
			if err != nil {
				return fmt.Errorf("%s: %w", nf.peer(addr), serviceError("C-ECHO", err))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "C-ECHO to %s: success (%s)\n", nf.peer(addr), millis(rtt))
			return nil
		},
	}
	nf = addNetFlags(cmd)
	return cmd
}

// millis formats a duration in milliseconds: with a decimal under 10 ms,
// where local round trips fall.
func millis(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	if ms < 10 {
		return fmt.Sprintf("%.1f ms", ms)
	}
	return fmt.Sprintf("%.0f ms", ms)
}
