package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/dicomshield/dicomshield/internal/privfile"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// ErrUnknownPeer is returned (possibly wrapped) for an AE title that is not
// registered.
var ErrUnknownPeer = errors.New("unknown peer")

// Registry holds the registered peers. Implementations are safe for
// concurrent use; peers returned are copies the caller may keep.
type Registry interface {
	// List returns every peer, sorted by AE title.
	List(ctx context.Context) ([]Peer, error)
	// Get returns the peer with AE title ae, or an error wrapping
	// ErrUnknownPeer.
	Get(ctx context.Context, ae string) (*Peer, error)
	// Put adds the peer or replaces the one with the same AE title.
	Put(ctx context.Context, p Peer) error
	// Remove deletes the peer, or returns an error wrapping ErrUnknownPeer.
	Remove(ctx context.Context, ae string) error
}

// PeersFileName is the name of the peer registry in the data directory.
const PeersFileName = "peers.json"

// fileVersion is the version of the peers.json format.
const fileVersion = 1

// maxPeersFile bounds how much of peers.json is read.
const maxPeersFile = 16 << 20

// FileRegistry is a Registry kept in a JSON file. Every change is written
// atomically (temporary file, fsync, rename; mode 0600) under an exclusive
// lock on a ".lock" file beside it, so several processes (a running server
// and `peer add`/`peer remove` commands) can share it. Each read checks
// whether the file changed since it was loaded and re-reads it if so: a
// peer removed by another process is refused from its next association
// on, without a restart.
//
// The registry fails closed: if the file cannot be read or parsed, or can
// be changed by other users, every Get and List returns an error until it
// is fixed. A missing file is an empty registry.
type FileRegistry struct {
	path string

	mu     sync.Mutex
	peers  map[string]Peer // by AE title
	pinned *os.File        // the loaded version, kept open so its inode is not reused
	info   fs.FileInfo     // its stat when loaded; nil when the file was absent
	err    error           // why the loaded version is unusable, if it is
	gen    uint64          // counts the versions loaded (Generation)
}

// OpenFileRegistry opens the registry at path (normally peers.json in the
// data directory). The file need not exist; it is created by the first
// Put. An existing file that cannot be used is an error.
func OpenFileRegistry(path string) (*FileRegistry, error) {
	r := &FileRegistry{path: path}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.refresh(); err != nil {
		r.closePinned()
		return nil, err
	}
	return r, nil
}

// Path returns the registry file's path.
func (r *FileRegistry) Path() string { return r.path }

// Close releases the open file the registry keeps; further use re-opens.
func (r *FileRegistry) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closePinned()
	r.info, r.peers, r.err = nil, nil, nil
	return nil
}

// Generation re-reads the file if it changed and returns a number that
// changes whenever a new version of it was loaded (and only then): a
// server polls it to re-decide its open associations when peers are
// revoked, removed or changed by another process. The error is the
// registry's, as from List.
func (r *FileRegistry) Generation() (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.refresh()
	return r.gen, err
}

// List implements Registry.
func (r *FileRegistry) List(ctx context.Context) ([]Peer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.refresh(); err != nil {
		return nil, err
	}
	return sortedPeers(r.peers), nil
}

// Get implements Registry.
func (r *FileRegistry) Get(ctx context.Context, ae string) (*Peer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ae = trimAE(ae)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.refresh(); err != nil {
		return nil, err
	}
	p, ok := r.peers[ae]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownPeer, ae)
	}
	p = p.clone()
	return &p, nil
}

// Put implements Registry. The peer is validated and normalised (hosts
// masked and de-duplicated, rights in canonical order). A zero AddedAt
// keeps the replaced peer's, or is set to now for a new peer.
func (r *FileRegistry) Put(ctx context.Context, p Peer) error {
	if err := p.Validate(); err != nil {
		return err
	}
	p = p.clone()
	return r.update(ctx, func(peers map[string]Peer) error {
		if p.AddedAt.IsZero() {
			if old, ok := peers[p.AETitle]; ok {
				p.AddedAt = old.AddedAt
			} else {
				p.AddedAt = time.Now().UTC().Truncate(time.Second)
			}
		}
		peers[p.AETitle] = p
		return nil
	})
}

// Remove implements Registry.
func (r *FileRegistry) Remove(ctx context.Context, ae string) error {
	ae = trimAE(ae)
	return r.update(ctx, func(peers map[string]Peer) error {
		if _, ok := peers[ae]; !ok {
			return fmt.Errorf("%w %q", ErrUnknownPeer, ae)
		}
		delete(peers, ae)
		return nil
	})
}

// Modify changes the peer with AE title ae in place: change gets a copy
// of the current peer, and what it leaves is validated and written, all
// under the registry's lock, so that a concurrent change (a renewal and a
// revocation at the same moment) cannot be lost or interleaved. An error
// from change is returned and nothing is written. An unknown peer is an
// error wrapping ErrUnknownPeer.
func (r *FileRegistry) Modify(ctx context.Context, ae string, change func(*Peer) error) error {
	ae = trimAE(ae)
	return r.update(ctx, func(peers map[string]Peer) error {
		old, ok := peers[ae]
		if !ok {
			return fmt.Errorf("%w %q", ErrUnknownPeer, ae)
		}
		p := old.clone()
		if err := change(&p); err != nil {
			return err
		}
		p.AETitle = old.AETitle
		if err := p.Validate(); err != nil {
			return err
		}
		peers[ae] = p.clone()
		return nil
	})
}

// update applies change to the current peers and writes the result, all
// under the in-process mutex and the cross-process file lock.
func (r *FileRegistry) update(ctx context.Context, change func(map[string]Peer) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	unlock, err := privfile.Lock(r.path + ".lock")
	if err != nil {
		return fmt.Errorf("peer registry: locking: %w", err)
	}
	defer unlock()
	if err := r.refresh(); err != nil {
		return err
	}
	peers := make(map[string]Peer, len(r.peers)+1)
	for k, v := range r.peers {
		peers[k] = v
	}
	if err := change(peers); err != nil {
		return err
	}
	data, err := encodePeers(peers)
	if err != nil {
		return err
	}
	if err := privfile.WriteAtomic(r.path, data); err != nil {
		return fmt.Errorf("peer registry: %w", err)
	}
	return r.refresh()
}

// refresh re-reads the file if it is not the version loaded: another file
// (every write renames a new one into place; the loaded one is kept open
// so that its inode number cannot be reused), or the same file with another
// size, modification time or mode (edited in place). r.mu is held.
func (r *FileRegistry) refresh() error {
	fi, err := os.Stat(r.path)
	if errors.Is(err, fs.ErrNotExist) {
		if r.info != nil || r.peers == nil || r.err != nil {
			r.gen++
		}
		r.closePinned()
		r.info, r.err, r.peers = nil, nil, map[string]Peer{}
		return nil
	}
	if err != nil {
		return fmt.Errorf("peer registry: %w", err)
	}
	if r.info != nil && os.SameFile(fi, r.info) && fi.Size() == r.info.Size() &&
		fi.ModTime().Equal(r.info.ModTime()) && fi.Mode() == r.info.Mode() {
		return r.err
	}
	f, err := os.Open(r.path)
	if errors.Is(err, fs.ErrNotExist) {
		// Replaced between Stat and Open: the next call sees the new one.
		return fmt.Errorf("peer registry: %s changed while being read; try again", r.path)
	}
	if err != nil {
		return fmt.Errorf("peer registry: %w", err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("peer registry: %w", err)
	}
	peers, loadErr := readPeers(f, info)
	r.gen++
	r.closePinned()
	r.pinned, r.info, r.err = f, info, nil
	if loadErr != nil {
		r.peers = map[string]Peer{}
		r.err = fmt.Errorf("peer registry %s: %w; every association is refused until it is fixed", r.path, loadErr)
		return r.err
	}
	r.peers = peers
	return nil
}

func (r *FileRegistry) closePinned() {
	if r.pinned != nil {
		r.pinned.Close()
		r.pinned = nil
	}
}

// The peers.json format.
type peersFile struct {
	Version int        `json:"version"`
	Peers   []peerJSON `json:"peers"`
}

type peerJSON struct {
	AETitle        string     `json:"ae_title"`
	Hosts          []string   `json:"hosts"`
	Port           int        `json:"port,omitempty"`
	Rights         []Right    `json:"rights"`
	Plaintext      bool       `json:"plaintext,omitempty"`
	CertSerial     string     `json:"cert_serial,omitempty"`
	CertNotAfter   *time.Time `json:"cert_not_after,omitempty"`
	RevokedSerials []string   `json:"revoked_serials,omitempty"`
	RequireUser    bool       `json:"require_user,omitempty"`
	AddedAt        time.Time  `json:"added_at"`
	MayReopen      bool       `json:"may_reopen,omitempty"`
}

func readPeers(f *os.File, info fs.FileInfo) (map[string]Peer, error) {
	if !info.Mode().IsRegular() {
		return nil, errors.New("is not a regular file")
	}
	if perm := info.Mode().Perm(); perm&0o022 != 0 {
		return nil, fmt.Errorf("can be changed by other users (permissions %04o), so anyone could register a peer; make it writable by its owner only (chmod 600)", perm)
	}
	var pf peersFile
	if err := privfile.DecodeJSON(f, maxPeersFile, &pf); err != nil {
		return nil, err
	}
	if pf.Version != fileVersion {
		return nil, fmt.Errorf("has format version %d; this dicomshield reads version %d", pf.Version, fileVersion)
	}
	peers := make(map[string]Peer, len(pf.Peers))
	for i, pj := range pf.Peers {
		p := Peer{
			AETitle:        pj.AETitle,
			Port:           pj.Port,
			Rights:         pj.Rights,
			Plaintext:      pj.Plaintext,
			CertSerial:     pj.CertSerial,
			RevokedSerials: pj.RevokedSerials,
			RequireUser:    pj.RequireUser,
			AddedAt:        pj.AddedAt,
			MayReopen:      pj.MayReopen,
		}
		if pj.CertNotAfter != nil {
			p.CertNotAfter = *pj.CertNotAfter
		}
		for _, h := range pj.Hosts {
			pfx, err := ParseHost(h)
			if err != nil {
				return nil, fmt.Errorf("peer %d (%q): %v", i+1, pj.AETitle, err)
			}
			p.Hosts = append(p.Hosts, pfx)
		}
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("peer %d: %v", i+1, err)
		}
		if _, dup := peers[p.AETitle]; dup {
			return nil, fmt.Errorf("peer %q is listed twice", p.AETitle)
		}
		peers[p.AETitle] = p.clone()
	}
	return peers, nil
}

func encodePeers(peers map[string]Peer) ([]byte, error) {
	pf := peersFile{Version: fileVersion, Peers: []peerJSON{}}
	for _, p := range sortedPeers(peers) {
		hosts := make([]string, len(p.Hosts))
		for i, h := range p.Hosts {
			hosts[i] = FormatHost(h)
		}
		pj := peerJSON{
			AETitle:        p.AETitle,
			Hosts:          hosts,
			Port:           p.Port,
			Rights:         p.Rights,
			Plaintext:      p.Plaintext,
			CertSerial:     p.CertSerial,
			RevokedSerials: p.RevokedSerials,
			RequireUser:    p.RequireUser,
			AddedAt:        p.AddedAt,
			MayReopen:      p.MayReopen,
		}
		if !p.CertNotAfter.IsZero() {
			na := p.CertNotAfter
			pj.CertNotAfter = &na
		}
		pf.Peers = append(pf.Peers, pj)
	}
	data, err := json.MarshalIndent(pf, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

func sortedPeers(m map[string]Peer) []Peer {
	out := make([]Peer, 0, len(m))
	for _, p := range m {
		out = append(out, p.clone())
	}
	slices.SortFunc(out, func(a, b Peer) int { return strings.Compare(a.AETitle, b.AETitle) })
	return out
}

var _ Registry = (*FileRegistry)(nil)
