package scan

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// DefaultHTTPPorts are where Orthanc's REST API is looked for: 8042 is
// its default HttpPort.
var DefaultHTTPPorts = []int{8042}

const (
	// httpTimeout bounds one GET /system: a local REST API answers in
	// milliseconds.
	httpTimeout = 3 * time.Second
	// maxHTTPBody bounds the /system answer read (Orthanc's is ~1 KiB).
	maxHTTPBody = 64 << 10
)

// OrthancSystem is what Orthanc's GET /system says of itself.
type OrthancSystem struct {
	Name      string
	Version   string
	DicomAet  string
	DicomPort int
	HTTPPort  int `json:"-"` // where it answered
}

// httpCache looks up each host's REST API once per scan, in the
// background from the moment a service of the host answers in DICOM, so
// that the lookup (a connect timeout, when a firewall drops the port)
// overlaps the association ladder instead of following it.
type httpCache struct {
	mu sync.Mutex
	m  map[netip.Addr]*httpEntry
	cl *http.Client // shared: no keep-alives, no proxy, no redirects
}

type httpEntry struct {
	done chan struct{}    // closed when sys is set
	sys  []*OrthancSystem // every REST API that answered on the host
}

func newHTTPCache(connectTimeout time.Duration) *httpCache {
	return &httpCache{m: map[netip.Addr]*httpEntry{}, cl: &http.Client{
		Timeout:       httpTimeout,
		Transport:     &http.Transport{DisableKeepAlives: true, DialContext: (&net.Dialer{Timeout: connectTimeout}).DialContext, Proxy: nil},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// start begins the lookup of host, once per scan; lookup waits for it.
func (c *httpCache) start(ctx context.Context, s *Scanner, host netip.Addr) *httpEntry {
	c.mu.Lock()
	e := c.m[host]
	if e == nil {
		e = &httpEntry{done: make(chan struct{})}
		c.m[host] = e
		go func() {
			defer close(e.done)
			for _, port := range s.o.HTTPPorts {
				if sys := orthancSystem(ctx, s, host, port); sys != nil {
					e.sys = append(e.sys, sys)
				}
			}
		}()
	}
	c.mu.Unlock()
	return e
}

// lookup returns the /system answer of the Orthanc on host whose DICOM
// port is dicomPort, or nil.
func (c *httpCache) lookup(ctx context.Context, s *Scanner, host netip.Addr, dicomPort int) *OrthancSystem {
	if len(s.o.HTTPPorts) == 0 {
		return nil
	}
	e := c.start(ctx, s, host)
	<-e.done // bounded by the HTTP timeout, and ends with ctx
	for _, sys := range e.sys {
		if sys.DicomPort == dicomPort {
			return sys
		}
	}
	return nil
}

// orthancSystem asks http://host:port/system without credentials. Only an
// answer with Orthanc's fields counts.
func orthancSystem(ctx context.Context, s *Scanner, host netip.Addr, port int) *OrthancSystem {
	if s.limit.wait(ctx) != nil {
		return nil
	}
	u := "http://" + net.JoinHostPort(host.String(), strconv.Itoa(port)) + "/system"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil
	}
	req.Header.Set("User-Agent", "dicomshield-scan")
	resp, err := s.http.cl.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	return parseOrthancSystem(io.LimitReader(resp.Body, maxHTTPBody), port)
}

// parseOrthancSystem decodes a /system answer; nil unless it carries
// Orthanc's Version and DicomAet.
func parseOrthancSystem(r io.Reader, port int) *OrthancSystem {
	var sys OrthancSystem
	if err := json.NewDecoder(r).Decode(&sys); err != nil || sys.Version == "" || sys.DicomAet == "" {
		return nil
	}
	sys.Version, sys.DicomAet, sys.Name = printable(sys.Version), printable(sys.DicomAet), printable(sys.Name)
	sys.HTTPPort = port
	return &sys
}

// identify names the product: from the implementation identity of the
// association, refined by Orthanc's REST API when the host has one whose
// DICOM port is this service's.
func (s *Scanner) identify(ctx context.Context, p *probe) {
	r := p.r
	r.Product = Identify(r.Implementation.ClassUID, r.Implementation.VersionName)
	if !r.DICOM {
		return
	}
	sys := s.http.lookup(ctx, s, p.ep.Addr, p.ep.Port)
	if sys == nil {
		return
	}
	ev := fmt.Sprintf("HTTP GET /system on port %d answered without credentials (Orthanc %s, DicomAet %s, DicomPort %d)", sys.HTTPPort, sys.Version, sys.DicomAet, sys.DicomPort)
	if r.Product != nil {
		ev += "; " + r.Product.Evidence
	}
	r.Product = &Product{Name: "Orthanc", Version: sys.Version, Evidence: ev, CVEs: CVEs("Orthanc", sys.Version)}
	r.OrthancREST = true
}

// tlsInfo describes a TLS connection state.
func tlsInfo(cs *tls.ConnectionState) TLSInfo {
	t := TLSInfo{Enabled: true, Version: tls.VersionName(cs.Version), Cipher: tls.CipherSuiteName(cs.CipherSuite)}
	for i, c := range cs.PeerCertificates {
		ci := certInfo(c)
		if i == 0 {
			t.Cert = &ci
		}
		t.Chain = append(t.Chain, ci)
	}
	return t
}

func certInfo(c *x509.Certificate) CertInfo {
	sum := sha256.Sum256(c.Raw)
	ci := CertInfo{Subject: c.Subject.String(), Issuer: c.Issuer.String(), NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(),
		SHA256: hex.EncodeToString(sum[:])}
	ci.SelfSigned = c.Subject.String() == c.Issuer.String() && c.CheckSignatureFrom(c) == nil
	switch k := c.PublicKey.(type) {
	case *rsa.PublicKey:
		ci.KeyType, ci.KeyBits = "RSA", k.N.BitLen()
	case *ecdsa.PublicKey:
		ci.KeyType, ci.KeyBits = "ECDSA", k.Curve.Params().BitSize
	case ed25519.PublicKey:
		ci.KeyType, ci.KeyBits = "Ed25519", 256
	default:
		ci.KeyType = fmt.Sprintf("%T", k)
	}
	return ci
}
