package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrBadCSR is returned (wrapped) for a certificate signing request that
// cannot be signed: malformed, badly signed, or with a weak key.
var ErrBadCSR = errors.New("pki: unacceptable certificate signing request")

// ErrFingerprint is returned (wrapped) when a server's CA is not the one
// a fingerprint names.
var ErrFingerprint = errors.New("pki: the server's CA does not have the expected fingerprint")

// minRSABits is the smallest RSA key IssueForCSR signs: 2048 bits, the
// floor of BSI TR-02102 and NIST SP 800-57 for keys in use today. Our own
// enrolment client makes ECDSA P-256 keys; RSA is for devices whose
// tooling only makes RSA requests.
const minRSABits = 2048

// IssueForCSR signs the certificate signing request csrDER (DER) for the
// peer with AE title aeTitle: the certificate IssuePeer would make, for
// the request's public key, lasting validity (zero means
// DefaultPeerValidity). Everything in the request but its key is ignored:
// the AE binding comes from the caller (an enrolment token or the
// certificate being renewed), never from the request. The request must be
// signed by its key, which must be ECDSA P-256 or P-384, or RSA of at
// least 2048 bits; otherwise the error wraps ErrBadCSR.
func (ca *CA) IssueForCSR(csrDER []byte, aeTitle string, validity time.Duration) (*x509.Certificate, error) {
	ae, err := CheckAETitle(aeTitle)
	if err != nil {
		return nil, err
	}
	if strings.ContainsRune(ae, '/') {
		return nil, fmt.Errorf("pki: AE title %q: '/' is refused because bundle file names are made from the AE title", aeTitle)
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: its signature does not verify: %v", ErrBadCSR, err)
	}
	switch k := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, fmt.Errorf("%w: ECDSA keys must be on P-256 or P-384", ErrBadCSR)
		}
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("%w: an RSA key of %d bits; at least %d are needed", ErrBadCSR, k.N.BitLen(), minRSABits)
		}
	default:
		return nil, fmt.Errorf("%w: a %T key; use ECDSA P-256", ErrBadCSR, csr.PublicKey)
	}
	if validity <= 0 {
		validity = DefaultPeerValidity
	}
	return ca.issue(peerTemplate(ae), csr.PublicKey, validity)
}

// NewPeerKey makes a peer key, ECDSA P-256 as IssuePeer's, and returns it
// with its PKCS #8 PEM encoding. The key is made where it will be used:
// only a request signed with it leaves the machine.
func NewPeerKey() (crypto.Signer, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: generating a key: %w", err)
	}
	kp, err := keyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return key, kp, nil
}

// NewCSR returns a certificate signing request (DER) for key. The subject
// is informative only: the CA sets the AE binding itself.
func NewCSR(key crypto.Signer, cn string) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		return nil, fmt.Errorf("pki: making a certificate signing request: %w", err)
	}
	return der, nil
}

// EncodeCertPEM returns the PEM encoding of a DER certificate.
func EncodeCertPEM(der []byte) []byte { return certPEM(der) }

// ParseCertPEM returns the single certificate in data ("" names it in
// errors).
func ParseCertPEM(name string, data []byte) (*x509.Certificate, error) {
	return parseCertPEM(name, data)
}

// ReadKeyFile reads a PKCS #8 PEM private key, refusing a file others
// than its owner can access (as for the CA key).
func ReadKeyFile(path string) (crypto.Signer, error) {
	data, err := readPrivate(path)
	if err != nil {
		return nil, err
	}
	return parseKeyPEM(path, data)
}

// ReadCertFile reads a PEM file holding one certificate.
func ReadCertFile(path string) (*x509.Certificate, error) {
	data, err := readPublic(path)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	return parseCertPEM(path, data)
}

// CSRPEM and its type are the encoding of requests on the wire.
const pemCSR = "CERTIFICATE REQUEST"

// EncodeCSRPEM returns the PEM encoding of a DER request.
func EncodeCSRPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: pemCSR, Bytes: der})
}

// DecodeCSRPEM returns the DER request in data, or an error wrapping
// ErrBadCSR.
func DecodeCSRPEM(data []byte) ([]byte, error) {
	b, _ := pem.Decode(data)
	if b == nil || b.Type != pemCSR {
		return nil, fmt.Errorf("%w: no PEM %q block", ErrBadCSR, pemCSR)
	}
	return b.Bytes, nil
}

// RenewDue reports whether c has lived two thirds of its life at now, the
// point where server and peer certificates are renewed (see
// DefaultRenewBefore), or is not valid at now at all.
func RenewDue(c *x509.Certificate, now time.Time) bool {
	life := c.NotAfter.Sub(c.NotBefore)
	return now.Before(c.NotBefore) || !now.Before(c.NotBefore.Add(life*2/3))
}

// CertAETitle returns the AE title a certificate is bound to by its
// dicom-ae: URI. It does not verify the certificate.
func CertAETitle(c *x509.Certificate) (string, error) { return certAETitle(c) }

// FingerprintOf returns the SHA-256 fingerprint of a DER certificate in
// the form Fingerprint uses.
func FingerprintOf(der []byte) string { return fingerprint(der) }

// EnrolTLSConfig returns the TLS configuration of the enrolment listener.
// It presents the archive's server certificate (the one ServerTLSConfig
// presents, renewed the same way) followed by the CA certificate, so that
// a device that has no ca.pem yet can check the CA against the fingerprint
// in its enrolment token. A client certificate is asked for but not
// required: enrolment authenticates with a token, renewal with the
// current certificate, which is verified against this CA when sent.
// Session tickets are off, so every connection verifies its certificate
// afresh.
func (ca *CA) EnrolTLSConfig(hosts []string) (*tls.Config, error) {
	want, err := parseHosts(hosts)
	if err != nil {
		return nil, err
	}
	ca.mu.Lock()
	_, err = ca.serverCert(want)
	ca.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:             tls.VersionTLS12,
		CipherSuites:           tls12CipherSuites,
		ClientAuth:             tls.VerifyClientCertIfGiven,
		ClientCAs:              ca.Pool(),
		SessionTicketsDisabled: true,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			c, err := ca.handshakeCert(want)
			if err != nil {
				return nil, err
			}
			return &tls.Certificate{Certificate: [][]byte{c.Certificate[0], ca.cert.Raw}, PrivateKey: c.PrivateKey, Leaf: c.Leaf}, nil
		},
		Time: ca.clock,
	}, nil
}

// PinnedTLSConfig returns a client TLS configuration that accepts a
// server only if it presents a certificate for TLS servers issued by a CA
// whose SHA-256 fingerprint (as Fingerprint formats it; case and colons do
// not matter) is fp, that CA's certificate being sent by the server or
// given in known. Host names are not checked: the fingerprint, which the
// device got out of band, is the server's identity. certs are presented
// when the server asks for a client certificate.
func PinnedTLSConfig(fp string, known *x509.Certificate, certs []tls.Certificate) *tls.Config {
	want := normalizeFingerprint(fp)
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: certs,
		// Verification is VerifyConnection's: by the pinned CA, not by
		// the system's roots and a host name.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("pki: the server presented no certificate")
			}
			candidates := cs.PeerCertificates[1:]
			if known != nil {
				candidates = append([]*x509.Certificate{known}, candidates...)
			}
			for _, c := range candidates {
				if normalizeFingerprint(fingerprint(c.Raw)) != want || !c.IsCA {
					continue
				}
				roots := x509.NewCertPool()
				roots.AddCert(c)
				if _, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots,
					KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
					return fmt.Errorf("pki: the server's certificate is not from the expected CA: %w", err)
				}
				return nil
			}
			return fmt.Errorf("%w (%s)", ErrFingerprint, fp)
		},
	}
}

// normalizeFingerprint drops colons and case.
func normalizeFingerprint(fp string) string {
	return strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(fp), ":", ""))
}

// SameFingerprint reports whether two fingerprints are equal, ignoring
// case and colons.
func SameFingerprint(a, b string) bool {
	return normalizeFingerprint(a) == normalizeFingerprint(b) && normalizeFingerprint(a) != ""
}
