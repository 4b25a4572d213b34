// Command dsscp is a file-writing storage SCP on dicomshield's
// internal/dimse Server, for the network benchmarks (cmd/netbench) only:
// the counterpart of DCMTK's `storescp -od DIR PORT`.
//
// BENCHMARK ONLY: it accepts any AE title and any SOP class, without the
// peer registry and authorisation of dicomshield's real archive, and it
// does not fsync (storescp does not either). It listens on 127.0.0.1.
//
//	dsscp -port 11112 -od /tmp/out [-tls-cert C -tls-key K] [-discard]
//	      [-pdu N] [-cpuprofile FILE]
//
// SIGINT or SIGTERM stops it (writing the CPU profile, if asked for).
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"log"
	stdnet "net"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	benchnet "github.com/dicomshield/dicomshield/bench/net"
)

func main() {
	port := flag.Int("port", 11112, "TCP port on 127.0.0.1 (0: any free port)")
	od := flag.String("od", ".", "directory that receives the files")
	discard := flag.Bool("discard", false, "read the data sets but write no file (like storescp --ignore)")
	cert := flag.String("tls-cert", "", "PEM certificate: serve TLS (with -tls-key)")
	key := flag.String("tls-key", "", "PEM private key for -tls-cert")
	pdu := flag.Uint("pdu", 0, "maximum receive PDU length (0: internal/ul default, 1 MiB)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to this file on exit")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("dsscp: ")

	opts := benchnet.SCPOptions{OutDir: *od, Discard: *discard, MaxReceivePDU: uint32(*pdu)}
	if !*discard {
		if st, err := os.Stat(*od); err != nil || !st.IsDir() {
			log.Fatalf("-od %s: not a directory", *od)
		}
	}
	if *cert != "" || *key != "" {
		kp, err := tls.LoadX509KeyPair(*cert, *key)
		if err != nil {
			log.Fatal(err)
		}
		opts.TLS = &tls.Config{Certificates: []tls.Certificate{kp}, MinVersion: tls.VersionTLS12}
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}

	l, err := stdnet.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("listening on", l.Addr())
	srv := benchnet.NewSCP(opts)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	select {
	case <-sig:
		srv.Close()
		<-done
	case err := <-done:
		log.Print(err)
	}
}
