// Command netbench compares dicomshield's network path with DCMTK's, in
// one run on the same generated files, and prints markdown tables:
//
//  1. `dicomshield store` into DCMTK storescp versus DCMTK storescu into
//     storescp, over one association, and dicomshield with -j 2 and -j 4
//     (into `storescp --fork`, which serves associations in parallel);
//  2. storescu into dsscp (cmd/dsscp: a file-writing SCP on internal/dimse)
//     versus storescu into storescp;
//  3. with -tls: the same over TLS, and dicomshield TLS versus plain.
//
// Every scenario runs -runs times (after one warm-up pass that is not
// counted), interleaved: each pass runs every scenario once, the start of
// the order rotating from pass to pass, so that drift on a shared machine
// hits every scenario alike. Tables give medians; ratios are medians of the
// per-pass ratios. Output directories are emptied between runs.
//
// Run it from the bench module (bench/scripts/net.sh does):
//
//	cd bench && go run ./cmd/netbench [-runs 5] [-tls] [-o results.md]
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	stdnet "net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	benchnet "github.com/dicomshield/dicomshield/bench/net"
)

type options struct {
	runs      int
	ctFiles   int
	mfFiles   int
	mfFrames  int
	sets      string
	work      string
	keep      bool
	tls       bool
	scpPDU    int
	only      string
	out       string
	profile   string
	storescp  string
	storescu  string
	jobsList  string
	outputDir string
	nagle     bool
}

func main() {
	var o options
	flag.IntVar(&o.runs, "runs", 5, "timed runs of each scenario (after one warm-up pass)")
	flag.IntVar(&o.ctFiles, "ct", benchnet.SetCT.Files, "number of CT files (512x512x16 bit, ~0.5 MB)")
	flag.IntVar(&o.mfFiles, "mf", benchnet.SetMF.Files, "number of multi-frame files")
	flag.IntVar(&o.mfFrames, "mf-frames", benchnet.SetMF.Frames, "frames per multi-frame file (512 KiB each)")
	flag.StringVar(&o.sets, "sets", "CT,MF", "sets to run")
	flag.StringVar(&o.work, "work", "", "work directory (default: a new temporary directory, removed at the end)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (logs, raw results)")
	flag.BoolVar(&o.tls, "tls", false, "also run the TLS scenarios")
	flag.IntVar(&o.scpPDU, "scp-pdu", 0, "storescp -pdu (maximum receive PDU, 4096..131072; 0: DCMTK's default, 16384)")
	flag.StringVar(&o.only, "only", "", "run only the scenarios whose name matches this regular expression")
	flag.StringVar(&o.out, "o", "", "also write the report to this file")
	flag.StringVar(&o.profile, "profile", "", "instead of the comparison: CPU-profile dsscp receiving the sets from storescu into this file")
	flag.StringVar(&o.storescp, "storescp", "storescp", "DCMTK storescp binary")
	flag.StringVar(&o.storescu, "storescu", "storescu", "DCMTK storescu binary")
	flag.StringVar(&o.jobsList, "j", "2,4", "dicomshield -j values besides 1 (scaling)")
	flag.StringVar(&o.outputDir, "od", "", "parent of the servers' output directories (default: in the work directory); e.g. /dev/shm to leave the disk out")
	flag.BoolVar(&o.nagle, "dcmtk-defaults", false, "also time storescu → storescp with DCMTK's default TCP settings (Nagle's algorithm on)")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("netbench: ")
	if err := run(&o); err != nil {
		log.Fatal(err)
	}
}

// bench holds what one invocation set up.
type bench struct {
	o        *options
	work     string
	bin      string // directory of dicomshield and dsscp
	sets     []*benchnet.Generated
	servers  []*benchnet.Server
	clientLg *os.File
	certs    *certs
	report   strings.Builder
}

func run(o *options) error {
	for _, tool := range []string{o.storescp, o.storescu} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found: install DCMTK (apt-get install dcmtk)", tool)
		}
	}
	b := &bench{o: o}
	work := o.work
	if work == "" {
		d, err := os.MkdirTemp("", "dicomshield-netbench-")
		if err != nil {
			return err
		}
		work = d
		if !o.keep {
			defer os.RemoveAll(d)
		}
	}
	b.work = work
	b.bin = filepath.Join(work, "bin")
	if err := os.MkdirAll(b.bin, 0o755); err != nil {
		return err
	}
	defer b.stopServers()
	if err := b.build(); err != nil {
		return err
	}
	if err := b.generate(); err != nil {
		return err
	}
	lg, err := os.Create(filepath.Join(work, "clients.log"))
	if err != nil {
		return err
	}
	defer lg.Close()
	b.clientLg = lg
	if o.profile != "" {
		return b.profileDSSCP()
	}
	scs, err := b.scenarios()
	if err != nil {
		return err
	}
	if err := b.compare(scs); err != nil {
		return err
	}
	if o.keep || o.work != "" {
		fmt.Fprintf(os.Stderr, "work directory kept: %s\n", work)
	}
	return nil
}

// --- setup -------------------------------------------------------------------

func (b *bench) build() error {
	root, err := output("go", "list", "-m", "-f", "{{.Dir}}", "github.com/dicomshield/dicomshield")
	if err != nil {
		return fmt.Errorf("locating the main module (run from the bench directory): %w", err)
	}
	steps := []struct{ dir, out, pkg string }{
		{root, filepath.Join(b.bin, "dicomshield"), "./cmd/dicomshield"},
		{".", filepath.Join(b.bin, "dsscp"), "./cmd/dsscp"},
	}
	for _, s := range steps {
		cmd := exec.Command("go", "build", "-o", s.out, s.pkg)
		cmd.Dir = s.dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", s.pkg, err, out)
		}
	}
	return nil
}

func output(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).Output()
	return strings.TrimSpace(string(out)), err
}

func (b *bench) generate() error {
	want := map[string]bool{}
	for _, s := range strings.Split(b.o.sets, ",") {
		want[strings.TrimSpace(s)] = true
	}
	ct, mf := benchnet.SetCT, benchnet.SetMF
	ct.Files, mf.Files, mf.Frames = b.o.ctFiles, b.o.mfFiles, b.o.mfFrames
	for i, s := range []benchnet.Set{ct, mf} {
		if !want[s.Name] || s.Files <= 0 {
			continue
		}
		fmt.Fprintf(os.Stderr, "generating %d %s files...\n", s.Files, s.Name)
		g, err := benchnet.Generate(filepath.Join(b.work, "data", s.Name), s, i+1)
		if err != nil {
			return err
		}
		b.sets = append(b.sets, g)
	}
	if len(b.sets) == 0 {
		return fmt.Errorf("-sets %q selects nothing", b.o.sets)
	}
	return nil
}

// startServer starts a storage SCP with its own empty output directory.
func (b *bench) startServer(name string, env []string, argv func(port int, dir string) []string) (*benchnet.Server, error) {
	port, err := benchnet.FreePort()
	if err != nil {
		return nil, err
	}
	parent := b.o.outputDir
	if parent == "" {
		parent = filepath.Join(b.work, "out")
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(parent, "netbench-"+strings.NewReplacer(" ", "-", "/", "-").Replace(name)+"-")
	if err != nil {
		return nil, err
	}
	s, err := benchnet.Start(name, port, dir, filepath.Join(b.work, "server-"+strconv.Itoa(port)+".log"), env, argv(port, dir)...)
	if err != nil {
		return nil, err
	}
	b.servers = append(b.servers, s)
	return s, nil
}

func (b *bench) stopServers() {
	for _, s := range b.servers {
		s.Stop()
		if b.o.outputDir != "" {
			os.RemoveAll(s.Dir)
		}
	}
	b.servers = nil
}

// scenario is one client command against one server.
type scenario struct {
	key    string // short identifier for ratios
	name   string
	client string // "storescu" or "dicomshield"
	jobs   int
	tls    bool
	srv    *benchnet.Server
	env    []string // added to the client's environment
}

// noDelay is given to every DCMTK process but those of the "DCMTK
// defaults" scenario: DCMTK (3.6.x) leaves Nagle's algorithm on unless the
// environment variable TCP_NODELAY is 1, and then each C-STORE waits for a
// delayed ACK (~40 ms on Linux). dicomshield (Go) always sets TCP_NODELAY.
var noDelay = []string{"TCP_NODELAY=1"}

func (b *bench) scenarios() ([]*scenario, error) {
	o := b.o
	pdu := func(args []string) []string {
		if o.scpPDU > 0 {
			return append(args, "-pdu", strconv.Itoa(o.scpPDU))
		}
		return args
	}
	storescp, err := b.startServer("storescp", noDelay, func(port int, dir string) []string {
		return pdu([]string{o.storescp, "-aet", "STORESCP", "-od", dir, strconv.Itoa(port)})
	})
	if err != nil {
		return nil, err
	}
	storescpFork, err := b.startServer("storescp --fork", noDelay, func(port int, dir string) []string {
		return pdu([]string{o.storescp, "--fork", "-aet", "STORESCP", "-od", dir, strconv.Itoa(port)})
	})
	if err != nil {
		return nil, err
	}
	dsscp, err := b.startServer("dsscp", nil, func(port int, dir string) []string {
		return []string{filepath.Join(b.bin, "dsscp"), "-port", strconv.Itoa(port), "-od", dir}
	})
	if err != nil {
		return nil, err
	}
	var jobs []int
	for _, s := range strings.Split(o.jobsList, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		j, err := strconv.Atoi(s)
		if err != nil || j < 2 {
			return nil, fmt.Errorf("-j %q: want numbers of 2 or more", o.jobsList)
		}
		jobs = append(jobs, j)
	}
	var scs []*scenario
	if o.nagle {
		plain, err := b.startServer("storescp defaults", nil, func(port int, dir string) []string {
			return pdu([]string{o.storescp, "-aet", "STORESCP", "-od", dir, strconv.Itoa(port)})
		})
		if err != nil {
			return nil, err
		}
		scs = append(scs, &scenario{key: "scu>scp/nagle", name: "storescu → storescp, DCMTK defaults (Nagle on)", client: "storescu", jobs: 1, srv: plain})
	}
	scs = append(scs, []*scenario{
		{key: "scu>scp", name: "storescu → storescp", client: "storescu", jobs: 1, srv: storescp, env: noDelay},
		{key: "ds1>scp", name: "dicomshield store → storescp", client: "dicomshield", jobs: 1, srv: storescp},
		{key: "ds1>fork", name: "dicomshield store → storescp --fork", client: "dicomshield", jobs: 1, srv: storescpFork},
	}...)
	for _, j := range jobs {
		scs = append(scs, &scenario{key: fmt.Sprintf("ds%d>fork", j), name: fmt.Sprintf("dicomshield store -j %d → storescp --fork", j), client: "dicomshield", jobs: j, srv: storescpFork})
	}
	scs = append(scs,
		&scenario{key: "scu>ds", name: "storescu → dsscp", client: "storescu", jobs: 1, srv: dsscp, env: noDelay},
		&scenario{key: "ds1>ds", name: "dicomshield store → dsscp", client: "dicomshield", jobs: 1, srv: dsscp},
	)
	for _, j := range jobs {
		scs = append(scs, &scenario{key: fmt.Sprintf("ds%d>ds", j), name: fmt.Sprintf("dicomshield store -j %d → dsscp", j), client: "dicomshield", jobs: j, srv: dsscp})
	}
	if o.tls {
		c, err := makeCerts(filepath.Join(b.work, "tls"))
		if err != nil {
			return nil, err
		}
		b.certs = c
		storescpTLS, err := b.startServer("storescp TLS", noDelay, func(port int, dir string) []string {
			// -ic: no client certificate asked for (dsscp asks for none either).
			return pdu([]string{o.storescp, "-aet", "STORESCP", "+tls", c.key, c.cert, "-ic", "-od", dir, strconv.Itoa(port)})
		})
		if err != nil {
			return nil, err
		}
		dsscpTLS, err := b.startServer("dsscp TLS", nil, func(port int, dir string) []string {
			return []string{filepath.Join(b.bin, "dsscp"), "-port", strconv.Itoa(port), "-od", dir, "-tls-cert", c.cert, "-tls-key", c.key}
		})
		if err != nil {
			return nil, err
		}
		scs = append(scs,
			&scenario{key: "scu>scp/tls", name: "storescu → storescp (TLS)", client: "storescu", jobs: 1, tls: true, srv: storescpTLS, env: noDelay},
			&scenario{key: "ds1>scp/tls", name: "dicomshield store → storescp (TLS)", client: "dicomshield", jobs: 1, tls: true, srv: storescpTLS},
			&scenario{key: "scu>ds/tls", name: "storescu → dsscp (TLS)", client: "storescu", jobs: 1, tls: true, srv: dsscpTLS, env: noDelay},
			&scenario{key: "ds1>ds/tls", name: "dicomshield store → dsscp (TLS)", client: "dicomshield", jobs: 1, tls: true, srv: dsscpTLS},
		)
		if len(jobs) > 0 {
			j := jobs[len(jobs)-1]
			scs = append(scs, &scenario{key: fmt.Sprintf("ds%d>ds/tls", j), name: fmt.Sprintf("dicomshield store -j %d → dsscp (TLS)", j), client: "dicomshield", jobs: j, tls: true, srv: dsscpTLS})
		}
	}
	if o.only != "" {
		re, err := regexp.Compile(o.only)
		if err != nil {
			return nil, fmt.Errorf("-only: %w", err)
		}
		scs = slices.DeleteFunc(scs, func(s *scenario) bool { return !re.MatchString(s.name) && !re.MatchString(s.key) })
		if len(scs) == 0 {
			return nil, fmt.Errorf("-only %q matches no scenario", o.only)
		}
	}
	return scs, nil
}

// argv is the client command line of s sending dir.
func (b *bench) argv(s *scenario, dir string) []string {
	port := strconv.Itoa(s.srv.Port)
	if s.client == "storescu" {
		args := []string{b.o.storescu, "-aet", "BENCHSCU", "-aec", "STORESCP", "+sd"}
		if s.tls {
			// Anonymous TLS client, verifying the server against the CA.
			args = append(args, "+tla", "+cf", b.certs.ca)
		}
		return append(args, "127.0.0.1", port, dir)
	}
	args := []string{filepath.Join(b.bin, "dicomshield"), "store", "--aet", "BENCHSCU", "--aec", "STORESCP", "-j", strconv.Itoa(s.jobs)}
	if s.tls {
		args = append(args, "--tls", "--ca", b.certs.ca)
	}
	return append(args, "127.0.0.1:"+port, dir)
}

// --- measuring ---------------------------------------------------------------

type sample struct {
	wall, clientCPU, serverCPU time.Duration
}

// once runs s sending g, with the server's output directory emptied
// first, and checks that every file arrived.
func (b *bench) once(s *scenario, g *benchnet.Generated) (sample, error) {
	if err := s.srv.Clear(); err != nil {
		return sample{}, err
	}
	argv := b.argv(s, g.Dir)
	fmt.Fprintf(b.clientLg, "$ %s\n", strings.Join(append(slices.Clone(s.env), argv...), " "))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = b.clientLg, b.clientLg
	cmd.Env = append(os.Environ(), s.env...)
	cpu0, err := s.srv.CPU()
	if err != nil {
		return sample{}, fmt.Errorf("%s: %w", s.srv.Name, err)
	}
	start := time.Now()
	err = cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return sample{}, fmt.Errorf("%s on %s: %v (see %s)", s.name, g.Set.Name, err, b.clientLg.Name())
	}
	// The SCPs write each file before answering its C-STORE, so every
	// file is there once the client is done; allow a moment regardless.
	var n int
	for deadline := time.Now().Add(10 * time.Second); ; {
		if n, _, err = benchnet.CountFiles(s.srv.Dir); err == nil && n >= g.Set.Files {
			break
		}
		if time.Now().After(deadline) {
			return sample{}, fmt.Errorf("%s on %s: %d of %d files in %s (see %s)", s.name, g.Set.Name, n, g.Set.Files, s.srv.Dir, s.srv.Log)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cpu1, err := s.srv.CPU()
	if err != nil {
		return sample{}, fmt.Errorf("%s: %w", s.srv.Name, err)
	}
	// Emptied now as well as before the next run: with -od on tmpfs the
	// files would otherwise hold memory.
	if err := s.srv.Clear(); err != nil {
		return sample{}, err
	}
	ps := cmd.ProcessState
	return sample{wall: wall, clientCPU: ps.UserTime() + ps.SystemTime(), serverCPU: cpu1 - cpu0}, nil
}

func (b *bench) compare(scs []*scenario) error {
	o := b.o
	results := map[string]map[string][]sample{} // set -> key -> samples
	for _, g := range b.sets {
		results[g.Set.Name] = map[string][]sample{}
	}
	raw, err := os.Create(filepath.Join(b.work, "runs.csv"))
	if err != nil {
		return err
	}
	defer raw.Close()
	fmt.Fprintln(raw, "pass,set,scenario,wall_s,client_cpu_s,server_cpu_s")
	load0 := loadavg()
	started := time.Now()
	for pass := 0; pass <= o.runs; pass++ {
		label := fmt.Sprintf("pass %d/%d", pass, o.runs)
		if pass == 0 {
			label = "warm-up pass"
		}
		fmt.Fprintf(os.Stderr, "%s (load %s)\n", label, loadavg())
		for _, g := range b.sets {
			for i := range scs {
				s := scs[(i+pass)%len(scs)]
				smp, err := b.once(s, g)
				if err != nil {
					return err
				}
				if pass > 0 {
					results[g.Set.Name][s.key] = append(results[g.Set.Name][s.key], smp)
					fmt.Fprintf(raw, "%d,%s,%s,%.4f,%.3f,%.3f\n", pass, g.Set.Name, s.key, smp.wall.Seconds(), smp.clientCPU.Seconds(), smp.serverCPU.Seconds())
				}
			}
		}
	}
	b.header(load0, time.Since(started))
	for _, g := range b.sets {
		b.table(g, scs, results[g.Set.Name])
	}
	b.ratios(scs, results)
	fmt.Print(b.report.String())
	if o.out != "" {
		return os.WriteFile(o.out, []byte(b.report.String()), 0o644)
	}
	return nil
}

func (b *bench) printf(format string, args ...any) { fmt.Fprintf(&b.report, format, args...) }

func (b *bench) header(load0 string, took time.Duration) {
	dcmtk, _ := output(b.o.storescp, "--version")
	if i := strings.IndexByte(dcmtk, '\n'); i > 0 {
		dcmtk = dcmtk[:i]
	}
	gover, _ := output("go", "env", "GOVERSION")
	rev, _ := output("git", "-C", "..", "describe", "--always", "--dirty")
	b.printf("## Network benchmark: dicomshield vs DCMTK\n\n")
	b.printf("%s, dicomshield %s, %s, %d CPUs, %s; DCMTK %s. Load average %s at the start, %s at the end (%s); %d timed passes (+1 warm-up) in %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), rev, gover, runtime.NumCPU(), kernel(), strings.TrimPrefix(strings.Trim(dcmtk, "$ "), "dcmtk: "), load0, loadavg(), niceText(), b.o.runs, took.Round(time.Second))
	b.printf("Loopback (127.0.0.1), files written by the SCP to %s, no fsync by either SCP. storescp max receive PDU: %s; dsscp: 1 MiB (internal/ul default); storescu sends at most 128 KiB PDUs. ",
		fsOf(b.servers), pduText(b.o.scpPDU))
	b.printf("DCMTK processes run with TCP_NODELAY=1 (DCMTK otherwise leaves Nagle's algorithm on: see the \"DCMTK defaults\" row); dicomshield always disables Nagle.\n")
	b.printf("Wall = client process start to exit; MB/s and files/s from it (MB = 10^6 bytes of Part 10 files). CPU = user+system seconds of the client process (rusage) and of the server process with its children (/proc, 10 ms ticks) during the run. Medians of %d runs; wall min–max in brackets.\n\n", b.o.runs)
}

// niceText says at what scheduling priority the benchmark ran (every
// process it starts inherits it).
func niceText() string {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return "nice ?"
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) > 16 {
		return "nice " + f[16]
	}
	return "nice ?"
}

func kernel() string {
	s, _ := output("uname", "-sr")
	return s
}

func pduText(n int) string {
	if n == 0 {
		return "16384 (DCMTK default)"
	}
	return strconv.Itoa(n)
}

func fsOf(servers []*benchnet.Server) string {
	if len(servers) == 0 {
		return "?"
	}
	out, err := output("df", "--output=fstype,target", servers[0].Dir)
	if err != nil {
		return servers[0].Dir
	}
	lines := strings.Split(out, "\n")
	f := strings.Fields(lines[len(lines)-1])
	if len(f) == 2 {
		return fmt.Sprintf("%s (%s)", f[1], f[0])
	}
	return servers[0].Dir
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func field(smps []sample, f func(sample) time.Duration) []float64 {
	out := make([]float64, len(smps))
	for i, s := range smps {
		out[i] = f(s).Seconds()
	}
	return out
}

func wallOf(s sample) time.Duration   { return s.wall }
func clientOf(s sample) time.Duration { return s.clientCPU }
func serverOf(s sample) time.Duration { return s.serverCPU }

func (b *bench) table(g *benchnet.Generated, scs []*scenario, res map[string][]sample) {
	mb := float64(g.Bytes) / 1e6
	b.printf("### %s: %d files, %.1f MB (%.2f MB each)\n\n", g.Set.Name, g.Set.Files, mb, mb/float64(g.Set.Files))
	b.printf("| client → server | assoc. | wall s | MB/s | files/s | client CPU s | server CPU s | total CPU ms/file |\n")
	b.printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, s := range scs {
		smps := res[s.key]
		if len(smps) == 0 {
			continue
		}
		walls := field(smps, wallOf)
		w := median(walls)
		c, sv := median(field(smps, clientOf)), median(field(smps, serverOf))
		b.printf("| %s | %d | %.3f (%.3f–%.3f) | %.0f | %.0f | %.3f | %.3f | %.2f |\n",
			s.name, s.jobs, w, slices.Min(walls), slices.Max(walls), mb/w, float64(g.Set.Files)/w, c, sv, (c+sv)*1000/float64(g.Set.Files))
	}
	b.printf("\n")
}

// pairedRatio is the median over passes of num's wall time over den's
// (above 1: den is faster).
func pairedRatio(num, den []sample) (float64, bool) {
	n := min(len(num), len(den))
	if n == 0 {
		return 0, false
	}
	r := make([]float64, n)
	for i := 0; i < n; i++ {
		r[i] = num[i].wall.Seconds() / den[i].wall.Seconds()
	}
	return median(r), true
}

func (b *bench) ratios(scs []*scenario, results map[string]map[string][]sample) {
	has := map[string]bool{}
	for _, s := range scs {
		has[s.key] = true
	}
	type cmp struct {
		label, slow, fast, target string
	}
	cmps := []cmp{
		{"(1) dicomshield store vs storescu, into storescp, one association", "scu>scp", "ds1>scp", "≥ 1.00"},
		{"(2) storescu into dsscp vs into storescp", "scu>scp", "scu>ds", "≥ 1.00"},
		{"DCMTK with TCP_NODELAY=1 vs DCMTK defaults (storescu → storescp)", "scu>scp/nagle", "scu>scp", "—"},
		{"dicomshield store vs storescu, into dsscp", "scu>ds", "ds1>ds", "≥ 1.00"},
	}
	for _, s := range scs {
		if strings.HasSuffix(s.key, ">fork") && s.jobs > 1 {
			cmps = append(cmps, cmp{fmt.Sprintf("scaling: -j %d vs -j 1, into storescp --fork", s.jobs), "ds1>fork", s.key, "> 1"})
		}
	}
	for _, s := range scs {
		if strings.HasSuffix(s.key, ">ds") && s.jobs > 1 {
			cmps = append(cmps, cmp{fmt.Sprintf("scaling: -j %d vs -j 1, into dsscp", s.jobs), "ds1>ds", s.key, "> 1"})
		}
	}
	cmps = append(cmps,
		cmp{"TLS: dicomshield store vs storescu, into storescp (TLS)", "scu>scp/tls", "ds1>scp/tls", "≥ 1.00"},
		cmp{"TLS: storescu into dsscp vs into storescp (TLS)", "scu>scp/tls", "scu>ds/tls", "≥ 1.00"},
		cmp{"TLS cost: dicomshield store → dsscp, plain vs TLS (below 1: TLS slower)", "ds1>ds", "ds1>ds/tls", "—"},
	)
	b.printf("### Ratios\n\nSpeed-up of the second over the first (wall time of the first / wall time of the second, median of the per-pass ratios; above 1 the second is faster).\n\n")
	b.printf("| comparison | target |")
	for _, g := range b.sets {
		b.printf(" %s |", g.Set.Name)
	}
	b.printf("\n| --- | --- |%s\n", strings.Repeat(" ---: |", len(b.sets)))
	for _, c := range cmps {
		if !has[c.slow] || !has[c.fast] {
			continue
		}
		b.printf("| %s | %s |", c.label, c.target)
		for _, g := range b.sets {
			r, ok := pairedRatio(results[g.Set.Name][c.slow], results[g.Set.Name][c.fast])
			if ok {
				b.printf(" %.2f |", r)
			} else {
				b.printf(" — |")
			}
		}
		b.printf("\n")
	}
	b.printf("\n")
}

// --- profiling ---------------------------------------------------------------

// profileDSSCP runs dsscp with -cpuprofile and has storescu send every set
// to it -runs times.
func (b *bench) profileDSSCP() error {
	prof, err := filepath.Abs(b.o.profile)
	if err != nil {
		return err
	}
	srv, err := b.startServer("dsscp", nil, func(port int, dir string) []string {
		return []string{filepath.Join(b.bin, "dsscp"), "-port", strconv.Itoa(port), "-od", dir, "-cpuprofile", prof}
	})
	if err != nil {
		return err
	}
	s := &scenario{key: "scu>ds", name: "storescu → dsscp", client: "storescu", jobs: 1, srv: srv, env: noDelay}
	for r := 0; r < b.o.runs; r++ {
		for _, g := range b.sets {
			if _, err := b.once(s, g); err != nil {
				return err
			}
		}
	}
	b.stopServers()
	fmt.Fprintf(os.Stderr, "CPU profile of dsscp: %s\n  go tool pprof -top %s %s\n", prof, filepath.Join(b.bin, "dsscp"), prof)
	if b.o.work == "" && !b.o.keep {
		// Keep the binary next to the profile so that pprof can symbolise.
		if err := copyFile(filepath.Join(b.bin, "dsscp"), prof+".dsscp"); err == nil {
			fmt.Fprintf(os.Stderr, "  (binary copied to %s.dsscp)\n", prof)
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// --- TLS material ------------------------------------------------------------

type certs struct{ ca, cert, key string }

// makeCerts writes a throw-away CA and a server certificate for 127.0.0.1
// (ECDSA P-256, valid for a day) as PEM files into dir.
func makeCerts(dir string) (*certs, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "netbench throw-away CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []stdnet.IP{stdnet.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	c := &certs{ca: filepath.Join(dir, "ca.pem"), cert: filepath.Join(dir, "server.pem"), key: filepath.Join(dir, "server.key")}
	err = errors.Join(
		writePEM(c.ca, "CERTIFICATE", caDER),
		writePEM(c.cert, "CERTIFICATE", der),
		writePEM(c.key, "PRIVATE KEY", keyDER),
	)
	return c, err
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}
