package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/dimse"
	"github.com/dicomshield/dicomshield/internal/ul"
)

// passwordEnv is read for the passcode when --user is given without
// --password, so that it need not appear in the process list.
const passwordEnv = "DICOMSHIELD_PASSWORD"

// uncompressedTS are the transfer syntaxes proposed for commands, queries
// and received instances: every SCP must accept implicit VR little endian.
var uncompressedTS = []string{dicom.ExplicitVRLittleEndianUID, dicom.ImplicitVRLittleEndianUID}

// netFlagsHelp is appended to the Long help of every network command.
const netFlagsHelp = `
Connection: HOST:PORT names the peer (an IPv6 address goes in brackets:
[2001:db8::1]:11112). --aet is the AE title this program calls from, --aec
the AE title of the service it calls; a peer that does not know either
rejects the association, and the message says which.

TLS: --tls encrypts the association (TLS 1.2 or later). The server's
certificate is verified against --ca; without --ca the command refuses to
run unless --insecure-skip-verify is given. --cert and --key present a
client certificate, which archives that register their peers require.

User identity: --user alone sends a user name (identity type 1), --user
with --password a user name and passcode (type 2), --jwt a JSON Web Token
(type 5). The passcode can come from $` + passwordEnv + ` instead of the
command line, where other local users can see it. Without --tls these are
sent in clear text.`

// netOptions are the connection flags every network command shares.
type netOptions struct {
	callingAE, calledAE string
	useTLS              bool
	certFile, keyFile   string
	caFile              string
	insecure            bool
	user, password, jwt string
	timeout             time.Duration
}

func addNetFlags(cmd *cobra.Command) *netOptions {
	o := &netOptions{}
	f := cmd.Flags()
	f.StringVar(&o.callingAE, "aet", "DICOMSHIELD", "calling AE title: the name this program gives itself")
	f.StringVar(&o.calledAE, "aec", "ANY-SCP", "called AE title: the name of the service at HOST:PORT")
	f.BoolVar(&o.useTLS, "tls", false, "connect with TLS (1.2 or later); needs --ca or --insecure-skip-verify")
	f.StringVar(&o.certFile, "cert", "", "PEM `FILE` of the client certificate to present (with --key)")
	f.StringVar(&o.keyFile, "key", "", "PEM `FILE` of the private key of --cert")
	f.StringVar(&o.caFile, "ca", "", "PEM `FILE` of the CA certificates the server's certificate must chain to")
	f.BoolVar(&o.insecure, "insecure-skip-verify", false,
		"with --tls and no --ca, accept any server certificate: anyone on the network path can then\nimpersonate the server and read or alter what is sent, patient data included")
	f.StringVar(&o.user, "user", "", "user `NAME` for user identity negotiation (type 1, or type 2 with --password)")
	f.StringVar(&o.password, "password", "", "`PASSCODE` for --user (identity type 2); visible in the process list,\nprefer $"+passwordEnv)
	f.StringVar(&o.jwt, "jwt", "", "JSON Web `TOKEN` to send as user identity (type 5)")
	f.DurationVar(&o.timeout, "timeout", 10*time.Second, "time allowed to connect, complete TLS and negotiate the association")
	return o
}

// usageError is a mistake on the command line.
func usageError(format string, args ...any) error {
	return &exitError{code: 1, err: fmt.Errorf(format, args...)}
}

// checkAddr validates HOST:PORT and returns the host.
func checkAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return "", usageError("%q is not HOST:PORT (an IPv6 address goes in brackets: [::1]:11112)", addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return "", usageError("%q: the port must be a number from 1 to 65535", addr)
	}
	return host, nil
}

// checkAETitle applies PS3.5's AE VR: 1 to 16 characters of printable
// ASCII but the backslash, not only spaces.
func checkAETitle(flag, ae string) error {
	if strings.TrimSpace(ae) == "" || len(ae) > 16 {
		return usageError("--%s %q: an AE title has 1 to 16 characters", flag, ae)
	}
	for _, c := range []byte(ae) {
		if c < 0x20 || c > 0x7E || c == '\\' {
			return usageError("--%s %q: an AE title holds printable ASCII characters other than the backslash", flag, ae)
		}
	}
	return nil
}

// prepare checks the flags and the address and returns the dial options
// shared by every association the command opens (contexts excluded).
// Warnings go to stderr.
func (o *netOptions) prepare(addr string, stderr io.Writer) (*dimse.DialOptions, error) {
	host, err := checkAddr(addr)
	if err != nil {
		return nil, err
	}
	if err := checkAETitle("aet", o.callingAE); err != nil {
		return nil, err
	}
	if err := checkAETitle("aec", o.calledAE); err != nil {
		return nil, err
	}
	if o.timeout <= 0 {
		return nil, usageError("--timeout must be positive")
	}
	opts := &dimse.DialOptions{
		CallingAE:      o.callingAE,
		CalledAE:       o.calledAE,
		ConnectTimeout: o.timeout,
		UL:             ul.Config{AssociateTimeout: o.timeout},
	}
	if opts.TLS, err = o.tlsConfig(host); err != nil {
		return nil, err
	}
	if opts.Identity, err = o.identity(); err != nil {
		return nil, err
	}
	if o.insecure {
		fmt.Fprintln(stderr, "dicomshield: warning: the server's certificate is not verified (--insecure-skip-verify)")
	}
	if opts.Identity != nil && !o.useTLS {
		fmt.Fprintln(stderr, "dicomshield: warning: the user identity is sent in clear text: add --tls to protect it")
	}
	return opts, nil
}

func (o *netOptions) tlsConfig(host string) (*tls.Config, error) {
	if !o.useTLS {
		if o.certFile != "" || o.keyFile != "" || o.caFile != "" || o.insecure {
			return nil, usageError("--cert, --key, --ca and --insecure-skip-verify apply to TLS: add --tls")
		}
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	switch {
	case o.caFile != "" && o.insecure:
		return nil, usageError("--ca and --insecure-skip-verify contradict each other: keep --ca")
	case o.caFile != "":
		pemData, err := os.ReadFile(o.caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemData) {
			return nil, fmt.Errorf("--ca %s: no PEM certificate in the file", o.caFile)
		}
		cfg.RootCAs = pool
	case o.insecure:
		cfg.InsecureSkipVerify = true
	default:
		return nil, usageError("--tls needs --ca FILE to verify the server's certificate; without it anyone on the network path could impersonate the server (--insecure-skip-verify accepts that risk)")
	}
	if (o.certFile == "") != (o.keyFile == "") {
		return nil, usageError("--cert and --key go together")
	}
	if o.certFile != "" {
		pair, err := tls.LoadX509KeyPair(o.certFile, o.keyFile)
		if err != nil {
			return nil, fmt.Errorf("--cert/--key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

func (o *netOptions) identity() (*ul.UserIdentity, error) {
	switch {
	case o.jwt != "" && (o.user != "" || o.password != ""):
		return nil, usageError("--jwt and --user/--password are two different identities: give one")
	case o.jwt != "":
		return &ul.UserIdentity{Type: ul.IdentityJWT, Primary: []byte(o.jwt)}, nil
	case o.password != "" && o.user == "":
		return nil, usageError("--password needs --user")
	case o.user == "":
		return nil, nil
	}
	pass := o.password
	if pass == "" {
		pass = os.Getenv(passwordEnv)
	}
	if len(o.user) > 0xFFFF || len(pass) > 0xFFFF {
		return nil, usageError("--user and --password are limited to 65535 bytes")
	}
	if pass == "" {
		return &ul.UserIdentity{Type: ul.IdentityUsername, Primary: []byte(o.user)}, nil
	}
	return &ul.UserIdentity{Type: ul.IdentityUsernamePasscode, Primary: []byte(o.user), Secondary: []byte(pass)}, nil
}

// peer names the called application for messages: AE@HOST:PORT.
func (o *netOptions) peer(addr string) string { return o.calledAE + "@" + addr }

// open requests an association proposing contexts, within --timeout.
func (o *netOptions) open(ctx context.Context, addr string, base *dimse.DialOptions, contexts []dimse.Proposal) (*dimse.Client, error) {
	opts := *base
	opts.Contexts = contexts
	dctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	cl, err := dimse.Dial(dctx, addr, &opts)
	if err != nil {
		return nil, o.explain(addr, err, dctx.Err() != nil && ctx.Err() == nil)
	}
	return cl, nil
}

// explain turns a failure to open an association into a sentence that
// says what happened and, where it helps, what to try.
func (o *netOptions) explain(addr string, err error, timedOut bool) error {
	var rj *ul.RejectedError
	var ab *ul.AbortError
	var dns *net.DNSError
	peer := o.peer(addr)
	switch {
	case errors.As(err, &rj):
		return fmt.Errorf("%s: %s", peer, rj.Error())
	case isTLSError(err):
		msg := err.Error()
		if inner := errors.Unwrap(err); strings.HasPrefix(msg, "dimse: TLS handshake") && inner != nil {
			msg = inner.Error()
		}
		return fmt.Errorf("TLS with %s failed: %s%s", addr, msg, o.tlsHint(err))
	case errors.As(err, &dns):
		return fmt.Errorf("cannot resolve %s: %v", addr, dns)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("cannot connect to %s: connection refused (no service listens on that port)", addr)
	case timedOut || errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return fmt.Errorf("no answer from %s within %s (host down, port filtered, or a peer that does not answer this protocol)", peer, o.timeout)
	case errors.As(err, &ab):
		return fmt.Errorf("%s aborted the association request: %v", peer, ab)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, ul.ErrAborted):
		if !o.useTLS {
			return fmt.Errorf("%s closed the connection during association negotiation; if it requires TLS, add --tls", peer)
		}
		return fmt.Errorf("%s closed the connection during association negotiation (it may have refused the TLS client certificate)", peer)
	}
	return fmt.Errorf("association with %s failed: %s", peer, trimPrefix(err))
}

// tlsHint suggests the likely cause of a TLS failure.
func (o *netOptions) tlsHint(err error) string {
	var alert tls.AlertError
	var rec tls.RecordHeaderError
	// An alert from the peer arrives as "remote error: tls: ..." (its
	// type is not exported).
	remote := errors.As(err, &alert) || strings.Contains(err.Error(), "remote error: tls:")
	switch {
	case errors.As(err, &rec):
		return " (the peer does not speak TLS on that port)"
	case remote && o.certFile == "":
		return " (the server may want a client certificate: give --cert and --key)"
	case remote:
		return " (the server may have refused the client certificate)"
	}
	return ""
}

func isTLSError(err error) bool {
	var verr *tls.CertificateVerificationError
	var alert tls.AlertError
	var rec tls.RecordHeaderError
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	return errors.As(err, &verr) || errors.As(err, &alert) || errors.As(err, &rec) || errors.As(err, &unknown) ||
		errors.As(err, &host) || errors.As(err, &invalid) ||
		strings.Contains(err.Error(), "TLS handshake") || strings.Contains(err.Error(), "tls: ")
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// trimPrefix drops the package prefixes ("dimse: ", "ul: ") from an
// error message meant for a person.
func trimPrefix(err error) string {
	msg := err.Error()
	for _, p := range []string{"dimse: ", "ul: "} {
		msg = strings.TrimPrefix(msg, p)
	}
	return msg
}

// serviceError says why an operation on an established association
// failed: the status in words for a DIMSE failure.
func serviceError(op string, err error) error {
	var se *dimse.StatusError
	if errors.As(err, &se) {
		msg := fmt.Sprintf("%s failed: %s (0x%04X)", op, dimse.StatusText(se.Status), se.Status)
		if se.Comment != "" {
			msg += ": " + sanitize(se.Comment)
		}
		return errors.New(msg)
	}
	if errors.Is(err, dimse.ErrNoContext) {
		return fmt.Errorf("%s: the peer accepted no presentation context for it", op)
	}
	return fmt.Errorf("%s failed: %s", op, trimPrefix(err))
}

// finish ends the association: released after an answered request,
// aborted when the association itself failed.
func finish(cl *dimse.Client, err error) {
	var se *dimse.StatusError
	if err == nil || errors.As(err, &se) || errors.Is(err, dimse.ErrNoContext) || errors.Is(err, dimse.ErrStop) {
		if cl.Release() == nil {
			return
		}
	}
	cl.Abort()
}

// interruptible returns a context cancelled by Ctrl-C, so that queries
// and retrieves are cancelled with C-CANCEL rather than cut.
func interruptible(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
}

// sanitize makes a peer-supplied string safe to print on a terminal:
// control characters (escape sequences included) are shown escaped.
func sanitize(s string) string {
	clean := true
	for _, r := range s {
		if r < 0x20 || r == 0x7F || (r >= 0x80 && r < 0xA0) || r == '\uFFFD' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	q := strconv.QuoteToGraphic(s)
	return q[1 : len(q)-1]
}

// isUID reports whether s has the form of a UID (PS3.5 9.1): 1 to 64
// characters, components of digits separated by single dots. (Leading
// zeros, which the standard forbids but some devices write, are let
// through: they are harmless.) A string that passes holds only [0-9.],
// never "." or "..", so it is safe in a file name.
func isUID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, comp := range strings.Split(s, ".") {
		if comp == "" {
			return false
		}
		for _, c := range []byte(comp) {
			if c < '0' || c > '9' {
				return false
			}
		}
	}
	return true
}

// megabytes formats a byte count in MB (10^6 bytes).
func megabytes(n int64) string {
	return strconv.FormatFloat(float64(n)/1e6, 'f', 1, 64) + " MB"
}
