package archive_test

// The crash test: the real dicomshield binary, killed with SIGKILL at
// random moments while a client stores into it, restarted each time.

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dicomshield/dicomshield/internal/archive"
	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/dicomtest"
	"github.com/dicomshield/dicomshield/internal/dimse"
	"github.com/dicomshield/dicomshield/internal/store"
	"github.com/dicomshield/dicomshield/internal/store/fs"
	"github.com/dicomshield/dicomshield/internal/store/sqlite"
)

// buildDicomshield builds the dicomshield command into a temporary
// directory and returns its path. It is built with -race when the test
// binary is, so that the packages the test already compiled are reused.
func buildDicomshield(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatal("go env GOMOD: not in a module")
	}
	bin := filepath.Join(t.TempDir(), "ds")
	args := []string{"build", "-o", bin}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" && s.Value == "true" {
				args = append(args, "-race")
			}
		}
	}
	cmd := exec.Command("go", append(args, "./cmd/dicomshield")...)
	cmd.Dir = filepath.Dir(gomod)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return bin
}

// dsServer is one run of `dicomshield serve`.
type dsServer struct {
	cmd  *exec.Cmd
	out  *logBuffer
	done chan struct{}
	err  error
}

// startDS starts `ds serve` on the plain listener addr (TLS off) and waits
// until it accepts connections.
func startDS(t *testing.T, bin, dataDir, addr string) *dsServer {
	t.Helper()
	s := &dsServer{out: &logBuffer{}, done: make(chan struct{})}
	s.cmd = exec.Command(bin, "serve", "--data", dataDir, "--listen", addr, "--listen-tls=", "--listen-enroll=")
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting dicomshield serve: %v", err)
	}
	go func() {
		s.err = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() { s.kill() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-s.done:
			t.Fatalf("dicomshield serve exited (%v):\n%s", s.err, s.out.String())
		default:
		}
		if strings.Contains(s.out.String(), "listening for plain DICOM on") {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("dicomshield serve did not start listening within 20 s:\n%s", s.out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kill sends SIGKILL to this server process (by its id) and waits for it.
func (s *dsServer) kill() {
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}

// stop sends SIGTERM and waits for a graceful exit.
func (s *dsServer) stop(t *testing.T) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		if s.err != nil {
			t.Errorf("dicomshield serve after SIGTERM: %v\n%s", s.err, s.out.String())
		}
	case <-time.After(40 * time.Second):
		s.kill()
		t.Errorf("dicomshield serve did not stop within 40 s of SIGTERM")
	}
}

// dirNames lists the names in dir.
func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// crashInstance is the i-th instance of the crash test: one study and
// series, its size and pixels a function of i, so that it can be made
// again for the comparison instead of being kept.
func crashInstance(t testing.TB, study, series string, i int) *instance {
	return makeInstance(t, instanceSpec{Study: study, Series: series, UID: fmt.Sprintf("%s.%d", study, i),
		InstanceNumber: i, PixelBytes: 64<<10 + (i*7919)%(512<<10), Patient: "PAT-CRASH"})
}

// TestCrashRecovery kills the server with SIGKILL at random moments while
// a client stores, N times (10, or 3 with -short), restarting it each
// time. Every instance whose C-STORE was answered with success must
// survive, byte for byte; the index must not refer to a missing blob,
// no blob may be left unreferenced in the blob store, and the scratch
// directory must be empty after a restart. A blob committed just before a
// kill, its index row never written, is moved into quarantine at the
// restart (not deleted): each quarantined file must be such a blob, whole
// (its content hashes to its name) and not one the index refers to.
func TestCrashRecovery(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	n := 10
	if testing.Short() {
		n = 3
	}
	bin := buildDicomshield(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	// Initialise the data directory (config, CA), then register the
	// client with the binary, as an administrator would.
	a, _, err := archive.Open(dataDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	bundleDir := filepath.Join(t.TempDir(), "loader")
	if out, err := exec.Command(bin, "peer", "add", "LOADER", "--data", dataDir, "--host", "127.0.0.1",
		"--allow", "echo,store,find,get", "--plaintext", "--bundle", bundleDir).CombinedOutput(); err != nil {
		t.Fatalf("ds peer add: %v\n%s", err, out)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(dicomtest.FreePort(t)))
	srv := startDS(t, bin, dataDir, addr)

	study, series := newUID(), newUID()
	var (
		mu    sync.Mutex
		acked = map[string]int{} // SOP Instance UID -> i, answered with success
		next  = 0
		stop  = make(chan struct{})
		wg    sync.WaitGroup
	)
	// Two clients store in a loop, reconnecting after each crash.
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var cl *dimse.Client
			defer func() {
				if cl != nil {
					cl.Abort()
				}
			}()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if cl == nil {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					c, err := dialAs(ctx, addr, "LOADER", nil)
					cancel()
					if err != nil {
						time.Sleep(20 * time.Millisecond)
						continue
					}
					cl = c
				}
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				in := crashInstance(t, study, series, i)
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				st, err := cl.Store(ctx, in.Class, in.UID, in.TS, bytes.NewReader(in.Data))
				cancel()
				if err == nil && st == dimse.StatusSuccess {
					mu.Lock()
					acked[in.UID] = i
					mu.Unlock()
					continue
				}
				cl.Abort()
				cl = nil
			}
		}()
	}

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 42))
	tmpDir := filepath.Join(dataDir, archive.BlobsDir, "tmp")
	leftovers := 0
	for k := 0; k < n; k++ {
		time.Sleep(time.Duration(50+rng.IntN(250)) * time.Millisecond)
		srv.kill()
		if k == n-1 {
			close(stop)
			wg.Wait()
		}
		left := dirNames(t, tmpDir)
		leftovers += len(left)
		srv = startDS(t, bin, dataDir, addr)
		// Recovery runs before the server listens: what the crash left in
		// the scratch directory is gone (the clients may already be
		// storing again, into new scratch files).
		now := dirNames(t, tmpDir)
		for _, name := range left {
			if slices.Contains(now, name) {
				t.Errorf("restart %d: blobs/tmp/%s, left by the crash, is still there", k+1, name)
			}
		}
		if k == n-1 && len(now) != 0 {
			t.Errorf("last restart: blobs/tmp holds %q", now)
		}
	}
	t.Logf("%d kills, %d unfinished blobs left by them; %d of %d stores acknowledged", n, leftovers, len(acked), next)
	if len(acked) == 0 {
		t.Fatal("no store was acknowledged")
	}

	// Every acknowledged instance comes back byte for byte.
	cl, err := dialAs(testCtx(t), addr, "LOADER", nil)
	if err != nil {
		t.Fatalf("after the last restart: %v\n%s", err, srv.out.String())
	}
	uids := make([]string, 0, len(acked))
	for uid := range acked {
		uids = append(uids, uid)
	}
	for len(uids) > 0 {
		batch := uids[:min(len(uids), 200)]
		uids = uids[len(batch):]
		got, sub, err := get(t, cl, identifier("IMAGE", dicom.TagStudyInstanceUID, study, dicom.TagSeriesInstanceUID, series,
			dicom.TagSOPInstanceUID, strings.Join(batch, `\`)))
		if err != nil || int(sub.Completed) != len(batch) {
			t.Errorf("C-GET of %d acknowledged instances: %+v, %v", len(batch), sub, err)
		}
		for _, uid := range batch {
			in := crashInstance(t, study, series, acked[uid])
			if g, ok := got[uid]; !ok || g.TS != in.TS || !bytes.Equal(g.Data, in.Data) {
				t.Errorf("acknowledged instance %d: retrieved %v, data set equal %v", acked[uid], ok, bytes.Equal(g.Data, in.Data))
			}
		}
	}
	cl.Release()
	srv.stop(t)

	// With the server stopped: every index row has its blob, every blob
	// has its row, nothing is left in the scratch directory.
	ix, err := sqlite.Open(filepath.Join(dataDir, archive.IndexFile))
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	bl, err := fs.Open(filepath.Join(dataDir, archive.BlobsDir))
	if err != nil {
		t.Fatal(err)
	}
	indexed, err := ix.Instances(context.Background(), &store.Query{Level: "STUDY", Identifier: identifier("STUDY", dicom.TagStudyInstanceUID, study)})
	if err != nil {
		t.Fatal(err)
	}
	if len(indexed) < len(acked) {
		t.Errorf("the index holds %d instances, %d were acknowledged", len(indexed), len(acked))
	}
	keys := map[string]bool{}
	if err := ix.BlobKeys(context.Background(), func(k string) error {
		keys[k] = true
		ok, err := bl.Exists(k)
		if err != nil {
			return err
		}
		if !ok {
			t.Errorf("the index refers to blob %s, which is missing", k)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(keys) != len(indexed) {
		t.Errorf("%d blob keys in the index, %d instances", len(keys), len(indexed))
	}
	if err := bl.List(func(k string) error {
		if !keys[k] {
			t.Errorf("blob %s is not referred to by the index", k)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if left := dirNames(t, tmpDir); len(left) != 0 {
		t.Errorf("blobs/tmp holds %q after a graceful stop", left)
	}
	quarantined, err := archive.Quarantined(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range quarantined {
		if !q.HashMatches || keys[q.Key] {
			t.Errorf("quarantined %+v: want a whole blob the index does not refer to", q)
		}
	}
	t.Logf("%d blobs committed without their index row were quarantined", len(quarantined))
	// The ledger went down with the index rows: one unbroken entry per
	// instance, every file re-hashing to its key, nothing added.
	rep, err := store.Verify(context.Background(), ix, bl, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.HeadSeq != int64(len(indexed)) || rep.Entries != int64(len(indexed)) {
		t.Errorf("verify after the crashes: head %d, %d entries for %d instances, problems %+v",
			rep.HeadSeq, rep.Entries, len(indexed), rep.Problems)
	}
	if t.Failed() {
		t.Logf("last server's output:\n%s", srv.out.String())
	}
}
