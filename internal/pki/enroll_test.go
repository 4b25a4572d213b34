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
	"errors"
	"strings"
	"testing"
	"time"
)

func TestIssueForCSR(t *testing.T) {
	t.Parallel()
	ca := makeCA(t)
	p256, _, err := NewPeerKey()
	if err != nil {
		t.Fatal(err)
	}
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	csr := func(key crypto.Signer, cn string) []byte {
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	good := csr(p256, "EVIL")
	tampered := append([]byte(nil), good...)
	tampered[len(tampered)-5] ^= 0xff
	for _, tc := range []struct {
		name    string
		der     []byte
		ae      string
		wantErr error
		errText string
	}{
		{name: "P-256, AE from the caller not the request", der: good, ae: "CT01"},
		{name: "bad signature", der: tampered, ae: "CT01", wantErr: ErrBadCSR},
		{name: "not a request", der: []byte("junk"), ae: "CT01", wantErr: ErrBadCSR},
		{name: "P-224 refused", der: csr(p224, "x"), ae: "CT01", wantErr: ErrBadCSR},
		{name: "RSA 1024 refused", der: csr(rsa1024, "x"), ae: "CT01", wantErr: ErrBadCSR},
		{name: "slash in AE", der: good, ae: "../x", errText: "'/'"},
		{name: "bad AE", der: good, ae: "", errText: "AE title"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ca.IssueForCSR(tc.der, tc.ae, time.Hour)
			switch {
			case tc.wantErr != nil || tc.errText != "":
				if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) || !strings.Contains(err.Error(), tc.errText) {
					t.Fatalf("err = %v, want %v %q", err, tc.wantErr, tc.errText)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			ae, err := certAETitle(c)
			if err != nil || ae != tc.ae || c.Subject.CommonName != tc.ae {
				t.Errorf("bound to %q (CN %q, %v), want %q", ae, c.Subject.CommonName, err, tc.ae)
			}
			if got := c.NotAfter.Sub(c.NotBefore); got != time.Hour+ClockSkewAllowance {
				t.Errorf("validity %v", got)
			}
			if _, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Errorf("does not verify as a client certificate: %v", err)
			}
		})
	}
}

func TestRenewDue(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	c := &x509.Certificate{NotBefore: t0, NotAfter: t0.Add(30 * 24 * time.Hour)}
	for _, tc := range []struct {
		at   time.Duration
		want bool
	}{
		{-time.Hour, true}, // not yet valid: renew
		{0, false},
		{20*24*time.Hour - time.Second, false},
		{20 * 24 * time.Hour, true},
		{31 * 24 * time.Hour, true},
	} {
		if got := RenewDue(c, t0.Add(tc.at)); got != tc.want {
			t.Errorf("RenewDue at %v = %v, want %v", tc.at, got, tc.want)
		}
	}
}

// TestPinnedTLSConfig: a client that knows only the CA's fingerprint
// accepts the enrolment listener of that CA, and refuses another CA's and
// the same server under a wrong fingerprint.
func TestPinnedTLSConfig(t *testing.T) {
	t.Parallel()
	ca, other := makeCA(t), makeCA(t)
	conf, err := ca.EnrolTLSConfig([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if !conf.SessionTicketsDisabled {
		t.Error("session tickets on")
	}
	for _, tc := range []struct {
		name  string
		fp    string
		known *x509.Certificate
		ok    bool
	}{
		{"right fingerprint", ca.Fingerprint(), nil, true},
		{"right fingerprint, lower case without colons", strings.ToLower(strings.ReplaceAll(ca.Fingerprint(), ":", "")), nil, true},
		{"another CA's fingerprint", other.Fingerprint(), nil, false},
		{"another CA's fingerprint with that CA known", other.Fingerprint(), other.Certificate(), false},
		{"empty fingerprint", "", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port, result := serveOne(t, conf)
			_, cerr := dial(port, PinnedTLSConfig(tc.fp, tc.known, nil))
			r := result()
			if tc.ok && (cerr != nil || r.err != nil) {
				t.Fatalf("client: %v, server: %v", cerr, r.err)
			}
			if !tc.ok && cerr == nil {
				t.Fatal("client accepted the server")
			}
			if !tc.ok && tc.fp != "" && tc.known == nil && !errors.Is(cerr, ErrFingerprint) {
				t.Errorf("client error %v, want ErrFingerprint", cerr)
			}
		})
	}
	// The regular DICOM listener never resumes sessions either.
	sc, err := ca.ServerTLSConfig([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if !sc.SessionTicketsDisabled || sc.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Errorf("DICOM listener: tickets disabled %v, client auth %v", sc.SessionTicketsDisabled, sc.ClientAuth)
	}
}
