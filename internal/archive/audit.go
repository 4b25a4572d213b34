package archive

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/dicomshield/dicomshield/internal/audit"
	"github.com/dicomshield/dicomshield/internal/config"
	"github.com/dicomshield/dicomshield/internal/dimse"
	"github.com/dicomshield/dicomshield/internal/store"
)

// AuditSource is how this archive names itself in audit messages.
func AuditSource(cfg *config.Config) audit.Source {
	src := audit.Source{ID: cfg.Audit.SourceID, SiteID: cfg.Audit.SiteID, AETitle: cfg.AETitle, ProcessID: strconv.Itoa(os.Getpid())}
	if src.ID == "" {
		src.ID, _ = os.Hostname()
	}
	return src
}

// StartAudit opens the audit trail the configuration describes: the local
// log in the data directory and, when configured, the syslog collector.
// onError is told of failures to write or to reach the collector.
func (a *Archive) StartAudit(onError func(error)) (*audit.Trail, error) {
	c := a.Config.Audit
	opts := audit.Options{Path: audit.LogPath(a.Dir), Source: AuditSource(a.Config), QueueSize: c.QueueSize, OnError: onError}
	if c.Syslog != "" {
		tc, err := collectorTLS(a.Dir, c)
		if err != nil {
			return nil, err
		}
		opts.Syslog = &audit.SyslogOptions{Addr: c.Syslog, TLS: tc, AppName: c.AppName, Backlog: c.SyslogBacklog}
	}
	return audit.NewTrail(opts)
}

// collectorTLS verifies the collector against the configured CA, and
// shows our client certificate when one is configured.
func collectorTLS(dir string, c config.Audit) (*tls.Config, error) {
	path := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	pem, err := os.ReadFile(path(c.SyslogCA))
	if err != nil {
		return nil, fmt.Errorf("audit.syslog_ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("audit.syslog_ca: %s holds no PEM certificate", path(c.SyslogCA))
	}
	host, _, err := net.SplitHostPort(c.Syslog)
	if err != nil {
		return nil, fmt.Errorf("audit.syslog: %w", err)
	}
	tc := &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12}
	if c.SyslogCert != "" {
		pair, err := tls.LoadX509KeyPair(path(c.SyslogCert), path(c.SyslogKey))
		if err != nil {
			return nil, fmt.Errorf("audit.syslog_cert/syslog_key: %w", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}

// RecordLocal appends ev to the local audit log of the data directory dir
// at once: for commands that change the configuration without the server.
func RecordLocal(dir string, cfg *config.Config, ev audit.Event) error {
	return audit.Append(audit.LogPath(dir), AuditSource(cfg), ev)
}

// remoteIP returns the IP of a connection's address, without the port.
func remoteIP(addr net.Addr) string {
	if addr == nil {
		return ""
	}
	if ap, err := netip.ParseAddrPort(addr.String()); err == nil {
		return ap.Addr().Unmap().String()
	}
	return addr.String()
}

// assocEvent fills the who and where of an event from an association.
func assocEvent(as *dimse.Assoc, kind audit.Kind) audit.Event {
	ev := audit.Event{Kind: kind, CallingAE: strings.TrimSpace(as.CallingAE), CalledAE: strings.TrimSpace(as.CalledAE),
		Remote: remoteIP(as.RemoteAddr)}
	if s, _ := as.Values.(*session); s != nil {
		if s.peer != nil {
			ev.Peer = s.peer.AETitle
		}
		ev.User = s.user
	}
	return ev
}

// transfers gathers the instances an association stored or sent, per
// study, destination and outcome, so that the trail records one message
// per study when the association ends rather than one per instance, as
// IHE ATNA suggests.
type transfers struct {
	mu     sync.Mutex
	byAssn map[*dimse.Assoc]map[transferKey]*transfer
}

type transferKey struct {
	kind        audit.Kind
	study       string
	destination string
	outcome     audit.Outcome
}

type transfer struct {
	patients map[string]bool
	classes  map[string]int
	n        int
	why      string
}

// maxPendingStudies bounds the studies held for one association before
// they are recorded early, so a peer sending many studies on one
// association cannot grow the table without end.
const maxPendingStudies = 1000

func (t *transfers) add(a *Archive, as *dimse.Assoc, kind audit.Kind, dest string, in *store.Instance, outcome audit.Outcome, why string) {
	t.mu.Lock()
	if t.byAssn == nil {
		t.byAssn = map[*dimse.Assoc]map[transferKey]*transfer{}
	}
	m := t.byAssn[as]
	if m == nil {
		m = map[transferKey]*transfer{}
		t.byAssn[as] = m
	}
	k := transferKey{kind, in.StudyInstanceUID, dest, outcome}
	tr := m[k]
	if tr == nil {
		tr = &transfer{patients: map[string]bool{}, classes: map[string]int{}, why: why}
		m[k] = tr
	}
	if in.PatientID != "" {
		tr.patients[in.PatientID] = true
	}
	tr.classes[in.SOPClassUID]++
	tr.n++
	var flush map[transferKey]*transfer
	if len(m) > maxPendingStudies {
		flush = m
		delete(t.byAssn, as)
	}
	t.mu.Unlock()
	if flush != nil {
		a.recordTransfers(as, flush)
	}
}

// take removes and returns what an association gathered.
func (t *transfers) take(as *dimse.Assoc) map[transferKey]*transfer {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.byAssn[as]
	delete(t.byAssn, as)
	return m
}

// recordTransfers records one instances-stored or instances-sent event
// per study, destination and outcome.
func (a *Archive) recordTransfers(as *dimse.Assoc, m map[transferKey]*transfer) {
	keys := make([]transferKey, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(x, y transferKey) int {
		return strings.Compare(string(x.kind)+x.study+x.destination+strconv.Itoa(int(x.outcome)),
			string(y.kind)+y.study+y.destination+strconv.Itoa(int(y.outcome)))
	})
	for _, k := range keys {
		tr := m[k]
		ev := assocEvent(as, k.kind)
		ev.Outcome, ev.Destination, ev.Instances, ev.PerClass = k.outcome, k.destination, tr.n, tr.classes
		ev.Description = tr.why
		if k.study != "" {
			ev.Studies = []string{k.study}
		}
		for p := range tr.patients {
			ev.Patients = append(ev.Patients, p)
		}
		slices.Sort(ev.Patients)
		for c := range tr.classes {
			ev.SOPClasses = append(ev.SOPClasses, c)
		}
		slices.Sort(ev.SOPClasses)
		a.Audit.Record(ev)
	}
}

// auditOutcome maps a DIMSE status to an EventOutcomeIndicator.
func auditOutcome(code uint16) audit.Outcome {
	switch dimse.Kind(code) {
	case dimse.KindSuccess, dimse.KindWarning, dimse.KindCancel:
		return audit.Success
	}
	return audit.MinorFailure
}

// osUser names the operating system user running this process, for the
// launcher of the application and the person changing configuration.
func osUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return strconv.Itoa(os.Getuid())
}

// OSUser is osUser for the command line.
func OSUser() string { return osUser() }
