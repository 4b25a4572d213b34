package enroll

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/dicomshield/dicomshield/internal/audit"
	"github.com/dicomshield/dicomshield/internal/pki"
	"github.com/dicomshield/dicomshield/internal/policy"
)

// The endpoints of the enrolment listener.
const (
	PathEnrol = "/v1/enroll"
	PathRenew = "/v1/renew"
)

// Limits of the enrolment listener. A request is a few hundred bytes of
// JSON and one signature check; nothing legitimate comes near them.
const (
	// MaxRequestBytes bounds a request body: 16 KiB, ten times a CSR
	// with an RSA 4096 key.
	MaxRequestBytes = 16 << 10
	// maxHeaderBytes bounds request headers: 8 KiB.
	maxHeaderBytes = 8 << 10
	// readHeaderTimeout: a client has 5 s to send its headers, so that a
	// connection held open on purpose (slowloris) is dropped.
	readHeaderTimeout = 5 * time.Second
	// readTimeout and writeTimeout: 15 s for a whole request and its
	// answer, which take milliseconds on a LAN.
	readTimeout  = 15 * time.Second
	writeTimeout = 15 * time.Second
	// idleTimeout: an idle keep-alive connection is closed after 30 s;
	// a device makes one request and leaves.
	idleTimeout = 30 * time.Second
	// DefaultRequestsPerMinute is how many requests one address may make
	// per minute: 20. A device makes one per enrolment or renewal; the
	// limit keeps one address from making the archive sign in a loop.
	DefaultRequestsPerMinute = 20
	// maxTrackedAddrs bounds the rate limiter's table: 4096 addresses.
	// When full, addresses not yet seen are refused until the minute
	// ends, which fails closed.
	maxTrackedAddrs = 4096
	// shutdownTimeout is how long in-flight requests may finish when
	// the listener stops: 5 s.
	shutdownTimeout = 5 * time.Second
)

// Request is what a device sends: the token's secret (enrolment only) and
// a certificate signing request in PEM.
type Request struct {
	Secret string `json:"secret,omitempty"` // base64url, as in the token
	CSR    string `json:"csr"`
}

// Response is what the archive answers: the certificate and the CA
// certificate (PEM), and the AE title the certificate is bound to.
type Response struct {
	AETitle     string `json:"ae_title"`
	Certificate string `json:"certificate"`
	CA          string `json:"ca"`
}

// errorResponse is the body of a refusal: words for the person at the
// device, never what the archive knows about tokens or peers.
type errorResponse struct {
	Error string `json:"error"`
}

// Server answers enrolment and renewal requests.
type Server struct {
	CA       *pki.CA
	Registry *policy.FileRegistry
	Tokens   *Tokens
	// Audit receives peer-enrolled, peer-renewed, enrolment-token-refused
	// and revoked-certificate events; nil means none.
	Audit audit.Recorder
	// Logger is the operational log; nil means none.
	Logger *slog.Logger
	// CertLifetime is how long issued certificates last; zero means
	// pki.DefaultPeerValidity.
	CertLifetime time.Duration
	// RequestsPerMinute per remote address; zero means
	// DefaultRequestsPerMinute.
	RequestsPerMinute int
	// Now is the clock of the rate limiter; nil means time.Now.
	Now func() time.Time

	mu      sync.Mutex
	window  time.Time
	perAddr map[netip.Addr]int
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Server) record(ev audit.Event) {
	if s.Audit != nil {
		s.Audit.Record(ev)
	}
}

func (s *Server) log() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// Handler returns the HTTP handler of the two endpoints. Everything else
// is 404.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+PathEnrol, s.limited(s.enrol))
	mux.HandleFunc("POST "+PathRenew, s.limited(s.renew))
	return mux
}

// Serve answers on l with TLS configuration tc (pki.CA.EnrolTLSConfig)
// until ctx ends, then lets requests in flight finish for a few seconds.
func (s *Server) Serve(ctx context.Context, l net.Listener, tc *tls.Config) error {
	hs := &http.Server{
		Handler:           s.Handler(),
		TLSConfig:         tc,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log().Handler(), slog.LevelDebug),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if hs.Shutdown(sctx) != nil {
			_ = hs.Close()
		}
	}()
	err := hs.Serve(tls.NewListener(l, tc))
	<-done
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// limited refuses a client over its rate with 429.
func (s *Server) limited(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.allow(remoteAddr(r)) {
			s.log().Warn("enrolment request over the rate limit", "remote", remoteAddr(r).String())
			writeJSON(w, http.StatusTooManyRequests, errorResponse{"too many requests; try again in a minute"})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxRequestBytes)
		h(w, r)
	}
}

// allow counts a request from addr in the current one-minute window.
func (s *Server) allow(addr netip.Addr) bool {
	limit := s.RequestsPerMinute
	if limit <= 0 {
		limit = DefaultRequestsPerMinute
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if s.perAddr == nil || now.Sub(s.window) >= time.Minute || now.Before(s.window) {
		s.window, s.perAddr = now, map[netip.Addr]int{}
	}
	n, seen := s.perAddr[addr]
	if !seen && len(s.perAddr) >= maxTrackedAddrs {
		return false
	}
	if n >= limit {
		return false
	}
	s.perAddr[addr] = n + 1
	return true
}

func remoteAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v) // the client went away: nothing to do
}

// readRequest decodes the body strictly.
func readRequest(w http.ResponseWriter, r *http.Request) (*Request, bool) {
	data, err := io.ReadAll(r.Body)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		writeJSON(w, http.StatusRequestEntityTooLarge, errorResponse{"request too large"})
		return nil, false
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, errorResponse{"could not read the request"})
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var req Request
	if err := dec.Decode(&req); err != nil || dec.More() {
		writeJSON(w, http.StatusBadRequest, errorResponse{"malformed request"})
		return nil, false
	}
	return &req, true
}

// enrol redeems a token and signs the request for the token's peer.
func (s *Server) enrol(w http.ResponseWriter, r *http.Request) {
	req, ok := readRequest(w, r)
	if !ok {
		return
	}
	remote := remoteAddr(r)
	refuse := func(ae string, err error) {
		s.log().Warn("enrolment refused", "calling_ae", ae, "remote", remote.String(), "err", err)
		s.record(audit.Event{Kind: audit.SecurityAlert, Outcome: audit.MinorFailure, Alert: "enrolment-token-refused",
			Description: "enrolment refused: " + err.Error(), Peer: ae, Remote: remote.String()})
		writeJSON(w, http.StatusForbidden, errorResponse{"enrolment refused: the token is unknown, used or expired, or this device may not enrol from its address; ask the administrator for a new token"})
	}
	secret, err := b64.DecodeString(req.Secret)
	if err != nil || len(secret) != secretBytes {
		refuse("", fmt.Errorf("%w: malformed secret", ErrTokenUnknown))
		return
	}
	csr, err := pki.DecodeCSRPEM([]byte(req.CSR))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, errorResponse{err.Error()})
		return
	}
	ctx := r.Context()
	// The token is spent only if the peer is still registered and asks
	// from one of its addresses: a token intercepted and used from
	// elsewhere fails without burning it for the device.
	ae, err := s.Tokens.Redeem(secret, func(ae string) error {
		p, err := s.Registry.Get(ctx, ae)
		if err != nil {
			return fmt.Errorf("%w: peer %q: %v", ErrTokenRefused, ae, err)
		}
		if !p.HasHost(remote) {
			return fmt.Errorf("%w: peer %q may not connect from %s", ErrTokenRefused, ae, remote)
		}
		return nil
	})
	if err != nil {
		refuse(ae, err)
		return
	}
	s.issue(w, r, ae, csr, "", "peer-enrolled")
}

// renew signs a request for the peer whose current certificate the client
// presented.
func (s *Server) renew(w http.ResponseWriter, r *http.Request) {
	req, ok := readRequest(w, r)
	if !ok {
		return
	}
	remote := remoteAddr(r)
	ae, err := pki.PeerAETitle(r.TLS)
	if err != nil {
		s.log().Warn("renewal refused: no valid client certificate", "remote", remote.String(), "err", err)
		writeJSON(w, http.StatusUnauthorized, errorResponse{"renewal needs the current, still valid certificate"})
		return
	}
	serial := pki.Serial(r.TLS.VerifiedChains[0][0])
	p, err := s.Registry.Get(r.Context(), ae)
	switch {
	case err != nil:
		s.log().Warn("renewal refused", "calling_ae", ae, "remote", remote.String(), "err", err)
		writeJSON(w, http.StatusForbidden, errorResponse{"renewal refused"})
		return
	case p.IsRevoked(serial):
		s.log().Warn("renewal refused: revoked certificate", "calling_ae", ae, "serial", serial, "remote", remote.String())
		s.record(audit.Event{Kind: audit.SecurityAlert, Outcome: audit.SeriousFailure, Alert: "revoked-certificate",
			Description: fmt.Sprintf("renewal attempted with revoked certificate %s", serial), Peer: ae, Remote: remote.String()})
		writeJSON(w, http.StatusForbidden, errorResponse{"renewal refused: this certificate was revoked"})
		return
	case !policy.SameSerial(p.CertSerial, serial):
		s.log().Warn("renewal refused: not the current certificate", "calling_ae", ae, "serial", serial, "remote", remote.String())
		writeJSON(w, http.StatusForbidden, errorResponse{"renewal refused: this is not the peer's current certificate"})
		return
	case !p.HasHost(remote):
		s.log().Warn("renewal refused: address not registered", "calling_ae", ae, "remote", remote.String())
		writeJSON(w, http.StatusForbidden, errorResponse{"renewal refused"})
		return
	}
	csr, err := pki.DecodeCSRPEM([]byte(req.CSR))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, errorResponse{err.Error()})
		return
	}
	s.issue(w, r, ae, csr, serial, "peer-renewed")
}

// issue signs csr for ae and pins the new serial. With replacing set, the
// pin is changed only if it is still that serial (a revocation or another
// renewal in between wins).
func (s *Server) issue(w http.ResponseWriter, r *http.Request, ae string, csr []byte, replacing, alert string) {
	remote := remoteAddr(r)
	cert, err := s.CA.IssueForCSR(csr, ae, s.CertLifetime)
	if errors.Is(err, pki.ErrBadCSR) {
		writeJSON(w, http.StatusBadRequest, errorResponse{err.Error()})
		return
	}
	if err != nil {
		s.log().Error("issuing a certificate", "calling_ae", ae, "err", err)
		writeJSON(w, http.StatusInternalServerError, errorResponse{"the archive could not issue a certificate"})
		return
	}
	serial := pki.Serial(cert)
	err = s.Registry.Modify(r.Context(), ae, func(p *policy.Peer) error {
		if replacing != "" && !policy.SameSerial(p.CertSerial, replacing) {
			return errors.New("the certificate changed during renewal")
		}
		p.CertSerial, p.CertNotAfter = serial, cert.NotAfter
		return nil
	})
	if err != nil {
		s.log().Warn("pinning the new certificate", "calling_ae", ae, "err", err)
		writeJSON(w, http.StatusConflict, errorResponse{"the peer changed meanwhile; try again"})
		return
	}
	s.log().Info("certificate issued", "calling_ae", ae, "serial", serial, "not_after", cert.NotAfter, "remote", remote.String(), "event", alert)
	s.record(audit.Event{Kind: audit.ConfigChange, Alert: alert, Peer: ae, Remote: remote.String(),
		Description: fmt.Sprintf("certificate %s issued to %s, valid until %s", serial, ae, cert.NotAfter.UTC().Format(time.RFC3339))})
	writeJSON(w, http.StatusOK, Response{AETitle: ae, Certificate: string(pki.EncodeCertPEM(cert.Raw)), CA: string(s.CA.CertPEM())})
}
