package scan

import (
	"bytes"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct {
		in         string
		first, end string
		port       int
		name       string
		err        error
	}{
		{"10.0.0.5", "10.0.0.5", "10.0.0.5", 0, "", nil},
		{"10.0.0.0/30", "10.0.0.0", "10.0.0.3", 0, "", nil},
		{"10.0.0.7/30", "10.0.0.4", "10.0.0.7", 0, "", nil},
		{"10.0.0.1-40", "10.0.0.1", "10.0.0.40", 0, "", nil},
		{"10.0.0.250-10.0.1.3", "10.0.0.250", "10.0.1.3", 0, "", nil},
		{"10.0.0.5:11112", "10.0.0.5", "10.0.0.5", 11112, "", nil},
		{"[::1]:104", "::1", "::1", 104, "", nil},
		{"::1", "::1", "::1", 0, "", nil},
		{"pacs.example.org", "", "", 0, "pacs.example.org", nil},
		{"pacs.example.org:4242", "", "", 4242, "pacs.example.org", nil},
		{"10.0.0.0/7", "", "", 0, "", ErrTooLarge},
		{"2001:db8::/64", "", "", 0, "", ErrTooLarge},
		{"10.0.0.9-3", "", "", 0, "", ErrBadTarget},
		{"10.0.0.1-300", "", "", 0, "", ErrBadTarget},
		{"10.0.0.5:0", "", "", 0, "", ErrBadTarget},
		{"10.0.0.5:70000", "", "", 0, "", ErrBadTarget},
		{"bad host!", "", "", 0, "", ErrBadTarget},
		{"", "", "", 0, "", ErrBadTarget},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseTarget(tc.in)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Name != tc.name || got.Port != tc.port || (tc.first != "" && (got.First.String() != tc.first || got.End.String() != tc.end)) {
				t.Errorf("got %+v", got)
			}
		})
	}
}

func TestParseLine(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"open tcp 104 10.1.2.3 1700000000", "10.1.2.3:104"},
		{"Discovered open port 11112/tcp on 10.1.2.4", "10.1.2.4:11112"},
		{"Timestamp: 1700000000\tHost: 10.1.2.5 ()\tPorts: 4242/open/tcp////", "10.1.2.5:4242"},
		{"10.1.2.6", "10.1.2.6"},
		{"10.1.2.7,104,1700000000", "10.1.2.7:104"},
		{"saddr,sport", ""},
		{"# comment", ""},
		{"", ""},
		{"10.0.0.1 10.0.0.2:104", "10.0.0.1 10.0.0.2:104"},
		{"10.0.0.1,10.0.0.2", "10.0.0.1 10.0.0.2"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			ts, err := ParseLine(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, x := range ts {
				s := x.First.String()
				if x.Port != 0 {
					s = netip.AddrPortFrom(x.First, uint16(x.Port)).String()
				}
				got = append(got, s)
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestTargetSet(t *testing.T) {
	a, _ := ParseTarget("10.0.0.0/30")
	b, _ := ParseTarget("10.0.0.9:4242")
	x, _ := ParseTarget("10.0.0.2")
	s := &TargetSet{Targets: []Target{a, b}, Exclude: []Target{x}, Ports: []int{104, 11112}}
	var got []string
	for ep := range s.Endpoints() {
		got = append(got, ep.String())
	}
	want := []string{"10.0.0.0:104", "10.0.0.0:11112", "10.0.0.1:104", "10.0.0.1:11112", "10.0.0.3:104", "10.0.0.3:11112", "10.0.0.9:4242"}
	if !slices.Equal(got, want) || s.Count() != 9 {
		t.Errorf("got %v (count %d), want %v", got, s.Count(), want)
	}
	// The last address of the space ends the walk.
	top, _ := ParseTarget("255.255.255.254/31")
	n := 0
	for range (&TargetSet{Targets: []Target{top}, Ports: []int{1}}).Endpoints() {
		n++
	}
	if n != 2 {
		t.Errorf("%d endpoints at the top of the address space", n)
	}
}

func TestLocal(t *testing.T) {
	for _, tc := range []struct {
		in    string
		local bool
	}{
		{"127.0.0.1", true}, {"10.0.0.0/8", true}, {"192.168.1.0/24", true}, {"172.16.0.1-172.31.255.255", true},
		{"::1", true}, {"fd00::5", true}, {"8.8.8.8", false}, {"172.15.255.255-172.16.0.1", false}, {"10.255.255.255-11.0.0.0", false},
	} {
		tg, err := ParseTarget(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if tg.Local() != tc.local {
			t.Errorf("%s: Local %v", tc.in, !tc.local)
		}
	}
}

func TestParsePorts(t *testing.T) {
	p, err := ParsePorts("104, 11112,100-102,104")
	if err != nil || !slices.Equal(p, []int{104, 11112, 100, 101, 102}) {
		t.Errorf("%v %v", p, err)
	}
	for _, bad := range []string{"", "0", "65536", "9-3", "x"} {
		if _, err := ParsePorts(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestDataFiles: the shipped wordlist cites a source on every line, and
// every fingerprint is backed by fixtures that identify as it.
func TestDataFiles(t *testing.T) {
	if err := loadData(); err != nil {
		t.Fatal(err)
	}
	if len(wordlist) < 10 {
		t.Errorf("wordlist of %d titles", len(wordlist))
	}
	for _, w := range wordlist {
		if len(w.Source) < 10 {
			t.Errorf("%s: source %q", w.Title, w.Source)
		}
	}
	for _, f := range fingerprints {
		if len(f.Fixtures) == 0 || f.Source == "" {
			t.Errorf("fingerprint %s has no fixture or source", f.ID)
		}
		for _, fx := range f.Fixtures {
			p := Identify(fx.ClassUID, fx.VersionName)
			if p == nil || p.Name != f.Product || p.Version != fx.Version {
				t.Errorf("fixture %+v of %s identified as %+v", fx, f.ID, p)
			}
		}
	}
	if p := Identify("1.2.3.4", "X"); p != nil {
		t.Errorf("unknown UID identified as %+v", p)
	}
	if _, err := parseWordlist([]byte("TITLE\tcalled\t\n")); err == nil {
		t.Error("a wordlist line without a source was accepted")
	}
}

func TestCVEs(t *testing.T) {
	for _, tc := range []struct {
		product, version string
		want             []string
	}{
		{"DCMTK", "3.6.6", []string{"CVE-2021-41687", "CVE-2026-50003"}},
		{"DCMTK", "3.6.7", []string{"CVE-2026-50003"}},
		{"DCMTK", "3.7.1", nil},
		{"Orthanc", "1.5.7", []string{"CVE-2025-0896", "CVE-2026-5437"}},
		{"Orthanc", "1.10.1", []string{"CVE-2026-5445"}},
		{"Orthanc", "1.12.11", nil},
		{"Orthanc", "", nil},
	} {
		got := CVEs(tc.product, tc.version)
		for _, w := range tc.want {
			if !slices.Contains(got, w) {
				t.Errorf("%s %s: %v lacks %s", tc.product, tc.version, got, w)
			}
		}
		if tc.want == nil && got != nil {
			t.Errorf("%s %s: %v", tc.product, tc.version, got)
		}
		if tc.version == "3.6.7" && slices.Contains(got, "CVE-2021-41687") {
			t.Errorf("3.6.7 given the 3.6.6 CVEs")
		}
	}
	if compareVersions("3.6.10", "3.6.9") <= 0 || compareVersions("1.10.1", "1.12.10") >= 0 {
		t.Error("compareVersions is not numeric")
	}
}

func TestParseOrthancSystem(t *testing.T) {
	sys := parseOrthancSystem(strings.NewReader(`{"DicomAet":"ORTHANC","DicomPort":4242,"Name":"x","Version":"1.10.1"}`), 8042)
	if sys == nil || sys.DicomAet != "ORTHANC" || sys.DicomPort != 4242 || sys.HTTPPort != 8042 {
		t.Errorf("%+v", sys)
	}
	for _, bad := range []string{`{}`, `{"Version":"1"}`, `[1]`, `not json`} {
		if parseOrthancSystem(strings.NewReader(bad), 1) != nil {
			t.Errorf("%s taken for Orthanc", bad)
		}
	}
}

func FuzzParseLine(f *testing.F) {
	for _, s := range []string{"open tcp 104 10.1.2.3 1", "Discovered open port 1/tcp on ::1", "Host: 1.2.3.4 ()\tPorts: 1/open", "10.0.0.0/24", "a,b,c", "1.2.3.4-5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ts, err := ParseLine(s)
		if err != nil {
			return
		}
		for _, x := range ts {
			if x.Name == "" && (x.Size() < 1 || x.Size() > MaxTargetAddresses) {
				t.Fatalf("%q: target of %d addresses", s, x.Size())
			}
		}
	})
}

func FuzzParseOrthancSystem(f *testing.F) {
	f.Add([]byte(`{"DicomAet":"ORTHANC","DicomPort":4242,"Version":"1.10.1"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if sys := parseOrthancSystem(bytes.NewReader(b), 1); sys != nil && (len(sys.DicomAet) > 64 || sys.Version == "") {
			t.Fatalf("%+v", sys)
		}
	})
}
