package report

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode"

	"github.com/dicomshield/dicomshield/internal/scan"
)

// Directions of a change.
const (
	Worse   = "worse"
	Better  = "better"
	Neutral = "neutral"
)

// Kinds of change.
const (
	KindNewService  = "new-service"
	KindGoneService = "gone-service"
	KindExposure    = "exposure" // What names the operation: query, retrieve, store
	KindAuth        = "auth"
	KindTLS         = "tls"
	KindNewFinding  = "new-finding"
	KindFixed       = "fixed-finding"
	KindProduct     = "product"
	KindDecoy       = "decoy"
)

// Change is one difference between two scans of a service.
type Change struct {
	Key       string `json:"key"` // host:port
	Kind      string `json:"kind"`
	What      string `json:"what,omitempty"` // the operation, or the finding ID
	From      string `json:"from,omitempty"`
	To        string `json:"to,omitempty"`
	Direction string `json:"direction"`
	Detail    string `json:"detail,omitempty"`
}

// Delta is what changed between an old and a new scan.
type Delta struct {
	OldServices int      `json:"old_services"`
	NewServices int      `json:"new_services"`
	Changes     []Change `json:"changes"` // by direction (worse first), then key
}

// Worse reports whether anything became worse: the exit status of
// `scan diff` for monitoring.
func (d *Delta) Worse() bool {
	for _, c := range d.Changes {
		if c.Direction == Worse {
			return true
		}
	}
	return false
}

// Count returns how many changes go in direction dir.
func (d *Delta) Count(dir string) int {
	n := 0
	for _, c := range d.Changes {
		if c.Direction == dir {
			n++
		}
	}
	return n
}

// Diff compares two scans service by service (host and port). When a
// service appears twice in one scan, the later result counts.
func Diff(old, new []scan.Result) Delta {
	om, nm := byKey(old), byKey(new)
	d := Delta{OldServices: len(om), NewServices: len(nm)}
	add := func(c Change) { d.Changes = append(d.Changes, c) }

	for k, n := range nm {
		o, ok := om[k]
		if !ok {
			dir := Neutral
			if exposed(n) {
				dir = Worse
			}
			add(Change{Key: k, Kind: KindNewService, Direction: dir, Detail: describe(n)})
			continue
		}
		compare(k, o, n, add)
	}
	for k, o := range om {
		if _, ok := nm[k]; !ok {
			dir := Neutral
			if exposed(o) {
				dir = Better
			}
			add(Change{Key: k, Kind: KindGoneService, Direction: dir, Detail: "was " + describe(o)})
		}
	}
	sort.SliceStable(d.Changes, func(i, j int) bool {
		a, b := d.Changes[i], d.Changes[j]
		if ra, rb := dirRank[a.Direction], dirRank[b.Direction]; ra != rb {
			return ra < rb
		}
		if a.Key != b.Key {
			return a.Key < b.Key
		}
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		return a.What < b.What
	})
	return d
}

var dirRank = map[string]int{Worse: 0, Better: 1, Neutral: 2}

func byKey(rs []scan.Result) map[string]*scan.Result {
	m := make(map[string]*scan.Result, len(rs))
	for i := range rs {
		m[rs[i].Key()] = &rs[i]
	}
	return m
}

// exposed reports whether a service offers a stranger anything worth an
// alarm: an open or unproven operation, no or weak authorization, or a
// finding above info.
func exposed(r *scan.Result) bool {
	if !IsService(r) {
		return false
	}
	if Class(r) != ClassClosed || r.Auth == scan.AuthNone || r.Auth == scan.AuthWeak {
		return true
	}
	for _, f := range r.Findings {
		if severityRank(f.Severity) < severityRank(scan.SeverityInfo) {
			return true
		}
	}
	return false
}

// describe is a one-line account of a service.
func describe(r *scan.Result) string {
	if !IsService(r) {
		return "not DICOM"
	}
	s := fmt.Sprintf("authorization %s, %s", or(r.Auth, scan.AuthUnknown), Class(r))
	if r.TLS.Enabled {
		s += ", TLS"
	}
	if r.Product != nil && r.Product.Name != "" {
		s += ", " + strings.TrimSpace(r.Product.Name+" "+r.Product.Version)
	}
	if IsDecoy(r) {
		s += ", likely decoy"
	}
	return s
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// exposureRank orders exposure states; -1 means unknown (not compared).
func exposureRank(s string) int {
	switch s {
	case scan.ExposureClosed:
		return 0
	case scan.ExposureUnproven:
		return 1
	case scan.ExposureOpen:
		return 2
	}
	return -1
}

// authRank orders authorization from strong (0) to none (2); -1 means
// unknown (not compared: a timeout is not a fix).
func authRank(s string) int {
	switch s {
	case scan.AuthStrong:
		return 0
	case scan.AuthWeak:
		return 1
	case scan.AuthNone:
		return 2
	}
	return -1
}

func direction(from, to int) string {
	switch {
	case from < 0 || to < 0 || from == to:
		return Neutral
	case to > from:
		return Worse
	}
	return Better
}

func compare(k string, o, n *scan.Result, add func(Change)) {
	if IsService(o) != IsService(n) {
		// A service that stopped (or started) speaking DICOM: say so and
		// compare nothing else, its fields mean nothing.
		dir := Neutral
		if exposed(n) {
			dir = Worse
		} else if exposed(o) {
			dir = Better
		}
		add(Change{Key: k, Kind: KindNewService, What: "dicom", From: describe(o), To: describe(n), Direction: dir})
		return
	}
	for _, op := range []struct{ name, from, to string }{
		{"query", o.Exposure.Query, n.Exposure.Query},
		{"retrieve", o.Exposure.Retrieve, n.Exposure.Retrieve},
		{"store", o.Exposure.Store, n.Exposure.Store},
	} {
		if op.from != op.to {
			add(Change{Key: k, Kind: KindExposure, What: op.name, From: or(op.from, "unknown"), To: or(op.to, "unknown"),
				Direction: direction(exposureRank(op.from), exposureRank(op.to))})
		}
	}
	if o.Auth != n.Auth {
		add(Change{Key: k, Kind: KindAuth, From: or(o.Auth, scan.AuthUnknown), To: or(n.Auth, scan.AuthUnknown),
			Direction: direction(authRank(o.Auth), authRank(n.Auth)), Detail: n.AuthDetail})
	}
	if o.TLS.Enabled != n.TLS.Enabled || o.TLS.ClientCertRequired != n.TLS.ClientCertRequired {
		from, to := tlsState(o), tlsState(n)
		add(Change{Key: k, Kind: KindTLS, From: from, To: to, Direction: direction(tlsRank(o), tlsRank(n))})
	}
	of, nf := findingsByID(o), findingsByID(n)
	for id, f := range nf {
		if _, ok := of[id]; !ok {
			dir := Worse
			if f.Severity == scan.SeverityInfo {
				dir = Neutral
			}
			add(Change{Key: k, Kind: KindNewFinding, What: id, To: f.Severity, Direction: dir, Detail: f.Title})
		}
	}
	for id, f := range of {
		if _, ok := nf[id]; !ok {
			dir := Better
			if f.Severity == scan.SeverityInfo {
				dir = Neutral
			}
			add(Change{Key: k, Kind: KindFixed, What: id, From: f.Severity, Direction: dir, Detail: f.Title})
		}
	}
	if op, np := productString(o), productString(n); op != np {
		add(Change{Key: k, Kind: KindProduct, From: op, To: np, Direction: Neutral})
	}
	if IsDecoy(o) != IsDecoy(n) {
		add(Change{Key: k, Kind: KindDecoy, From: decoyState(o), To: decoyState(n), Direction: Neutral})
	}
}

func tlsState(r *scan.Result) string {
	switch {
	case r.TLS.Enabled && r.TLS.ClientCertRequired:
		return "TLS with client certificate"
	case r.TLS.Enabled:
		return "TLS"
	}
	return "plain"
}

// tlsRank: plain is worst (2), TLS 1, TLS with client certificates 0.
func tlsRank(r *scan.Result) int {
	switch {
	case r.TLS.Enabled && r.TLS.ClientCertRequired:
		return 0
	case r.TLS.Enabled:
		return 1
	}
	return 2
}

func findingsByID(r *scan.Result) map[string]scan.Finding {
	m := make(map[string]scan.Finding, len(r.Findings))
	for _, f := range r.Findings {
		m[f.ID] = f
	}
	return m
}

func productString(r *scan.Result) string {
	if r.Product == nil || r.Product.Name == "" {
		return Unidentified
	}
	return strings.TrimSpace(r.Product.Name + " " + r.Product.Version)
}

func decoyState(r *scan.Result) string {
	if IsDecoy(r) {
		return "likely decoy"
	}
	return "not a decoy"
}

// WriteText writes d for a person: worse changes first, one per line.
func (d *Delta) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%d services before, %d now: %d worse, %d better, %d other changes\n",
		d.OldServices, d.NewServices, d.Count(Worse), d.Count(Better), d.Count(Neutral))
	width := 0
	for _, c := range d.Changes {
		width = max(width, len(c.Key))
	}
	last := ""
	for _, c := range d.Changes {
		if c.Direction != last {
			last = c.Direction
			fmt.Fprintf(&b, "%s:\n", heading[c.Direction])
		}
		fmt.Fprintf(&b, "  %-*s  %s\n", width, printable(c.Key), printable(c.sentence()))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// printable replaces control characters, which a hostile peer could plant
// in what it announces (product names, AE titles), so that they do not
// reach the terminal.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
}

var heading = map[string]string{Worse: "became worse", Better: "became better", Neutral: "other changes"}

func (c Change) sentence() string {
	switch c.Kind {
	case KindNewService:
		if c.What == "dicom" {
			return fmt.Sprintf("now %s (was %s)", c.To, c.From)
		}
		return "new service: " + c.Detail
	case KindGoneService:
		return "gone (" + c.Detail + ")"
	case KindExposure:
		return fmt.Sprintf("%s: %s -> %s", c.What, c.From, c.To)
	case KindAuth:
		s := fmt.Sprintf("authorization: %s -> %s", c.From, c.To)
		if c.Detail != "" {
			s += " (" + c.Detail + ")"
		}
		return s
	case KindTLS:
		return fmt.Sprintf("transport: %s -> %s", c.From, c.To)
	case KindNewFinding:
		return fmt.Sprintf("new finding [%s] %s: %s", c.To, c.What, c.Detail)
	case KindFixed:
		return fmt.Sprintf("fixed [%s] %s: %s", c.From, c.What, c.Detail)
	case KindProduct:
		return fmt.Sprintf("product: %s -> %s", c.From, c.To)
	case KindDecoy:
		return fmt.Sprintf("%s -> %s", c.From, c.To)
	}
	return c.Kind
}
