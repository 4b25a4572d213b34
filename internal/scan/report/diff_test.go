package report

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/dicomshield/dicomshield/internal/scan"
)

var update = flag.Bool("update", false, "rewrite golden files")

func svc(host string, port int, auth string, e scan.Exposure, fs ...scan.Finding) scan.Result {
	return scan.Result{Host: host, Port: port, DICOM: true, Transport: "plain", Auth: auth, Exposure: e, Findings: fs}
}

func TestDiff(t *testing.T) {
	closedSvc := svc("10.0.0.1", 104, scan.AuthStrong, exp(closed, closed, closed))
	openSvc := svc("10.0.0.1", 104, scan.AuthNone, exp(open, closed, open), findNone)
	tlsOn := closedSvc
	tlsOn.TLS = scan.TLSInfo{Enabled: true}
	type ch struct{ kind, what, from, to, dir string }
	for _, tc := range []struct {
		name     string
		old, new []scan.Result
		want     []ch
		worse    bool
	}{
		{"nothing changed", []scan.Result{openSvc}, []scan.Result{openSvc}, nil, false},
		{"query opened", []scan.Result{closedSvc}, []scan.Result{func() scan.Result { r := closedSvc; r.Exposure.Query = open; return r }()},
			[]ch{{KindExposure, "query", closed, open, Worse}}, true},
		{"store fixed", []scan.Result{svc("h", 1, scan.AuthStrong, exp(closed, closed, open))}, []scan.Result{svc("h", 1, scan.AuthStrong, exp(closed, closed, closed))},
			[]ch{{KindExposure, "store", open, closed, Better}}, false},
		{"unproven to open is worse", []scan.Result{svc("h", 1, scan.AuthNone, exp(unproven, closed, closed))}, []scan.Result{svc("h", 1, scan.AuthNone, exp(open, closed, closed))},
			[]ch{{KindExposure, "query", unproven, open, Worse}}, true},
		{"unknown is not compared", []scan.Result{svc("h", 1, scan.AuthStrong, exp(closed, closed, closed))}, []scan.Result{svc("h", 1, scan.AuthUnknown, exp("", "", ""))},
			[]ch{{KindAuth, "", "strong", "unknown", Neutral}, {KindExposure, "query", closed, "unknown", Neutral}, {KindExposure, "retrieve", closed, "unknown", Neutral}, {KindExposure, "store", closed, "unknown", Neutral}}, false},
		{"auth weakened and a finding appeared", []scan.Result{svc("h", 1, scan.AuthWeak, exp(closed, closed, closed))}, []scan.Result{svc("h", 1, scan.AuthNone, exp(closed, closed, closed), findNone)},
			[]ch{{KindAuth, "", "weak", "none", Worse}, {KindNewFinding, "DS-AUTH-NONE", "", "critical", Worse}}, true},
		{"finding fixed", []scan.Result{svc("h", 1, scan.AuthStrong, exp(closed, closed, closed), findNoTLS)}, []scan.Result{svc("h", 1, scan.AuthStrong, exp(closed, closed, closed))},
			[]ch{{KindFixed, "DS-TLS-NONE", "low", "", Better}}, false},
		{"an info finding is no alarm", []scan.Result{closedSvc}, []scan.Result{func() scan.Result { r := closedSvc; r.Findings = []scan.Finding{findTLSOK}; return r }()},
			[]ch{{KindNewFinding, "DS-TLS-OK", "", "info", Neutral}}, false},
		{"TLS switched off", []scan.Result{tlsOn}, []scan.Result{closedSvc},
			[]ch{{KindTLS, "", "TLS", "plain", Worse}}, true},
		{"new exposed service", nil, []scan.Result{openSvc},
			[]ch{{KindNewService, "", "", "", Worse}}, true},
		{"new closed service", nil, []scan.Result{closedSvc},
			[]ch{{KindNewService, "", "", "", Neutral}}, false},
		{"exposed service gone", []scan.Result{openSvc}, nil,
			[]ch{{KindGoneService, "", "", "", Better}}, false},
		{"stopped speaking DICOM", []scan.Result{openSvc}, []scan.Result{{Host: "10.0.0.1", Port: 104}},
			[]ch{{KindNewService, "dicom", "", "", Better}}, false},
		{"the later duplicate counts", []scan.Result{closedSvc}, []scan.Result{openSvc, closedSvc}, nil, false},
		{"product upgraded", []scan.Result{func() scan.Result {
			r := closedSvc
			r.Product = &scan.Product{Name: "Orthanc", Version: "1.9.7"}
			return r
		}()},
			[]scan.Result{func() scan.Result {
				r := closedSvc
				r.Product = &scan.Product{Name: "Orthanc", Version: "1.12.4"}
				return r
			}()},
			[]ch{{KindProduct, "", "Orthanc 1.9.7", "Orthanc 1.12.4", Neutral}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Diff(tc.old, tc.new)
			var got []ch
			for _, c := range d.Changes {
				x := ch{c.Kind, c.What, c.From, c.To, c.Direction}
				if c.Kind == KindNewService && c.What == "" || c.Kind == KindGoneService || (c.Kind == KindNewService && c.What == "dicom") {
					x.from, x.to = "", "" // descriptions are checked by the golden test
				}
				got = append(got, x)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("changes %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("change %d = %+v, want %+v", i, got[i], tc.want[i])
				}
			}
			if d.Worse() != tc.worse {
				t.Errorf("Worse() = %v, want %v", d.Worse(), tc.worse)
			}
		})
	}
}

// TestDiffText checks the readable output against a golden file: the
// fixture against a later scan where one server was fixed, one opened up,
// a new one appeared and one went away.
func TestDiffText(t *testing.T) {
	old := fixture()
	MarkDecoys(old)
	cur := fixture()
	cur[1].Exposure = exp(closed, closed, closed) // dcm4chee: locked down
	cur[1].Auth = scan.AuthStrong
	cur[1].Findings = []scan.Finding{findNoTLS}
	cur[3].TLS.ClientCertRequired = false // dicomshield: client certificates off
	cur[3].Findings = nil
	cur[6].Exposure.Query = open // Orthanc over TLS: query proved
	cur[6].Product.Name = "Orthanc\x1b[2J"
	cur = append(cur[:7], cur[8:]...) // Horos gone
	cur = append(cur, svc("10.1.0.9", 104, scan.AuthNone, exp(open, open, open), findQuery))
	MarkDecoys(cur)
	d := Diff(old, cur)
	var buf bytes.Buffer
	if err := d.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "diff.golden")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("diff text differs from %s (go test -update to rewrite):\n%s", golden, buf.String())
	}
	if bytes.ContainsRune(buf.Bytes(), 0x1b) {
		t.Fatal("an escape character reached the output")
	}
	if !d.Worse() {
		t.Fatal("Worse() = false")
	}
}
