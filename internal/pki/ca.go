package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// CA is the archive's internal certificate authority, kept in a directory
// (the data directory's pki/ folder). It issues the archive's TLS server
// certificate and the peers' client certificates, and verifies the peers.
//
// The zero CA is not usable: get one from LoadOrCreate. A CA is safe for
// concurrent use.
type CA struct {
	dir         string
	cert        *x509.Certificate
	certPEM     []byte
	key         crypto.Signer
	pool        *x509.CertPool
	fingerprint string

	// now is the clock used for issuing and checking certificates. nil
	// means time.Now. Tests set it before they use the CA.
	now func() time.Time

	mu     sync.Mutex   // guards server
	server *serverState // the current server certificate, nil until loaded or issued
}

// LoadOrCreate loads the CA from dir. If dir holds neither CAKeyFile nor
// CACertFile, it creates a CA there: an ECDSA P-256 key (ca.key, mode
// 0600) and a self-signed certificate (ca.pem) for DefaultCAValidity, with
// the common name "dicomshield CA <random id>". dir is created with mode
// 0700 if needed. created reports whether the CA is new.
//
// LoadOrCreate refuses, with an error that names the file and the fix:
//   - a CA key file that its owner is not the only one able to read or
//     write (mode other than 0600 or 0400);
//   - a directory that others can write to (they could replace the CA);
//   - one of the two files without the other. LoadOrCreate never makes a
//     new CA next to an existing key or certificate, because the peers
//     trust the old one;
//   - a CA certificate that has expired, or that does not match the key.
func LoadOrCreate(dir string) (ca *CA, created bool, err error) {
	if dir == "" {
		return nil, false, errors.New("pki: no CA directory given")
	}
	keyPath, certPath := filepath.Join(dir, CAKeyFile), filepath.Join(dir, CACertFile)
	keyExists, err := exists(keyPath)
	if err != nil {
		return nil, false, err
	}
	certExists, err := exists(certPath)
	if err != nil {
		return nil, false, err
	}
	switch {
	case keyExists && certExists:
		ca, err := load(dir, time.Now())
		return ca, false, err
	case keyExists:
		return nil, false, fmt.Errorf("pki: %s exists but %s does not: restore %s from a backup "+
			"(or, if no peer was ever enrolled, remove %s to create a new CA)", keyPath, certPath, CACertFile, keyPath)
	case certExists:
		return nil, false, fmt.Errorf("pki: %s exists but %s does not: restore %s from a backup "+
			"(or remove %s to create a new CA; every peer must then be enrolled again)", certPath, keyPath, CAKeyFile, certPath)
	}
	ca, err = create(dir, time.Now())
	if errors.Is(err, fs.ErrExist) {
		// Another process created the CA at the same moment: use it.
		ca, err = load(dir, time.Now())
		return ca, false, err
	}
	return ca, err == nil, err
}

func exists(path string) (bool, error) {
	_, err := os.Lstat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("pki: %w", err)
	}
}

func create(dir string, now time.Time) (*CA, error) {
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return nil, fmt.Errorf("pki: creating the CA directory: %w", err)
	}
	// The directory may have existed, with looser permissions: it is
	// about to hold the CA key.
	if err := os.Chmod(dir, dirPerm); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: generating the CA key: %w", err)
	}
	id := make([]byte, caIDBytes)
	if _, err := rand.Read(id); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "dicomshield CA " + hex.EncodeToString(id)},
		NotBefore:    now.Add(-ClockSkewAllowance),
		NotAfter:     now.Add(DefaultCAValidity),
		KeyUsage:     x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		IsCA:         true,
		// The CA signs end-entity certificates only, never another CA.
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("pki: creating the CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	kp, err := keyPEM(key)
	if err != nil {
		return nil, err
	}
	var st staged
	defer st.abort()
	if err := st.add(filepath.Join(dir, CAKeyFile), kp, keyPerm); err != nil {
		return nil, fmt.Errorf("pki: writing the CA key: %w", err)
	}
	if err := st.add(filepath.Join(dir, CACertFile), certPEM(der), certPerm); err != nil {
		return nil, fmt.Errorf("pki: writing the CA certificate: %w", err)
	}
	if err := st.commit(true); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	return newCA(dir, cert, key), nil
}

func load(dir string, now time.Time) (*CA, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	if tooOpen(st.Mode(), 0o022) {
		return nil, fmt.Errorf("pki: CA directory %s has mode %04o: others could replace the CA's files; run chmod 700 %s",
			dir, st.Mode().Perm(), dir)
	}
	keyPath, certPath := filepath.Join(dir, CAKeyFile), filepath.Join(dir, CACertFile)
	kp, err := readPrivate(keyPath)
	if err != nil {
		return nil, err
	}
	key, err := parseKeyPEM(keyPath, kp)
	if err != nil {
		return nil, err
	}
	cp, err := readPublic(certPath)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	cert, err := parseCertPEM(certPath, cp)
	if err != nil {
		return nil, err
	}
	if !cert.IsCA || !cert.BasicConstraintsValid {
		return nil, fmt.Errorf("pki: %s is not a CA certificate", certPath)
	}
	if err := cert.CheckSignatureFrom(cert); err != nil {
		return nil, fmt.Errorf("pki: %s is not a self-signed CA certificate: %w", certPath, err)
	}
	if pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(key.Public()) {
		return nil, fmt.Errorf("pki: %s and %s do not belong together: the key is not the certificate's", keyPath, certPath)
	}
	if now.After(cert.NotAfter) {
		return nil, fmt.Errorf("pki: the CA certificate %s expired on %s: move %s and %s away to create a new CA "+
			"(every peer must then be enrolled again)", certPath, cert.NotAfter.Format(time.DateOnly), CAKeyFile, CACertFile)
	}
	return newCA(dir, cert, key), nil
}

func newCA(dir string, cert *x509.Certificate, key crypto.Signer) *CA {
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{
		dir:         dir,
		cert:        cert,
		certPEM:     certPEM(cert.Raw),
		key:         key,
		pool:        pool,
		fingerprint: fingerprint(cert.Raw),
	}
}

// fingerprint formats the SHA-256 of der as upper-case hex bytes separated
// by colons, as "openssl x509 -noout -fingerprint -sha256" prints it, so
// that a person can compare the two.
func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	var b strings.Builder
	for i, c := range sum {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02X", c)
	}
	return b.String()
}

// randomSerial returns a positive random serial number of at most
// serialBytes bytes.
func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 8*serialBytes)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("pki: serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// Serial formats the serial number of c as upper-case hex, two digits per
// byte, as "openssl x509 -noout -serial" prints it. IssuePeer returns peer
// serials in this form.
func Serial(c *x509.Certificate) string {
	return strings.ToUpper(hex.EncodeToString(c.SerialNumber.Bytes()))
}

func (ca *CA) clock() time.Time {
	if ca.now != nil {
		return ca.now()
	}
	return time.Now()
}

// Certificate returns the CA certificate. The caller must not modify it.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// CertPEM returns the CA certificate in PEM, as in ca.pem.
func (ca *CA) CertPEM() []byte { return append([]byte(nil), ca.certPEM...) }

// Fingerprint returns the SHA-256 fingerprint of the CA certificate:
// upper-case hex bytes separated by colons, as "openssl x509 -noout
// -fingerprint -sha256 -in ca.pem" prints it. It identifies the CA to a
// person, and later to enrolment tokens.
func (ca *CA) Fingerprint() string { return ca.fingerprint }

// Pool returns a new pool holding only the CA certificate. The caller may
// add to it without changing what the CA trusts.
func (ca *CA) Pool() *x509.CertPool { return ca.pool.Clone() }

// Dir returns the directory the CA was loaded from.
func (ca *CA) Dir() string { return ca.dir }

// issue signs tmpl for pub, with a new serial number and a validity that
// starts ClockSkewAllowance ago and lasts validity, but never outlives the
// CA.
func (ca *CA) issue(tmpl *x509.Certificate, pub crypto.PublicKey, validity time.Duration) (*x509.Certificate, error) {
	now := ca.clock()
	if !now.Before(ca.cert.NotAfter) {
		return nil, fmt.Errorf("pki: the CA certificate expired on %s; no certificate can be issued",
			ca.cert.NotAfter.Format(time.DateOnly))
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = now.Add(-ClockSkewAllowance)
	if tmpl.NotBefore.Before(ca.cert.NotBefore) {
		tmpl.NotBefore = ca.cert.NotBefore
	}
	tmpl.NotAfter = now.Add(validity)
	if tmpl.NotAfter.After(ca.cert.NotAfter) {
		tmpl.NotAfter = ca.cert.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("pki: issuing a certificate: %w", err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	return c, nil
}
