package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/dicomshield/dicomshield/internal/scan"
	"github.com/dicomshield/dicomshield/internal/scan/prove"
)

// riskPublicTargets is the --accept-risk value that allows targets
// outside loopback and private address space.
const riskPublicTargets = "public-targets"

// progressInterval is how often the progress line on a terminal is
// redrawn: smooth enough to watch, cheap enough to forget.
const progressInterval = 250 * time.Millisecond

// scanFlags are the flags of `dicomshield scan`. To add an output
// format, add its flag here and its sink in openSinks; to add a probe that
// runs once a stranger got in (--prove, --test-write), append to
// followUps in RunE.
type scanFlags struct {
	inputList, ilCompat string
	exclude             []string
	ports               string
	jsonFile, csvFile   string
	sarifFile           string
	htmlFile            string
	acceptRisk          []string

	concurrency, perHost, maxAttempts int
	rate                              float64
	connectTimeout, assocTimeout      time.Duration
	dimseTimeout                      time.Duration
	noRetry, discovery                bool
	httpPorts                         string
	quiet                             bool

	// --prove, --max-records, --hash-ids, --test-write (package prove).
	prove      bool
	maxRecords int
	hashIDs    string
	hashFile   string
	testWrite  bool

	resume resumeFlags // --resume, --resume-force (scanresume.go)
}

func newScanCmd() *cobra.Command {
	f := &scanFlags{}
	var startProfile func() (func(), error)
	cmd := &cobra.Command{
		Use:   "scan [flags] TARGET...",
		Short: "Find DICOM services and tell how exposed each one is",
		Long: `Probe DICOM services and classify how exposed each one is to a stranger:
whether it speaks DICOM in plaintext or over TLS (version, cipher,
certificate, client certificate required), who may associate (a ladder of
random, then well-known AE titles; every rejection decoded), what a
stranger may do (accepted services, C-ECHO, and whether a query or retrieve
for a record that does not exist is executed or refused), the product and
its known vulnerabilities, and findings with remediations.

A TARGET is an address, a host name, a CIDR (10.0.0.0/24), a range
(10.0.0.1-40 or 10.0.0.1-10.0.1.255) or HOST:PORT. -iL FILE reads targets
one per line ("-" for standard input), masscan and ZMap output included.
Targets outside loopback and private space are refused unless
--accept-risk=public-targets: scanning others' networks may be unlawful.

The scanner names itself honestly (its own implementation class UID and
version name), releases its associations, and never reads patient data:
its query and retrieve probes ask for a UID made up on the spot.
Ctrl-C stops the scan and writes what was found.`,
		Example: `  dicomshield scan 127.0.0.1
  dicomshield scan 10.0.0.0/24 -p 104,11112 --json results.jsonl
  masscan -p104,11112 10.0.0.0/16 -oL - | dicomshield scan -iL - --csv out.csv
  dicomshield scan --accept-risk=public-targets 198.51.100.7:104`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.ilCompat != "" {
				// pflag reads "-iL FILE" as -i with the value "L".
				if f.ilCompat != "L" || len(args) == 0 {
					return errors.New("-i: did you mean -iL FILE?")
				}
				f.inputList, args = args[0], args[1:]
			}
			ctx, stop := interruptible(cmd)
			defer stop()
			set, err := f.targets(ctx, args, cmd.InOrStdin())
			if err != nil {
				return err
			}
			opts, err := f.options()
			if err != nil {
				return err
			}
			salt, err := f.hashSalt()
			if err != nil {
				return err
			}
			if (salt != "" || cmd.Flags().Changed("max-records")) && !f.prove {
				return errors.New("--max-records, --hash-ids and --hash-ids-file go with --prove")
			}
			if f.maxRecords < 1 {
				return errors.New("--max-records: at least 1")
			}
			var followUps []func(context.Context, scan.Access, *scan.Result)
			if fu := prove.FollowUp(prove.Config{Prove: f.prove, TestWrite: f.testWrite,
				Options: prove.Options{MaxRecords: f.maxRecords, HashSalt: salt}}); fu != nil {
				followUps = append(followUps, fu)
			}
			if len(followUps) > 0 {
				opts.FollowUp = func(ctx context.Context, a scan.Access, r *scan.Result) {
					for _, fu := range followUps {
						fu(ctx, a, r)
					}
				}
			}
			if err := f.resume.open(set, &opts, cmd.ErrOrStderr()); err != nil {
				return err
			}
			sinks, closeFiles, err := f.openSinks(cmd.OutOrStdout())
			if err != nil {
				return err
			}
			defer closeFiles()
			stopProfile, err := startProfile()
			if err != nil {
				return err
			}
			defer stopProfile()
			defer tuneScanGC()()
			err = runScan(ctx, cmd.ErrOrStderr(), set, opts, sinks, f.quiet)
			if rerr := f.resume.close(ctx, cmd.ErrOrStderr()); rerr != nil && err == nil {
				err = rerr
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.inputList, "iL", "", "read targets from `FILE`, one per line (- for standard input; masscan and ZMap output accepted)")
	fl.StringVarP(&f.ilCompat, "il-compat", "i", "", "")
	fl.MarkHidden("il-compat")
	fl.StringSliceVar(&f.exclude, "exclude", nil, "addresses, ranges or CIDRs never to probe (comma-separated, repeatable)")
	fl.StringVarP(&f.ports, "ports", "p", joinInts(scan.DefaultPorts), "`PORTS` to probe (104,11112 or 100-110)")
	fl.StringVar(&f.jsonFile, "json", "", "write one JSON object per service (JSON Lines) to `FILE` (- for standard output)")
	fl.StringVar(&f.csvFile, "csv", "", "write one CSV row per service to `FILE` (- for standard output)")
	fl.StringVar(&f.sarifFile, "sarif", "", "write the findings as SARIF 2.1.0 to `FILE` (- for standard output)")
	fl.StringSliceVar(&f.acceptRisk, "accept-risk", nil, "accept a named risk: "+riskPublicTargets+" (targets outside loopback and private space)")
	fl.IntVar(&f.concurrency, "concurrency", scan.DefaultConcurrency, "services probed at once (work in flight, capped by the open-file limit; politeness is --per-host and --rate)")
	fl.IntVar(&f.perHost, "per-host", scan.DefaultPerHost, "probes of one host at once (what one device sees)")
	fl.Float64Var(&f.rate, "rate", scan.DefaultRate, "new connections per second across the scan, the polite default for networks one does not run (0 or less: unlimited, for one's own or a lab: the benchmark uses --rate 0 --concurrency 512)")
	fl.DurationVar(&f.connectTimeout, "connect-timeout", scan.DefaultConnectTimeout, "TCP connect and TLS handshake timeout (what a dead host costs)")
	fl.DurationVar(&f.assocTimeout, "associate-timeout", scan.DefaultAssociateTimeout, "wait for the answer to an association request")
	fl.DurationVar(&f.dimseTimeout, "dimse-timeout", scan.DefaultDIMSETimeout, "bound of each DIMSE exchange (C-ECHO, probes)")
	fl.BoolVar(&f.noRetry, "no-retry", false, "do not retry an attempt that failed after connecting")
	fl.BoolVar(&f.discovery, "discovery", false, "sweep mode for large ranges: AE title ladder, TLS, services offered and C-ECHO only; query and retrieve are not probed (unproven where offered); rescan what answered without it")
	fl.IntVar(&f.maxAttempts, "max-attempts", scan.DefaultMaxAttempts, "associations per service in the AE title ladder")
	fl.StringVar(&f.httpPorts, "http-ports", joinInts(scan.DefaultHTTPPorts), "ports where Orthanc's REST API is looked for (GET /system); empty: none")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "no progress line")
	fl.StringVar(&f.htmlFile, "html", "", "write a self-contained HTML report (figures, charts, each service with remediation; likely decoys set apart) to `FILE`")
	fl.BoolVar(&f.prove, "prove", false, "when a stranger gets in, prove read exposure: count records with real C-FIND queries (counts and kinds of data only, never values), try C-GET and C-MOVE without downloading, test user identity")
	fl.IntVar(&f.maxRecords, "max-records", prove.DefaultMaxRecords, "--prove stops each count with C-CANCEL at `N` records")
	fl.StringVar(&f.hashIDs, "hash-ids", "", "--prove keeps a SHA-256 of each patient ID salted with `SALT` (to de-duplicate across servers); off by default. "+
		"The salt shows in the process list and shell history, and with it the hashes can be tested against guessed IDs: prefer --hash-ids-file")
	fl.StringVar(&f.hashFile, "hash-ids-file", "", "like --hash-ids, with the salt read from `FILE` (its first line), which keeps it out of the process list and shell history")
	fl.BoolVar(&f.testWrite, "test-write", false, "when a stranger gets in, store one labelled synthetic instance (UIDs under "+prove.ScannerUIDRoot+", printed) and test appending to its series and overwriting it: writes to the server, never default")
	f.resume.addFlags(fl)
	startProfile = addProfileFlag(fl)
	cmd.AddCommand(newScanDiffCmd())
	return cmd
}

// hashSalt returns the salt of --hash-ids or --hash-ids-file ("" when
// neither is given).
func (f *scanFlags) hashSalt() (string, error) {
	if f.hashFile == "" {
		return f.hashIDs, nil
	}
	if f.hashIDs != "" {
		return "", errors.New("--hash-ids and --hash-ids-file: give one")
	}
	b, err := os.ReadFile(f.hashFile)
	if err != nil {
		return "", fmt.Errorf("--hash-ids-file: %w", err)
	}
	salt, _, _ := strings.Cut(string(b), "\n")
	if salt = strings.TrimRight(salt, "\r"); salt == "" {
		return "", fmt.Errorf("--hash-ids-file %s: the first line is empty: no salt", f.hashFile)
	}
	return salt, nil
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ",")
}

// targets builds the target set: arguments and the list file, resolved,
// checked against the public-address rule.
func (f *scanFlags) targets(ctx context.Context, args []string, stdin io.Reader) (*scan.TargetSet, error) {
	ports, err := scan.ParsePorts(f.ports)
	if err != nil {
		return nil, fmt.Errorf("-p: %w", err)
	}
	set := &scan.TargetSet{Ports: ports}
	for _, a := range args {
		t, err := scan.ParseTarget(a)
		if err != nil {
			return nil, err
		}
		set.Targets = append(set.Targets, t)
	}
	if f.inputList != "" {
		r := stdin
		if f.inputList != "-" {
			fh, err := os.Open(f.inputList)
			if err != nil {
				return nil, err
			}
			defer fh.Close()
			r = fh
		}
		sc := bufio.NewScanner(r)
		for n := 1; sc.Scan(); n++ {
			ts, err := scan.ParseLine(sc.Text())
			if err != nil {
				return nil, fmt.Errorf("%s line %d: %w", f.inputList, n, err)
			}
			set.Targets = append(set.Targets, ts...)
		}
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	if len(set.Targets) == 0 {
		return nil, errors.New("no targets: give addresses, ranges, CIDRs or host names, or -iL FILE")
	}
	for _, x := range f.exclude {
		for _, s := range strings.Split(x, ",") {
			t, err := scan.ParseTarget(s)
			if err != nil || t.Name != "" {
				return nil, fmt.Errorf("--exclude %q: an address, range or CIDR", s)
			}
			set.Exclude = append(set.Exclude, t)
		}
	}
	public := false
	for _, r := range f.acceptRisk {
		if r != riskPublicTargets {
			return nil, fmt.Errorf("--accept-risk: unknown risk %q (known: %s)", r, riskPublicTargets)
		}
		public = true
	}
	for i := range set.Targets {
		t := &set.Targets[i]
		name := t.Name
		if err := t.Resolve(ctx, nil); err != nil {
			return nil, err
		}
		if !public && !t.Local() {
			what := t.First.String()
			if name != "" {
				what = name + " (" + what + ")"
			}
			if t.First != t.End {
				what += "-" + t.End.String()
			}
			return nil, fmt.Errorf("%s is outside loopback and private address space: scanning networks that are not yours may be unlawful; "+
				"if you are authorised, add --accept-risk=%s", what, riskPublicTargets)
		}
	}
	return set, nil
}

// options turns the flags into scanner options.
func (f *scanFlags) options() (scan.Options, error) {
	o := scan.Options{Concurrency: f.concurrency, PerHost: f.perHost, Rate: f.rate, ConnectTimeout: f.connectTimeout,
		AssociateTimeout: f.assocTimeout, DIMSETimeout: f.dimseTimeout, NoRetry: f.noRetry, Discovery: f.discovery, MaxAttempts: f.maxAttempts}
	if o.Rate <= 0 {
		o.Rate = -1
	}
	o.HTTPPorts = []int{}
	if f.httpPorts != "" {
		p, err := scan.ParsePorts(f.httpPorts)
		if err != nil {
			return o, fmt.Errorf("--http-ports: %w", err)
		}
		o.HTTPPorts = p
	}
	return o, nil
}

// openSinks opens the outputs the flags ask for; the table goes to
// stdout unless a machine format does.
func (f *scanFlags) openSinks(stdout io.Writer) ([]scan.Sink, func(), error) {
	var sinks []scan.Sink
	var files []*os.File
	closeFiles := func() {
		for _, fh := range files {
			fh.Close()
		}
	}
	toStdout := false
	open := func(name string) (io.Writer, error) {
		if name == "-" {
			toStdout = true
			return stdout, nil
		}
		fh, err := os.OpenFile(name, f.resume.outputFlags(name == f.jsonFile), 0o600)
		if err != nil {
			return nil, err
		}
		if name == f.jsonFile {
			f.resume.opened(fh)
		}
		files = append(files, fh)
		return fh, nil
	}
	outputs := []struct {
		name string
		make func(io.Writer) scan.Sink
	}{
		{f.jsonFile, func(w io.Writer) scan.Sink { return &scan.JSONLSink{W: w} }},
		{f.csvFile, func(w io.Writer) scan.Sink { return scan.NewCSVSink(w) }},
		{f.sarifFile, func(w io.Writer) scan.Sink { return &scan.SARIFSink{W: w, Version: Version} }},
	}
	for _, o := range outputs {
		if o.name == "" {
			continue
		}
		w, err := open(o.name)
		if err != nil {
			closeFiles()
			return nil, nil, err
		}
		sinks = append(sinks, o.make(w))
	}
	if f.htmlFile != "" {
		sinks = append(sinks, &htmlSink{path: f.htmlFile})
	}
	if !toStdout {
		sinks = append(sinks, &scan.TableSink{W: stdout})
	}
	return sinks, closeFiles, nil
}

// runScan runs the scan into the sinks, with a progress line on a
// terminal, and closes the sinks even when interrupted.
func runScan(ctx context.Context, stderr io.Writer, set *scan.TargetSet, opts scan.Options, sinks []scan.Sink, quiet bool) error {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	total := set.Count()
	var started, found atomic.Int64
	endpoints := func(yield func(scan.Endpoint) bool) {
		for ep := range set.Endpoints() {
			started.Add(1)
			if !yield(ep) {
				return
			}
		}
	}
	stopProgress := func() {}
	if !quiet && isTerminal(stderr) {
		done := make(chan struct{})
		finished := make(chan struct{})
		go func() {
			defer close(finished)
			t := time.NewTicker(progressInterval)
			defer t.Stop()
			for {
				select {
				case <-done:
					fmt.Fprintf(stderr, "\r\033[K")
					return
				case <-t.C:
					fmt.Fprintf(stderr, "\r\033[Kscanning: %d/%d endpoints started, %d DICOM service(s) found", started.Load(), total, found.Load())
				}
			}
		}()
		stopProgress = func() { close(done); <-finished }
	}
	var writeErr error
	err := scan.New(opts).Run(ctx, endpoints, func(r *scan.Result) {
		found.Add(1)
		for _, s := range sinks {
			if e := s.Write(r); e != nil && writeErr == nil {
				writeErr = e
			}
		}
	})
	stopProgress()
	for _, s := range sinks {
		if e := s.Close(); e != nil && writeErr == nil {
			writeErr = e
		}
	}
	if errors.Is(err, context.Canceled) {
		log.Warn("scan interrupted: results above are what was found so far", "services", found.Load())
		return &exitError{code: 130, err: errors.New("interrupted")}
	}
	if writeErr != nil {
		return writeErr
	}
	return err
}
