// Package cli holds dicomshield's command line: one file per subcommand,
// each building a cobra command that calls into the library packages.
package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// Version is set at build time with -ldflags "-X .../internal/cli.Version=v1.2.3".
var Version = "dev"

// exitError carries a specific exit status out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// Main runs the command line with args and returns the exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	return MainInput(args, nil, stdout, stderr)
}

// MainInput is Main with standard input (nil: the process's), from which
// commands such as `user add --password-stdin` read.
func MainInput(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRoot()
	root.SetArgs(args)
	if stdin != nil {
		root.SetIn(stdin)
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "dicomshield:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "dicomshield",
		Short: "A secure-by-default DICOM archive and DICOM exposure scanner",
		Long: `dicomshield keeps medical images where only the peers you registered can
reach them, and finds DICOM services that answer strangers.

Inspect files:
  dicomshield dump FILE...          readable listing of DICOM files
  dicomshield dump --json FILE...   the same in the DICOM JSON model

Talk to DICOM services (DCMTK's echoscu, storescu, findscu, getscu, movescu):
  dicomshield echo HOST:PORT                          verify a peer answers (C-ECHO)
  dicomshield store HOST:PORT PATH...                 send files and folders (C-STORE)
  dicomshield find HOST:PORT -k PatientID=PAT* ...    query (C-FIND)
  dicomshield get HOST:PORT -k StudyInstanceUID=...   retrieve into a folder (C-GET)
  dicomshield move HOST:PORT --dest AE -k ...         send to another AE (C-MOVE)

Find exposed DICOM services:
  dicomshield scan 10.0.0.0/24 --json out.jsonl       who answers strangers, and how badly

Run the archive:
  dicomshield serve                     the archive (DICOM over TLS)
  dicomshield peer add AE ...           register a device
  dicomshield user add NAME --role R    add a user (password asked for)
  dicomshield enroll --token T ...      on a device: fetch its certificate (--renew later)
  dicomshield verify                    re-hash every file and walk the ledger's hash chain
  dicomshield audit --since 24h         read the audit trail
  dicomshield doctor                    name every weakness of this archive's setup`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.CompletionOptions.HiddenDefaultCmd = true
	root.AddCommand(newServeCmd(), newAuditCmd(), newDoctorCmd(), newPeerCmd(), newUserCmd(), newValidateCmd(), newDumpCmd(), newVersionCmd(), newEnrollCmd(), newEchoCmd(), newStoreCmd(), newFindCmd(), newGetCmd(), newMoveCmd(), newScanCmd())
	root.AddCommand(newVerifyCmd())
	return root
}
