// Command startbench measures what a restart of `dicomshield serve` costs
// on a large archive, for two builds side by side.
//
// It makes one data directory holding -n instances (default 1,000,000):
// index rows written through the real index (cmd/startbench/startgen, a
// module of its own) and one small blob file per row, named by its
// SHA-256 where the blob store keeps it. Before every run it plants
// -orphans blob files no row refers to and empties the quarantine folder;
// then it starts
//
//	dicomshield serve --data DIR --listen-tls 127.0.0.1:PORT --listen-enroll "" --log-format json
//
// and times, from exec:
//
//   - listening: serve printed "listening for DICOM over TLS". serve
//     prints it after archive.Open (configuration, CA, index, blob store
//     and recovery: scratch files removed, unreferenced blobs moved into
//     quarantine), the audit trail, the listeners and the ledger head;
//   - ready: a C-ECHO over TLS from a registered peer (certificate from
//     `peer add --bundle`) succeeded. The association is attempted as soon
//     as "listening" appears; the TCP connection waits in the listen
//     backlog until Serve accepts, after it has its server certificate.
//
// At ready it reads serve's peak RSS (VmHWM), its CPU time (user+system)
// and the bytes it read from disk (/proc/PID/io read_bytes: about 0 when
// the page cache is warm), counts the files in quarantine (must equal
// -orphans) and checks the count serve logged. Then SIGTERM, and the time
// to exit (the index's PRAGMA optimize runs on close).
//
// The two builds are -before (a git revision, default 0e785aa^, built
// from `git archive` in the work directory) and -after (default: the
// working tree), or binaries given with -before-bin and -after-bin. Each
// pass runs both, the order alternating from pass to pass, after one
// warm-up pass that is not counted.
//
// Run it from the bench module:
//
//	cd bench && go run ./cmd/startbench [-n 1000000] [-runs 5] [-work DIR] [-o results.md]
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	benchnet "github.com/dicomshield/dicomshield/bench/net"
	"github.com/dicomshield/dicomshield/internal/dimse"
	"github.com/dicomshield/dicomshield/internal/pki"
)

// peerAE is the benchmark's registered peer.
const peerAE = "STARTBENCH"

type options struct {
	n, orphans, runs    int
	work, data          string
	before, after       string
	beforeBin, afterBin string
	keep                bool
	out                 string
	timeout             time.Duration
}

type build struct {
	name  string // "before", "after"
	label string // what it was built from
	bin   string
}

type bench struct {
	o      options
	root   string // the main module's directory
	work   string
	data   string
	bundle string
	builds []*build
	csv    *os.File
}

func main() {
	var o options
	flag.IntVar(&o.n, "n", 1_000_000, "instances in the archive (a multiple of 100)")
	flag.IntVar(&o.orphans, "orphans", 5, "unreferenced blobs planted before every run")
	flag.IntVar(&o.runs, "runs", 5, "timed runs of each build (after one warm-up pass)")
	flag.StringVar(&o.work, "work", "", "work directory (default: a new directory under $TMPDIR, removed at the end unless -keep)")
	flag.StringVar(&o.data, "data", "", "data directory to use or create (default: WORK/data); one made by an earlier run with the same -n is reused, and kept")
	flag.StringVar(&o.before, "before", "0e785aa^", "git revision of the \"before\" build")
	flag.StringVar(&o.after, "after", "", "git revision of the \"after\" build (default: the working tree)")
	flag.StringVar(&o.beforeBin, "before-bin", "", "use this dicomshield binary as \"before\" instead of building -before")
	flag.StringVar(&o.afterBin, "after-bin", "", "use this dicomshield binary as \"after\" instead of building -after")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (binaries, runs.csv, serve's logs)")
	flag.StringVar(&o.out, "o", "", "also write the report to this file")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "longest a start may take")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("startbench: ")
	if o.n <= 0 || o.n%100 != 0 || o.runs < 1 || o.orphans < 0 {
		log.Fatal("-n must be a positive multiple of 100, -runs at least 1, -orphans at least 0")
	}
	b := &bench{o: o}
	report, err := b.run()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(report)
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(report), 0o644); err != nil {
			log.Fatal(err)
		}
	}
}

func (b *bench) run() (string, error) {
	var err error
	if b.root, err = output(".", "go", "list", "-m", "-f", "{{.Dir}}", "github.com/dicomshield/dicomshield"); err != nil {
		return "", fmt.Errorf("locating the main module (run from the bench directory): %w", err)
	}
	if b.work = b.o.work; b.work == "" {
		if b.work, err = os.MkdirTemp("", "startbench-"); err != nil {
			return "", err
		}
		if !b.o.keep {
			defer os.RemoveAll(b.work)
		}
	} else if err := os.MkdirAll(b.work, 0o700); err != nil {
		return "", err
	}
	if b.data = b.o.data; b.data == "" {
		b.data = filepath.Join(b.work, "data")
	}
	b.bundle = b.data + "-bundle"
	if err := b.buildAll(); err != nil {
		return "", err
	}
	if err := b.prepareData(); err != nil {
		return "", err
	}
	if b.csv, err = os.Create(filepath.Join(b.work, "runs.csv")); err != nil {
		return "", err
	}
	defer b.csv.Close()
	fmt.Fprintln(b.csv, "pass,build,listening_s,ready_s,cpu_s,vmhwm_kb,read_bytes,quarantined,logged,stop_s,echo_attempts")
	results := map[string][]result{}
	for pass := 0; pass <= b.o.runs; pass++ {
		order := slices.Clone(b.builds)
		if pass%2 == 1 {
			slices.Reverse(order)
		}
		for _, bd := range order {
			r, err := b.start(bd, pass)
			if err != nil {
				return "", fmt.Errorf("pass %d, %s: %w", pass, bd.name, err)
			}
			fmt.Fprintf(b.csv, "%d,%s,%.3f,%.3f,%.2f,%d,%d,%d,%d,%.3f,%d\n", pass, bd.name, r.listening.Seconds(),
				r.ready.Seconds(), r.cpu.Seconds(), r.vmhwmKB, r.readBytes, r.quarantined, r.logged, r.stop.Seconds(), r.attempts)
			fmt.Fprintf(os.Stderr, "startbench: pass %d %-6s listening %6.2f s  ready %6.2f s  cpu %5.2f s  VmHWM %4d MB  read %5.1f MB  quarantined %d  stop %.2f s\n",
				pass, bd.name, r.listening.Seconds(), r.ready.Seconds(), r.cpu.Seconds(), r.vmhwmKB/1024,
				float64(r.readBytes)/1e6, r.quarantined, r.stop.Seconds())
			if r.quarantined != b.o.orphans || r.logged != b.o.orphans {
				return "", fmt.Errorf("pass %d, %s: %d files in quarantine, %d logged, %d planted", pass, bd.name,
					r.quarantined, r.logged, b.o.orphans)
			}
			if pass > 0 {
				results[bd.name] = append(results[bd.name], r)
			}
		}
	}
	return b.report(results), nil
}

// buildAll builds (or takes) the two binaries.
func (b *bench) buildAll() error {
	for _, s := range []struct{ name, rev, bin string }{
		{"before", b.o.before, b.o.beforeBin}, {"after", b.o.after, b.o.afterBin},
	} {
		bd := &build{name: s.name}
		switch {
		case s.bin != "":
			abs, err := filepath.Abs(s.bin)
			if err != nil {
				return err
			}
			bd.bin, bd.label = abs, "binary "+s.bin
		case s.rev == "":
			bd.bin = filepath.Join(b.work, "bin", s.name, "dicomshield")
			head, err := output(b.root, "git", "rev-parse", "--short", "HEAD")
			if err != nil {
				return err
			}
			bd.label = "working tree at " + head
			if st, _ := output(b.root, "git", "status", "--porcelain", "--untracked-files=no"); st != "" {
				bd.label += " (with changes)"
			}
			if err := goBuild(b.root, bd.bin); err != nil {
				return err
			}
		default:
			commit, err := output(b.root, "git", "rev-parse", "--short", s.rev+"^{commit}")
			if err != nil {
				return fmt.Errorf("-%s %s: %w", s.name, s.rev, err)
			}
			bd.label = s.rev + " = " + commit
			src := filepath.Join(b.work, "src-"+commit)
			if err := os.RemoveAll(src); err != nil {
				return err
			}
			if err := os.MkdirAll(src, 0o700); err != nil {
				return err
			}
			archive := exec.Command("git", "archive", "--format=tar", commit)
			archive.Dir = b.root
			untar := exec.Command("tar", "-x", "-C", src)
			pipe, err := archive.StdoutPipe()
			if err != nil {
				return err
			}
			untar.Stdin = pipe
			if err := untar.Start(); err != nil {
				return err
			}
			if err := archive.Run(); err != nil {
				return fmt.Errorf("git archive %s: %w", commit, err)
			}
			if err := untar.Wait(); err != nil {
				return fmt.Errorf("untar %s: %w", commit, err)
			}
			bd.bin = filepath.Join(b.work, "bin", s.name, "dicomshield")
			if err := goBuild(src, bd.bin); err != nil {
				return err
			}
		}
		b.builds = append(b.builds, bd)
	}
	return nil
}

func goBuild(dir, out string) error {
	cmd := exec.Command("go", "build", "-o", out, "./cmd/dicomshield")
	cmd.Dir = dir
	if o, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/dicomshield in %s: %v\n%s", dir, err, o)
	}
	return nil
}

// marker records what startbench generated, beside the bundle, so that a
// later run with the same -n can reuse the data directory.
type marker struct {
	N         int     `json:"n"`
	Generated string  `json:"generated"`
	Seconds   float64 `json:"seconds"`
}

func (b *bench) markerPath() string { return filepath.Join(b.bundle, "startbench.json") }

// prepareData reuses the data directory of an earlier run or generates a
// new one: config, CA and peer made by the "before" build (an older build
// refuses config options it does not know, a newer one takes the defaults
// for those it misses), then startgen, which writes the index with the
// working tree's code (a build whose index schema is older refuses it, and
// says so).
func (b *bench) prepareData() error {
	if raw, err := os.ReadFile(b.markerPath()); err == nil {
		var m marker
		if err := json.Unmarshal(raw, &m); err != nil {
			return fmt.Errorf("%s: %w", b.markerPath(), err)
		}
		if m.N != b.o.n {
			return fmt.Errorf("%s holds %d instances, not -n %d: remove it (and %s) or give another -data", b.data, m.N, b.o.n, b.bundle)
		}
		fmt.Fprintf(os.Stderr, "startbench: reusing %s (%d instances, generated %s)\n", b.data, m.N, m.Generated)
		return nil
	}
	if ents, err := os.ReadDir(b.data); err == nil && len(ents) > 0 {
		return fmt.Errorf("%s exists and was not made by startbench: give an empty or new -data", b.data)
	}
	if o, err := exec.Command(b.builds[0].bin, "peer", "add", peerAE, "--host", "127.0.0.1", "--allow", "echo",
		"--bundle", b.bundle, "--data", b.data).CombinedOutput(); err != nil {
		return fmt.Errorf("dicomshield peer add: %v\n%s", err, o)
	}
	gen := filepath.Join(b.work, "bin", "startgen")
	cmd := exec.Command("go", "build", "-o", gen, ".")
	cmd.Dir = filepath.Join(b.root, "bench", "cmd", "startbench", "startgen")
	if o, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building startgen: %v\n%s", err, o)
	}
	fmt.Fprintf(os.Stderr, "startbench: generating %d instances in %s\n", b.o.n, b.data)
	t := time.Now()
	cmd = exec.Command(gen, "-data", b.data, "-n", strconv.Itoa(b.o.n))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("startgen: %w", err)
	}
	m := marker{N: b.o.n, Generated: time.Now().UTC().Format(time.RFC3339), Seconds: time.Since(t).Seconds()}
	raw, _ := json.Marshal(m)
	return os.WriteFile(b.markerPath(), raw, 0o600)
}

// plant empties the quarantine folder and writes b.o.orphans blobs no
// row refers to (random content, named by its SHA-256), then syncs, so
// that writeback does not run into the timed start.
func (b *bench) plant() error {
	if err := os.RemoveAll(filepath.Join(b.data, "quarantine")); err != nil {
		return err
	}
	for range b.o.orphans {
		c := make([]byte, 48)
		rand.Read(c)
		s := sha256.Sum256(c)
		k := hex.EncodeToString(s[:])
		d := filepath.Join(b.data, "blobs", k[0:2], k[2:4])
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(d, k), c, 0o600); err != nil {
			return err
		}
	}
	syscall.Sync()
	return nil
}

type result struct {
	listening, ready, stop time.Duration
	cpu                    time.Duration
	vmhwmKB                int64
	readBytes              int64
	quarantined, logged    int
	attempts               int
}

// line is one line serve wrote, with when it was read.
type line struct {
	at     time.Time
	stdout bool
	text   string
}

// start runs one start of bd and measures it.
func (b *bench) start(bd *build, pass int) (result, error) {
	var r result
	if err := b.plant(); err != nil {
		return r, err
	}
	port, err := benchnet.FreePort()
	if err != nil {
		return r, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	logf, err := os.Create(filepath.Join(b.work, fmt.Sprintf("serve-%d-%s.log", pass, bd.name)))
	if err != nil {
		return r, err
	}
	defer logf.Close()
	cmd := exec.Command(bd.bin, "serve", "--data", b.data, "--listen-tls", addr, "--listen-enroll", "", "--log-format", "json")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return r, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return r, err
	}
	lines := make(chan line, 64)
	readLines := func(rd io.Reader, isOut bool, done chan<- struct{}) {
		sc := bufio.NewScanner(rd)
		for sc.Scan() {
			lines <- line{at: time.Now(), stdout: isOut, text: sc.Text()}
		}
		done <- struct{}{}
	}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return r, err
	}
	pid := cmd.Process.Pid
	exited := make(chan struct{}, 2)
	go readLines(stdout, true, exited)
	go readLines(stderr, false, exited)
	stopped := false
	defer func() {
		if !stopped {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()

	// Until "listening for DICOM over TLS ... as AE".
	var calledAE string
	deadline := time.After(b.o.timeout)
	handle := func(l line) {
		fmt.Fprintf(logf, "%8.3f %s\n", l.at.Sub(t0).Seconds(), l.text)
		if !l.stdout {
			r.logged += loggedQuarantine(l.text)
		}
	}
	for calledAE == "" {
		select {
		case l := <-lines:
			handle(l)
			if l.stdout && strings.HasPrefix(l.text, "listening for DICOM over TLS on ") {
				r.listening = l.at.Sub(t0)
				_, calledAE, _ = strings.Cut(l.text, " as ")
			}
		case <-exited:
			return r, fmt.Errorf("serve exited before listening (log: %s)", logf.Name())
		case <-deadline:
			return r, fmt.Errorf("serve not listening after %v", b.o.timeout)
		}
	}
	go func() {
		for l := range lines {
			handle(l)
		}
	}()

	// One C-ECHO over TLS, retried only if it fails.
	tc, err := b.peerTLS()
	if err != nil {
		return r, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.o.timeout)
	defer cancel()
	opts := &dimse.DialOptions{CallingAE: peerAE, CalledAE: strings.TrimSpace(calledAE), TLS: tc, ConnectTimeout: b.o.timeout,
		Contexts: []dimse.Proposal{{AbstractSyntax: dimse.VerificationSOPClass, TransferSyntaxes: []string{"1.2.840.10008.1.2.1", "1.2.840.10008.1.2"}}}}
	for {
		r.attempts++
		cl, err := dimse.Dial(ctx, addr, opts)
		if err == nil {
			err = cl.Echo(ctx)
			if err == nil {
				r.ready = time.Since(t0)
				r.vmhwmKB, r.readBytes, r.cpu = procStats(pid)
				cl.Release()
				break
			}
			cl.Abort()
		}
		if ctx.Err() != nil || r.attempts >= 20 {
			return r, fmt.Errorf("C-ECHO: %w (after %d attempts)", err, r.attempts)
		}
		time.Sleep(10 * time.Millisecond)
	}
	q, err := os.ReadDir(filepath.Join(b.data, "quarantine"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return r, err
	}
	r.quarantined = len(q)

	ts := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return r, err
	}
	<-exited
	<-exited
	werr := cmd.Wait()
	r.stop = time.Since(ts)
	stopped = true
	close(lines)
	if werr != nil {
		return r, fmt.Errorf("serve: %w (log: %s)", werr, logf.Name())
	}
	return r, nil
}

// loggedQuarantine returns the count of serve's JSON log line about
// blobs moved into quarantine, 0 for any other line.
func loggedQuarantine(text string) int {
	var rec struct {
		Msg   string `json:"msg"`
		Count int    `json:"count"`
	}
	if json.Unmarshal([]byte(text), &rec) != nil || !strings.HasPrefix(rec.Msg, "recovery moved files") {
		return 0
	}
	return rec.Count
}

// peerTLS is the registered peer's TLS client configuration, from its
// bundle.
func (b *bench) peerTLS() (*tls.Config, error) {
	ca, err := os.ReadFile(filepath.Join(b.bundle, "ca.pem"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("%s: no certificate", filepath.Join(b.bundle, "ca.pem"))
	}
	base := filepath.Join(b.bundle, pki.PeerFileBase(peerAE))
	pair, err := tls.LoadX509KeyPair(base+".crt", base+".key")
	if err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, ServerName: "127.0.0.1", RootCAs: pool, Certificates: []tls.Certificate{pair}}, nil
}

// procStats reads the peak RSS (kB), the bytes read from disk and the CPU
// time of process pid.
func procStats(pid int) (vmhwmKB, readBytes int64, cpu time.Duration) {
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, l := range strings.Split(string(st), "\n") {
			if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
				vmhwmKB, _ = strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			}
		}
	}
	if raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid)); err == nil {
		for _, l := range strings.Split(string(raw), "\n") {
			if v, ok := strings.CutPrefix(l, "read_bytes:"); ok {
				readBytes, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			}
		}
	}
	cpu, _ = benchnet.TreeCPU(pid)
	return vmhwmKB, readBytes, cpu
}

func (b *bench) report(results map[string][]result) string {
	var s strings.Builder
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(&s, "dicomshield serve restart, %d instances (%d blob files + %d planted unreferenced), %d runs of each build after a warm-up pass, alternating; %s, load average at the end %s\n\n",
		b.o.n, b.o.n, b.o.orphans, b.o.runs, time.Now().UTC().Format("2006-01-02"), strings.Join(strings.Fields(string(load))[:3], " "))
	for _, bd := range b.builds {
		fmt.Fprintf(&s, "- %s: %s\n", bd.name, bd.label)
	}
	s.WriteString("\n| build | listening s | ready (C-ECHO) s | CPU s at ready | VmHWM MB | read from disk MB | quarantined (planted) | stop ms |\n")
	s.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, bd := range b.builds {
		rs := results[bd.name]
		pick := func(f func(result) float64, prec ...int) string {
			v := make([]float64, len(rs))
			for i, r := range rs {
				v[i] = f(r)
			}
			slices.Sort(v)
			p := 2
			if len(prec) > 0 {
				p = prec[0]
			}
			return fmt.Sprintf("%.*f (%.*f–%.*f)", p, median(v), p, v[0], p, v[len(v)-1])
		}
		var q []string
		for _, r := range rs {
			q = append(q, strconv.Itoa(r.quarantined))
		}
		fmt.Fprintf(&s, "| %s | %s | %s | %s | %s | %s | %s (%d) | %s |\n", bd.name,
			pick(func(r result) float64 { return r.listening.Seconds() }),
			pick(func(r result) float64 { return r.ready.Seconds() }),
			pick(func(r result) float64 { return r.cpu.Seconds() }),
			pick(func(r result) float64 { return float64(r.vmhwmKB) / 1024 }),
			pick(func(r result) float64 { return float64(r.readBytes) / 1e6 }),
			strings.Join(slices.Compact(q), ","), b.o.orphans,
			pick(func(r result) float64 { return float64(r.stop) / float64(time.Millisecond) }, 0))
	}
	s.WriteString("\nMedians, min–max in brackets. MB: VmHWM in MiB, disk reads in 10^6 bytes.\n")
	return s.String()
}

func median(v []float64) float64 {
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func output(dir, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, ee.Stderr)
		}
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}
