package pki

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// tls12CipherSuites are the suites offered in TLS 1.2: ECDHE key exchange
// (forward secrecy) with AES-GCM (AEAD) only. These are the suites of
// RFC 9325 and of PS3.15's BCP 195 profiles. TLS 1.3 suites are all AEAD
// and need no choice. The ECDSA suites serve no purpose with the RSA
// server key today, but they are listed so that the configuration stays
// valid if the key type changes.
var tls12CipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
}

// serverState is the server certificate in use.
type serverState struct {
	cert      *tls.Certificate // with Leaf set
	hosts     string           // hostSet.key of the names it was made for
	certStamp fileStamp        // server.pem when it was read or written
	keyStamp  fileStamp        // server.key likewise
	failedAt  time.Time        // last failed renewal during a handshake; zero if none
}

// DefaultHosts returns the names a server certificate is made for when none
// are given: this machine's host name (when it has one that is a valid DNS
// name), localhost, 127.0.0.1 and ::1.
func DefaultHosts() []string {
	var hosts []string
	if h, err := os.Hostname(); err == nil {
		if name, ok := dnsName(h); ok && name != "localhost" {
			hosts = append(hosts, name)
		}
	}
	return append(hosts, "localhost", "127.0.0.1", "::1")
}

// hostSet is a parsed, deduplicated list of host names and IP addresses.
type hostSet struct {
	dns []string
	ips []net.IP
	key string // canonical form, to compare two sets
}

// parseHosts parses host names and IP addresses (an IPv6 address may be in
// brackets). No hosts means DefaultHosts.
func parseHosts(hosts []string) (hostSet, error) {
	if len(hosts) == 0 {
		hosts = DefaultHosts()
	}
	var dns []string
	var ips []net.IP
	for _, h := range hosts {
		s := strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
		if ip := net.ParseIP(s); ip != nil {
			ips = append(ips, ip)
			continue
		}
		name, ok := dnsName(h)
		if !ok {
			return hostSet{}, fmt.Errorf("pki: %q is neither a host name nor an IP address (give no port or URL)", h)
		}
		dns = append(dns, name)
	}
	return newHostSet(dns, ips), nil
}

func newHostSet(dns []string, ips []net.IP) hostSet {
	var hs hostSet
	var keys []string
	for _, d := range dns {
		d = strings.ToLower(d)
		if !slices.Contains(hs.dns, d) {
			hs.dns = append(hs.dns, d)
			keys = append(keys, "dns:"+d)
		}
	}
	for _, ip := range ips {
		if v4 := ip.To4(); v4 != nil {
			ip = v4
		}
		if !slices.ContainsFunc(hs.ips, ip.Equal) {
			hs.ips = append(hs.ips, ip)
			keys = append(keys, "ip:"+ip.String())
		}
	}
	slices.Sort(keys)
	hs.key = strings.Join(keys, ",")
	return hs
}

// dnsName returns h lower-cased, without a final dot, if it is a valid
// host name: labels of letters, digits, '-' and '_' (found in some
// internal host names), an optional leading "*." wildcard, at most 253
// characters.
func dnsName(h string) (string, bool) {
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	if h == "" || len(h) > 253 {
		return "", false
	}
	for i, label := range strings.Split(h, ".") {
		if label == "*" && i == 0 {
			continue
		}
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", false
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", false
			}
		}
	}
	return h, true
}

// ServerCertificate returns the archive's TLS server certificate for
// hosts (host names and IP addresses; none means DefaultHosts). It loads
// ServerCertFile and ServerKeyFile from the CA directory. It issues and
// writes a new certificate when they are absent or unreadable, when the
// certificate was not issued by this CA, when it expires within
// DefaultRenewBefore, or when it was made for other hosts. A new
// certificate has an RSA key of ServerRSABits (see the package
// documentation for why), the hosts as subject alternative names,
// ExtKeyUsage ServerAuth, and lasts DefaultServerValidity.
//
// A server key file that others than its owner can read or write is
// refused, as for the CA key.
//
// One CA has one server certificate: calls with different hosts replace
// each other's certificate.
func (ca *CA) ServerCertificate(hosts []string) (tls.Certificate, error) {
	want, err := parseHosts(hosts)
	if err != nil {
		return tls.Certificate{}, err
	}
	ca.mu.Lock()
	defer ca.mu.Unlock()
	c, err := ca.serverCert(want)
	if err != nil {
		return tls.Certificate{}, err
	}
	return *c, nil
}

// serverCert returns the server certificate for want, loading or issuing
// it when the cached one does not do. ca.mu must be held.
func (ca *CA) serverCert(want hostSet) (*tls.Certificate, error) {
	now := ca.clock()
	if s := ca.server; s != nil && s.hosts == want.key && ca.serverUsable(s.cert.Leaf, now) && ca.unchangedOnDisk(s) {
		return s.cert, nil
	}
	s, err := ca.loadServer(want, now)
	if err != nil {
		return nil, err
	}
	if s == nil {
		if s, err = ca.issueServer(want); err != nil {
			return nil, err
		}
	}
	ca.server = s
	return s.cert, nil
}

// serverUsable reports whether leaf is valid at now and not due for
// renewal. A certificate that already ends with the CA is not renewed:
// a new one could not last longer.
func (ca *CA) serverUsable(leaf *x509.Certificate, now time.Time) bool {
	if now.Before(leaf.NotBefore) || !now.Before(leaf.NotAfter) {
		return false
	}
	return leaf.NotAfter.Sub(now) >= DefaultRenewBefore || !leaf.NotAfter.Before(ca.cert.NotAfter)
}

// unchangedOnDisk reports whether the server files are still those s was
// read from or written to. Another process (a renewal by hand) may have
// replaced them.
func (ca *CA) unchangedOnDisk(s *serverState) bool {
	c, ok1 := stampOf(filepath.Join(ca.dir, ServerCertFile))
	k, ok2 := stampOf(filepath.Join(ca.dir, ServerKeyFile))
	return ok1 && ok2 && c == s.certStamp && k == s.keyStamp
}

// loadServer reads the server certificate from disk. It returns nil, nil
// when the files are missing or unusable, so that a new one is issued,
// and an error only for what must not be papered over (a key file others
// can read).
func (ca *CA) loadServer(want hostSet, now time.Time) (*serverState, error) {
	certPath, keyPath := filepath.Join(ca.dir, ServerCertFile), filepath.Join(ca.dir, ServerKeyFile)
	// Stamp first: if a file is replaced after this, the next call sees
	// a different stamp and reads it again.
	cs, ok1 := stampOf(certPath)
	ks, ok2 := stampOf(keyPath)
	if !ok1 || !ok2 {
		return nil, nil
	}
	kp, err := readPrivate(keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	cp, err := readPublic(certPath)
	if err != nil {
		return nil, nil
	}
	pair, err := tls.X509KeyPair(cp, kp)
	if err != nil || pair.Leaf == nil || len(pair.Certificate) != 1 {
		return nil, nil
	}
	leaf := pair.Leaf
	if pub, ok := leaf.PublicKey.(*rsa.PublicKey); !ok || pub.N.BitLen() < ServerRSABits {
		return nil, nil
	}
	if newHostSet(leaf.DNSNames, leaf.IPAddresses).key != want.key || !ca.serverUsable(leaf, now) {
		return nil, nil
	}
	// The archive also presents this certificate as a client when it
	// sends C-MOVE sub-operations over TLS; older ones lack ClientAuth.
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		return nil, nil
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:       ca.pool,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return nil, nil
	}
	return &serverState{cert: &pair, hosts: want.key, certStamp: cs, keyStamp: ks}, nil
}

// issueServer issues a server certificate for want and writes it.
func (ca *CA) issueServer(want hostSet) (*serverState, error) {
	key, err := rsa.GenerateKey(rand.Reader, ServerRSABits)
	if err != nil {
		return nil, fmt.Errorf("pki: generating the server key: %w", err)
	}
	// The common name is only for display: clients check the subject
	// alternative names.
	cn := "dicomshield"
	if len(want.dns) > 0 {
		cn = want.dns[0]
	} else if len(want.ips) > 0 {
		cn = want.ips[0].String()
	}
	leaf, err := ca.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		DNSNames:    want.dns,
		IPAddresses: want.ips,
		// ECDHE only: the key signs the key exchange and never
		// decrypts, so no KeyEncipherment.
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}, key.Public(), DefaultServerValidity)
	if err != nil {
		return nil, err
	}
	kp, err := keyPEM(key)
	if err != nil {
		return nil, err
	}
	certPath, keyPath := filepath.Join(ca.dir, ServerCertFile), filepath.Join(ca.dir, ServerKeyFile)
	var st staged
	defer st.abort()
	if err := st.add(keyPath, kp, keyPerm); err != nil {
		return nil, fmt.Errorf("pki: writing the server key: %w", err)
	}
	if err := st.add(certPath, certPEM(leaf.Raw), certPerm); err != nil {
		return nil, fmt.Errorf("pki: writing the server certificate: %w", err)
	}
	if err := st.commit(false); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	cs, _ := stampOf(certPath)
	ks, _ := stampOf(keyPath)
	return &serverState{
		cert:      &tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf},
		hosts:     want.key,
		certStamp: cs,
		keyStamp:  ks,
	}, nil
}

// ServerTLSConfig returns the TLS configuration of the archive's DICOM
// listeners (PS3.15 BCP 195 profiles). TLS 1.2 is the minimum, TLS 1.3
// is preferred, and TLS 1.2 offers only ECDHE AES-GCM suites. A client
// certificate issued by this CA is required and verified: PeerAETitle
// then tells which peer connected. hosts are as for ServerCertificate.
//
// The server certificate is chosen at each handshake (GetCertificate), so
// a renewed certificate is used without a restart. The certificate is
// renewed during a handshake when it is due, or read again when its files
// change on disk. If a renewal fails while the current certificate is
// still valid, the current one is used and renewal is tried again after
// renewRetryInterval.
//
// The first certificate is loaded or issued before ServerTLSConfig
// returns, so a problem shows at start-up, not at the first peer's
// connection.
func (ca *CA) ServerTLSConfig(hosts []string) (*tls.Config, error) {
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
		MinVersion:   tls.VersionTLS12,
		CipherSuites: tls12CipherSuites,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.Pool(),
		// No resumption: every association's handshake verifies the
		// client certificate afresh, and the archive checks its serial
		// against the registry (revocation) at every association.
		SessionTicketsDisabled: true,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return ca.handshakeCert(want)
		},
		Time: ca.clock,
	}, nil
}

// handshakeCert returns the server certificate for one handshake.
func (ca *CA) handshakeCert(want hostSet) (*tls.Certificate, error) {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	now := ca.clock()
	s := ca.server
	valid := s != nil && s.hosts == want.key && !now.Before(s.cert.Leaf.NotBefore) && now.Before(s.cert.Leaf.NotAfter)
	if valid && !s.failedAt.IsZero() && now.Sub(s.failedAt) < renewRetryInterval {
		return s.cert, nil
	}
	c, err := ca.serverCert(want)
	if err == nil {
		return c, nil
	}
	if valid {
		s.failedAt = now
		return s.cert, nil
	}
	return nil, err
}

// ClientTLSConfig returns the TLS configuration with which the archive
// connects to a registered peer that receives C-MOVE sub-operations over
// TLS: it presents the server certificate (which carries ClientAuth too)
// and accepts only a certificate issued by this CA and bound to ae. Host
// names are not checked: the peer's identity is its AE title binding.
func (ca *CA) ClientTLSConfig(ae string, hosts []string) (*tls.Config, error) {
	want, err := parseHosts(hosts)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return ca.handshakeCert(want)
		},
		// Verification is VerifyConnection's: chain to this CA and the AE
		// binding, in place of a host name the peer's certificate lacks.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return ca.VerifyPeerServer(&cs, ae)
		},
	}, nil
}

// VerifyPeerServer checks that the server of a connection the archive
// opened presented a certificate of this CA, usable for TLS servers, and
// bound to the AE title ae.
func (ca *CA) VerifyPeerServer(cs *tls.ConnectionState, ae string) error {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return errors.New("pki: the peer presented no certificate")
	}
	leaf := cs.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.pool, Intermediates: inter, CurrentTime: ca.clock(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return fmt.Errorf("pki: the peer's certificate is not one of this archive's: %w", err)
	}
	got, err := certAETitle(leaf)
	if err != nil {
		return err
	}
	if got != ae {
		return fmt.Errorf("pki: the peer presented the certificate of %q, not %q", got, ae)
	}
	return nil
}
