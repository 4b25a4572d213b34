package scan

import (
	"crypto/tls"
	"time"
)

// Access is how the scanner got into a service: everything a follow-up
// probe (--prove, --test-write) needs to open its own associations as the
// same stranger. TLS is nil for plain DICOM.
type Access struct {
	Addr      string      // host:port
	TLS       *tls.Config // nil: plain TCP
	CallingAE string      // the calling AE title that was accepted
	CalledAE  string      // the called AE title that was accepted
	// Timeout bounds each step (connect, association, each DIMSE
	// exchange); zero means the scanner's default.
	Timeout time.Duration
}
