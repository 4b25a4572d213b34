// Package archive wires dicomshield's PACS together: the DIMSE server with
// the policy as its acceptor, the store behind its handlers, and the
// internal CA for TLS. Data flows one way: bytes in, decoded, authorised,
// stored.
package archive

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/dicomshield/dicomshield/internal/abuse"
	"github.com/dicomshield/dicomshield/internal/audit"
	"github.com/dicomshield/dicomshield/internal/config"
	"github.com/dicomshield/dicomshield/internal/dimse"
	"github.com/dicomshield/dicomshield/internal/identity"
	"github.com/dicomshield/dicomshield/internal/pki"
	"github.com/dicomshield/dicomshield/internal/policy"
	"github.com/dicomshield/dicomshield/internal/store"
	"github.com/dicomshield/dicomshield/internal/store/fs"
	"github.com/dicomshield/dicomshield/internal/store/sqlite"
	"github.com/dicomshield/dicomshield/internal/ul"
)

// Layout of the data directory.
const (
	PKIDir    = "pki"
	IndexFile = "index.db"
	BlobsDir  = "blobs"
)

// Setup reports what Open created, for the first-start message.
type Setup struct {
	CreatedDir, CreatedConfig, CreatedCA bool
	ConfigPath                           string
	CAFingerprint                        string
}

// Archive is an opened data directory: configuration, CA, peers, index
// and blobs.
type Archive struct {
	Dir      string
	Config   *config.Config
	CA       *pki.CA
	Registry *policy.FileRegistry
	Policy   *policy.Policy
	Index    store.Index
	Blobs    store.Blobs
	Logger   *slog.Logger
	// Audit receives the audit trail's events; Open sets Discard, serve
	// sets the configured trail.
	Audit audit.Recorder
	// Identity checks user identity negotiation (identity.go).
	Identity *identity.Authenticator
	// Now is the archive's clock; nil means time.Now (tests inject one).
	Now func() time.Time

	transfers transfers

	// quarantinedAtOpen counts the blobs recovery moved into quarantine
	// when the archive was opened, at quarantinedAt; Serve records the
	// alert once the trail is there.
	quarantinedAtOpen int
	quarantinedAt     time.Time

	mu      sync.Mutex
	servers []*dimse.Server
	perPeer map[string]int
	// pending holds the slots of associations accept let in that are not
	// established yet, by remote address (slots.go).
	pending map[string]*slot
	metrics *metrics
	guard   *abuse.Guard
}

// Open opens the data directory dir, creating what is missing: the
// directory (0700), a commented config file, the CA. It recovers from a
// crash: unfinished blobs are removed, and blobs no index row refers to
// (stored but never acknowledged, or put there by someone else) are moved
// into the quarantine folder for verify to report.
func Open(dir string, logger *slog.Logger) (*Archive, *Setup, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	setup := &Setup{ConfigPath: config.Path(dir)}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		setup.CreatedDir = true
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	if err := config.WriteDefault(setup.ConfigPath); err == nil {
		setup.CreatedConfig = true
	} else if !errors.Is(err, os.ErrExist) {
		return nil, nil, err
	}
	cfg, err := config.Load(setup.ConfigPath)
	if err != nil {
		return nil, nil, err
	}
	ca, created, err := pki.LoadOrCreate(filepath.Join(dir, PKIDir))
	if err != nil {
		return nil, nil, err
	}
	setup.CreatedCA, setup.CAFingerprint = created, ca.Fingerprint()
	reg, err := policy.OpenFileRegistry(filepath.Join(dir, policy.PeersFileName))
	if err != nil {
		return nil, nil, err
	}
	ix, err := sqlite.Open(filepath.Join(dir, IndexFile))
	if err != nil {
		return nil, nil, err
	}
	bl, err := fs.Open(filepath.Join(dir, BlobsDir))
	if err != nil {
		ix.Close()
		return nil, nil, err
	}
	auth, err := newAuthenticator(dir, cfg)
	if err != nil {
		ix.Close()
		return nil, nil, err
	}
	a := &Archive{Dir: dir, Identity: auth, Config: cfg, CA: ca, Registry: reg, Index: ix, Blobs: bl, Logger: logger, Audit: audit.Discard{},
		Policy: &policy.Policy{Registry: reg, AETitle: cfg.AETitle}, perPeer: map[string]int{}, pending: map[string]*slot{}, metrics: newMetrics()}
	if err := a.recover(context.Background()); err != nil {
		a.Close()
		return nil, nil, fmt.Errorf("archive: recovery: %w", err)
	}
	return a, setup, nil
}

// OpenRegistry loads the configuration, CA and peer registry of dir
// without opening the index (for commands that manage peers).
func OpenRegistry(dir string) (*policy.FileRegistry, *pki.CA, *config.Config, error) {
	// Registering peers before the first serve is fine: the data directory
	// and its default config are made as serve would make them.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, nil, err
	}
	if err := config.WriteDefault(config.Path(dir)); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, nil, nil, err
	}
	cfg, err := config.Load(config.Path(dir))
	if err != nil {
		return nil, nil, nil, err
	}
	ca, _, err := pki.LoadOrCreate(filepath.Join(dir, PKIDir))
	if err != nil {
		return nil, nil, nil, err
	}
	reg, err := policy.OpenFileRegistry(filepath.Join(dir, policy.PeersFileName))
	if err != nil {
		return nil, nil, nil, err
	}
	return reg, ca, cfg, nil
}

// recover finishes what a crash interrupted. Unfinished blobs (scratch
// files) are removed. Blobs no index row refers to are moved into the
// quarantine folder (quarantine.go), never deleted: a blob is committed
// before its index row, so one without a row is either a store a crash cut
// short (never acknowledged) or a file put there outside dicomshield, and
// only an operator can tell. verify reports them until they are cleared.
func (a *Archive) recover(ctx context.Context) error {
	if r, ok := a.Blobs.(store.Recoverer); ok {
		if err := r.Recover(); err != nil {
			return err
		}
	}
	orphans, err := unreferenced(ctx, a.Index, a.Blobs)
	if err != nil {
		return err
	}
	n, err := a.quarantine(orphans)
	a.quarantinedAtOpen, a.quarantinedAt = n, a.now()
	if n > 0 {
		a.Logger.Warn("recovery moved files no index row refers to into quarantine", "count", n,
			"dir", QuarantinePath(a.Dir), "advice", QuarantineAdvice)
	}
	return err
}

// Close closes the index and the users file.
func (a *Archive) Close() error {
	if a.Identity != nil && a.Identity.Users != nil {
		a.Identity.Users.Close()
	}
	return a.Index.Close()
}

// Listeners opens the configured listeners: TLS (always, unless
// configured off) and plain (only when configured).
func (a *Archive) Listeners() (tlsL, plainL net.Listener, err error) {
	if a.Config.ListenTLS != "" {
		if tlsL, err = net.Listen("tcp", a.Config.ListenTLS); err != nil {
			return nil, nil, fmt.Errorf("listening for DICOM TLS on %s: %w", a.Config.ListenTLS, err)
		}
	}
	if a.Config.Listen != "" {
		if plainL, err = net.Listen("tcp", a.Config.Listen); err != nil {
			if tlsL != nil {
				tlsL.Close()
			}
			return nil, nil, fmt.Errorf("listening for plain DICOM on %s: %w", a.Config.Listen, err)
		}
	}
	return tlsL, plainL, nil
}

// Serve runs the archive on the listeners (either may be nil) until ctx
// ends, then shuts down gracefully: no new associations, in-flight
// operations finish, and whatever is left after the grace period is
// aborted.
func (a *Archive) Serve(ctx context.Context, tlsL, plainL net.Listener, grace time.Duration) error {
	errc := make(chan error, 2)
	n := 0
	tlsL, plainL = a.guardListeners(tlsL, plainL)
	if tlsL != nil {
		tc, err := a.CA.ServerTLSConfig(a.hosts())
		if err != nil {
			return err
		}
		s := a.newServer(tc)
		n++
		go func() { errc <- s.Serve(tlsL) }()
	}
	if plainL != nil {
		s := a.newServer(nil)
		n++
		go func() { errc <- s.Serve(plainL) }()
	}
	if n == 0 {
		return errors.New("archive: no listener configured")
	}
	if a.Config.Metrics != "" {
		ml, err := net.Listen("tcp", a.Config.Metrics)
		if err != nil {
			a.Logger.Error("metrics endpoint not started", "addr", a.Config.Metrics, "err", err)
		} else {
			mctx, stop := context.WithCancel(context.Background())
			defer stop()
			go a.serveMetrics(mctx, ml)
			a.Logger.Info("metrics on http://" + ml.Addr().String() + "/metrics")
		}
	}
	// Peers revoked, removed or narrowed while serving lose their open
	// associations too (revoke.go); the watch runs through the grace
	// period, so a revoked peer cannot finish a transfer in it.
	wctx, stopWatch := context.WithCancel(context.Background())
	watched := make(chan struct{})
	go func() { defer close(watched); a.watchPeers(wctx) }()
	defer func() { stopWatch(); <-watched }()
	a.Audit.Record(audit.Event{Kind: audit.AppStart, User: osUser(), Description: a.listening(tlsL, plainL)})
	a.recordQuarantine()
	defer func() {
		a.Audit.Record(audit.Event{Kind: audit.AppStop, User: osUser(), Description: "dicomshield stopped"})
	}()
	var first error
	select {
	case <-ctx.Done():
	case first = <-errc:
		n--
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	a.mu.Lock()
	servers := append([]*dimse.Server(nil), a.servers...)
	a.mu.Unlock()
	for _, s := range servers {
		s.Shutdown(sctx)
	}
	for ; n > 0; n-- {
		if err := <-errc; err != nil && !errors.Is(err, dimse.ErrServerClosed) && first == nil {
			first = err
		}
	}
	if errors.Is(first, dimse.ErrServerClosed) {
		first = nil
	}
	return first
}

// listening describes the listeners for the application-start event.
func (a *Archive) listening(tlsL, plainL net.Listener) string {
	var parts []string
	if tlsL != nil {
		parts = append(parts, "DICOM over TLS on "+tlsL.Addr().String())
	}
	if plainL != nil {
		parts = append(parts, "plain DICOM on "+plainL.Addr().String())
	}
	return "dicomshield started as " + a.Config.AETitle + ": " + strings.Join(parts, ", ")
}

func (a *Archive) hosts() []string {
	if len(a.Config.Hostnames) > 0 {
		return a.Config.Hostnames
	}
	return pki.DefaultHosts()
}

func (a *Archive) newServer(tc *tls.Config) *dimse.Server {
	s := &dimse.Server{
		UL: ul.Config{
			AssociateTimeout: a.Config.Limits.AssociateTimeout.Duration(),
			IdleTimeout:      a.Config.Limits.IdleTimeout.Duration(),
		},
		MaxAssociations: a.Config.Limits.MaxAssociations,
		MaxDataSetSize:  a.Config.MaxInstanceBytes(),
		Logger:          a.Logger,
		Accept:          a.accept,
		Echo:            a.echo,
		Store:           a.store,
		Find:            a.find,
		Retrieve:        a.retrieve,
		MoveDestination: a.moveDestination,
		ConnState:       a.connState,
		NotEstablished:  a.notEstablished,
		TLS:             tc,
	}
	a.mu.Lock()
	a.servers = append(a.servers, s)
	a.mu.Unlock()
	return s
}

// connState counts open associations, gives an association's per-peer
// slot back when it ends (slots.go), and records its transfers in the
// audit trail.
func (a *Archive) connState(as *dimse.Assoc, open bool) {
	if !open {
		if m := a.transfers.take(as); len(m) > 0 {
			a.recordTransfers(as, m)
		}
	}
	if open {
		a.metrics.assocOpen.Add(1)
		a.slotEstablished(as.RemoteAddr)
		return
	}
	a.metrics.assocOpen.Add(-1)
	if s, _ := as.Values.(*session); s != nil && s.slot != nil {
		s.slot.release()
	}
}

// unreferenced lists the stored blobs no index row refers to. Both sides
// come in ascending key order, so it walks them side by side, the index's
// keys from a goroutine, holding one key of each at a time: an archive of
// a million instances starts without first loading a million keys.
func unreferenced(parent context.Context, ix store.Index, bl store.Blobs) ([]string, error) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	keys := make(chan string, 256)
	ixErr := make(chan error, 1)
	go func() {
		defer close(keys)
		last := ""
		ixErr <- ix.BlobKeys(ctx, func(k string) error {
			// Out of order, the walk would take referenced blobs for
			// orphans and quarantine them: refuse instead.
			if k <= last {
				return fmt.Errorf("recovery: index listed blob key %s after %s: not in ascending order", k, last)
			}
			last = k
			select {
			case keys <- k:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	next, more := <-keys
	var orphans []string
	prev := ""
	err := bl.List(func(k string) error {
		if k <= prev {
			return fmt.Errorf("recovery: blob store listed %s after %s: not in ascending order", k, prev)
		}
		prev = k
		for more && next < k {
			next, more = <-keys
		}
		if !more || next != k {
			orphans = append(orphans, k)
		}
		return nil
	})
	cancel()
	for range keys {
	}
	// A short index walk makes every later blob look orphaned, so any
	// error of the index's, or the caller giving up, voids the list.
	if e := <-ixErr; err == nil && e != nil && !errors.Is(e, context.Canceled) {
		err = e
	}
	if err == nil {
		err = parent.Err()
	}
	if err != nil {
		return nil, err
	}
	return orphans, nil
}
