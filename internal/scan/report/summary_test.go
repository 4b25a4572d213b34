package report

import (
	"reflect"
	"strings"
	"testing"

	"github.com/dicomshield/dicomshield/internal/scan"
)

func TestSummarizeFixture(t *testing.T) {
	rs := fixture()
	MarkDecoys(rs)
	got := Summarize(rs)
	if !reflect.DeepEqual(got, fixtureFigures) {
		t.Fatalf("figures:\n got %+v\nwant %+v", got, fixtureFigures)
	}
}

func TestSummarizeWithoutDecoyMarking(t *testing.T) {
	// The same scan without MarkDecoys counts the honeypots as servers:
	// that is the dishonesty decoy detection is there to remove.
	got := Summarize(fixture())
	if got.Decoys != 0 || got.Services != 14 || got.Exposure.QueryExposed != 5 {
		t.Fatalf("unmarked: decoys %d services %d query-exposed %d, want 0, 14, 5", got.Decoys, got.Services, got.Exposure.QueryExposed)
	}
}

func TestSummarizeEmpty(t *testing.T) {
	f := Summarize(nil)
	if f.Services != 0 || f.TLSPercent != 0 || len(f.Products) != 0 || f.Records == nil {
		t.Fatalf("empty: %+v", f)
	}
}

func TestClass(t *testing.T) {
	for _, tc := range []struct {
		e    scan.Exposure
		want string
	}{
		{exp(open, closed, closed), ClassQuery},
		{exp(closed, open, closed), ClassQuery},
		{exp(unproven, open, open), ClassQuery},
		{exp(unproven, closed, open), ClassQueryUnproven},
		{exp(closed, unproven, closed), ClassQueryUnproven},
		{exp(closed, closed, open), ClassStorageOnly},
		{exp(closed, closed, unproven), ClassStorageOnly},
		{exp(closed, closed, closed), ClassClosed},
		{exp("", "", ""), ClassClosed},
	} {
		r := scan.Result{Exposure: tc.e}
		if got := Class(&r); got != tc.want {
			t.Errorf("%+v: %s, want %s", tc.e, got, tc.want)
		}
	}
}

func TestThousandsAndLevels(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 16100000: "16,100,000", -1234: "-1,234"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
	got := levels(map[string]int{"STUDY": 1, "X": 2, "PATIENT": 3, "IMAGE": 4})
	want := []Count{{"PATIENT", 3}, {"STUDY", 1}, {"IMAGE", 4}, {"X", 2}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("levels = %v, want %v", got, want)
	}
}

// TestClientCertServiceCounts: a TLS service that demanded a client
// certificate (no DICOM could be exchanged, as with dicomshield serve) is
// a strong service in the figures, not an answer without DICOM.
func TestClientCertServiceCounts(t *testing.T) {
	rs := []scan.Result{{Host: "127.0.0.1", Port: 2762, Transport: "tls", Auth: scan.AuthStrong, StoppedBy: "certificate",
		TLS:      scan.TLSInfo{Enabled: true, Version: "TLS 1.3", ClientCertRequired: true},
		Exposure: scan.Exposure{Query: scan.ExposureClosed, Retrieve: scan.ExposureClosed, Store: scan.ExposureClosed}}}
	f := Summarize(rs)
	if f.Services != 1 || f.NotDICOM != 0 || f.Auth.Strong != 1 || f.TLS != 1 || f.ClientCert != 1 || f.Exposure.Closed != 1 {
		t.Errorf("figures %+v: want one strong, closed TLS service requiring a client certificate", f)
	}
	var b strings.Builder
	if err := WriteHTML(&b, rs, Meta{Generated: t0}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "no DICOM answer") {
		t.Error("the page lists the service under Not DICOM")
	}
}
