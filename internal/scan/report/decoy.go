package report

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"unicode"

	"github.com/dicomshield/dicomshield/internal/scan"
)

// fingerprintsJSON lists toolkit UID roots, vendor personas and known
// honeypot identities, each with the source it was read from.
//
//go:embed fingerprints.json
var fingerprintsJSON []byte

type toolkit struct {
	Name    string `json:"name"`
	UIDRoot string `json:"uid_root"`
	Source  string `json:"source"`
}

type vendor struct {
	Name     string   `json:"name"`
	Words    []string `json:"words"`
	UIDRoots []string `json:"uid_roots"`
	Source   string   `json:"source"`
}

type honeypot struct {
	Name        string `json:"name"`
	ClassUID    string `json:"class_uid"`
	VersionName string `json:"version_name"`
	Source      string `json:"source"`
}

type fingerprints struct {
	Toolkits            []toolkit  `json:"toolkits"`
	Vendors             []vendor   `json:"vendors"`
	Honeypots           []honeypot `json:"honeypots"`
	NoImplementationUID struct {
		Name   string `json:"name"`
		Source string `json:"source"`
	} `json:"no_implementation_uid"`
}

var known = mustFingerprints(fingerprintsJSON)

func mustFingerprints(b []byte) fingerprints {
	var f fingerprints
	if err := json.Unmarshal(b, &f); err != nil {
		panic("report: fingerprints.json: " + err.Error())
	}
	return f
}

// Defaults for decoy detection.
const (
	// DefaultFleetThreshold is how many distinct hosts must give the same
	// answer (implementation, accepted services, certificate) before that
	// sameness counts as evidence: a handful of identical installs is a
	// hospital group's standard image; dozens are a honeypot fleet or a lab.
	DefaultFleetThreshold = 5
	// DefaultMinStorageProposed is how many storage SOP classes the scan
	// must have proposed before "all accepted" means anything: an archive
	// rightly accepts the few common ones.
	DefaultMinStorageProposed = 8
	// likelyScore is the evidence weight from which a service counts as a
	// likely decoy: one strong sign (a known honeypot identity, a vendor
	// persona on a toolkit's UID) or two weak ones.
	likelyScore = 2
)

// storageSOPPrefix is the UID prefix of the storage SOP classes (PS3.4 B.5).
const storageSOPPrefix = "1.2.840.10008.5.1.4.1.1."

// Decoys configures decoy detection. The zero value uses the defaults.
type Decoys struct {
	// FleetThreshold: distinct hosts with identical answers that count as
	// a fleet; zero means DefaultFleetThreshold.
	FleetThreshold int
	// MinStorageProposed: storage classes proposed before "every storage
	// class accepted" counts; zero means DefaultMinStorageProposed.
	MinStorageProposed int
}

// MarkDecoys is Decoys{}.Mark: it fills r.Decoy of each result with the
// evidence that it is a honeypot or a test fixture, using the defaults.
func MarkDecoys(rs []scan.Result) { Decoys{}.Mark(rs) }

// Mark fills r.Decoy, Likely set, for every result whose evidence weighs
// enough: one strong sign or two weak ones. Evidence already in a result
// (from the scanner) is kept. Results with a lone weak sign, or none, are
// left untouched.
func (d Decoys) Mark(rs []scan.Result) {
	fleetMin := d.FleetThreshold
	if fleetMin <= 0 {
		fleetMin = DefaultFleetThreshold
	}
	minStorage := d.MinStorageProposed
	if minStorage <= 0 {
		minStorage = DefaultMinStorageProposed
	}

	// Group accepted associations by what they answered.
	hosts := map[string]map[string]bool{}
	sigs := make([]string, len(rs))
	for i := range rs {
		sig := answerSignature(&rs[i])
		sigs[i] = sig
		if sig == "" {
			continue
		}
		if hosts[sig] == nil {
			hosts[sig] = map[string]bool{}
		}
		hosts[sig][rs[i].Host] = true
	}

	for i := range rs {
		r := &rs[i]
		var ev []string
		score := 0
		add := func(weight int, s string) { score += weight; ev = append(ev, s) }

		impl := r.Implementation
		for _, h := range known.Honeypots {
			if impl.ClassUID == h.ClassUID && strings.EqualFold(strings.TrimSpace(impl.VersionName), h.VersionName) {
				add(2, fmt.Sprintf("announces exactly the identity of %s: class UID %s, version name %q (%s)", h.Name, h.ClassUID, h.VersionName, h.Source))
			}
		}
		if s := personaMismatch(impl); s != "" {
			add(2, s)
		}
		accepted := acceptedCount(r)
		if r.DICOM && accepted > 0 && impl.ClassUID == "" {
			add(1, fmt.Sprintf("accepted an association without announcing an implementation class UID, which PS3.7 D.3.3.2 requires; %s answers so (%s)", known.NoImplementationUID.Name, known.NoImplementationUID.Source))
		}
		if proposed, acc := storageCounts(r); proposed >= minStorage && acc == proposed {
			add(1, fmt.Sprintf("accepted every storage class proposed (%d of %d), as honeypots that take anything do", acc, proposed))
		}
		if sig := sigs[i]; sig != "" && len(hosts[sig]) >= fleetMin {
			add(1, fmt.Sprintf("gave the same answer (implementation, accepted services, certificate) as %d other hosts", len(hosts[sig])-1))
		}
		if score < likelyScore {
			// A lone weak sign is what many real servers show (a default
			// Orthanc accepts every storage class): not worth a reader's
			// attention.
			continue
		}
		if r.Decoy == nil {
			r.Decoy = &scan.Decoy{}
		}
		for _, e := range ev {
			if !contains(r.Decoy.Evidence, e) {
				r.Decoy.Evidence = append(r.Decoy.Evidence, e)
			}
		}
		r.Decoy.Likely = true
	}
}

// personaMismatch reports a version name that claims a vendor while the
// class UID sits under an open toolkit's root, or "" when there is none.
func personaMismatch(impl scan.Implementation) string {
	if impl.ClassUID == "" || impl.VersionName == "" {
		return ""
	}
	var tk *toolkit
	for i := range known.Toolkits {
		if underRoot(impl.ClassUID, known.Toolkits[i].UIDRoot) {
			tk = &known.Toolkits[i]
			break
		}
	}
	if tk == nil {
		return ""
	}
	tokens := strings.FieldsFunc(strings.ToLower(impl.VersionName), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
	for _, v := range known.Vendors {
		own := false
		for _, root := range v.UIDRoots {
			own = own || underRoot(impl.ClassUID, root)
		}
		if own || !claims(tokens, v.Words) {
			continue
		}
		return fmt.Sprintf("version name %q claims %s, but class UID %s is under %s's root %s (%s; %s)",
			impl.VersionName, v.Name, impl.ClassUID, tk.Name, tk.UIDRoot, v.Source, tk.Source)
	}
	return ""
}

// claims reports whether a token is one of words, or one of them followed
// by digits only ("osirix001").
func claims(tokens, words []string) bool {
	for _, t := range tokens {
		for _, w := range words {
			if t == w || (strings.HasPrefix(t, w) && strings.TrimLeft(t[len(w):], "0123456789") == "") {
				return true
			}
		}
	}
	return false
}

func underRoot(uid, root string) bool {
	return uid == root || strings.HasPrefix(uid, root+".")
}

func acceptedCount(r *scan.Result) int {
	n := 0
	for _, s := range r.Services {
		if s.Accepted {
			n++
		}
	}
	return n
}

func storageCounts(r *scan.Result) (proposed, accepted int) {
	for _, s := range r.Services {
		if strings.HasPrefix(s.SOPClass, storageSOPPrefix) {
			proposed++
			if s.Accepted {
				accepted++
			}
		}
	}
	return proposed, accepted
}

// answerSignature is what a service answered a stranger, for comparison
// across addresses: "" when it accepted nothing (refusals all look alike).
func answerSignature(r *scan.Result) string {
	var acc []string
	for name, s := range r.Services {
		if s.Accepted {
			acc = append(acc, name)
		}
	}
	if !r.DICOM || len(acc) == 0 {
		return ""
	}
	sort.Strings(acc)
	cert := ""
	if r.TLS.Cert != nil {
		cert = r.TLS.Cert.SHA256
	}
	return strings.Join([]string{r.Transport, r.Implementation.ClassUID, r.Implementation.VersionName, cert, strings.Join(acc, ",")}, "\x00")
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
