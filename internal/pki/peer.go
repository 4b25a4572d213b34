package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// CheckAETitle checks ae against PS3.5's AE value representation: 1 to
// MaxAETitleLength characters of the default character repertoire
// (printable ASCII) other than the backslash, not only spaces. It returns
// the AE title without its leading and trailing spaces, which are not
// significant.
func CheckAETitle(ae string) (string, error) {
	if len(ae) == 0 || len(ae) > MaxAETitleLength {
		return "", fmt.Errorf("pki: AE title %q: an AE title has 1 to %d characters", ae, MaxAETitleLength)
	}
	for _, c := range []byte(ae) {
		if c < 0x20 || c > 0x7E || c == '\\' {
			return "", fmt.Errorf("pki: AE title %q: an AE title holds printable ASCII characters other than the backslash", ae)
		}
	}
	t := strings.Trim(ae, " ")
	if t == "" {
		return "", fmt.Errorf("pki: AE title %q: an AE title cannot be only spaces", ae)
	}
	return t, nil
}

// PeerFileBase returns the base name of the certificate and key files
// that IssuePeer writes for the AE title ae (<base>.crt, <base>.key). It
// is the AE title without its insignificant spaces, with every character
// other than an ASCII letter, a digit, '-', '_' and '.' replaced by '_'. A
// leading '.' or '-' is replaced too. The name is then a plain file name
// on every system, and a command line cannot take it for an option. The
// AE title in the certificate is not changed.
func PeerFileBase(ae string) string {
	b := []byte(strings.Trim(ae, " "))
	for i, c := range b {
		ok := c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' ||
			(c == '-' || c == '.') && i > 0
		if !ok {
			b[i] = '_'
		}
	}
	return string(b)
}

// aeURI is the subject alternative name that binds a certificate to ae.
func aeURI(ae string) *url.URL {
	return &url.URL{Scheme: AEURIScheme, Opaque: url.PathEscape(ae)}
}

// IssuePeer issues a client certificate for the DICOM peer with AE title
// aeTitle and writes a bundle into bundleDir, which is created with mode
// 0700 if needed:
//
//	ca.pem     the CA certificate, to verify the archive (mode 0644)
//	<AE>.crt   the peer's certificate (PEM, mode 0644)
//	<AE>.key   the peer's ECDSA P-256 private key (PKCS #8 PEM, not
//	           encrypted, mode 0600)
//
// where <AE> is PeerFileBase(aeTitle). DCMTK tools use the bundle as it
// is: echoscu +tls AE.key AE.crt +cf ca.pem HOST PORT. Files already in
// bundleDir with these names are replaced.
//
// The certificate binds the peer to its AE title twice. The subject common
// name is the AE title, and a URI subject alternative name
// "dicom-ae:<AE title>" holds it percent-encoded (RFC 3986; "MY AE" becomes
// dicom-ae:MY%20AE). The URI is the binding PeerAETitle reads. The common
// name is for people and for tools that show only the subject. The
// certificate has ExtKeyUsage ClientAuth and lasts DefaultPeerValidity.
//
// The AE title is checked first (CheckAETitle). IssuePeer also refuses an
// AE title with '/', because the files are named after it: "../x" names a
// path, not a device. It refuses bundleDir when that is the CA directory:
// an AE title such as "ca" would replace the CA key. Nothing is written
// when it refuses.
//
// It returns the certificate's serial number as Serial formats it, for the
// peer registry.
func (ca *CA) IssuePeer(aeTitle, bundleDir string) (serial string, err error) {
	ae, err := CheckAETitle(aeTitle)
	if err != nil {
		return "", err
	}
	if strings.ContainsRune(ae, '/') {
		return "", fmt.Errorf("pki: AE title %q: '/' is refused because the bundle's file names are made from the AE title", aeTitle)
	}
	if bundleDir == "" {
		return "", errors.New("pki: no bundle directory given")
	}
	if err := os.MkdirAll(bundleDir, dirPerm); err != nil {
		return "", fmt.Errorf("pki: creating the bundle directory: %w", err)
	}
	if same, err := sameDir(bundleDir, ca.dir); err != nil {
		return "", err
	} else if same {
		return "", fmt.Errorf("pki: the bundle directory %s is the CA directory: give a directory of its own to each peer", bundleDir)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", fmt.Errorf("pki: generating the peer key: %w", err)
	}
	cert, err := ca.issue(peerTemplate(ae), key.Public(), DefaultPeerValidity)
	if err != nil {
		return "", err
	}
	kp, err := keyPEM(key)
	if err != nil {
		return "", err
	}
	if err := WriteBundle(bundleDir, ae, ca.certPEM, certPEM(cert.Raw), kp); err != nil {
		return "", err
	}
	return Serial(cert), nil
}

// peerTemplate is the certificate of the peer with AE title ae (checked):
// the AE title as common name and as the dicom-ae: URI.
func peerTemplate(ae string) *x509.Certificate {
	return &x509.Certificate{
		Subject:  pkix.Name{CommonName: ae},
		URIs:     []*url.URL{aeURI(ae)},
		KeyUsage: x509.KeyUsageDigitalSignature,
		// ServerAuth too: a peer may use its bundle for its own TLS
		// listener when it receives C-MOVE sub-operations.
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}
}

// WriteBundle writes a peer bundle into dir (created with mode 0700 if
// needed): caPEM as ca.pem (0644), certPEM as <AE>.crt (0644) and keyPEM
// as <AE>.key (0600), <AE> being PeerFileBase(ae). The three files are
// written to temporary names first and then renamed into place, so a
// failure leaves the previous bundle whole. It is the layout IssuePeer
// writes and DCMTK reads (+tls AE.key AE.crt +cf ca.pem).
func WriteBundle(dir, ae string, caPEM, certPEM, keyPEM []byte) error {
	if dir == "" {
		return errors.New("pki: no bundle directory given")
	}
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return fmt.Errorf("pki: creating the bundle directory: %w", err)
	}
	base := filepath.Join(dir, PeerFileBase(ae))
	var st staged
	defer st.abort()
	for _, f := range []struct {
		path string
		data []byte
		perm os.FileMode
	}{
		{filepath.Join(dir, CACertFile), caPEM, certPerm},
		{base + ".crt", certPEM, certPerm},
		{base + ".key", keyPEM, keyPerm},
	} {
		if err := st.add(f.path, f.data, f.perm); err != nil {
			return fmt.Errorf("pki: writing the peer bundle: %w", err)
		}
	}
	if err := st.commit(false); err != nil {
		return fmt.Errorf("pki: writing the peer bundle: %w", err)
	}
	return nil
}

func sameDir(a, b string) (bool, error) {
	sa, err := os.Stat(a)
	if err != nil {
		return false, fmt.Errorf("pki: %w", err)
	}
	sb, err := os.Stat(b)
	if err != nil {
		return false, fmt.Errorf("pki: %w", err)
	}
	return os.SameFile(sa, sb), nil
}

// PeerAETitle returns the AE title that the client certificate of a TLS
// connection is bound to. This is the AE title of the URI subject
// alternative name dicom-ae:, or the subject common name when the
// certificate has no such URI.
//
// It returns an error when the handshake is not complete, when the peer
// sent no certificate, or when the certificate was not verified. A
// certificate is verified only against the tls.Config's ClientCAs, which
// in a configuration from ServerTLSConfig is the archive's CA alone. So
// with such a configuration, a verified certificate is one this CA
// issued. Use PeerAETitle with that configuration only.
func PeerAETitle(cs *tls.ConnectionState) (string, error) {
	switch {
	case cs == nil || !cs.HandshakeComplete:
		return "", errors.New("pki: the TLS handshake is not complete")
	case len(cs.PeerCertificates) == 0:
		return "", errors.New("pki: the peer sent no client certificate")
	case len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0:
		return "", errors.New("pki: the peer's certificate was not verified against the archive's CA")
	}
	leaf := cs.VerifiedChains[0][0]
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		return "", errors.New("pki: the peer's certificate is not a client certificate")
	}
	return certAETitle(leaf)
}

// certAETitle returns the AE title c is bound to.
func certAETitle(c *x509.Certificate) (string, error) {
	var found []string
	for _, u := range c.URIs {
		if !strings.EqualFold(u.Scheme, AEURIScheme) {
			continue
		}
		ae, err := url.PathUnescape(u.Opaque)
		if err != nil || u.Opaque == "" {
			return "", fmt.Errorf("pki: certificate %s: malformed AE title URI %q", Serial(c), u)
		}
		found = append(found, ae)
	}
	if len(found) > 1 {
		return "", fmt.Errorf("pki: certificate %s names %d AE titles; it must name one", Serial(c), len(found))
	}
	if len(found) == 0 {
		// No fallback to the common name: every peer certificate this CA
		// issues carries the URI, and the archive's own server certificate
		// (which has a common name but no URI) must never pass for a peer.
		return "", fmt.Errorf("pki: certificate %s is bound to no AE title (no %s: URI)", Serial(c), AEURIScheme)
	}
	ae, err := CheckAETitle(found[0])
	if err != nil {
		return "", fmt.Errorf("pki: certificate %s: %w", Serial(c), err)
	}
	return ae, nil
}
