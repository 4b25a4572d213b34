// Command scanbench compares `dicomshield scan` with nmap's dicom-ping
// script on the same loopback listeners, in one run.
//
// It starts N DICOM listeners that accept any AE title (the exposed
// servers of the research), one per loopback address 127.1.x.y on one
// port, then scans them all with nmap (`-Pn -n -p PORT --script
// +dicom-ping`) and with dicomshield, and prints how many services each
// found and at what rate. With -rtt it puts a delaying TCP relay in front
// of every listener, adding that round-trip time to each exchange (this
// kernel has no netem): data in each direction is held for rtt/2.
//
// BENCHMARK ONLY: the listeners accept strangers, on loopback only.
//
//	scanbench [-n 500] [-port 11112] [-rtt 50ms] [-runs 1] [-o FILE] [-scan-args ARGS] [-baseline BIN]
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	stdnet "net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	benchnet "github.com/dicomshield/dicomshield/bench/net"
	"github.com/dicomshield/dicomshield/internal/dimse"
)

func main() {
	n := flag.Int("n", 500, "number of listeners (one per address 127.1.x.y)")
	port := flag.Int("port", 11112, "the port every listener uses")
	rtt := flag.Duration("rtt", 0, "round-trip time added by a relay in front of each listener (0: none)")
	runs := flag.Int("runs", 1, "runs of each scanner (the best is reported)")
	out := flag.String("o", "", "also append the result table to this file")
	bin := flag.String("dicomshield", "", "dicomshield binary (default: built from ../cmd/dicomshield; run scanbench from bench/)")
	defaults := flag.Bool("defaults", false, "also run dicomshield scan with its defaults (polite: 300 connections/s), as one more row")
	discovery := flag.Bool("discovery", false, "also run dicomshield scan --discovery (ladder, TLS, services and C-ECHO; no query/retrieve probes) with -scan-args, as one more row")
	baseline := flag.String("baseline", "", "a second dicomshield binary, run side by side as one more row (e.g. the main branch's)")
	scanArgs := flag.String("scan-args", "", "extra arguments for dicomshield scan, space-separated (e.g. \"--rate 0\")")
	flag.Parse()
	extraArgs = strings.Fields(*scanArgs)
	log.SetFlags(0)
	log.SetPrefix("scanbench: ")

	for _, tool := range []string{"nmap"} {
		if _, err := exec.LookPath(tool); err != nil {
			log.Fatalf("%s not found: apt-get install nmap", tool)
		}
	}
	tmp, err := os.MkdirTemp("", "scanbench-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	if *bin == "" {
		*bin = filepath.Join(tmp, "dicomshield")
		// Built in the product's own module (the parent of bench/, where
		// scanbench runs): the bench module's go.sum does not carry the
		// product's dependencies.
		build := exec.Command("go", "build", "-o", *bin, "./cmd/dicomshield")
		build.Dir = ".."
		build.Stderr = os.Stderr
		if err := build.Run(); err != nil {
			log.Fatalf("building dicomshield: %v", err)
		}
	}

	lab, err := startLab(*n, *port, *rtt)
	if err != nil {
		log.Fatal(err)
	}
	defer lab.close()
	targets := filepath.Join(tmp, "targets.txt")
	if err := os.WriteFile(targets, []byte(strings.Join(lab.hosts, "\n")+"\n"), 0o600); err != nil {
		log.Fatal(err)
	}

	if *rtt > 0 {
		// The relay must add what it claims: measured through the first
		// listener, before the scanners run.
		c, err := checkRelay(lab.hosts[0], *port)
		if err != nil {
			log.Fatalf("relay check: %v", err)
		}
		fmt.Printf("relay check through %s:%d: connect + A-ASSOCIATE %v (a real network: 2 x RTT = %v), C-ECHO %v (RTT %v), release %v\n",
			lab.hosts[0], *port, c.associate.Round(time.Millisecond), 2**rtt, c.echo.Round(time.Millisecond), *rtt, c.release.Round(time.Millisecond))
		if c.associate < 2**rtt || c.echo < *rtt {
			log.Fatalf("the relay adds less than the round-trip time it claims")
		}
	}

	type scanner struct {
		name string
		run  func() (int, error)
	}
	scanners := []scanner{
		{"nmap dicom-ping", func() (int, error) { return runNmap(tmp, targets, *port) }},
		{"dicomshield scan " + *scanArgs, func() (int, error) { return runDicomshield(*bin, tmp, targets, *port, extraArgs) }},
	}
	if *discovery {
		args := append(append([]string(nil), extraArgs...), "--discovery")
		scanners = append(scanners, scanner{"dicomshield scan " + *scanArgs + " --discovery", func() (int, error) { return runDicomshield(*bin, tmp, targets, *port, args) }})
	}
	if *defaults {
		scanners = append(scanners, scanner{"dicomshield scan (defaults)", func() (int, error) { return runDicomshield(*bin, tmp, targets, *port, nil) }})
	}
	if *baseline != "" {
		scanners = append(scanners, scanner{"dicomshield scan " + *scanArgs + " (" + filepath.Base(*baseline) + ")", func() (int, error) { return runDicomshield(*baseline, tmp, targets, *port, extraArgs) }})
	}
	type row struct {
		name        string
		found       int
		best        time.Duration
		cpu, labCPU time.Duration // of the best run: the scanner's own, and the listeners' (and relays')
	}
	rows := make([]row, len(scanners))
	// Runs are interleaved (nmap, dicomshield, nmap, ...) so that a change
	// in the machine's load hits every scanner alike.
	for i := 0; i < *runs; i++ {
		for j, sc := range scanners {
			r := &rows[j]
			r.name = sc.name
			child0, self0 := cpuTimes()
			start := time.Now()
			found, err := sc.run()
			el := time.Since(start)
			child1, self1 := cpuTimes()
			if err != nil {
				log.Fatalf("%s: %v", sc.name, err)
			}
			if r.best == 0 || el < r.best {
				r.best, r.found, r.cpu, r.labCPU = el, found, child1-child0, self1-self0
			}
		}
	}

	var b bytes.Buffer
	fmt.Fprintf(&b, "\n%d listeners on 127.1.0.0/16 port %d, added RTT %v, best of %d run(s); dicomshield scan %s\n\n", *n, *port, *rtt, *runs, *scanArgs)
	fmt.Fprintf(&b, "| scanner | DICOM services found | seconds | services/s | vs nmap | scanner CPU s | listeners CPU s |\n|---|---|---|---|---|---|---|\n")
	base := 0.0
	for i, r := range rows {
		rate := float64(r.found) / r.best.Seconds()
		if i == 0 {
			base = rate
		}
		ratio := "1.00x"
		if i > 0 && base > 0 {
			ratio = fmt.Sprintf("%.2fx", rate/base)
		}
		fmt.Fprintf(&b, "| %s | %d/%d | %.2f | %.1f | %s | %.2f | %.2f |\n", r.name, r.found, *n, r.best.Seconds(), rate, ratio, r.cpu.Seconds(), r.labCPU.Seconds())
	}
	os.Stdout.Write(b.Bytes())
	if *out != "" {
		f, err := os.OpenFile(*out, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			log.Fatal(err)
		}
		f.Write(b.Bytes())
		f.Close()
	}
}

// cpuTimes returns the user+system CPU time of the finished children
// (the scanners) and of this process (the listeners and relays).
func cpuTimes() (children, self time.Duration) {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru)
	children = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return children, self
}

// relayTimes are the durations of one association through a relay.
type relayTimes struct{ associate, echo, release time.Duration }

// checkRelay measures connect + A-ASSOCIATE, one C-ECHO and the release
// through the listener at host:port.
func checkRelay(host string, port int) (relayTimes, error) {
	var t relayTimes
	ctx := context.Background()
	start := time.Now()
	cl, err := dimse.Dial(ctx, stdnet.JoinHostPort(host, fmt.Sprint(port)), &dimse.DialOptions{CallingAE: "SCANBENCH", CalledAE: "ANY",
		Contexts: []dimse.Proposal{{AbstractSyntax: dimse.VerificationSOPClass, TransferSyntaxes: []string{"1.2.840.10008.1.2"}}}})
	if err != nil {
		return t, err
	}
	t.associate = time.Since(start)
	start = time.Now()
	if err := cl.Echo(ctx); err != nil {
		cl.Abort()
		return t, err
	}
	t.echo = time.Since(start)
	start = time.Now()
	err = cl.Release()
	t.release = time.Since(start)
	return t, err
}

// lab is the set of listeners (and relays) being scanned.
type lab struct {
	hosts   []string
	servers []*dimse.Server
	relays  []stdnet.Listener
	wg      sync.WaitGroup
}

// startLab starts n accept-anyone SCPs. Without rtt each listens on its
// own 127.1.x.y address; with rtt each listens on 127.0.0.1:0 and a relay
// on 127.1.x.y forwards to it with the delay.
func startLab(n, port int, rtt time.Duration) (*lab, error) {
	l := &lab{}
	addr := netip.AddrFrom4([4]byte{127, 1, 0, 1})
	for i := 0; i < n; i++ {
		host := addr.String()
		addr = addr.Next()
		if addr.As4()[3] == 0 {
			addr = addr.Next()
		}
		public := netip.AddrPortFrom(netip.MustParseAddr(host), uint16(port)).String()
		listenAt := public
		if rtt > 0 {
			listenAt = "127.0.0.1:0"
		}
		ln, err := stdnet.Listen("tcp", listenAt)
		if err != nil {
			l.close()
			return nil, fmt.Errorf("listen %s: %w", listenAt, err)
		}
		srv := benchnet.NewSCP(benchnet.SCPOptions{Discard: true})
		l.servers = append(l.servers, srv)
		l.wg.Add(1)
		go func() { defer l.wg.Done(); srv.Serve(ln) }()
		if rtt > 0 {
			rl, err := stdnet.Listen("tcp", public)
			if err != nil {
				l.close()
				return nil, fmt.Errorf("listen %s: %w", public, err)
			}
			l.relays = append(l.relays, rl)
			backend := ln.Addr().String()
			l.wg.Add(1)
			go func() { defer l.wg.Done(); relay(rl, backend, rtt/2) }()
		}
		l.hosts = append(l.hosts, host)
	}
	return l, nil
}

func (l *lab) close() {
	for _, r := range l.relays {
		r.Close()
	}
	for _, s := range l.servers {
		s.Close()
	}
	l.wg.Wait()
}

// relay accepts on ln and forwards each connection to backend, holding
// the data in each direction for oneWay before passing it on.
func relay(ln stdnet.Listener, backend string, oneWay time.Duration) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			// A real connection costs a round trip (SYN, SYN/ACK) before
			// the client's first byte can leave; here the kernel completes
			// the handshake at once, so the relay holds the first data a
			// whole round trip (on top of the one-way delay every chunk
			// gets): the first answer arrives two round trips after the
			// connect began, as on a real network.
			time.Sleep(2 * oneWay)
			b, err := stdnet.Dial("tcp", backend)
			if err != nil {
				return
			}
			defer b.Close()
			done := make(chan struct{}, 2)
			go func() { delayedCopy(b, c, oneWay); done <- struct{}{} }()
			go func() { delayedCopy(c, b, oneWay); done <- struct{}{} }()
			<-done
		}()
	}
}

type chunk struct {
	at   time.Time
	data []byte
}

// delayedCopy copies src to dst, each chunk written no sooner than d after
// it was read, in order; when src ends, dst is closed for writing after
// the last chunk.
func delayedCopy(dst, src stdnet.Conn, d time.Duration) {
	q := make(chan chunk, 256)
	go func() {
		defer close(q)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				q <- chunk{time.Now().Add(d), buf[:n]}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range q {
		time.Sleep(time.Until(c.at))
		if _, err := dst.Write(c.data); err != nil {
			break
		}
	}
	for range q { // drain so the reader ends
	}
	if tc, ok := dst.(*stdnet.TCPConn); ok {
		tc.CloseWrite()
	}
}

// runNmap runs nmap's dicom-ping over the targets and counts the services
// it reported as DICOM.
func runNmap(tmp, targets string, port int) (int, error) {
	xml := filepath.Join(tmp, "nmap.xml")
	cmd := exec.Command("nmap", "-Pn", "-n", "-p", fmt.Sprint(port), "--script", "+dicom-ping", "-iL", targets, "-oX", xml)
	var stderr bytes.Buffer
	cmd.Stdout = io.Discard
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("%v: %s", err, stderr.String())
	}
	data, err := os.ReadFile(xml)
	if err != nil {
		return 0, err
	}
	// The verdict appears twice per host (the script's output attribute and
	// its <elem key="dicom">); count the element.
	return bytes.Count(data, []byte(`<elem key="dicom">DICOM Service Provider discovered`)), nil
}

// extraArgs are added to the dicomshield scan command line (-scan-args).
var extraArgs []string

// runDicomshield runs the full scan (association ladder, services, C-ECHO)
// and counts the results that speak DICOM.
func runDicomshield(bin, tmp, targets string, port int, extraArgs []string) (int, error) {
	jsonl := filepath.Join(tmp, "scan.jsonl")
	os.Remove(jsonl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"scan", "-iL", targets, "-p", fmt.Sprint(port), "--json", jsonl, "-q"}, extraArgs...)...)
	var stderr bytes.Buffer
	cmd.Stdout = io.Discard
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		// A scan that finds exposed services may report it in its exit
		// status; only a missing output file is a failure here.
		if !errors.As(err, &ee) {
			return 0, err
		}
	}
	f, err := os.Open(jsonl)
	if err != nil {
		return 0, fmt.Errorf("%v (stderr: %s)", err, stderr.String())
	}
	defer f.Close()
	found := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		if bytes.Contains(sc.Bytes(), []byte(`"dicom":true`)) {
			found++
		}
	}
	return found, sc.Err()
}
