package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"maps"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dicomshield/dicomshield/internal/dicomtest"
)

// fakeClock is a settable clock for CA.now and tls.Config.Time.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.set(t)
	return c
}

func (c *fakeClock) set(t time.Time) { c.ns.Store(t.UnixNano()) }
func (c *fakeClock) now() time.Time  { return time.Unix(0, c.ns.Load()) }

// makeCA creates a CA in a new directory.
func makeCA(t *testing.T) *CA {
	t.Helper()
	ca, created, err := LoadOrCreate(filepath.Join(t.TempDir(), "pki"))
	if err != nil {
		t.Fatal(err)
	}
	if !created {
		t.Fatal("LoadOrCreate on an empty directory: created = false")
	}
	return ca
}

func reload(t *testing.T, ca *CA) *CA {
	t.Helper()
	again, created, err := LoadOrCreate(ca.dir)
	if err != nil {
		t.Fatal(err)
	}
	if created {
		t.Fatal("reloading an existing CA: created = true")
	}
	again.now = ca.now
	return again
}

func mode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

// listTree returns every path under root, relative to it, sorted.
func listTree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != root {
			rel, _ := filepath.Rel(root, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := parseCertPEM(path, data)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var fingerprintRE = regexp.MustCompile(`^([0-9A-F]{2}:){31}[0-9A-F]{2}$`)

func TestLoadOrCreate(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "pki")
	// A directory that exists with loose permissions is tightened when
	// the CA is created in it.
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ca, created, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !created {
		t.Fatal("created = false for a new CA")
	}
	for _, c := range []struct {
		path string
		want fs.FileMode
	}{
		{dir, dirPerm},
		{filepath.Join(dir, CAKeyFile), keyPerm},
		{filepath.Join(dir, CACertFile), certPerm},
	} {
		if got := mode(t, c.path); got != c.want {
			t.Errorf("%s: mode %04o, want %04o", c.path, got, c.want)
		}
	}
	if got := listTree(t, dir); !slices.Equal(got, []string{CAKeyFile, CACertFile}) {
		t.Errorf("CA directory holds %v, want only %s and %s", got, CAKeyFile, CACertFile)
	}

	cert := ca.Certificate()
	if !regexp.MustCompile(`^dicomshield CA [0-9a-f]{8}$`).MatchString(cert.Subject.CommonName) {
		t.Errorf("CA common name %q, want \"dicomshield CA <8 hex digits>\"", cert.Subject.CommonName)
	}
	if !cert.IsCA || !cert.BasicConstraintsValid || !cert.MaxPathLenZero || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("CA certificate: IsCA %v, basic constraints %v, MaxPathLenZero %v, key usage %b",
			cert.IsCA, cert.BasicConstraintsValid, cert.MaxPathLenZero, cert.KeyUsage)
	}
	if pub, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("CA key is %T, want ECDSA P-256", cert.PublicKey)
	}
	if got := cert.NotAfter.Sub(cert.NotBefore); got != DefaultCAValidity+ClockSkewAllowance {
		t.Errorf("CA validity %v, want %v", got, DefaultCAValidity+ClockSkewAllowance)
	}
	fp := ca.Fingerprint()
	sum := sha256.Sum256(cert.Raw)
	if !fingerprintRE.MatchString(fp) || strings.ReplaceAll(fp, ":", "") != strings.ToUpper(hex.EncodeToString(sum[:])) {
		t.Errorf("fingerprint %q is not the SHA-256 of the certificate as XX:XX:...", fp)
	}
	onDisk, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ca.CertPEM(), onDisk) {
		t.Error("CertPEM differs from ca.pem")
	}

	again := reload(t, ca)
	if again.Fingerprint() != fp {
		t.Errorf("reloaded CA has fingerprint %s, want %s", again.Fingerprint(), fp)
	}
	if !bytes.Equal(again.CertPEM(), ca.CertPEM()) {
		t.Error("reloaded CA has another certificate")
	}

	// Pool is the caller's: adding to it does not change what the CA
	// trusts.
	other := makeCA(t)
	p := ca.Pool()
	p.AddCert(other.Certificate())
	if _, err := other.Certificate().Verify(x509.VerifyOptions{Roots: ca.Pool()}); err == nil {
		t.Error("adding to a pool from Pool changed the CA's pool")
	}
}

func TestLoadOrCreateRefuses(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		prepare func(t *testing.T, dir string)
		want    []string // substrings of the error; nil means success
	}{
		{"key mode 0600", chmod(CAKeyFile, 0o600), nil},
		{"key mode 0400", chmod(CAKeyFile, 0o400), nil},
		{"key mode 0644", chmod(CAKeyFile, 0o644), []string{CAKeyFile, "0644", "chmod 600"}},
		{"key mode 0640", chmod(CAKeyFile, 0o640), []string{CAKeyFile, "chmod 600"}},
		{"key mode 0604", chmod(CAKeyFile, 0o604), []string{CAKeyFile, "chmod 600"}},
		{"key mode 0620", chmod(CAKeyFile, 0o620), []string{CAKeyFile, "chmod 600"}},
		{"directory writable by others", chmodDir(0o777), []string{"chmod 700"}},
		{"directory readable by others", chmodDir(0o755), nil},
		{"certificate missing", remove(CACertFile), []string{CACertFile, "does not", "backup"}},
		{"key missing", remove(CAKeyFile), []string{CAKeyFile, "does not", "backup"}},
		{"key of another CA", func(t *testing.T, dir string) {
			other := makeCA(t)
			copyFile(t, filepath.Join(other.dir, CAKeyFile), filepath.Join(dir, CAKeyFile))
		}, []string{"do not belong together"}},
		{"certificate corrupt", writeFile(CACertFile, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), []string{CACertFile}},
		{"certificate not PEM", writeFile(CACertFile, "hello"), []string{CACertFile, "PEM"}},
		{"key not PEM", writeFile(CAKeyFile, "hello"), []string{CAKeyFile, "PEM"}},
		{"CA expired", func(t *testing.T, dir string) {
			key := readKey(t, filepath.Join(dir, CAKeyFile))
			tmpl := &x509.Certificate{
				SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "dicomshield CA old"},
				NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour),
				IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
			}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, CACertFile), certPEM(der), 0o644); err != nil {
				t.Fatal(err)
			}
		}, []string{"expired"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ca := makeCA(t)
			dir := ca.dir
			c.prepare(t, dir)
			before := snapshot(t, dir)
			got, created, err := LoadOrCreate(dir)
			if c.want == nil {
				if err != nil {
					t.Fatalf("LoadOrCreate: %v", err)
				}
				if created || got.Fingerprint() != ca.Fingerprint() {
					t.Fatalf("LoadOrCreate made a new CA (created %v)", created)
				}
				return
			}
			if err == nil {
				t.Fatalf("LoadOrCreate accepted it (created %v)", created)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if after := snapshot(t, dir); !maps.Equal(before, after) {
				t.Errorf("a refused LoadOrCreate changed the directory:\nbefore %v\nafter  %v", keys(before), keys(after))
			}
		})
	}
}

func chmod(name string, m fs.FileMode) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		if err := os.Chmod(filepath.Join(dir, name), m); err != nil {
			t.Fatal(err)
		}
	}
}

func chmodDir(m fs.FileMode) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		if err := os.Chmod(dir, m); err != nil {
			t.Fatal(err)
		}
	}
}

func remove(name string) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

func writeFile(name, content string) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func readKey(t *testing.T, path string) *ecdsa.PrivateKey {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	k, err := parseKeyPEM(path, data)
	if err != nil {
		t.Fatal(err)
	}
	return k.(*ecdsa.PrivateKey)
}

// snapshot maps every file under dir to its content and mode.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, p := range listTree(t, dir) {
		full := filepath.Join(dir, p)
		st, err := os.Stat(full)
		if err != nil {
			t.Fatal(err)
		}
		data := ""
		if st.Mode().IsRegular() {
			b, err := os.ReadFile(full)
			if err != nil {
				t.Fatal(err)
			}
			data = string(b)
		}
		m[p] = st.Mode().String() + "\x00" + data
	}
	return m
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestServerCertificate walks one CA through a sequence of calls, each
// saying whether the certificate must be the previous one or a new one.
func TestServerCertificate(t *testing.T) {
	t.Parallel()
	t0 := time.Now()
	clock := newFakeClock(t0)
	ca := makeCA(t)
	ca.now = clock.now
	custom := []string{"pacs.example.org", "10.0.0.5", "[fd00::5]"}
	customSANs := []string{"dns:pacs.example.org", "ip:10.0.0.5", "ip:fd00::5"}
	var defaultSANs []string
	for _, h := range DefaultHosts() {
		if ip := net.ParseIP(h); ip != nil {
			defaultSANs = append(defaultSANs, "ip:"+ip.String())
		} else {
			defaultSANs = append(defaultSANs, "dns:"+h)
		}
	}
	slices.Sort(defaultSANs)
	serverKey := filepath.Join(ca.dir, ServerKeyFile)

	var prev *x509.Certificate
	for _, step := range []struct {
		name     string
		at       time.Duration // clock offset from t0
		reload   bool          // use a new CA loaded from the directory
		prepare  func(t *testing.T)
		hosts    []string
		wantSANs []string
		wantNew  bool
		wantErr  string
	}{
		{name: "first call issues", hosts: nil, wantSANs: defaultSANs, wantNew: true},
		{name: "second call reuses", hosts: nil, wantSANs: defaultSANs},
		{name: "explicit defaults reuse", hosts: DefaultHosts(), wantSANs: defaultSANs},
		{name: "reload reuses the files", reload: true, wantSANs: defaultSANs},
		{name: "other hosts re-issue", hosts: custom, wantSANs: customSANs, wantNew: true},
		{name: "same hosts in other order and case reuse", hosts: []string{"fd00::5", "10.0.0.5", "PACS.Example.org."}, wantSANs: customSANs},
		{name: "fewer hosts re-issue", hosts: custom[:1], wantSANs: customSANs[:1], wantNew: true},
		{name: "back to custom hosts re-issue", hosts: custom, wantSANs: customSANs, wantNew: true},
		{name: "just before two thirds of its life: reused", at: DefaultServerValidity - DefaultRenewBefore - time.Hour, hosts: custom, wantSANs: customSANs},
		{name: "after reload, still reused", at: DefaultServerValidity - DefaultRenewBefore - time.Hour, reload: true, hosts: custom, wantSANs: customSANs},
		{name: "just after two thirds of its life: re-issued", at: DefaultServerValidity - DefaultRenewBefore + time.Hour, hosts: custom, wantSANs: customSANs, wantNew: true},
		{name: "200 days later: expired, re-issued", at: 200 * 24 * time.Hour, reload: true, hosts: custom, wantSANs: customSANs, wantNew: true},
		{name: "server key removed: re-issued", at: 200 * 24 * time.Hour, reload: true, hosts: custom, wantSANs: customSANs, wantNew: true,
			prepare: func(t *testing.T) {
				if err := os.Remove(serverKey); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "server certificate from another CA: re-issued", at: 200 * 24 * time.Hour, reload: true, hosts: custom, wantSANs: customSANs, wantNew: true,
			prepare: func(t *testing.T) {
				other := makeCA(t)
				if _, err := other.ServerCertificate(custom); err != nil {
					t.Fatal(err)
				}
				for _, f := range []string{ServerCertFile, ServerKeyFile} {
					copyFile(t, filepath.Join(other.dir, f), filepath.Join(ca.dir, f))
				}
			}},
		{name: "server key readable by others: refused", at: 200 * 24 * time.Hour, reload: true, hosts: custom,
			prepare: func(t *testing.T) {
				if err := os.Chmod(serverKey, 0o644); err != nil {
					t.Fatal(err)
				}
			}, wantErr: "chmod 600"},
		{name: "bad host", hosts: []string{"pacs.example.org:104"}, wantErr: "neither a host name nor an IP address"},
	} {
		t.Run(step.name, func(t *testing.T) {
			clock.set(t0.Add(step.at))
			if step.prepare != nil {
				step.prepare(t)
			}
			if step.reload {
				ca = reload(t, ca)
			}
			pair, err := ca.ServerCertificate(step.hosts)
			if step.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), step.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, step.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			leaf := pair.Leaf
			if leaf == nil {
				t.Fatal("Leaf not set")
			}
			if isNew := prev == nil || !bytes.Equal(prev.Raw, leaf.Raw); isNew != step.wantNew {
				t.Errorf("new certificate: %v, want %v", isNew, step.wantNew)
			}
			prev = leaf
			if got := sans(leaf); !slices.Equal(got, step.wantSANs) {
				t.Errorf("SANs %v, want %v", got, step.wantSANs)
			}
			checkServerCert(t, ca, leaf, clock.now())
			if onDisk := readCert(t, filepath.Join(ca.dir, ServerCertFile)); !bytes.Equal(onDisk.Raw, leaf.Raw) {
				t.Errorf("%s holds another certificate", ServerCertFile)
			}
			if m := mode(t, serverKey); m != keyPerm {
				t.Errorf("%s: mode %04o, want %04o", ServerKeyFile, m, keyPerm)
			}
			if !slices.Equal(listTree(t, ca.dir), []string{CAKeyFile, CACertFile, ServerKeyFile, ServerCertFile}) {
				t.Errorf("CA directory holds %v", listTree(t, ca.dir))
			}
		})
	}
}

func sans(c *x509.Certificate) []string {
	var out []string
	for _, d := range c.DNSNames {
		out = append(out, "dns:"+d)
	}
	for _, ip := range c.IPAddresses {
		out = append(out, "ip:"+ip.String())
	}
	slices.Sort(out)
	return out
}

func checkServerCert(t *testing.T, ca *CA, leaf *x509.Certificate, now time.Time) {
	t.Helper()
	if pub, ok := leaf.PublicKey.(*rsa.PublicKey); !ok || pub.N.BitLen() != ServerRSABits {
		t.Errorf("server key is %T, want RSA-%d", leaf.PublicKey, ServerRSABits)
	}
	if !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) {
		t.Errorf("ExtKeyUsage %v, want ServerAuth and ClientAuth", leaf.ExtKeyUsage)
	}
	if got := leaf.NotAfter.Sub(leaf.NotBefore); got != DefaultServerValidity+ClockSkewAllowance {
		t.Errorf("validity %v, want %v", got, DefaultServerValidity+ClockSkewAllowance)
	}
	for _, name := range append(slices.Clone(leaf.DNSNames), ipStrings(leaf.IPAddresses)...) {
		if _, err := leaf.Verify(x509.VerifyOptions{
			Roots: ca.Pool(), DNSName: name, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}); err != nil {
			t.Errorf("server certificate does not verify for %s: %v", name, err)
		}
	}
}

func ipStrings(ips []net.IP) []string {
	var out []string
	for _, ip := range ips {
		out = append(out, ip.String())
	}
	return out
}

func TestParseHosts(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		hosts []string
		want  string // hostSet.key, or "error"
	}{
		{[]string{"PACS.example.org.", "pacs.example.org"}, "dns:pacs.example.org"},
		{[]string{"[::1]", "::1", "0:0::1"}, "ip:::1"},
		{[]string{"127.0.0.1", "::ffff:127.0.0.1"}, "ip:127.0.0.1"},
		{[]string{"*.example.org", "my_host"}, "dns:*.example.org,dns:my_host"},
		{[]string{"pacs:104"}, "error"},
		{[]string{"https://pacs"}, "error"},
		{[]string{""}, "error"},
		{[]string{"a..b"}, "error"},
		{[]string{"-pacs"}, "error"},
		{[]string{"a.*.b"}, "error"},
		{[]string{strings.Repeat("a", 64)}, "error"},
	} {
		hs, err := parseHosts(c.hosts)
		got := hs.key
		if err != nil {
			got = "error"
		}
		if got != c.want {
			t.Errorf("parseHosts(%q) = %q (%v), want %q", c.hosts, got, err, c.want)
		}
	}
}

func TestIssuePeer(t *testing.T) {
	t.Parallel()
	ca := makeCA(t)
	for _, c := range []struct {
		title, ae, base, uri string
	}{
		{"STORESCU", "STORESCU", "STORESCU", "dicom-ae:STORESCU"},
		{"  CT 1 ", "CT 1", "CT_1", "dicom-ae:CT%201"},
		{"-v", "-v", "_v", "dicom-ae:-v"},
		{".hidden", ".hidden", "_hidden", "dicom-ae:.hidden"},
		{"A:B*%#?", "A:B*%#?", "A_B____", "dicom-ae:A:B%2A%25%23%3F"},
		{"ca", "ca", "ca", "dicom-ae:ca"},
		{"ABCDEFGHIJKLMNOP", "ABCDEFGHIJKLMNOP", "ABCDEFGHIJKLMNOP", "dicom-ae:ABCDEFGHIJKLMNOP"},
	} {
		t.Run(c.title, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "bundle")
			serial, err := ca.IssuePeer(c.title, dir)
			if err != nil {
				t.Fatal(err)
			}
			if got := PeerFileBase(c.title); got != c.base {
				t.Errorf("PeerFileBase = %q, want %q", got, c.base)
			}
			crt, key := filepath.Join(dir, c.base+".crt"), filepath.Join(dir, c.base+".key")
			want := []string{CACertFile, c.base + ".crt", c.base + ".key"}
			slices.Sort(want)
			if got := listTree(t, dir); !slices.Equal(got, want) {
				t.Fatalf("bundle holds %v, want %v", got, want)
			}
			if got := listTree(t, root); len(got) != 4 {
				t.Errorf("files outside the bundle: %v", got)
			}
			for path, want := range map[string]fs.FileMode{
				dir: dirPerm, filepath.Join(dir, CACertFile): certPerm, crt: certPerm, key: keyPerm,
			} {
				if got := mode(t, path); got != want {
					t.Errorf("%s: mode %04o, want %04o", path, got, want)
				}
			}
			caPEM, _ := os.ReadFile(filepath.Join(dir, CACertFile))
			if !bytes.Equal(caPEM, ca.CertPEM()) {
				t.Error("bundle's ca.pem is not the CA certificate")
			}
			cert := readCert(t, crt)
			if cert.Subject.CommonName != c.ae {
				t.Errorf("CN %q, want %q", cert.Subject.CommonName, c.ae)
			}
			if len(cert.URIs) != 1 || cert.URIs[0].String() != c.uri {
				t.Errorf("URIs %v, want [%s]", cert.URIs, c.uri)
			}
			if !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}) {
				t.Errorf("ExtKeyUsage %v, want ClientAuth and ServerAuth", cert.ExtKeyUsage)
			}
			if got := cert.NotAfter.Sub(cert.NotBefore); got != DefaultPeerValidity+ClockSkewAllowance {
				t.Errorf("validity %v, want %v", got, DefaultPeerValidity+ClockSkewAllowance)
			}
			if serial != Serial(cert) || !regexp.MustCompile(`^([0-9A-F]{2})+$`).MatchString(serial) {
				t.Errorf("serial %q, certificate's %q", serial, Serial(cert))
			}
			if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Errorf("peer certificate does not verify against the CA: %v", err)
			}
			pair, err := tls.LoadX509KeyPair(crt, key)
			if err != nil {
				t.Fatalf("bundle key and certificate: %v", err)
			}
			if pub, ok := pair.Leaf.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
				t.Errorf("peer key %T, want ECDSA P-256", pair.Leaf.PublicKey)
			}
			if ae, err := certAETitle(cert); err != nil || ae != c.ae {
				t.Errorf("certAETitle = %q, %v; want %q", ae, err, c.ae)
			}
		})
	}

	t.Run("serials differ", func(t *testing.T) {
		dir := t.TempDir()
		s1, err1 := ca.IssuePeer("A", dir)
		s2, err2 := ca.IssuePeer("A", dir)
		if err1 != nil || err2 != nil || s1 == s2 {
			t.Errorf("two issues: %q (%v), %q (%v)", s1, err1, s2, err2)
		}
	})
}

func TestIssuePeerRefuses(t *testing.T) {
	t.Parallel()
	ca := makeCA(t)
	caBefore := snapshot(t, ca.dir)
	for _, c := range []struct {
		name, ae string
		want     string
	}{
		{"empty", "", "1 to 16 characters"},
		{"17 characters", "ABCDEFGHIJKLMNOPQ", "1 to 16 characters"},
		{"only spaces", "    ", "only spaces"},
		{"backslash", `A\B`, "backslash"},
		{"control character", "A\x01B", "printable ASCII"},
		{"newline", "AB\n", "printable ASCII"},
		{"tab", "A\tB", "printable ASCII"},
		{"DEL", "A\x7fB", "printable ASCII"},
		{"non-ASCII", "ÄRZTE", "printable ASCII"},
		{"parent path", "../x", "'/'"},
		{"path", "a/b", "'/'"},
		{"absolute path", "/etc/x", "'/'"},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "sub", "bundle")
			serial, err := ca.IssuePeer(c.ae, dir)
			if err == nil {
				t.Fatalf("IssuePeer(%q) accepted it: serial %s", c.ae, serial)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "AE title") {
				t.Errorf("error %q does not say %q about the AE title", err, c.want)
			}
			if got := listTree(t, root); len(got) != 0 {
				t.Errorf("a refused IssuePeer wrote %v", got)
			}
		})
	}
	t.Run("bundle in the CA directory", func(t *testing.T) {
		if _, err := ca.IssuePeer("ca", ca.dir); err == nil || !strings.Contains(err.Error(), "CA directory") {
			t.Errorf("IssuePeer into the CA directory: %v", err)
		}
		if !maps.Equal(caBefore, snapshot(t, ca.dir)) {
			t.Error("IssuePeer changed the CA directory")
		}
	})
	if _, err := CheckAETitle(" ECHOSCU  "); err != nil {
		t.Errorf("padded AE title refused: %v", err)
	}
}

// TestPeerAETitle covers what a handshake cannot produce: certificates the
// CA does not issue, and incomplete states.
func TestPeerAETitle(t *testing.T) {
	t.Parallel()
	ca := makeCA(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	mk := func(cn string, uris ...string) *x509.Certificate {
		tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: cn}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		for _, u := range uris {
			p, err := url.Parse(u)
			if err != nil {
				t.Fatal(err)
			}
			tmpl.URIs = append(tmpl.URIs, p)
		}
		c, err := ca.issue(tmpl, key.Public(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	verified := func(c *x509.Certificate) *tls.ConnectionState {
		return &tls.ConnectionState{HandshakeComplete: true, PeerCertificates: []*x509.Certificate{c},
			VerifiedChains: [][]*x509.Certificate{{c, ca.Certificate()}}}
	}
	server := mk("srv")
	server.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	for _, c := range []struct {
		name string
		cs   *tls.ConnectionState
		want string // AE title, or "error: <substring>"
	}{
		{"URI wins over CN", verified(mk("CN_AE", "dicom-ae:URI_AE")), "URI_AE"},
		{"URI percent-encoded", verified(mk("X", "dicom-ae:MY%20AE")), "MY AE"},
		{"URI scheme in capitals", verified(mk("X", "DICOM-AE:UPPER")), "UPPER"},
		{"other URIs ignored", verified(mk("X", "https://example.org/", "dicom-ae:ONE")), "ONE"},
		{"no URI: the CN does not count", verified(mk("CN_ONLY")), "error: bound to no AE title"},
		{"no URI, CN too long", verified(mk("ABCDEFGHIJKLMNOPQ")), "error: bound to no AE title"},
		{"two AE URIs", verified(mk("X", "dicom-ae:ONE", "dicom-ae:TWO")), "error: 2 AE titles"},
		{"empty AE URI", verified(mk("X", "dicom-ae:")), "error: malformed"},
		{"AE URI with a backslash", verified(mk("X", "dicom-ae:A%5CB")), "error: backslash"},
		{"not a client certificate", verified(server), "error: not a client certificate"},
		{"nil", nil, "error: not complete"},
		{"handshake not complete", &tls.ConnectionState{}, "error: not complete"},
		{"no certificate", &tls.ConnectionState{HandshakeComplete: true}, "error: no client certificate"},
		{"not verified", &tls.ConnectionState{HandshakeComplete: true, PeerCertificates: []*x509.Certificate{mk("X", "dicom-ae:X")}}, "error: not verified"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ae, err := PeerAETitle(c.cs)
			if w, ok := strings.CutPrefix(c.want, "error: "); ok {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("PeerAETitle = %q, %v; want an error containing %q", ae, err, w)
				}
				return
			}
			if err != nil || ae != c.want {
				t.Errorf("PeerAETitle = %q, %v; want %q", ae, err, c.want)
			}
		})
	}
}

// handshakeResult is what the server side of one connection saw.
type handshakeResult struct {
	state tls.ConnectionState
	err   error
}

// serveOne listens on 127.0.0.1 and runs the server side of one TLS
// handshake with conf, then closes the connection. It returns the port
// and a function that waits for the result (or stops waiting, closing the
// listener, when no client came).
func serveOne(t *testing.T, conf *tls.Config) (port int, result func() handshakeResult) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan handshakeResult, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			ch <- handshakeResult{err: err}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		tc := tls.Server(c, conf)
		err = tc.Handshake()
		ch <- handshakeResult{state: tc.ConnectionState(), err: err}
	}()
	return ln.Addr().(*net.TCPAddr).Port, func() handshakeResult {
		defer ln.Close()
		select {
		case r := <-ch:
			return r
		case <-time.After(30 * time.Second):
			ln.Close()
			return <-ch
		}
	}
}

// dial runs the client side of a handshake with conf, and reads until the
// server closes, so that a refusal the server sends after the client's
// part of a TLS 1.3 handshake reaches the client.
func dial(port int, conf *tls.Config) (tls.ConnectionState, error) {
	d := &net.Dialer{Timeout: 10 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), conf)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err = c.Read(make([]byte, 1)); errors.Is(err, io.EOF) {
		err = nil // the server closed after a successful handshake
	}
	return c.ConnectionState(), err
}

// peerClient returns a client configuration that uses the bundle IssuePeer
// wrote for ae into dir.
func peerClient(t *testing.T, dir, ae string) *tls.Config {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, PeerFileBase(ae)+".crt"), filepath.Join(dir, PeerFileBase(ae)+".key"))
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("bundle's ca.pem does not parse")
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, ServerName: "127.0.0.1"}
}

func TestTLSHandshake(t *testing.T) {
	t.Parallel()
	ca := makeCA(t)
	conf, err := ca.ServerTLSConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	bundle := t.TempDir()
	if _, err := ca.IssuePeer("MODALITY1", bundle); err != nil {
		t.Fatal(err)
	}
	good := peerClient(t, bundle, "MODALITY1")
	rogue := makeCA(t)
	rogueBundle := t.TempDir()
	if _, err := rogue.IssuePeer("MODALITY1", rogueBundle); err != nil {
		t.Fatal(err)
	}
	// foreign trusts the archive, but its certificate is from another CA.
	// It sends it whatever CAs the server asks for, as OpenSSL does (Go's
	// client would otherwise send no certificate at all).
	foreign := peerClient(t, rogueBundle, "MODALITY1")
	foreign.RootCAs = good.RootCAs
	foreignPair := &foreign.Certificates[0]
	foreign.Certificates = nil
	foreign.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return foreignPair, nil }

	with := func(f func(c *tls.Config)) *tls.Config {
		c := good.Clone()
		f(c)
		return c
	}
	for _, c := range []struct {
		name        string
		client      *tls.Config
		ok          bool
		wantVersion uint16
		wantSuites  []uint16 // for TLS 1.2
		// wantServerErr is part of the server's reason for a refusal.
		wantServerErr string
	}{
		{name: "peer bundle", client: good, ok: true, wantVersion: tls.VersionTLS13},
		{name: "peer bundle, TLS 1.2", client: with(func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 }), ok: true,
			wantVersion: tls.VersionTLS12, wantSuites: tls12CipherSuites},
		{name: "peer bundle, TLS 1.2, ECDHE-RSA-AES256-GCM only", client: with(func(c *tls.Config) {
			c.MaxVersion = tls.VersionTLS12
			c.CipherSuites = []uint16{tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384}
		}), ok: true, wantVersion: tls.VersionTLS12, wantSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384}},
		{name: "no client certificate", client: with(func(c *tls.Config) { c.Certificates = nil }), wantServerErr: "didn't provide a certificate"},
		{name: "no client certificate, TLS 1.2", client: with(func(c *tls.Config) {
			c.Certificates, c.MaxVersion = nil, tls.VersionTLS12
		}), wantServerErr: "didn't provide a certificate"},
		{name: "certificate from another CA", client: foreign, wantServerErr: "unknown authority"},
		{name: "certificate from another CA, TLS 1.2", client: func() *tls.Config {
			c := foreign.Clone()
			c.MaxVersion = tls.VersionTLS12
			return c
		}(), wantServerErr: "unknown authority"},
		{name: "TLS 1.1", client: with(func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS11 }), wantServerErr: "unsupported versions"},
		{name: "TLS 1.0", client: with(func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS10 }), wantServerErr: "unsupported versions"},
		{name: "TLS 1.2 with CBC suites only", client: with(func(c *tls.Config) {
			c.MaxVersion = tls.VersionTLS12
			c.CipherSuites = []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA, tls.TLS_RSA_WITH_AES_128_GCM_SHA256}
		}), wantServerErr: "no cipher suite"},
	} {
		t.Run(c.name, func(t *testing.T) {
			port, result := serveOne(t, conf)
			cstate, cerr := dial(port, c.client)
			r := result()
			if !c.ok {
				if r.err == nil {
					t.Fatalf("server completed the handshake (%s, client %v)", tls.VersionName(r.state.Version), cerr)
				}
				if cerr == nil {
					t.Errorf("client saw no error; server: %v", r.err)
				}
				if c.wantServerErr != "" && !strings.Contains(r.err.Error(), c.wantServerErr) {
					t.Errorf("server refused with %q, want a reason containing %q", r.err, c.wantServerErr)
				}
				t.Logf("refused: server: %v; client: %v", r.err, cerr)
				return
			}
			if r.err != nil || cerr != nil {
				t.Fatalf("handshake failed: server: %v; client: %v", r.err, cerr)
			}
			if r.state.Version != c.wantVersion {
				t.Errorf("version %s, want %s", tls.VersionName(r.state.Version), tls.VersionName(c.wantVersion))
			}
			if c.wantSuites != nil && !slices.Contains(c.wantSuites, r.state.CipherSuite) {
				t.Errorf("cipher suite %s, want one of %v", tls.CipherSuiteName(r.state.CipherSuite), c.wantSuites)
			}
			ae, err := PeerAETitle(&r.state)
			if err != nil || ae != "MODALITY1" {
				t.Errorf("PeerAETitle = %q, %v; want MODALITY1", ae, err)
			}
			if _, err := PeerAETitle(&cstate); err == nil {
				t.Error("PeerAETitle on the client side (the server's certificate): no error")
			}
		})
	}
}

// TestServerTLSConfigRenewal: the configuration's GetCertificate follows
// the server certificate through renewal by the clock, replacement on
// disk by another process, and a failed renewal.
func TestServerTLSConfigRenewal(t *testing.T) {
	t.Parallel()
	t0 := time.Now()
	clock := newFakeClock(t0)
	ca := makeCA(t)
	ca.now = clock.now
	conf, err := ca.ServerTLSConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	serverKey := filepath.Join(ca.dir, ServerKeyFile)

	served := func(t *testing.T) string {
		t.Helper()
		// A peer certificate of the moment: peers renew theirs too.
		bundle := t.TempDir()
		if _, err := ca.IssuePeer("PEER", bundle); err != nil {
			t.Fatal(err)
		}
		client := peerClient(t, bundle, "PEER")
		client.Time = clock.now
		port, result := serveOne(t, conf)
		cs, cerr := dial(port, client)
		if r := result(); r.err != nil || cerr != nil {
			t.Fatalf("handshake: server: %v; client: %v", r.err, cerr)
		}
		return Serial(cs.PeerCertificates[0])
	}
	onDisk := func(t *testing.T) string {
		t.Helper()
		return Serial(readCert(t, filepath.Join(ca.dir, ServerCertFile)))
	}

	first := onDisk(t)
	// The second certificate is issued at secondAt; its own renewal is
	// due at failAt, while it is still valid.
	secondAt := DefaultServerValidity - DefaultRenewBefore + time.Hour
	failAt := secondAt + DefaultServerValidity - DefaultRenewBefore + time.Hour
	var prev string
	for _, step := range []struct {
		name    string
		at      time.Duration
		prepare func(t *testing.T)
		want    func(t *testing.T, served string)
	}{
		{name: "first certificate", want: func(t *testing.T, s string) {
			if s != first {
				t.Errorf("served %s, want the one on disk %s", s, first)
			}
		}},
		{name: "just before two thirds of its life: same", at: DefaultServerValidity - DefaultRenewBefore - time.Hour, want: same(&prev)},
		{name: "just after two thirds of its life: renewed without restart", at: secondAt, want: func(t *testing.T, s string) {
			if s == prev || s != onDisk(t) {
				t.Errorf("served %s (before %s, on disk %s), want the renewed one on disk", s, prev, onDisk(t))
			}
		}},
		{name: "replaced on disk by another process: picked up", at: secondAt, prepare: func(t *testing.T) {
			other := reload(t, ca)
			if err := os.Remove(filepath.Join(ca.dir, ServerCertFile)); err != nil {
				t.Fatal(err)
			}
			if _, err := other.ServerCertificate(nil); err != nil {
				t.Fatal(err)
			}
		}, want: func(t *testing.T, s string) {
			if s == prev || s != onDisk(t) {
				t.Errorf("served %s (before %s, on disk %s), want the replacement on disk", s, prev, onDisk(t))
			}
		}},
		{name: "renewal due but failing: the valid certificate is kept", at: failAt, prepare: func(t *testing.T) {
			if err := os.Chmod(serverKey, 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := ca.ServerCertificate(nil); err == nil {
				t.Fatal("ServerCertificate accepted a server key readable by others")
			}
		}, want: same(&prev)},
		{name: "fixed, but retried only after the interval", at: failAt + renewRetryInterval/2, prepare: func(t *testing.T) {
			if err := os.Chmod(serverKey, 0o600); err != nil {
				t.Fatal(err)
			}
		}, want: same(&prev)},
		{name: "after the interval: renewed", at: failAt + 2*renewRetryInterval, want: func(t *testing.T, s string) {
			if s == prev || s != onDisk(t) {
				t.Errorf("served %s (before %s, on disk %s), want the renewed one", s, prev, onDisk(t))
			}
		}},
	} {
		t.Run(step.name, func(t *testing.T) {
			clock.set(t0.Add(step.at))
			if step.prepare != nil {
				step.prepare(t)
			}
			s := served(t)
			step.want(t, s)
			prev = s
		})
	}
}

func same(prev *string) func(t *testing.T, s string) {
	return func(t *testing.T, s string) {
		if s != *prev {
			t.Errorf("served %s, want the same certificate as before, %s", s, *prev)
		}
	}
}

// TestDCMTKInterop: DCMTK's echoscu connects with a peer bundle exactly as
// the documentation says, "+tls AE.key AE.crt +cf ca.pem" and no other
// TLS option, in TLS 1.3 and, with the server limited to it, TLS 1.2.
// The server side only completes the handshake and closes, so echoscu
// itself reports a failed association; the test checks what the server
// saw. echoscu must be installed (Debian package dcmtk): the test fails,
// never skips, without it.
func TestDCMTKInterop(t *testing.T) {
	t.Parallel()
	dicomtest.DCMTKTool(t, "echoscu")
	ca := makeCA(t)
	conf, err := ca.ServerTLSConfig([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	bundle := t.TempDir()
	if _, err := ca.IssuePeer("ECHOSCU", bundle); err != nil {
		t.Fatal(err)
	}
	// rogueBundle holds a certificate from another CA, but trusts the
	// archive's CA, so that echoscu accepts the server and the server is
	// the one to refuse.
	rogueBundle := t.TempDir()
	if _, err := makeCA(t).IssuePeer("ECHOSCU", rogueBundle); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rogueBundle, CACertFile), ca.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	tls12 := conf.Clone()
	tls12.MaxVersion = tls.VersionTLS12
	for _, c := range []struct {
		name        string
		conf        *tls.Config
		bundle      string
		ok          bool
		wantVersion uint16
	}{
		{"TLS 1.3", conf, bundle, true, tls.VersionTLS13},
		{"TLS 1.2", tls12, bundle, true, tls.VersionTLS12},
		{"bundle from another CA", conf, rogueBundle, false, 0},
		{"bundle from another CA, TLS 1.2", tls12, rogueBundle, false, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			port, result := serveOne(t, c.conf)
			run := dicomtest.RunSCUIn(t, c.bundle, "echoscu",
				"+tls", "ECHOSCU.key", "ECHOSCU.crt", "+cf", "ca.pem", "-v", "127.0.0.1", strconv.Itoa(port))
			r := result()
			if !c.ok {
				if r.err == nil {
					t.Fatalf("server completed the handshake with a foreign certificate\n%s", run.Describe())
				}
				if !strings.Contains(r.err.Error(), "unknown authority") {
					t.Errorf("server refused with %q, want a refusal of the certificate's authority", r.err)
				}
				t.Logf("refused: %v", r.err)
				return
			}
			if r.err != nil {
				t.Fatalf("TLS handshake with echoscu failed on the server side: %v\n%s", r.err, run.Describe())
			}
			if r.state.Version != c.wantVersion {
				t.Errorf("version %s, want %s", tls.VersionName(r.state.Version), tls.VersionName(c.wantVersion))
			}
			ae, err := PeerAETitle(&r.state)
			if err != nil || ae != "ECHOSCU" {
				t.Errorf("PeerAETitle = %q, %v; want ECHOSCU", ae, err)
			}
			t.Logf("echoscu handshake: %s, %s", tls.VersionName(r.state.Version), tls.CipherSuiteName(r.state.CipherSuite))
		})
	}
}
