package scan

import (
	"bufio"
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// The scanner's data files, shipped inside the binary.
//
//go:embed data/aetitles.tsv data/fingerprints.json data/cves.json
var dataFS embed.FS

// Title is a well-known AE title of the wordlist.
type Title struct {
	Title  string
	Called bool // tried as the server's (called) title
	Caller bool // tried as the stranger's (calling) title
	Source string
}

// Fingerprint is one product of the fingerprint database.
type Fingerprint struct {
	ID                string `json:"id"`
	Product           string `json:"product"`
	ClassUID          string `json:"class_uid"`
	ClassUIDPrefix    string `json:"class_uid_prefix"`
	VersionNameRegexp string `json:"version_name_regexp"`
	VersionFrom       string `json:"version_from"`
	Note              string `json:"note"`
	Source            string `json:"source"`
	Fixtures          []struct {
		ClassUID    string `json:"class_uid"`
		VersionName string `json:"version_name"`
		Version     string `json:"version"`
		Origin      string `json:"origin"`
	} `json:"fixtures"`
	re *regexp.Regexp
}

type cveEntry struct {
	Product string   `json:"product"`
	Max     string   `json:"max"`
	Below   string   `json:"below"`
	CVEs    []string `json:"cves"`
	Source  string   `json:"source"`
}

var (
	loadOnce     sync.Once
	loadErr      error
	wordlist     []Title
	fingerprints []Fingerprint
	cves         []cveEntry
)

// loadData parses the embedded data files once. They are part of the
// binary, so an error is a bug that TestDataFiles catches.
func loadData() error {
	loadOnce.Do(func() {
		b, _ := dataFS.ReadFile("data/aetitles.tsv")
		if wordlist, loadErr = parseWordlist(b); loadErr != nil {
			return
		}
		var fp struct{ Entries []Fingerprint }
		b, _ = dataFS.ReadFile("data/fingerprints.json")
		if loadErr = json.Unmarshal(b, &fp); loadErr != nil {
			return
		}
		for i := range fp.Entries {
			e := &fp.Entries[i]
			if e.VersionNameRegexp != "" {
				if e.re, loadErr = regexp.Compile(e.VersionNameRegexp); loadErr != nil {
					return
				}
			}
		}
		fingerprints = fp.Entries
		var cv struct{ Entries []cveEntry }
		b, _ = dataFS.ReadFile("data/cves.json")
		if loadErr = json.Unmarshal(b, &cv); loadErr != nil {
			return
		}
		cves = cv.Entries
	})
	return loadErr
}

// parseWordlist reads the tab-separated wordlist: title, role, source.
// Every entry must cite its source.
func parseWordlist(b []byte) ([]Title, error) {
	var out []Title
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 3 || strings.TrimSpace(f[2]) == "" || f[0] == "" || len(f[0]) > 16 {
			return nil, fmt.Errorf("scan: wordlist line %d: want title (1-16 chars), role and a cited source", n)
		}
		t := Title{Title: f[0], Source: f[2]}
		switch f[1] {
		case "called":
			t.Called = true
		case "calling":
			t.Caller = true
		case "both":
			t.Called, t.Caller = true, true
		default:
			return nil, fmt.Errorf("scan: wordlist line %d: role %q", n, f[1])
		}
		out = append(out, t)
	}
	return out, sc.Err()
}

// Wordlist returns the shipped well-known AE titles.
func Wordlist() []Title {
	if loadData() != nil {
		return nil
	}
	return wordlist
}

// Identify names the product behind an implementation class UID and
// version name, or returns nil.
func Identify(classUID, versionName string) *Product {
	if loadData() != nil || classUID == "" {
		return nil
	}
	for i := range fingerprints {
		f := &fingerprints[i]
		var suffix string
		switch {
		case f.ClassUID != "" && classUID == f.ClassUID:
		case f.ClassUIDPrefix != "" && strings.HasPrefix(classUID, f.ClassUIDPrefix):
			suffix = classUID[len(f.ClassUIDPrefix):]
		default:
			continue
		}
		p := &Product{Name: f.Product, Evidence: "implementation class UID " + classUID}
		switch f.VersionFrom {
		case "class_uid_suffix":
			p.Version = suffix
		case "version_name":
			if f.re != nil {
				if m := f.re.FindStringSubmatch(versionName); len(m) > 1 {
					p.Version = m[1]
				}
			}
		}
		if versionName != "" {
			p.Evidence += ", version name " + versionName
		}
		p.CVEs = CVEs(p.Name, p.Version)
		return p
	}
	return nil
}

// CVEs returns the known vulnerabilities of product at version.
func CVEs(product, version string) []string {
	if loadData() != nil || version == "" {
		return nil
	}
	var out []string
	for _, e := range cves {
		if !strings.EqualFold(e.Product, product) {
			continue
		}
		if (e.Max != "" && compareVersions(version, e.Max) <= 0) || (e.Below != "" && compareVersions(version, e.Below) < 0) {
			for _, c := range e.CVEs {
				if !slices.Contains(out, c) {
					out = append(out, c)
				}
			}
		}
	}
	return out
}

// compareVersions compares dotted numeric versions ("3.6.7" < "3.6.10").
// Non-numeric parts compare as text.
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(as), len(bs)); i++ {
		var x, y string
		if i < len(as) {
			x = as[i]
		}
		if i < len(bs) {
			y = bs[i]
		}
		xn, xerr := strconv.Atoi(x)
		yn, yerr := strconv.Atoi(y)
		if x == "" {
			xn, xerr = 0, nil
		}
		if y == "" {
			yn, yerr = 0, nil
		}
		if xerr == nil && yerr == nil {
			if xn != yn {
				if xn < yn {
					return -1
				}
				return 1
			}
			continue
		}
		if c := strings.Compare(x, y); c != 0 {
			return c
		}
	}
	return 0
}
