// Package doctor inspects an archive's data directory and its running
// listeners and names every weakness it finds in words meant for the
// person who looks after a clinic's computers: what is wrong, how bad it
// is, and one sentence of what to do.
//
// It only reads: it never creates, repairs or rewrites anything in the
// data directory (unlike archive.Open, which makes what is missing). The
// probes of the listeners are two connections to this machine: a TLS
// handshake without a client certificate, and one association request
// under an unregistered AE title on the plain listener. Both are refused
// by a healthy server and count against the rejections of the address
// they come from, which a probe binds to and reports (see config
// [abuse]): doctor says how many runs get that address banned, unless
// [abuse] never_ban exempts it.
package doctor

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/dicomshield/dicomshield/internal/config"
	"github.com/dicomshield/dicomshield/internal/pki"
	"github.com/dicomshield/dicomshield/internal/policy"
)

// Severity says how bad a weakness is.
type Severity int

// Severities, least first. A High finding makes doctor exit non-zero.
const (
	Info   Severity = iota // worth knowing, nothing to fix
	Low                    // a small weakness, or one the owner chose
	Medium                 // fix it soon
	High                   // patient data or the server is at risk now
)

var severityNames = []string{"info", "low", "medium", "high"}

func (s Severity) String() string {
	if s < 0 || int(s) >= len(severityNames) {
		return "unknown"
	}
	return severityNames[s]
}

// MarshalText writes the severity's name (JSON output).
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a severity's name.
func (s *Severity) UnmarshalText(b []byte) error {
	for i, n := range severityNames {
		if n == string(b) {
			*s = Severity(i)
			return nil
		}
	}
	return fmt.Errorf("doctor: %q is not a severity", b)
}

// Finding is one weakness.
type Finding struct {
	// Check names the check, stable for scripts ("plaintext-listener").
	Check    string   `json:"check"`
	Severity Severity `json:"severity"`
	// Problem says what is wrong, in plain words.
	Problem string `json:"problem"`
	// Fix says in one sentence what to do.
	Fix string `json:"fix"`
}

// Defaults of Options.
const (
	// DefaultExpiryWarning is how long before the CA certificate expires
	// that doctor warns: 30 days leaves time to plan a new CA and install
	// it on every device. Server and peer certificates are short-lived and
	// renewed at two thirds of their life (pki.DefaultRenewBefore), so
	// doctor warns for them once they reach their last third: renewal is
	// then not happening.
	DefaultExpiryWarning = 30 * 24 * time.Hour

	// DefaultProbeTimeout bounds each probe of a listener on this
	// machine: it answers in milliseconds when it is up.
	DefaultProbeTimeout = 5 * time.Second

	// WidestIPv4Range and WidestIPv6Range are the widest address ranges
	// doctor accepts for a peer without comment: a /24 is one typical
	// clinic subnet; an IPv6 /64 is one network segment.
	WidestIPv4Range = 24
	WidestIPv6Range = 64
)

// Options configure Inspect. Zero values select the defaults.
type Options struct {
	// Dir is the data directory.
	Dir string
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// ExpiryWarning: zero means DefaultExpiryWarning.
	ExpiryWarning time.Duration
	// NoProbe skips probing the listeners (configuration only).
	NoProbe bool
	// ProbeTimeout: zero means DefaultProbeTimeout.
	ProbeTimeout time.Duration
}

// Report is what Inspect found.
type Report struct {
	Dir      string    `json:"data_dir"`
	Findings []Finding `json:"findings"`
	Probes   []Probe   `json:"probes,omitempty"`
}

// Worst returns the highest severity found, or -1 when nothing was.
func (r *Report) Worst() Severity {
	w := Severity(-1)
	for _, f := range r.Findings {
		w = max(w, f.Severity)
	}
	return w
}

// Count returns how many findings have severity s.
func (r *Report) Count(s Severity) int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == s {
			n++
		}
	}
	return n
}

// ErrNoDataDir is returned when the data directory does not exist.
var ErrNoDataDir = errors.New("doctor: no data directory")

// state is what the checks look at, read once from the data directory.
type state struct {
	dir     string
	now     time.Time
	warn    time.Duration
	dirInfo fs.FileInfo

	cfg    *config.Config // nil if it could not be loaded
	cfgErr error

	peers    []policy.Peer
	peersErr error

	caCert     *x509.Certificate
	serverCert *x509.Certificate
}

// Inspect reads the data directory in o.Dir, probes its listeners (unless
// o.NoProbe) and returns every weakness, worst first.
func Inspect(ctx context.Context, o Options) (*Report, error) {
	st, err := load(ctx, o)
	if err != nil {
		return nil, err
	}
	r := &Report{Dir: o.Dir}
	for _, c := range checks {
		r.Findings = append(r.Findings, c(st)...)
	}
	if !o.NoProbe && st.cfg != nil {
		timeout := o.ProbeTimeout
		if timeout <= 0 {
			timeout = DefaultProbeTimeout
		}
		probes, findings := probe(ctx, st, timeout)
		r.Probes = probes
		r.Findings = append(r.Findings, findings...)
	}
	sort.SliceStable(r.Findings, func(i, j int) bool { return r.Findings[i].Severity > r.Findings[j].Severity })
	return r, nil
}

func load(ctx context.Context, o Options) (*state, error) {
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	st := &state{dir: o.Dir, now: now(), warn: o.ExpiryWarning}
	if st.warn <= 0 {
		st.warn = DefaultExpiryWarning
	}
	fi, err := os.Stat(o.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w at %s (give the one serve uses with --data)", ErrNoDataDir, o.Dir)
	}
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%w: %s is not a directory", ErrNoDataDir, o.Dir)
	}
	st.dirInfo = fi
	st.cfg, st.cfgErr = config.Load(config.Path(o.Dir))
	if _, err := os.Stat(filepath.Join(o.Dir, policy.PeersFileName)); err == nil {
		reg, err := policy.OpenFileRegistry(filepath.Join(o.Dir, policy.PeersFileName))
		if err == nil {
			st.peers, err = reg.List(ctx)
			reg.Close()
		}
		st.peersErr = err
	} else if !errors.Is(err, fs.ErrNotExist) {
		st.peersErr = err
	}
	st.caCert = readCert(filepath.Join(o.Dir, archivePKIDir, pki.CACertFile))
	st.serverCert = readCert(filepath.Join(o.Dir, archivePKIDir, pki.ServerCertFile))
	return st, nil
}

// archivePKIDir is archive.PKIDir; the archive package is not imported so
// that doctor stays a reader of the data directory.
const archivePKIDir = "pki"

// readCert returns the first certificate in a PEM file, or nil.
func readCert(path string) *x509.Certificate {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil
	}
	return c
}
