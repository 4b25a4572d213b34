package policy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func openReg(t *testing.T, path string) *FileRegistry {
	t.Helper()
	r, err := OpenFileRegistry(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestRegistryPersistence(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), PeersFileName)
	r := openReg(t, path)
	if ps, err := r.List(ctx); err != nil || len(ps) != 0 {
		t.Fatalf("new registry List = %v, %v", ps, err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("opening created the file: %v", err)
	}
	added := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	want := []Peer{
		{AETitle: "CT1", Hosts: mustHosts(t, "10.0.0.0/24", "fd00::1"), Port: 11112, Rights: []Right{RightEcho, RightStore}, CertSerial: "0a1b", AddedAt: added, MayReopen: true},
		{AETitle: "OLD US", Hosts: mustHosts(t, "192.168.1.5"), Rights: []Right{RightStore}, Plaintext: true, AddedAt: added},
	}
	for _, p := range want {
		if err := r.Put(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("peers file mode %04o, want 0600", fi.Mode().Perm())
	}
	if fi, err := os.Stat(path + ".lock"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("lock file: %v, %v", fi, err)
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}

	// A fresh registry on the same file reads the same peers.
	r2 := openReg(t, path)
	got, err := r2.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("reloaded peers:\n got %+v\nwant %+v", got, want)
	}
	p, err := r2.Get(ctx, "CT1 ")
	if err != nil || p.Port != 11112 {
		t.Fatalf("Get = %+v, %v", p, err)
	}
	// The file is readable JSON with bare addresses for single hosts.
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), `"192.168.1.5"`) || !strings.Contains(string(b), `"10.0.0.0/24"`) ||
		strings.Count(string(b), `"may_reopen": true`) != 1 {
		t.Errorf("file content:\n%s", b)
	}
}

func TestRegistryGetReturnsCopy(t *testing.T) {
	ctx := context.Background()
	r := openReg(t, filepath.Join(t.TempDir(), PeersFileName))
	if err := r.Put(ctx, Peer{AETitle: "CT1", Hosts: mustHosts(t, "10.0.0.1"), Rights: []Right{RightEcho}}); err != nil {
		t.Fatal(err)
	}
	p, _ := r.Get(ctx, "CT1")
	p.Hosts[0] = netip.MustParsePrefix("0.0.0.0/0")
	p.Rights[0] = RightMove
	p2, _ := r.Get(ctx, "CT1")
	if p2.Hosts[0].String() != "10.0.0.1/32" || p2.Rights[0] != RightEcho {
		t.Fatalf("caller's change leaked into the registry: %+v", p2)
	}
}

func TestRegistryPutNormalisesAndKeepsAddedAt(t *testing.T) {
	ctx := context.Background()
	r := openReg(t, filepath.Join(t.TempDir(), PeersFileName))
	before := time.Now().Add(-time.Second)
	err := r.Put(ctx, Peer{AETitle: "CT1", Hosts: []netip.Prefix{netip.MustParsePrefix("10.0.0.9/24"), netip.MustParsePrefix("10.0.0.0/24")}, Rights: []Right{RightMove, RightEcho, RightEcho}})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := r.Get(ctx, "CT1")
	if len(p.Hosts) != 1 || p.Hosts[0].String() != "10.0.0.0/24" {
		t.Errorf("hosts not normalised: %v", p.Hosts)
	}
	if !reflect.DeepEqual(p.Rights, []Right{RightEcho, RightMove}) {
		t.Errorf("rights not normalised: %v", p.Rights)
	}
	if p.AddedAt.Before(before) || p.AddedAt.After(time.Now()) {
		t.Errorf("AddedAt = %v", p.AddedAt)
	}
	first := p.AddedAt
	if err := r.Put(ctx, Peer{AETitle: "CT1", Hosts: mustHosts(t, "10.0.0.1"), Rights: []Right{RightStore}}); err != nil {
		t.Fatal(err)
	}
	p, _ = r.Get(ctx, "CT1")
	if !p.AddedAt.Equal(first) || p.Rights[0] != RightStore {
		t.Errorf("replacement: %+v, want AddedAt %v kept", p, first)
	}
}

func TestRegistryRejectsInvalidPeers(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), PeersFileName)
	r := openReg(t, path)
	for _, p := range []Peer{
		{AETitle: "", Hosts: mustHosts(t, "10.0.0.1")},
		{AETitle: "CT1"},
		{AETitle: "CT1", Hosts: mustHosts(t, "10.0.0.1"), Port: -1},
		{AETitle: "CT1", Hosts: mustHosts(t, "10.0.0.1"), Rights: []Right{"delete"}},
	} {
		if err := r.Put(ctx, p); err == nil {
			t.Errorf("Put(%+v) accepted", p)
		}
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Error("a refused Put wrote the file")
	}
	if err := r.Remove(ctx, "NOPE"); !errors.Is(err, ErrUnknownPeer) {
		t.Errorf("Remove unknown = %v", err)
	}
	if _, err := r.Get(ctx, "NOPE"); !errors.Is(err, ErrUnknownPeer) {
		t.Errorf("Get unknown = %v", err)
	}
}

func TestRegistryHotReload(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), PeersFileName)
	server := openReg(t, path)
	cli := openReg(t, path)
	pol := &Policy{Registry: server, AETitle: "DICOMSHIELD"}
	req := Request{CallingAE: "CT1", CalledAE: "DICOMSHIELD", Remote: netip.MustParseAddr("10.0.0.7"), TLS: true, CertAE: "CT1", CertSerial: "0C"}

	if d := pol.Associate(ctx, req); d.Allowed {
		t.Fatal("allowed before the peer was added")
	}
	if err := cli.Put(ctx, Peer{AETitle: "CT1", Hosts: mustHosts(t, "10.0.0.0/24"), Rights: []Right{RightEcho}, CertSerial: "0C"}); err != nil {
		t.Fatal(err)
	}
	if d := pol.Associate(ctx, req); !d.Allowed {
		t.Fatalf("peer added by another registry not seen: %s", d.Reason)
	}
	// A change that keeps the file's size, made at once: still seen.
	if err := cli.Put(ctx, Peer{AETitle: "CT1", Hosts: mustHosts(t, "10.0.0.0/24"), Rights: []Right{RightFind}, CertSerial: "0C"}); err != nil {
		t.Fatal(err)
	}
	if p, err := server.Get(ctx, "CT1"); err != nil || !p.Can(RightFind) || p.Can(RightEcho) {
		t.Fatalf("same-size change not seen: %+v, %v", p, err)
	}
	if err := cli.Remove(ctx, "CT1"); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Get(ctx, "CT1"); !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("removed peer still there: %v", err)
	}
	if d := pol.Associate(ctx, req); d.Allowed || d.RejectReason != RejectCallingAE {
		t.Fatalf("removed peer allowed: %+v", d)
	}
	// The server's own change is seen by the other instance as well.
	if err := server.Put(ctx, Peer{AETitle: "MR1", Hosts: mustHosts(t, "10.0.0.8")}); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Get(ctx, "MR1"); err != nil {
		t.Fatal(err)
	}
	// Deleting the file removes every peer.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if ps, err := server.List(ctx); err != nil || len(ps) != 0 {
		t.Fatalf("after deletion List = %v, %v", ps, err)
	}
}

func TestRegistryFailsClosed(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), PeersFileName)
	r := openReg(t, path)
	if err := r.Put(ctx, Peer{AETitle: "CT1", Hosts: mustHosts(t, "10.0.0.1"), CertSerial: "0C"}); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(path)
	pol := &Policy{Registry: r, AETitle: "DICOMSHIELD"}
	req := Request{CallingAE: "CT1", CalledAE: "DICOMSHIELD", Remote: netip.MustParseAddr("10.0.0.1"), TLS: true, CertAE: "CT1", CertSerial: "0C"}

	bad := map[string]string{
		"truncated":      string(good[:len(good)/2]),
		"unknown field":  strings.Replace(string(good), `"version"`, `"admin": true, "version"`, 1),
		"newer version":  strings.Replace(string(good), `"version": 1`, `"version": 2`, 1),
		"bad host":       strings.Replace(string(good), `"10.0.0.1"`, `"pacs.example.org"`, 1),
		"duplicate peer": strings.Replace(string(good), `"peers": [`, `"peers": [{"ae_title": "CT1", "hosts": ["10.0.0.2"], "rights": []},`, 1),
		"trailing data":  string(good) + "{}",
	}
	for name, content := range bad {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := r.Get(ctx, "CT1")
		if err == nil || errors.Is(err, ErrUnknownPeer) {
			t.Errorf("%s: Get = %v, want a registry error", name, err)
		}
		if d := pol.Associate(ctx, req); d.Allowed || !d.Transient {
			t.Errorf("%s: decision %+v", name, d)
		}
		if err := r.Put(ctx, Peer{AETitle: "X", Hosts: mustHosts(t, "10.0.0.3")}); err == nil {
			t.Errorf("%s: Put over a broken file succeeded", name)
		}
		if _, err := OpenFileRegistry(path); err == nil {
			t.Errorf("%s: OpenFileRegistry accepted a broken file", name)
		}
	}
	// Writable by others: refused even though the content is fine.
	if err := os.WriteFile(path, good, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get(ctx, "CT1"); err == nil || !strings.Contains(err.Error(), "other users") {
		t.Errorf("world-writable file: Get = %v", err)
	}
	// Repaired: works again.
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if d := pol.Associate(ctx, req); !d.Allowed {
		t.Errorf("after repair: %+v", d)
	}
}

func TestRegistryConcurrentPut(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), PeersFileName)
	regs := []*FileRegistry{openReg(t, path), openReg(t, path)}
	const workers, each = 8, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := regs[w%len(regs)]
			for i := range each {
				ae := fmt.Sprintf("PEER%d_%d", w, i)
				if err := r.Put(ctx, Peer{AETitle: ae, Hosts: mustHosts(t, fmt.Sprintf("10.%d.%d.1", w, i)), Rights: []Right{RightEcho}}); err != nil {
					errs <- err
				}
				if _, err := r.Get(ctx, ae); err != nil {
					errs <- err
				}
				if _, err := r.List(ctx); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, r := range regs {
		ps, err := r.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) != workers*each {
			t.Fatalf("List has %d peers, want %d: an update was lost", len(ps), workers*each)
		}
	}
}

func TestRegistryContextCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := openReg(t, filepath.Join(t.TempDir(), PeersFileName))
	if _, err := r.Get(ctx, "CT1"); !errors.Is(err, context.Canceled) {
		t.Errorf("Get = %v", err)
	}
	if err := r.Put(ctx, Peer{AETitle: "CT1", Hosts: mustHosts(t, "10.0.0.1"), CertSerial: "0C"}); !errors.Is(err, context.Canceled) {
		t.Errorf("Put = %v", err)
	}
}

// TestRegistryModifyAndRevoke: Modify changes one peer under the lock,
// Revoke retires the current serial, and both survive a reload from disk.
func TestRegistryModifyAndRevoke(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), PeersFileName)
	r := openReg(t, path)
	notAfter := time.Date(2031, 2, 3, 4, 5, 6, 0, time.UTC)
	if err := r.Put(ctx, Peer{AETitle: "CT1", Hosts: mustHosts(t, "10.0.0.1"), CertSerial: "0A", CertNotAfter: notAfter}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		ae      string
		change  func(*Peer) error
		wantErr string
		check   func(t *testing.T, p *Peer)
	}{
		{name: "unknown peer", ae: "NOPE", change: func(*Peer) error { return nil }, wantErr: "unknown peer"},
		{name: "change refused: nothing written", ae: "CT1", change: func(p *Peer) error { p.CertSerial = "0B"; return errors.New("no") }, wantErr: "no",
			check: func(t *testing.T, p *Peer) {
				if p.CertSerial != "0A" || !p.CertNotAfter.Equal(notAfter) {
					t.Errorf("peer changed: %+v", p)
				}
			}},
		{name: "invalid result refused", ae: "CT1", change: func(p *Peer) error { p.CertSerial = "zz"; return nil }, wantErr: "hexadecimal"},
		{name: "revoke", ae: "CT1", change: func(p *Peer) error {
			if got := p.Revoke(); got != "0A" {
				t.Errorf("Revoke = %q", got)
			}
			return nil
		}, check: func(t *testing.T, p *Peer) {
			if p.CertSerial != "" || !p.CertNotAfter.IsZero() || !p.IsRevoked("0a") || p.IsRevoked("0B") {
				t.Errorf("after revoke: %+v", p)
			}
		}},
		{name: "revoked list bounded", ae: "CT1", change: func(p *Peer) error {
			for i := 0; i < MaxRevokedSerials+5; i++ {
				p.CertSerial = fmt.Sprintf("%X", 0x100+i)
				p.Revoke()
			}
			return nil
		}, check: func(t *testing.T, p *Peer) {
			if len(p.RevokedSerials) != MaxRevokedSerials || p.IsRevoked("0A") || !p.IsRevoked(fmt.Sprintf("%X", 0x100+MaxRevokedSerials+4)) {
				t.Errorf("revoked list %v", p.RevokedSerials)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := r.Modify(ctx, tc.ae, tc.change)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Modify = %v, want %q", err, tc.wantErr)
			}
			if tc.check != nil {
				p, err := openReg(t, path).Get(ctx, "CT1")
				if err != nil {
					t.Fatal(err)
				}
				tc.check(t, p)
			}
		})
	}
}

// TestRegistryGeneration: Generation changes with every change another
// process makes (put, same-size edit, removal, deletion of the file, an
// unusable file) and stays put while nothing changes.
func TestRegistryGeneration(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), PeersFileName)
	server := openReg(t, path)
	cli := openReg(t, path)
	gen := func() uint64 {
		t.Helper()
		g, _ := server.Generation()
		return g
	}
	last := gen()
	steps := []struct {
		name    string
		change  func() error
		changed bool
	}{
		{"nothing", func() error { return nil }, false},
		{"peer added", func() error {
			return cli.Put(ctx, Peer{AETitle: "CT1", Hosts: mustHosts(t, "10.0.0.7"), Rights: []Right{RightEcho}, CertSerial: "0C"})
		}, true},
		{"read again", func() error { _, err := server.List(ctx); return err }, false},
		{"same-size change", func() error {
			return cli.Put(ctx, Peer{AETitle: "CT1", Hosts: mustHosts(t, "10.0.0.7"), Rights: []Right{RightFind}, CertSerial: "0C"})
		}, true},
		{"revoked", func() error { return cli.Modify(ctx, "CT1", func(p *Peer) error { p.Revoke(); return nil }) }, true},
		{"made unusable", func() error { return os.WriteFile(path, []byte("{"), 0o600) }, true},
		{"file deleted", func() error { return os.Remove(path) }, true},
		{"still deleted", func() error { return nil }, false},
	}
	for _, st := range steps {
		if err := st.change(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		g := gen()
		if (g != last) != st.changed {
			t.Errorf("%s: generation %d -> %d, want changed=%v", st.name, last, g, st.changed)
		}
		last = g
	}
}
