// Command dicomshield is a secure-by-default DICOM archive and a DICOM
// exposure scanner. All of its behaviour lives in internal/cli.
package main

import (
	"os"

	"github.com/dicomshield/dicomshield/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
