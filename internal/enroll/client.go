package enroll

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dicomshield/dicomshield/internal/pki"
)

// Client timeouts.
const (
	// clientTimeout bounds one enrolment or renewal request: 30 s, for a
	// slow network; the archive answers in milliseconds.
	clientTimeout = 30 * time.Second
	// maxResponseBytes bounds the answer read: 64 KiB, for two
	// certificates.
	maxResponseBytes = 64 << 10
)

// Result is what Enrol and Renew wrote.
type Result struct {
	AETitle  string
	Dir      string
	CertFile string
	KeyFile  string
	CAFile   string
	Serial   string
	NotAfter time.Time
}

// Enrol makes a key pair, enrols it with the archive at server
// (HOST:PORT of its enrolment listener) using token, and writes the
// bundle into dir: ca.pem, AE.crt and AE.key (0600). The archive is
// accepted only if its CA has the token's fingerprint, and the CA
// certificate it sends must have it too.
func Enrol(ctx context.Context, server, token, dir string) (*Result, error) {
	tok, err := ParseToken(token)
	if err != nil {
		return nil, err
	}
	key, keyPEM, err := pki.NewPeerKey()
	if err != nil {
		return nil, err
	}
	csr, err := pki.NewCSR(key, "dicomshield enrolment")
	if err != nil {
		return nil, err
	}
	req := Request{Secret: b64.EncodeToString(tok.Secret), CSR: string(pki.EncodeCSRPEM(csr))}
	resp, err := post(ctx, server, PathEnrol, pki.PinnedTLSConfig(tok.CAFingerprint, nil, nil), req)
	if err != nil {
		return nil, err
	}
	return accept(resp, tok.CAFingerprint, "", key, keyPEM, dir)
}

// Renew renews the certificate of the bundle in dir: it authenticates
// with the current certificate and key, sends a request for a new key,
// and replaces the bundle's certificate and key. ae selects the bundle's
// AE title when dir holds several (PeerFileBase names); "" means the only
// one. The archive must have the CA of the bundle's ca.pem.
func Renew(ctx context.Context, server, dir, ae string) (*Result, error) {
	cur, err := LoadBundle(dir, ae)
	if err != nil {
		return nil, err
	}
	pair, err := tls.LoadX509KeyPair(cur.CertFile, cur.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	caCert, err := pki.ReadCertFile(cur.CAFile)
	if err != nil {
		return nil, err
	}
	fp := pki.FingerprintOf(caCert.Raw)
	key, keyPEM, err := pki.NewPeerKey()
	if err != nil {
		return nil, err
	}
	csr, err := pki.NewCSR(key, cur.AETitle)
	if err != nil {
		return nil, err
	}
	resp, err := post(ctx, server, PathRenew, pki.PinnedTLSConfig(fp, caCert, []tls.Certificate{pair}), Request{CSR: string(pki.EncodeCSRPEM(csr))})
	if err != nil {
		return nil, err
	}
	return accept(resp, fp, cur.AETitle, key, keyPEM, dir)
}

// Bundle is a peer bundle on disk and its current certificate.
type Bundle struct {
	Result
	Cert *x509.Certificate
}

// LoadBundle finds the bundle in dir: ca.pem and the one <AE>.crt with
// its <AE>.key (or the one for ae).
func LoadBundle(dir, ae string) (*Bundle, error) {
	var certFile string
	if ae != "" {
		certFile = filepath.Join(dir, pki.PeerFileBase(ae)+".crt")
	} else {
		matches, err := filepath.Glob(filepath.Join(dir, "*.crt"))
		if err != nil {
			return nil, fmt.Errorf("enroll: %w", err)
		}
		if len(matches) != 1 {
			return nil, fmt.Errorf("enroll: %s holds %d certificates (*.crt); name the AE title with --ae", dir, len(matches))
		}
		certFile = matches[0]
	}
	cert, err := pki.ReadCertFile(certFile)
	if err != nil {
		return nil, err
	}
	certAE, err := pki.CertAETitle(cert)
	if err != nil {
		return nil, err
	}
	b := &Bundle{Cert: cert, Result: Result{AETitle: certAE, Dir: dir, CertFile: certFile,
		KeyFile: strings.TrimSuffix(certFile, ".crt") + ".key", CAFile: filepath.Join(dir, pki.CACertFile),
		Serial: pki.Serial(cert), NotAfter: cert.NotAfter}}
	return b, nil
}

// post sends req to https://server/path and decodes the answer.
func post(ctx context.Context, server, path string, tc *tls.Config, req Request) (*Response, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, clientTimeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+server+path, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("enroll: server %q: %w", server, err)
	}
	hr.Header.Set("Content-Type", "application/json")
	tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: false, DisableKeepAlives: true, Proxy: nil}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr}).Do(hr)
	if err != nil {
		if errors.Is(err, pki.ErrFingerprint) {
			return nil, fmt.Errorf("enroll: refusing %s: its CA is not the one named in the token (%w); check the server address, or ask for a new token", server, pki.ErrFingerprint)
		}
		return nil, fmt.Errorf("enroll: %w", err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, maxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("enroll: reading the answer: %w", err)
	}
	if len(data) > maxResponseBytes {
		return nil, errors.New("enroll: the answer is too large")
	}
	if res.StatusCode != http.StatusOK {
		var e errorResponse
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("enroll: the archive refused (%d): %s", res.StatusCode, e.Error)
		}
		return nil, fmt.Errorf("enroll: the archive answered %s", res.Status)
	}
	var out Response
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("enroll: malformed answer: %w", err)
	}
	return &out, nil
}

// accept checks the answer (a certificate for our key, bound to an AE
// title, issued by the CA with fingerprint fp) and writes the bundle.
func accept(resp *Response, fp, wantAE string, key crypto.Signer, keyPEM []byte, dir string) (*Result, error) {
	caCert, err := pki.ParseCertPEM("the CA certificate received", []byte(resp.CA))
	if err != nil {
		return nil, err
	}
	if !pki.SameFingerprint(pki.FingerprintOf(caCert.Raw), fp) {
		return nil, fmt.Errorf("enroll: the CA certificate received is not the expected one: %w", pki.ErrFingerprint)
	}
	cert, err := pki.ParseCertPEM("the certificate received", []byte(resp.Certificate))
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(caCert)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fmt.Errorf("enroll: the certificate received does not verify: %w", err)
	}
	if pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(key.Public()) {
		return nil, errors.New("enroll: the certificate received is not for the key made here")
	}
	ae, err := pki.CertAETitle(cert)
	if err != nil {
		return nil, err
	}
	if wantAE != "" && ae != wantAE {
		return nil, fmt.Errorf("enroll: the certificate received is for %q, not %q", ae, wantAE)
	}
	if err := pki.WriteBundle(dir, ae, []byte(resp.CA), []byte(resp.Certificate), keyPEM); err != nil {
		return nil, err
	}
	base := filepath.Join(dir, pki.PeerFileBase(ae))
	if _, err := os.Stat(base + ".key"); err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	return &Result{AETitle: ae, Dir: dir, CertFile: base + ".crt", KeyFile: base + ".key",
		CAFile: filepath.Join(dir, pki.CACertFile), Serial: pki.Serial(cert), NotAfter: cert.NotAfter}, nil
}
