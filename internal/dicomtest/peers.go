//go:build unix

package dicomtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Network peers: DCMTK SCPs (storescp, dcmqrscp) run in the background on
// a free loopback port, and DCMTK SCUs (echoscu, storescu, findscu,
// getscu, movescu) run to completion. Every process runs in its own
// process group, bounded by a context timeout, and the whole group is
// killed when the test ends, so that the children dcmqrscp forks for its
// associations never outlive the test.

const (
	// SCUTimeout bounds one run of a DCMTK SCU by RunSCU.
	SCUTimeout = 60 * time.Second
	// PeerLifetime bounds a background peer started by StartPeer; it is
	// killed at the end of its test in any case.
	PeerLifetime = 10 * time.Minute
	// peerStartTimeout bounds the wait for a peer to listen.
	peerStartTimeout = 15 * time.Second
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago (the
// listener used to find it is closed again). A tool that then fails to
// bind it is restarted on another port by StartPeer.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// groupCmd returns a command for the tool at path that runs in its own
// process group, killed as a whole when ctx ends.
func groupCmd(ctx context.Context, path string, args []string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killGroup(cmd) }
	// Output pipes held by a surviving child must not block Wait.
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

// killGroup kills the process group of cmd (its id is the leader's pid).
func killGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}

// Describe formats a finished run for a failure message: command line,
// exit status, and everything DCMTK wrote to stderr and stdout.
func (r *Result) Describe() string {
	return fmt.Sprintf("%s\nexit status %d\nstderr:\n%s\nstdout:\n%s", r.Cmd, r.ExitCode, r.Stderr, r.Stdout)
}

// RunSCU runs the DCMTK tool name (an SCU) with args in a new temporary
// working directory, bounded by SCUTimeout, and returns its output
// whatever its exit status. The test fails if the tool is missing, cannot
// be started or times out.
func RunSCU(t testing.TB, name string, args ...string) *Result {
	t.Helper()
	return RunSCUIn(t, t.TempDir(), name, args...)
}

// RunSCUIn is RunSCU in the working directory dir. (movescu in
// bit-preserving mode, +B, writes what it receives into its working
// directory whatever --output-directory says.)
func RunSCUIn(t testing.TB, dir, name string, args ...string) *Result {
	t.Helper()
	path := DCMTKTool(t, name)
	ctx, cancel := context.WithTimeout(context.Background(), SCUTimeout)
	defer cancel()
	cmd := groupCmd(ctx, path, args)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := &Result{Cmd: name + " " + strings.Join(args, " "), Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		r.ExitCode = -1
		t.Fatalf("%s: did not finish within %v\n%s", name, SCUTimeout, r.Describe())
	case err == nil:
	case errors.As(err, &ee):
		r.ExitCode = ee.ExitCode()
	default:
		t.Fatalf("%s: %v", r.Cmd, err)
	}
	return r
}

// MustRunSCU is RunSCU that also fails the test, with DCMTK's output, on a
// non-zero exit status.
func MustRunSCU(t testing.TB, name string, args ...string) *Result {
	t.Helper()
	return MustRunSCUIn(t, t.TempDir(), name, args...)
}

// MustRunSCUIn is MustRunSCU in the working directory dir.
func MustRunSCUIn(t testing.TB, dir, name string, args ...string) *Result {
	t.Helper()
	r := RunSCUIn(t, dir, name, args...)
	if r.ExitCode != 0 {
		t.Fatalf("DCMTK %s failed:\n%s", name, r.Describe())
	}
	return r
}

// Peer is a DCMTK SCP running in the background in its own process group.
type Peer struct {
	Name string // the tool
	Cmd  string // the command line, for messages
	Port int
	Addr string // 127.0.0.1:Port

	cmd    *exec.Cmd
	cancel context.CancelFunc
	out    *syncBuffer
	done   chan struct{}
	err    error
	once   sync.Once
}

// Output returns what the peer wrote so far, stdout and stderr
// interleaved.
func (p *Peer) Output() string { return p.out.String() }

// Running reports whether the peer has not exited yet.
func (p *Peer) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Check fails the test, with the peer's output, if the peer has exited.
func (p *Peer) Check(t testing.TB) {
	t.Helper()
	if !p.Running() {
		t.Fatalf("DCMTK %s exited (%v); its output:\n%s", p.Cmd, p.err, p.Output())
	}
}

// Stop kills the peer's process group, while its leader (the peer) still
// runs, and waits for the peer.
func (p *Peer) Stop() {
	p.once.Do(func() {
		if p.Running() {
			_ = killGroup(p.cmd)
		}
		<-p.done
		p.cancel()
	})
}

// StartPeer starts the DCMTK SCP name with the arguments args returns for
// a port, and waits until it listens on that port. When it exits before
// listening (the port was taken meanwhile) it is started again on another
// port, up to three times; otherwise the test fails with its output. The
// peer's process group is killed when the test ends.
func StartPeer(t testing.TB, name string, args func(port int) []string) *Peer {
	t.Helper()
	path := DCMTKTool(t, name)
	var last *Peer
	for attempt := 0; attempt < 3; attempt++ {
		port := FreePort(t)
		a := args(port)
		ctx, cancel := context.WithTimeout(context.Background(), PeerLifetime)
		p := &Peer{Name: name, Cmd: name + " " + strings.Join(a, " "), Port: port,
			Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), cancel: cancel,
			out: &syncBuffer{}, done: make(chan struct{})}
		p.cmd = groupCmd(ctx, path, a)
		p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
		if err := p.cmd.Start(); err != nil {
			cancel()
			t.Fatalf("starting %s: %v", p.Cmd, err)
		}
		go func() {
			p.err = p.cmd.Wait()
			close(p.done)
		}()
		t.Cleanup(p.Stop)
		if waitListening(p) {
			return p
		}
		p.Stop()
		last = p
		if !bindFailed(p.Output()) {
			break
		}
	}
	t.Fatalf("DCMTK %s did not start listening (%v); its output:\n%s", last.Cmd, last.err, last.Output())
	return nil
}

// bindFailed reports whether a peer's output says its port was taken.
func bindFailed(out string) bool {
	o := strings.ToLower(out)
	return strings.Contains(o, "address already in use") || strings.Contains(o, "cannot listen")
}

// waitListening waits until p listens on its port, and reports whether it
// does (false once it has exited or after peerStartTimeout).
func waitListening(p *Peer) bool {
	deadline := time.Now().Add(peerStartTimeout)
	for time.Now().Before(deadline) {
		if !p.Running() {
			return false
		}
		ok, known := ownsListener(p.cmd.Process.Pid, p.Port)
		if !known {
			// No /proc: probe with a connection (the peer logs an
			// aborted association, harmlessly).
			c, err := net.DialTimeout("tcp", p.Addr, time.Second)
			if err == nil {
				c.Close()
				ok = true
			}
		}
		if ok {
			return p.Running()
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// ownsListener reports whether the process pid holds a TCP socket
// listening on port, from /proc (known is false where /proc cannot tell).
// Unlike a probe connection it has no side effect on the peer, and it
// cannot be fooled by another process that took the port.
func ownsListener(pid, port int) (ok, known bool) {
	inodes := map[string]bool{}
	read := false
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		read = true
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			if len(fs) < 10 || fs[3] != "0A" {
				continue
			}
			i := strings.LastIndexByte(fs[1], ':')
			if i < 0 {
				continue
			}
			if p, err := strconv.ParseUint(fs[1][i+1:], 16, 16); err == nil && int(p) == port {
				inodes["socket:["+fs[9]+"]"] = true
			}
		}
		fh.Close()
	}
	if !read {
		return false, false
	}
	if len(inodes) == 0 {
		return false, true
	}
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(fdDir)
	if err != nil {
		return false, false
	}
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join(fdDir, e.Name())); err == nil && inodes[l] {
			return true, true
		}
	}
	return false, true
}

// DCMTKTLSArgs returns the DCMTK options for mutual TLS with the test PKI:
// the server's or the client's key and certificate (PEM, unencrypted),
// trust in the test CA, and a required, verified peer certificate.
//
// DCMTK 3.6.7's default profile (non-downgrading BCP 195) lists only RSA
// key exchange suites for TLS 1.2, and the PKI's keys are ECDSA P-256:
// the ECDHE-ECDSA AES-GCM suites are added so that TLS 1.2 can be
// negotiated too (TLS 1.3 suites do not depend on the key type).
func (p *PKI) DCMTKTLSArgs(server bool) []string {
	key, cert := p.ClientKey, p.ClientCert
	if server {
		key, cert = p.ServerKey, p.ServerCert
	}
	return []string{"+tls", key, cert, "-pw", "-pem", "+cf", p.CAFile, "--require-peer-cert",
		"+cs", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "+cs", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"}
}

// StoreSCPConfig configures StartStoreSCP.
type StoreSCPConfig struct {
	// AETitle: empty means STORESCP.
	AETitle string
	// TLS, when set, makes storescp accept only TLS with a client
	// certificate issued by the PKI's CA.
	TLS *PKI
	// Extra options, added before the port.
	Extra []string
}

// StoreSCP is a running storescp that writes what it receives, bit for
// bit (+B), as files into Dir.
type StoreSCP struct {
	*Peer
	AETitle string
	Dir     string
}

// StartStoreSCP starts storescp on a free port.
func StartStoreSCP(t testing.TB, cfg StoreSCPConfig) *StoreSCP {
	t.Helper()
	s := &StoreSCP{AETitle: cfg.AETitle, Dir: t.TempDir()}
	if s.AETitle == "" {
		s.AETitle = "STORESCP"
	}
	s.Peer = StartPeer(t, "storescp", func(port int) []string {
		a := []string{"-v", "-aet", s.AETitle, "-od", s.Dir, "+B", "-fe", ".dcm", "-dhl"}
		if cfg.TLS != nil {
			a = append(a, cfg.TLS.DCMTKTLSArgs(true)...)
		}
		a = append(a, cfg.Extra...)
		return append(a, strconv.Itoa(port))
	})
	return s
}

// Files returns the paths of the files storescp has written, sorted.
func (s *StoreSCP) Files(t testing.TB) []string {
	t.Helper()
	return ListFiles(t, s.Dir)
}

// ListFiles returns the regular files in dir (not recursing), sorted.
func ListFiles(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.Type().IsRegular() {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(out)
	return out
}

// QRHost is one entry of dcmqrscp's host table: an application entity
// dcmqrscp knows by title, host and port (a C-MOVE destination, or an
// SCU allowed to use the archive).
type QRHost struct {
	AETitle string
	Host    string // empty means 127.0.0.1
	Port    int
}

// QRSCPConfig configures StartQRSCP.
type QRSCPConfig struct {
	// AETitle of the archive: empty means DCMQRSCP.
	AETitle string
	// Hosts are the peers dcmqrscp knows. With AnyPeer false only they
	// may associate with the archive; every one of them is a possible
	// C-MOVE destination.
	Hosts   []QRHost
	AnyPeer bool
	// Extra options, added before the port.
	Extra []string
}

// QRSCP is a running dcmqrscp (fork mode: one child per association) with
// its configuration file and its storage area.
type QRSCP struct {
	*Peer
	AETitle    string
	ConfigFile string
	StorageDir string
}

// StartQRSCP writes a dcmqrscp configuration (one storage area, the host
// table of cfg) into a temporary directory and starts dcmqrscp with it on
// a free port. It accepts C-STORE into its storage area and serves
// C-FIND, C-GET and C-MOVE from it. (dcmqrscp has no TLS support.)
func StartQRSCP(t testing.TB, cfg QRSCPConfig) *QRSCP {
	t.Helper()
	dir := t.TempDir()
	q := &QRSCP{AETitle: cfg.AETitle, ConfigFile: filepath.Join(dir, "dcmqrscp.cfg"), StorageDir: filepath.Join(dir, "storage")}
	if q.AETitle == "" {
		q.AETitle = "DCMQRSCP"
	}
	if err := os.Mkdir(q.StorageDir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, h := range cfg.Hosts {
		if strings.ContainsAny(h.AETitle, " ,()\\\"=") || h.AETitle == "" {
			t.Fatalf("AE title %q cannot go into a dcmqrscp configuration", h.AETitle)
		}
	}
	// dcmqrscp (single-process mode) crashes after the first association
	// in DCMTK 3.6.7, so it runs in its default fork mode; the children
	// share its process group and go with it.
	q.Peer = StartPeer(t, "dcmqrscp", func(port int) []string {
		if err := os.WriteFile(q.ConfigFile, []byte(qrConfig(q, cfg, port)), 0o600); err != nil {
			t.Fatal(err)
		}
		a := []string{"-v", "-c", q.ConfigFile, "-dhl", "+B"}
		a = append(a, cfg.Extra...)
		return append(a, strconv.Itoa(port))
	})
	return q
}

// qrConfig renders the dcmqrscp configuration file (the format of DCMTK's
// dcmqrcnf.txt: global settings, then the host, vendor and AE tables).
func qrConfig(q *QRSCP, cfg QRSCPConfig, port int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# written by dicomshield's tests\n")
	fmt.Fprintf(&b, "NetworkTCPPort  = %d\nMaxPDUSize      = 16384\nMaxAssociations = 16\n\n", port)
	b.WriteString("HostTable BEGIN\n")
	var names []string
	for i, h := range cfg.Hosts {
		host := h.Host
		if host == "" {
			host = "127.0.0.1"
		}
		name := fmt.Sprintf("peer%d", i+1)
		names = append(names, name)
		fmt.Fprintf(&b, "%s = (%s, %s, %d)\n", name, h.AETitle, host, h.Port)
	}
	peers := "ANY"
	if !cfg.AnyPeer {
		if len(names) == 0 {
			// A group naming no one: every association is refused.
			names = []string{"nobody"}
			fmt.Fprintf(&b, "nobody = (NOBODY, 192.0.2.1, 104)\n")
		}
		b.WriteString("allowed = " + strings.Join(names, ", ") + "\n")
		peers = "allowed"
	}
	b.WriteString("HostTable END\n\nVendorTable BEGIN\nVendorTable END\n\n")
	b.WriteString("AETable BEGIN\n")
	fmt.Fprintf(&b, "%s %s RW (100, 1024mb) %s\n", q.AETitle, q.StorageDir, peers)
	b.WriteString("AETable END\n")
	return b.String()
}
