package cli

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/dicomshield/dicomshield/internal/dicom"
)

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, the DICOM implementation UID and the Go version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "dicomshield %s\nimplementation class UID %s (%s)\n%s %s/%s\n",
				Version, dicom.ImplementationClassUID, dicom.ImplementationVersionName,
				runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}
