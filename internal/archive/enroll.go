package archive

import (
	"context"
	"fmt"
	"net"
	"path/filepath"

	"github.com/dicomshield/dicomshield/internal/enroll"
)

// TokensPath is where the enrolment tokens of the data directory dir are
// kept (hashed).
func TokensPath(dir string) string { return filepath.Join(dir, enroll.TokensFileName) }

// ListenEnroll opens the enrolment listener ([enroll] listen). It returns
// nil and no error when enrolment is off.
func (a *Archive) ListenEnroll() (net.Listener, error) {
	if a.Config.Enroll.Listen == "" {
		return nil, nil
	}
	l, err := net.Listen("tcp", a.Config.Enroll.Listen)
	if err != nil {
		return nil, fmt.Errorf("listening for enrolment on %s: %w", a.Config.Enroll.Listen, err)
	}
	return l, nil
}

// ServeEnroll answers enrolment and renewal requests on l (see package
// enroll) until ctx ends. Certificates last [enroll] peer_cert_lifetime,
// tokens are those "peer add --token" made in this data directory, and
// events go to a.Audit.
func (a *Archive) ServeEnroll(ctx context.Context, l net.Listener) error {
	tc, err := a.CA.EnrolTLSConfig(a.hosts())
	if err != nil {
		l.Close()
		return err
	}
	s := &enroll.Server{
		CA:           a.CA,
		Registry:     a.Registry,
		Tokens:       &enroll.Tokens{Path: TokensPath(a.Dir)},
		Audit:        a.Audit,
		Logger:       a.Logger.With("listener", "enroll"),
		CertLifetime: a.Config.Enroll.PeerCertLifetime.Duration(),
	}
	return s.Serve(ctx, l, tc)
}
