package scan

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestJSONLRoundTrip(t *testing.T) {
	in := []Result{
		{Host: "127.0.0.1", Port: 104, Time: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC), DICOM: true, Transport: "plain",
			Auth: AuthNone, Exposure: Exposure{Query: ExposureUnproven, Retrieve: ExposureClosed, Store: ExposureOpen},
			Findings: []Finding{{ID: "DS-AUTH-NONE", Severity: SeverityCritical, Title: "t", Remediation: "r"}}},
		{Host: "127.0.0.2", Port: 2762, Auth: AuthStrong, TLS: TLSInfo{Enabled: true, ClientCertRequired: true}},
	}
	var buf bytes.Buffer
	for i := range in {
		if err := WriteJSONL(&buf, &in[i]); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(buf.String(), "\n"); n != 2 {
		t.Fatalf("%d lines, want 2", n)
	}
	out, err := ReadJSONL(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[0].Key() != "127.0.0.1:104" || out[1].TLS.ClientCertRequired != true || out[0].Exposure.Store != ExposureOpen || out[0].Findings[0].ID != "DS-AUTH-NONE" {
		t.Fatalf("round trip lost data: %+v", out)
	}
}

func TestReadJSONLErrors(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"garbage", "hello\n", "line 1"},
		{"no host", "\n{\"port\":1}\n", "line 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadJSONL(strings.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}
