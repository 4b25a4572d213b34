//go:build unix

package scan

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"encoding/json"

	"github.com/dicomshield/dicomshield/internal/archive/archivetest"
	"github.com/dicomshield/dicomshield/internal/dicomtest"
)

func merge(a map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range a {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

// startServe runs dicomshield serve's archive in-process on loopback with
// no registered peer, its default: one archive on TLS, and another with
// the plain listener on as well. Two archives, because serve bans an
// address after repeated rejections across all its listeners: the
// ladder's rejections on one port would otherwise get the scanner banned
// from the other, and which port got scanned first would decide the test.
func startServe(t *testing.T) (tlsPort, plainPort int) {
	t.Helper()
	port := func(addr string) int { ap := netip.MustParseAddrPort(addr); return int(ap.Port()) }
	_, tl, _ := archivetest.Start(t, filepath.Join(t.TempDir(), "tls"), false)
	_, _, pl := archivetest.Start(t, filepath.Join(t.TempDir(), "plain"), true)
	return port(tl), port(pl)
}

// labCase is one server of the lab and the verdict the scan must give.
type labCase struct {
	name string
	port int
	want func(t *testing.T, r *Result)
}

func wantAuth(t *testing.T, r *Result, auth, stoppedBy string) {
	t.Helper()
	if r.Auth != auth || r.StoppedBy != stoppedBy {
		t.Errorf("auth %q stopped_by %q (%s), want %q %q", r.Auth, r.StoppedBy, r.AuthDetail, auth, stoppedBy)
	}
}

func wantExposure(t *testing.T, r *Result, q, ret, st string) {
	t.Helper()
	if got := (Exposure{q, ret, st}); r.Exposure != got {
		t.Errorf("exposure %+v (%s), want %+v", r.Exposure, r.ExposureDetail, got)
	}
}

func wantFinding(t *testing.T, r *Result, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if !slices.ContainsFunc(r.Findings, func(f Finding) bool { return f.ID == id }) {
			t.Errorf("finding %s missing from %+v", id, r.Findings)
		}
	}
}

func wantNoFinding(t *testing.T, r *Result, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if slices.ContainsFunc(r.Findings, func(f Finding) bool { return f.ID == id }) {
			t.Errorf("unexpected finding %s", id)
		}
	}
}

// TestLab starts real servers on loopback, scans them all in one run, and
// checks each verdict.
func TestLab(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	dicomtest.RequireDCMTK(t, "storescp", "dcmqrscp")
	defaults := dicomtest.OrthancDefaults(t)
	pki := dicomtest.NewPKI(t, "LABSCU")

	storescp := dicomtest.StartStoreSCP(t, dicomtest.StoreSCPConfig{})
	storescpTLS := dicomtest.StartStoreSCP(t, dicomtest.StoreSCPConfig{TLS: pki})
	qr := dicomtest.StartQRSCP(t, dicomtest.QRSCPConfig{Hosts: []dicomtest.QRHost{{AETitle: "KNOWNSCU", Port: 1}}})
	qrOpen := dicomtest.StartQRSCP(t, dicomtest.QRSCPConfig{AnyPeer: true})
	orthDefault := dicomtest.StartOrthanc(t, dicomtest.OrthancConfig{Extra: defaults})
	orthOpen := dicomtest.StartOrthanc(t, dicomtest.OrthancConfig{Extra: merge(defaults, "DicomAlwaysAllowFind", true, "DicomAlwaysAllowGet", true, "DicomAlwaysAllowMove", true)})
	orthCalled := dicomtest.StartOrthanc(t, dicomtest.OrthancConfig{Extra: merge(defaults, "DicomCheckCalledAet", true)})
	serveTLS, servePlain := startServe(t)

	cases := []labCase{
		{"storescp", storescp.Port, func(t *testing.T, r *Result) {
			wantAuth(t, r, AuthNone, "")
			wantExposure(t, r, ExposureClosed, ExposureClosed, ExposureUnproven)
			if r.Transport != "plain" || r.TLS.Enabled || r.Echo != "success" {
				t.Errorf("transport %q tls %v echo %q", r.Transport, r.TLS.Enabled, r.Echo)
			}
			if r.Product == nil || r.Product.Name != "DCMTK" || r.Product.Version != "3.6.7" {
				t.Errorf("product %+v (implementation %+v)", r.Product, r.Implementation)
			}
			wantFinding(t, r, FindingAuthNone, FindingStoreUnproven, FindingPlaintext)
		}},
		{"storescp-tls-client-cert", storescpTLS.Port, func(t *testing.T, r *Result) {
			wantAuth(t, r, AuthStrong, StoppedByCertificate)
			if !r.TLS.Enabled || !r.TLS.ClientCertRequired || r.TLS.Cert == nil || r.TLS.Version == "" {
				t.Errorf("tls %+v", r.TLS)
			}
			if r.TLS.Cert != nil && (r.TLS.Cert.Subject != "CN=server" || r.TLS.Cert.KeyType != "ECDSA" || r.TLS.Cert.KeyBits != 256 || r.TLS.Cert.SelfSigned) {
				t.Errorf("cert %+v", r.TLS.Cert)
			}
			wantExposure(t, r, ExposureClosed, ExposureClosed, ExposureClosed)
		}},
		{"dcmqrscp-ae-table", qr.Port, func(t *testing.T, r *Result) {
			// dcmqrscp 3.6.7 names the called AE title in its rejection
			// of an unknown peer, even when the title is its own.
			wantAuth(t, r, AuthStrong, StoppedByCalledAE)
			wantExposure(t, r, ExposureClosed, ExposureClosed, ExposureClosed)
		}},
		{"dcmqrscp-any-peer", qrOpen.Port, func(t *testing.T, r *Result) {
			// dcmqrscp checks the called AE title (its own, DCMQRSCP, is in
			// the wordlist) and nothing else.
			wantAuth(t, r, AuthWeak, "")
			if r.Exposure.Query != ExposureOpen || r.Exposure.Retrieve != ExposureOpen {
				t.Errorf("query %q (%s), want open", r.Exposure.Query, r.ExposureDetail)
			}
			wantFinding(t, r, FindingAuthWeak, FindingQueryOpen)
		}},
		{"orthanc-default", orthDefault.DicomPort, func(t *testing.T, r *Result) {
			wantAuth(t, r, AuthNone, "")
			if r.Exposure.Store != ExposureUnproven || r.Exposure.Query != ExposureClosed || r.Exposure.Retrieve != ExposureClosed {
				t.Errorf("exposure %+v (%s): want store-exposed (unproven), query closed", r.Exposure, r.ExposureDetail)
			}
			if r.Product == nil || r.Product.Name != "Orthanc" || r.Product.Version != "1.10.1" {
				t.Errorf("product %+v", r.Product)
			}
			wantFinding(t, r, FindingStoreUnproven, FindingOrthancREST)
			wantNoFinding(t, r, FindingQueryOpen, FindingQueryUnproven)
		}},
		{"orthanc-queries-open", orthOpen.DicomPort, func(t *testing.T, r *Result) {
			wantAuth(t, r, AuthNone, "")
			if r.Exposure.Query != ExposureOpen || r.Exposure.Retrieve != ExposureUnproven {
				t.Errorf("exposure %+v (%s)", r.Exposure, r.ExposureDetail)
			}
			wantFinding(t, r, FindingQueryOpen)
		}},
		{"orthanc-called-ae-checked", orthCalled.DicomPort, func(t *testing.T, r *Result) {
			wantAuth(t, r, AuthWeak, "")
			if !strings.Contains(r.AuthDetail, "ORTHANC") {
				t.Errorf("auth detail %q does not name the title", r.AuthDetail)
			}
		}},
		{"dicomshield-serve-tls", serveTLS, func(t *testing.T, r *Result) {
			wantAuth(t, r, AuthStrong, StoppedByCertificate)
			if !r.TLS.Enabled || !r.TLS.ClientCertRequired || r.TLS.Version != "TLS 1.3" {
				t.Errorf("tls %+v", r.TLS)
			}
			if len(r.Findings) != 0 {
				t.Errorf("findings %+v, want none", r.Findings)
			}
		}},
		{"dicomshield-serve-plain", servePlain, func(t *testing.T, r *Result) {
			wantAuth(t, r, AuthStrong, StoppedByCallingAE)
			wantExposure(t, r, ExposureClosed, ExposureClosed, ExposureClosed)
		}},
	}
	var ports []int
	var httpPorts []int
	for _, c := range cases {
		ports = append(ports, c.port)
	}
	for _, o := range []*dicomtest.Orthanc{orthDefault, orthOpen, orthCalled} {
		httpPorts = append(httpPorts, o.HTTPPort)
	}
	lo := netip.MustParseAddr("127.0.0.1")
	set := &TargetSet{Targets: []Target{{First: lo, End: lo}}, Ports: ports}
	s := New(Options{HTTPPorts: httpPorts, PerHost: 4, Rate: -1, DIMSETimeout: 20 * time.Second})
	got := map[int]*Result{}
	start := time.Now()
	if err := s.Run(context.Background(), set.Endpoints(), func(r *Result) { got[r.Port] = r }); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	t.Logf("scanned %d lab servers in %v", len(cases), time.Since(start).Round(time.Millisecond))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := got[c.port]
			if r == nil {
				t.Fatalf("no result for port %d", c.port)
			}
			if !r.DICOM && !r.TLS.ClientCertRequired {
				t.Errorf("not recognised as DICOM: %+v", r)
			}
			t.Logf("auth %s stopped_by %q transport %s: %s | exposure %+v | %s", r.Auth, r.StoppedBy, r.Transport, r.AuthDetail, r.Exposure, r.ExposureDetail)
			c.want(t, r)
			if t.Failed() {
				b, _ := json.MarshalIndent(r, "", "  ")
				t.Logf("result: %s", b)
			}
		})
	}
}
