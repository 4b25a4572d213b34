// Command ingestbench compares how fast DCMTK's storescu can push the same
// generated files into four receivers, in one run:
//
//   - dicomshield serve over TLS (peer certificate from `peer add --bundle`),
//   - dicomshield serve on its plain listener,
//   - Orthanc (default SQLite index and file storage, no plugins),
//   - DCMTK storescp --fork (a bare file writer: the practical limit),
//   - the same storescp with an LD_PRELOAD shim (bench/durable) that syncs
//     each received file and its directory before storescp answers: the
//     like-for-like limit for a receiver that, like dicomshield, answers
//     only once an instance is durable,
//
// with one storescu and with four storescu processes at once (the files
// are generated in four folders, one study each). Every run starts the
// receiver afresh on an empty data directory, outside the timing; wall time
// is from the start of the first storescu to the exit of the last, after
// which the receiver must hold every instance. Runs are interleaved: each
// pass runs every scenario once, the order rotating from pass to pass.
//
// With -big-mb N (default 1024) it then sends one multi-frame instance of
// about N MB (generated streaming to disk) into each receiver and reports
// the receiver's peak RSS (VmHWM).
//
// Run it from the bench module (bench/scripts/ingest.sh does):
//
//	cd bench && go run ./cmd/ingestbench [-runs 3] [-files 200] [-o results.md]
package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	benchnet "github.com/dicomshield/dicomshield/bench/net"
	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/pki"
)

type options struct {
	runs     int
	files    int
	folders  int
	bigMB    int
	work     string
	keep     bool
	only     string
	out      string
	orthanc  string
	storescp string
	storescu string
	profile  string
	profTLS  bool
	srvDir   string
	baseline string
}

func main() {
	var o options
	flag.IntVar(&o.runs, "runs", 3, "timed runs of each scenario (after one warm-up pass)")
	flag.IntVar(&o.files, "files", 200, "CT-like files (512x512x16 bit, ~0.5 MB), split over -folders studies")
	flag.IntVar(&o.folders, "folders", 4, "folders (one study each, and the number of parallel senders)")
	flag.IntVar(&o.bigMB, "big-mb", 1024, "size of the single large instance for the memory test (0: skip it)")
	flag.StringVar(&o.work, "work", "", "work directory (default: a new temporary directory, removed at the end)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (logs, runs.csv)")
	flag.StringVar(&o.only, "only", "", "run only the receivers whose key contains one of these comma-separated strings (ds-tls, ds-plain, orthanc, orthanc-nd, storescp, storescp-durable, ds-base), e.g. ds-plain,storescp (storescp matches both storescp receivers)")
	flag.StringVar(&o.out, "o", "", "also write the report to this file")
	flag.StringVar(&o.orthanc, "orthanc", "Orthanc", "Orthanc binary")
	flag.StringVar(&o.storescp, "storescp", "storescp", "DCMTK storescp binary")
	flag.StringVar(&o.storescu, "storescu", "storescu", "DCMTK storescu binary")
	flag.StringVar(&o.profile, "profile", "", "instead of the comparison: run the archive under a CPU profiler (cmd/ingestbench/archiveprof) writing to this file, and have storescu send the files to it -runs times")
	flag.BoolVar(&o.profTLS, "profile-tls", false, "with -profile: send over TLS instead of the plain listener")
	flag.StringVar(&o.srvDir, "srv", "", "parent of the receivers' data directories (default: in the work directory); e.g. /dev/shm to take the disk and fsync out")
	flag.StringVar(&o.baseline, "baseline", "", "also run this other dicomshield binary (e.g. built from an earlier commit) on its plain listener, as receiver ds-base, interleaved with the others: a before/after comparison in one run")
	flag.Parse()
	if o.runs < 1 {
		fmt.Fprintln(os.Stderr, "ingestbench: -runs must be at least 1")
		os.Exit(2)
	}
	log.SetFlags(0)
	log.SetPrefix("ingestbench: ")
	if err := run(&o); err != nil {
		log.Fatal(err)
	}
}

type bench struct {
	o            *options
	work         string
	bin          string
	template     string // dicomshield data directory with the peer registered
	baseTemplate string // the same, made by the -baseline binary
	shim         string // fsync_on_close.so, built when storescp-durable runs
	bundle       string // the peer's certificate bundle
	peerBase     string
	folders      []string
	files        int
	bytes        int64
	clientLg     *os.File
	report       strings.Builder
	seq          int
}

const (
	peerAE  = "BENCHSCU"
	dsAE    = "DICOMSHIELD"
	noDelay = "TCP_NODELAY=1"
)

func run(o *options) error {
	for _, tool := range []string{o.storescp, o.storescu, "echoscu", o.orthanc} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found (DCMTK: apt-get install dcmtk; Orthanc: apt-get install orthanc)", tool)
		}
	}
	b := &bench{o: o}
	work := o.work
	if work == "" {
		d, err := os.MkdirTemp("", "dicomshield-ingestbench-")
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
	if err := b.build(); err != nil {
		return err
	}
	if o.profile == "" && b.selected("storescp-durable") {
		shim, err := buildShim(b.bin)
		if err != nil {
			return err
		}
		b.shim = shim
	}
	if err := b.setupDicomshield(); err != nil {
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
		return b.profileArchive()
	}
	if err := b.compare(); err != nil {
		return err
	}
	if o.bigMB > 0 {
		if err := b.memory(); err != nil {
			return err
		}
	}
	fmt.Print(b.report.String())
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(b.report.String()), 0o644); err != nil {
			return err
		}
	}
	if o.keep || o.work != "" {
		fmt.Fprintf(os.Stderr, "work directory kept: %s\n", work)
	}
	return nil
}

// --- setup -------------------------------------------------------------------

func output(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).Output()
	return strings.TrimSpace(string(out)), err
}

func (b *bench) build() error {
	root, err := output("go", "list", "-m", "-f", "{{.Dir}}", "github.com/dicomshield/dicomshield")
	if err != nil {
		return fmt.Errorf("locating the main module (run from the bench directory): %w", err)
	}
	cmd := exec.Command("go", "build", "-o", filepath.Join(b.bin, "dicomshield"), "./cmd/dicomshield")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/dicomshield: %v\n%s", err, out)
	}
	return nil
}

// setupDicomshield makes a template data directory with the benchmark's
// peer registered (TLS and plain) and the plain listener's risk accepted;
// every run copies it into a fresh directory, so the peer's certificate
// stays valid while the index and blobs start empty.
func (b *bench) setupDicomshield() error {
	b.template = filepath.Join(b.work, "ds-template")
	b.bundle = filepath.Join(b.work, "bundle")
	if err := makeTemplate(filepath.Join(b.bin, "dicomshield"), b.template, b.bundle); err != nil {
		return err
	}
	b.peerBase = pki.PeerFileBase(peerAE)
	if b.o.baseline != "" {
		// The baseline gets a template of its own, written by itself: an
		// older build refuses configuration keys added since.
		b.baseTemplate = filepath.Join(b.work, "ds-base-template")
		return makeTemplate(b.o.baseline, b.baseTemplate, filepath.Join(b.work, "bundle-base"))
	}
	return nil
}

// makeTemplate registers the benchmark's peer in a new data directory with
// bin and accepts the plain listener's risk in its configuration.
func makeTemplate(bin, dir, bundle string) error {
	cmd := exec.Command(bin, "peer", "add", peerAE, "--host", "127.0.0.1",
		"--allow", "echo,store", "--plaintext", "--bundle", bundle, "--data", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s peer add: %v\n%s", bin, err, out)
	}
	cfgPath := filepath.Join(dir, "dicomshield.toml")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		return err
	}
	s := string(cfg)
	if !strings.Contains(s, "\naccept_risk = []") {
		return fmt.Errorf("%s: no `accept_risk = []` line to change", cfgPath)
	}
	s = strings.Replace(s, "\naccept_risk = []", "\naccept_risk = [\"plaintext\"]", 1)
	return os.WriteFile(cfgPath, []byte(s), 0o600)
}

// generate writes the files into b.o.folders folders, one study each, with
// dicomshield's writer (benchnet.Generate).
func (b *bench) generate() error {
	n := b.o.folders
	per := b.o.files / n
	fmt.Fprintf(os.Stderr, "generating %d CT files in %d studies...\n", per*n, n)
	for i := 0; i < n; i++ {
		set := benchnet.SetCT
		set.Files = per
		g, err := benchnet.Generate(filepath.Join(b.work, "data", fmt.Sprintf("study%d", i+1)), set, 100+i)
		if err != nil {
			return err
		}
		b.folders = append(b.folders, g.Dir)
		b.files += len(g.Paths)
		b.bytes += g.Bytes
	}
	return nil
}

// --- receivers ----------------------------------------------------------------

// receiver is one started server.
type receiver struct {
	srv     *benchnet.Server
	dir     string
	port    int // where storescu connects
	aec     string
	tls     bool
	httpURL string // Orthanc's REST API
	count   func() (int, error)
}

func (r *receiver) stop() {
	r.srv.Stop()
	os.RemoveAll(r.dir)
}

type target struct {
	key, name string
	fork      bool     // storescp: --fork (parallel associations)
	env       []string // added to the receiver's environment
}

var targets = []target{
	{key: "ds-tls", name: "dicomshield serve (TLS)"},
	{key: "ds-plain", name: "dicomshield serve (plain)"},
	{key: "orthanc", name: "Orthanc 1.10.1 (DCMTK defaults)"},
	{key: "orthanc-nd", name: "Orthanc 1.10.1 (TCP_NODELAY=1)", env: []string{noDelay}},
	{key: "storescp", name: "storescp --fork"},
	{key: "storescp-durable", name: "storescp --fork + fsync shim (durable)", fork: true},
	{key: "ds-base", name: "dicomshield serve (plain, -baseline)"},
}

func (b *bench) start(t target) (*receiver, error) {
	b.seq++
	parent := b.o.srvDir
	if parent == "" {
		parent = filepath.Join(b.work, "srv")
	}
	dir := filepath.Join(parent, fmt.Sprintf("ingestbench-%d-%s-%d", os.Getpid(), t.key, b.seq))
	logf := filepath.Join(b.work, fmt.Sprintf("server-%s-%d.log", t.key, b.seq))
	switch t.key {
	case "ds-tls", "ds-plain", "ds-base":
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return nil, err
		}
		tmpl := b.template
		if t.key == "ds-base" {
			tmpl = b.baseTemplate
		}
		if out, err := exec.Command("cp", "-a", tmpl, dir).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("cp: %v: %s", err, out)
		}
		pt, err := benchnet.FreePort()
		if err != nil {
			return nil, err
		}
		pp, err := benchnet.FreePort()
		if err != nil {
			return nil, err
		}
		port := pp
		if t.key == "ds-tls" {
			port = pt
		}
		bin := filepath.Join(b.bin, "dicomshield")
		if t.key == "ds-base" {
			bin = b.o.baseline
		}
		s, err := benchnet.Start(t.name, port, dir, logf, nil, bin, "serve", "--data", dir,
			"--listen-tls", fmt.Sprintf("127.0.0.1:%d", pt), "--listen", fmt.Sprintf("127.0.0.1:%d", pp), "--listen-enroll", "")
		if err != nil {
			return nil, err
		}
		// serve listens before it issues its TLS server certificate (an RSA
		// key, generated at every start); a C-ECHO on the plain listener,
		// which starts after that, shows the archive is ready.
		if err := b.echo(pp); err != nil {
			s.Stop()
			return nil, fmt.Errorf("%s: %w (see %s)", t.name, err, logf)
		}
		blobs := filepath.Join(dir, "blobs")
		return &receiver{srv: s, dir: dir, port: port, aec: dsAE, tls: t.key == "ds-tls", count: func() (int, error) {
			n, _, err := benchnet.CountFiles(blobs)
			return n, err
		}}, nil
	case "orthanc", "orthanc-nd":
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		dp, err := benchnet.FreePort()
		if err != nil {
			return nil, err
		}
		hp, err := benchnet.FreePort()
		if err != nil {
			return nil, err
		}
		cfg := map[string]any{
			"Name":                  "ingestbench",
			"StorageDirectory":      filepath.Join(dir, "storage"),
			"IndexDirectory":        filepath.Join(dir, "index"),
			"DicomPort":             dp,
			"HttpPort":              hp,
			"DicomAet":              "ORTHANC",
			"Plugins":               []string{},
			"DicomAlwaysAllowStore": true,
			"RemoteAccessAllowed":   false,
			"AuthenticationEnabled": false,
		}
		js, _ := json.MarshalIndent(cfg, "", "  ")
		cfgPath := filepath.Join(dir, "orthanc.json")
		if err := os.WriteFile(cfgPath, js, 0o644); err != nil {
			return nil, err
		}
		s, err := benchnet.Start(t.name, dp, dir, logf, t.env, b.o.orthanc, cfgPath)
		if err != nil {
			return nil, err
		}
		url := fmt.Sprintf("http://127.0.0.1:%d", hp)
		r := &receiver{srv: s, dir: dir, port: dp, aec: "ORTHANC", httpURL: url}
		r.count = func() (int, error) {
			var st struct{ CountInstances int }
			err := getJSON(url+"/statistics", &st)
			return st.CountInstances, err
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			var sys map[string]any
			if err := getJSON(url+"/system", &sys); err == nil {
				break
			} else if time.Now().After(deadline) {
				r.stop()
				return nil, fmt.Errorf("orthanc: GET /system: %v (see %s)", err, logf)
			}
			time.Sleep(50 * time.Millisecond)
		}
		return r, nil
	case "storescp", "storescp-1", "storescp-durable":
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		port, err := benchnet.FreePort()
		if err != nil {
			return nil, err
		}
		argv := []string{b.o.storescp}
		if t.fork {
			argv = append(argv, "--fork")
		}
		argv = append(argv, "-aet", "STORESCP", "-od", dir, strconv.Itoa(port))
		env := []string{noDelay} // as netbench: Nagle off
		if t.key == "storescp-durable" {
			env = append(env, shimEnv(b.shim, dir)...)
		}
		s, err := benchnet.Start(t.name, port, dir, logf, env, argv...)
		if err != nil {
			return nil, err
		}
		if t.key == "storescp-durable" {
			// ld.so only warns when it cannot preload, and storescp would
			// then run without syncing: check that the shim is mapped
			// (the --fork children inherit it).
			if err := shimLoaded(s.Cmd.Process.Pid, b.shim); err != nil {
				s.Stop()
				return nil, fmt.Errorf("%s: %w (see %s)", t.name, err, logf)
			}
		}
		return &receiver{srv: s, dir: dir, port: port, aec: "STORESCP", count: func() (int, error) {
			n, _, err := benchnet.CountFiles(dir)
			return n, err
		}}, nil
	}
	return nil, fmt.Errorf("unknown receiver %q", t.key)
}

// echo waits until a C-ECHO from the peer to dicomshield's plain port
// succeeds.
func (b *bench) echo(port int) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := exec.Command("echoscu", "-aet", peerAE, "-aec", dsAE, "127.0.0.1", strconv.Itoa(port)).CombinedOutput()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("echoscu: %v: %s", err, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func getJSON(url string, v any) error {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// storescu returns the command sending paths (files or folders) to r.
func (b *bench) storescu(r *receiver, paths ...string) *exec.Cmd {
	args := []string{"-aet", peerAE, "-aec", r.aec, "+sd"}
	if r.tls {
		args = append(args, "+tls", b.peerBase+".key", b.peerBase+".crt", "+cf", "ca.pem")
	}
	args = append(args, "127.0.0.1", strconv.Itoa(r.port))
	args = append(args, paths...)
	cmd := exec.Command(b.o.storescu, args...)
	cmd.Dir = b.bundle
	cmd.Env = append(os.Environ(), noDelay)
	cmd.Stdout, cmd.Stderr = b.clientLg, b.clientLg
	fmt.Fprintf(b.clientLg, "$ %s %s\n", noDelay, strings.Join(cmd.Args, " "))
	return cmd
}

// send runs one storescu per group at once and waits for all.
func (b *bench) send(r *receiver, groups [][]string) (time.Duration, error) {
	cmds := make([]*exec.Cmd, len(groups))
	for i, g := range groups {
		cmds[i] = b.storescu(r, g...)
	}
	errs := make([]error, len(cmds))
	var wg sync.WaitGroup
	start := time.Now()
	for i, c := range cmds {
		if err := c.Start(); err != nil {
			return 0, err
		}
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = c.Wait() }()
	}
	wg.Wait()
	wall := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return 0, fmt.Errorf("storescu: %v (see %s)", err, b.clientLg.Name())
	}
	return wall, nil
}

// --- comparison ----------------------------------------------------------------

type scenario struct {
	t    target
	jobs int
}

func (s scenario) id() string { return fmt.Sprintf("%s/%d", s.t.key, s.jobs) }

type sample struct {
	wall, serverCPU time.Duration
	rssKB           int64
}

func (b *bench) once(s scenario) (sample, error) {
	r, err := b.start(s.t)
	if err != nil {
		return sample{}, err
	}
	defer r.stop()
	groups := [][]string{b.folders}
	if s.jobs > 1 {
		groups = nil
		for _, f := range b.folders {
			groups = append(groups, []string{f})
		}
	}
	cpu0, err := r.srv.CPU()
	if err != nil {
		return sample{}, err
	}
	wall, err := b.send(r, groups)
	if err != nil {
		return sample{}, fmt.Errorf("%s: %w (server log %s)", s.id(), err, r.srv.Log)
	}
	cpu1, err := r.srv.CPU()
	if err != nil {
		return sample{}, err
	}
	rss := vmHWM(r.srv.Cmd.Process.Pid)
	n, err := r.count()
	if err != nil || n != b.files {
		return sample{}, fmt.Errorf("%s: %d of %d instances stored (%v; server log %s)", s.id(), n, b.files, err, r.srv.Log)
	}
	return sample{wall: wall, serverCPU: cpu1 - cpu0, rssKB: rss}, nil
}

// selected reports whether -only lets the receiver with this key run.
func (b *bench) selected(key string) bool {
	if b.o.only == "" {
		return true
	}
	for _, s := range strings.Split(b.o.only, ",") {
		if s != "" && strings.Contains(key, s) {
			return true
		}
	}
	return false
}

func (b *bench) compare() error {
	var scs []scenario
	for _, t := range targets {
		if !b.selected(t.key) || t.key == "ds-base" && b.o.baseline == "" {
			continue
		}
		if t.key == "storescp" {
			t.fork = true
		}
		scs = append(scs, scenario{t, 1}, scenario{t, b.o.folders})
	}
	raw, err := os.Create(filepath.Join(b.work, "runs.csv"))
	if err != nil {
		return err
	}
	defer raw.Close()
	fmt.Fprintln(raw, "pass,scenario,wall_s,server_cpu_s,server_vmhwm_kb")
	res := map[string][]sample{}
	load0 := loadavg()
	started := time.Now()
	for pass := 0; pass <= b.o.runs; pass++ {
		label := fmt.Sprintf("pass %d/%d", pass, b.o.runs)
		if pass == 0 {
			label = "warm-up pass"
		}
		fmt.Fprintf(os.Stderr, "%s (load %s)\n", label, loadavg())
		for i := range scs {
			s := scs[(i+pass)%len(scs)]
			smp, err := b.once(s)
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "  %-22s %.3f s\n", s.id(), smp.wall.Seconds())
			if pass > 0 {
				res[s.id()] = append(res[s.id()], smp)
				fmt.Fprintf(raw, "%d,%s,%.4f,%.2f,%d\n", pass, s.id(), smp.wall.Seconds(), smp.serverCPU.Seconds(), smp.rssKB)
			}
		}
	}
	b.header(load0, time.Since(started))
	mb := float64(b.bytes) / 1e6
	b.printf("| receiver | senders | wall s (min–max) | files/s | MB/s | server CPU s | server CPU ms/file | server VmHWM MB |\n")
	b.printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, s := range scs {
		smps := res[s.id()]
		walls := secs(smps, func(x sample) time.Duration { return x.wall })
		w := median(walls)
		c := median(secs(smps, func(x sample) time.Duration { return x.serverCPU }))
		var rss []float64
		for _, x := range smps {
			rss = append(rss, float64(x.rssKB)/1024)
		}
		b.printf("| %s | %d | %.2f (%.2f–%.2f) | %.0f | %.0f | %.2f | %.1f | %.0f |\n", s.t.name, s.jobs, w, slices.Min(walls), slices.Max(walls),
			float64(b.files)/w, mb/w, c, c*1000/float64(b.files), median(rss))
	}
	b.printf("\n")
	b.ratios(scs, res)
	return nil
}

func (b *bench) ratios(scs []scenario, res map[string][]sample) {
	has := map[string]bool{}
	for _, s := range scs {
		has[s.id()] = true
	}
	type cmp struct{ label, a, b, target string }
	var cmps []cmp
	for _, j := range []int{1, b.o.folders} {
		cmps = append(cmps,
			cmp{fmt.Sprintf("dicomshield TLS / Orthanc, %d sender(s)", j), fmt.Sprintf("ds-tls/%d", j), fmt.Sprintf("orthanc/%d", j), "≥ 3.00"},
			cmp{fmt.Sprintf("dicomshield plain / Orthanc, %d sender(s)", j), fmt.Sprintf("ds-plain/%d", j), fmt.Sprintf("orthanc/%d", j), "≥ 3.00"},
			cmp{fmt.Sprintf("dicomshield TLS / Orthanc with TCP_NODELAY=1, %d sender(s)", j), fmt.Sprintf("ds-tls/%d", j), fmt.Sprintf("orthanc-nd/%d", j), "≥ 3.00"},
			cmp{fmt.Sprintf("dicomshield plain / Orthanc with TCP_NODELAY=1, %d sender(s)", j), fmt.Sprintf("ds-plain/%d", j), fmt.Sprintf("orthanc-nd/%d", j), "≥ 3.00"},
			cmp{fmt.Sprintf("dicomshield plain / storescp, %d sender(s)", j), fmt.Sprintf("ds-plain/%d", j), fmt.Sprintf("storescp/%d", j), "≥ 0.90"},
			cmp{fmt.Sprintf("dicomshield TLS / storescp, %d sender(s)", j), fmt.Sprintf("ds-tls/%d", j), fmt.Sprintf("storescp/%d", j), "≥ 0.90"},
			cmp{fmt.Sprintf("dicomshield plain / storescp durable, %d sender(s)", j), fmt.Sprintf("ds-plain/%d", j), fmt.Sprintf("storescp-durable/%d", j), "≥ 0.90 (like for like)"},
			cmp{fmt.Sprintf("dicomshield TLS / storescp durable, %d sender(s)", j), fmt.Sprintf("ds-tls/%d", j), fmt.Sprintf("storescp-durable/%d", j), "≥ 0.90 (like for like)"},
			cmp{fmt.Sprintf("dicomshield TLS / plain, %d sender(s)", j), fmt.Sprintf("ds-tls/%d", j), fmt.Sprintf("ds-plain/%d", j), "≥ 0.85"},
			cmp{fmt.Sprintf("dicomshield plain / -baseline, %d sender(s)", j), fmt.Sprintf("ds-plain/%d", j), fmt.Sprintf("ds-base/%d", j), "≥ 1.00"},
		)
	}
	b.printf("Ratios of ingest rates (files/s of the first over the second = wall of the second / wall of the first; median of the per-pass ratios):\n\n")
	b.printf("| comparison | target | ratio | met |\n| --- | --- | ---: | --- |\n")
	for _, c := range cmps {
		if !has[c.a] || !has[c.b] {
			continue
		}
		x, y := res[c.a], res[c.b]
		var rs []float64
		for i := 0; i < min(len(x), len(y)); i++ {
			rs = append(rs, y[i].wall.Seconds()/x[i].wall.Seconds())
		}
		r := median(rs)
		want, err := strconv.ParseFloat(strings.Fields(strings.TrimPrefix(c.target, "≥ "))[0], 64)
		if err != nil {
			panic("ingestbench: bad target " + c.target)
		}
		met := "no"
		if r >= want {
			met = "yes"
		}
		b.printf("| %s | %s | %.2f | %s |\n", c.label, c.target, r, met)
	}
	b.printf("\n")
}

func (b *bench) printf(format string, args ...any) { fmt.Fprintf(&b.report, format, args...) }

func (b *bench) header(load0 string, took time.Duration) {
	dcmtk, _ := output(b.o.storescp, "--version")
	if i := strings.IndexByte(dcmtk, '\n'); i > 0 {
		dcmtk = dcmtk[:i]
	}
	gover, _ := output("go", "env", "GOVERSION")
	rev, _ := output("git", "-C", "..", "describe", "--always", "--dirty")
	b.printf("## Ingest benchmark: dicomshield vs Orthanc vs storescp\n\n")
	b.printf("%s, dicomshield %s, %s, %d CPUs; %s. Load average %s at the start, %s at the end; %d timed passes (+1 warm-up) in %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), rev, gover, runtime.NumCPU(), strings.TrimPrefix(strings.Trim(dcmtk, "$ "), "dcmtk: "),
		load0, loadavg(), b.o.runs, took.Round(time.Second))
	b.printf("%d CT-like files (512×512×16 bit, Explicit VR LE) in %d studies, %.1f MB in all, sent by DCMTK storescu (TCP_NODELAY=1) over 127.0.0.1 to a freshly started receiver with an empty data directory on %s. "+
		"1 sender: one storescu with all folders; %d senders: one storescu per folder, all at once. "+
		"dicomshield and Orthanc (SyncStorageArea default true) sync each instance to disk before answering; storescp does not; "+
		"storescp durable is the same storescp --fork with an LD_PRELOAD shim (bench/durable/fsync_on_close.c) that, in its fclose of each received file, fdatasyncs the file and then fsyncs its directory, before storescp answers. "+
		"Wall = first storescu start to last exit; server CPU = user+system of the receiver and its children during the run; VmHWM = receiver's peak RSS at the end of the run. Medians of %d runs.\n\n",
		b.files, len(b.folders), float64(b.bytes)/1e6, fsType(filepath.Dir(b.srvParent())), b.o.folders, b.o.runs)
}

func (b *bench) srvParent() string {
	if b.o.srvDir != "" {
		return filepath.Join(b.o.srvDir, "x")
	}
	return filepath.Join(b.work, "x")
}

func fsType(dir string) string {
	out, err := output("df", "--output=fstype", dir)
	if err != nil {
		return "?"
	}
	f := strings.Fields(out)
	return f[len(f)-1]
}

func secs(smps []sample, f func(sample) time.Duration) []float64 {
	out := make([]float64, len(smps))
	for i, s := range smps {
		out[i] = f(s).Seconds()
	}
	return out
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

// vmHWM returns the peak resident set size of pid in KiB (0 if unknown).
func vmHWM(pid int) int64 {
	return statusKB(fmt.Sprintf("/proc/%d/status", pid), "VmHWM:")
}

func statusKB(file, key string) int64 {
	fh, err := os.Open(file)
	if err != nil {
		return 0
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), key); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// --- large instance --------------------------------------------------------------

// writeBig writes one multi-frame instance of frames 512×512×16-bit frames
// to path without holding the pixel data in memory: the header is written
// with dicomshield's writer, then the Pixel Data element (the last one) is
// appended frame by frame.
func writeBig(path string, frames int) (int64, error) {
	const rows, cols = 512, 512
	frame := make([]byte, rows*cols*2)
	for i := 0; i < rows*cols; i++ {
		binary.LittleEndian.PutUint16(frame[2*i:], uint16((i%512)*4)&0x0FFF)
	}
	ds := &dicom.DataSet{}
	uid := "2.25.246171127414939232178617025341235431983.999"
	set := func(g, e uint16, vr dicom.VR, v ...string) { ds.Set(dicom.NewText(dicom.NewTag(g, e), vr, v...)) }
	u16 := func(g, e uint16, v uint16) { ds.Set(dicom.NewUint16s(dicom.NewTag(g, e), dicom.US, v)) }
	set(0x0008, 0x0016, dicom.UI, benchnet.MultiFrameWordSCStorage)
	set(0x0008, 0x0018, dicom.UI, uid+".3")
	set(0x0008, 0x0020, dicom.DA, "20240101")
	set(0x0008, 0x0060, dicom.CS, "OT")
	set(0x0010, 0x0010, dicom.PN, "BENCH^LARGE")
	set(0x0010, 0x0020, dicom.LO, "BENCH-LARGE")
	set(0x0018, 0x1063, dicom.DS, "33.3")
	set(0x0020, 0x000D, dicom.UI, uid+".1")
	set(0x0020, 0x000E, dicom.UI, uid+".2")
	set(0x0020, 0x0013, dicom.IS, "1")
	u16(0x0028, 0x0002, 1)
	set(0x0028, 0x0004, dicom.CS, "MONOCHROME2")
	set(0x0028, 0x0008, dicom.IS, strconv.Itoa(frames))
	ds.Set(dicom.NewUint16s(dicom.NewTag(0x0028, 0x0009), dicom.AT, 0x0018, 0x1063))
	u16(0x0028, 0x0010, rows)
	u16(0x0028, 0x0011, cols)
	u16(0x0028, 0x0100, 16)
	u16(0x0028, 0x0101, 12)
	u16(0x0028, 0x0102, 11)
	u16(0x0028, 0x0103, 0)
	fh, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	w := bufio.NewWriterSize(fh, 1<<20)
	if err := dicom.WriteFile(w, dicom.NewFile(ds, dicom.ExplicitVRLittleEndian)); err != nil {
		fh.Close()
		return 0, err
	}
	// (7FE0,0010) OW, explicit VR little endian: tag, "OW", 2 reserved
	// bytes, 32-bit length.
	n := uint64(len(frame)) * uint64(frames)
	if n >= 0xFFFFFFFF {
		fh.Close()
		return 0, fmt.Errorf("pixel data of %d bytes does not fit a defined length", n)
	}
	var h [12]byte
	binary.LittleEndian.PutUint16(h[0:], 0x7FE0)
	binary.LittleEndian.PutUint16(h[2:], 0x0010)
	copy(h[4:], "OW")
	binary.LittleEndian.PutUint32(h[8:], uint32(n))
	w.Write(h[:])
	for i := 0; i < frames; i++ {
		if _, err := w.Write(frame); err != nil {
			fh.Close()
			return 0, err
		}
	}
	if err := w.Flush(); err != nil {
		fh.Close()
		return 0, err
	}
	if err := fh.Close(); err != nil {
		return 0, err
	}
	st, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

func (b *bench) memory() error {
	frames := b.o.bigMB * 1 << 20 / (512 * 512 * 2)
	dir := filepath.Join(b.work, "data", "big")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	path := filepath.Join(dir, "big.dcm")
	hwm0 := statusKB("/proc/self/status", "VmHWM:")
	rss0 := statusKB("/proc/self/status", "VmRSS:")
	fmt.Fprintf(os.Stderr, "generating one instance of %d frames...\n", frames)
	t0 := time.Now()
	size, err := writeBig(path, frames)
	if err != nil {
		return err
	}
	genTook := time.Since(t0)
	hwm1 := statusKB("/proc/self/status", "VmHWM:")
	rss1 := statusKB("/proc/self/status", "VmRSS:")
	b.printf("### One large instance: receiver memory\n\n")
	b.printf("One multi-frame instance of %d frames, %.0f MB (%d bytes), generated in %s streaming to disk (header by dicomshield's writer, then Pixel Data frame by frame): the generating process's RSS went from %.0f MB to %.0f MB, its peak (VmHWM, including the earlier CT generation) from %.0f MB to %.0f MB. "+
		"Sent once by one storescu to a freshly started receiver; VmHWM read from /proc/PID/status before and after (for storescp --fork: the parent only, so plain storescp is used here).\n\n",
		frames, float64(size)/1e6, size, genTook.Round(time.Millisecond), float64(rss0)/1024, float64(rss1)/1024, float64(hwm0)/1024, float64(hwm1)/1024)
	b.printf("| receiver | wall s | MB/s | VmHWM before MB | VmHWM after MB | stored |\n| --- | ---: | ---: | ---: | ---: | --- |\n")
	for _, t := range []target{targets[0], targets[1], targets[3], {key: "storescp-1", name: "storescp (no --fork)", env: []string{noDelay}}} {
		if !b.selected(t.key) {
			continue
		}
		fmt.Fprintf(os.Stderr, "large instance into %s...\n", t.name)
		r, err := b.start(t)
		if err != nil {
			return err
		}
		pid := r.srv.Cmd.Process.Pid
		before := vmHWM(pid)
		wall, err := b.send(r, [][]string{{path}})
		after := vmHWM(pid)
		stored := "yes"
		if err != nil {
			stored = "send failed: " + err.Error()
		} else if n, cerr := r.count(); cerr != nil || n != 1 {
			stored = fmt.Sprintf("no (%d instances, %v; see %s)", n, cerr, r.srv.Log)
		}
		r.stop()
		b.printf("| %s | %.2f | %.0f | %.0f | %.0f | %s |\n", t.name, wall.Seconds(), float64(size)/1e6/wall.Seconds(), float64(before)/1024, float64(after)/1024, stored)
	}
	b.printf("\n")
	return os.Remove(path)
}
