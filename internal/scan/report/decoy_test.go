package report

import (
	"fmt"
	"strings"
	"testing"

	"github.com/dicomshield/dicomshield/internal/scan"
)

func dicomResult(host string, port int, uid, name string, svc map[string]scan.Service) scan.Result {
	return scan.Result{Host: host, Port: port, DICOM: true, Transport: "plain", Auth: scan.AuthNone,
		Implementation: scan.Implementation{ClassUID: uid, VersionName: name}, Services: svc}
}

func fleet(n int, port func(i int) int, host func(i int) string, certs func(i int) string) []scan.Result {
	var rs []scan.Result
	for i := 0; i < n; i++ {
		r := dicomResult(host(i), port(i), "1.2.826.0.1.3680043.9.3811.2.0.2", "PYNETDICOM_202", services(false, 2))
		if c := certs(i); c != "" {
			r.Transport = "tls"
			r.TLS = scan.TLSInfo{Enabled: true, Cert: &scan.CertInfo{SHA256: c}}
		}
		rs = append(rs, r)
	}
	return rs
}

func withAllStorage(rs []scan.Result) []scan.Result {
	for i := range rs {
		rs[i].Services = services(false, 10)
	}
	return rs
}

func fleetAll(n int) []scan.Result {
	return withAllStorage(fleet(n, func(int) int { return 104 }, func(i int) string { return fmt.Sprintf("10.9.0.%d", i+1) }, func(int) string { return "" }))
}

func TestMarkDecoys(t *testing.T) {
	hostN := func(i int) string { return fmt.Sprintf("10.9.0.%d", i+1) }
	sameHost := func(int) string { return "10.9.0.1" }
	port104 := func(int) int { return 104 }
	portN := func(i int) int { return 11112 + i }
	noCert := func(int) string { return "" }
	oneCert := func(int) string { return "cafe" }
	ownCert := func(i int) string { return fmt.Sprintf("c%d", i) }

	type want struct {
		likely   bool
		evidence []string // substrings, each in some evidence line; nil: no Decoy at all
	}
	for _, tc := range []struct {
		name string
		d    Decoys
		rs   []scan.Result
		want want // for rs[0]
	}{
		{"DICOMHawk OsiriX profile", Decoys{}, []scan.Result{dicomResult("h", 1, "1.2.276.0.7230010.3.0.3.6.1", "OSIRIX001", services(true, 2))},
			want{true, []string{"DICOMHawk (OsiriX profile)", "claims OsiriX/Horos", "under DCMTK's root 1.2.276.0.7230010.3"}}},
		{"DICOMHawk GE persona", Decoys{}, []scan.Result{dicomResult("h", 1, "1.2.840.113619.6.96", "GE_PACS_REV_24", services(true, 2))},
			want{true, []string{"DICOMHawk (ge_ct persona)"}}},
		{"vendor persona on pynetdicom", Decoys{}, []scan.Result{dicomResult("h", 1, "1.2.826.0.1.3680043.9.3811.2.0.2", "SIEMENS_AWP", services(true, 2))},
			want{true, []string{"claims Siemens", "pynetdicom's root"}}},
		{"GE on GE's own root is no persona", Decoys{}, []scan.Result{dicomResult("h", 1, "1.2.840.113619.6.5", "GE_ADW_4.4", services(true, 2))},
			want{false, nil}},
		{"a word merely containing a vendor word", Decoys{}, []scan.Result{dicomResult("h", 1, "1.2.276.0.7230010.3.0.3.6.6", "MERGE_GEN", services(true, 2))},
			want{false, nil}},
		{"Orthanc on DCMTK's UID is normal", Decoys{}, []scan.Result{dicomResult("h", 1, "1.2.276.0.7230010.3.0.3.6.7", "OFFIS_DCMTK_367", services(true, 2))},
			want{false, nil}},
		{"real Horos root", Decoys{}, []scan.Result{dicomResult("h", 1, "1.2.276.0.7238010.5.0.3.5.4", "OSIRIX", services(true, 2))},
			want{false, nil}},
		{"Dicompot: no implementation UID and everything accepted", Decoys{}, []scan.Result{dicomResult("h", 1, "", "", services(true, 10))},
			want{true, []string{"without announcing an implementation class UID", "Dicompot", "every storage class proposed (10 of 10)"}}},
		{"no implementation UID alone is a sign only", Decoys{}, []scan.Result{dicomResult("h", 1, "", "", services(true, 2))},
			want{false, nil}},
		{"no implementation UID on a refusal says nothing", Decoys{}, []scan.Result{dicomResult("h", 1, "", "", nil)},
			want{false, nil}},
		{"every storage class alone is a sign only", Decoys{}, []scan.Result{dicomResult("h", 1, "1.2.276.0.7230010.3.0.3.6.7", "OFFIS_DCMTK_367", services(true, 10))},
			want{false, nil}},
		{"too few storage classes proposed", Decoys{MinStorageProposed: 11}, []scan.Result{dicomResult("h", 1, "1.2.276.0.7230010.3.0.3.6.7", "OFFIS_DCMTK_367", services(true, 10))},
			want{false, nil}},
		{"fleet at the default threshold", Decoys{}, fleet(5, port104, hostN, noCert),
			want{false, nil}}, // a weak sign alone
		{"fleet accepting every storage class", Decoys{}, fleetAll(5),
			want{true, []string{"same answer", "as 4 other hosts", "every storage class proposed (10 of 10)"}}},
		{"fleet below the threshold accepting every storage class", Decoys{}, fleetAll(4),
			want{false, nil}},
		{"fleet below the default threshold", Decoys{}, fleet(4, port104, hostN, noCert),
			want{false, nil}},
		{"fleet threshold configured", Decoys{FleetThreshold: 3}, fleetAll(3),
			want{true, []string{"as 2 other hosts"}}},
		{"fleet sharing one certificate", Decoys{}, withAllStorage(fleet(6, port104, hostN, oneCert)),
			want{true, []string{"as 5 other hosts"}}},
		{"own certificates are not a fleet", Decoys{}, withAllStorage(fleet(6, port104, hostN, ownCert)),
			want{false, nil}},
		{"many ports of one host are not a fleet", Decoys{}, withAllStorage(fleet(6, portN, sameHost, noCert)),
			want{false, nil}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.d.Mark(tc.rs)
			d := tc.rs[0].Decoy
			if tc.want.evidence == nil {
				if d != nil {
					t.Fatalf("decoy evidence where none was expected: %+v", d)
				}
				return
			}
			if d == nil {
				t.Fatal("no decoy evidence")
			}
			if d.Likely != tc.want.likely {
				t.Errorf("likely = %v, want %v; evidence %q", d.Likely, tc.want.likely, d.Evidence)
			}
			all := strings.Join(d.Evidence, "\n")
			for _, s := range tc.want.evidence {
				if !strings.Contains(all, s) {
					t.Errorf("evidence lacks %q:\n%s", s, all)
				}
			}
		})
	}
}

func TestMarkDecoysKeepsScannerEvidence(t *testing.T) {
	rs := []scan.Result{dicomResult("h", 1, "", "", services(true, 10))}
	rs[0].Decoy = &scan.Decoy{Evidence: []string{"answers on 200 ports"}}
	MarkDecoys(rs)
	MarkDecoys(rs) // twice: no duplicate evidence
	d := rs[0].Decoy
	if !d.Likely || d.Evidence[0] != "answers on 200 ports" || len(d.Evidence) != 3 {
		t.Fatalf("decoy = %+v", d)
	}
}

func TestMarkDecoysFixture(t *testing.T) {
	rs := fixture()
	MarkDecoys(rs)
	for _, r := range rs {
		wantLikely := strings.HasPrefix(r.Host, "10.2.") || strings.HasPrefix(r.Host, "10.3.")
		if IsDecoy(&r) != wantLikely {
			t.Errorf("%s: likely decoy %v, want %v (%+v)", r.Key(), IsDecoy(&r), wantLikely, r.Decoy)
		}
	}
	if rs[0].Decoy != nil {
		t.Errorf("default Orthanc: one weak sign (every storage class) should not be recorded, got %+v", rs[0].Decoy)
	}
}

func TestFingerprintsData(t *testing.T) {
	for _, tk := range known.Toolkits {
		if tk.Name == "" || tk.UIDRoot == "" || tk.Source == "" {
			t.Errorf("toolkit entry incomplete: %+v", tk)
		}
	}
	for _, v := range known.Vendors {
		if len(v.Words) == 0 || len(v.UIDRoots) == 0 || v.Source == "" {
			t.Errorf("vendor entry incomplete: %+v", v)
		}
	}
	for _, h := range known.Honeypots {
		if h.ClassUID == "" || h.VersionName == "" || h.Source == "" {
			t.Errorf("honeypot entry incomplete: %+v", h)
		}
	}
	if len(known.Toolkits) < 5 || len(known.Honeypots) < 4 || known.NoImplementationUID.Source == "" {
		t.Fatalf("fingerprints.json lost entries: %+v", known)
	}
}
