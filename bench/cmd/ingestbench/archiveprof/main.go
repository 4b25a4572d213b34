// Command archiveprof is `dicomshield serve` reduced to what the ingest
// benchmark needs, with a CPU profile: it runs internal/archive on a data
// directory until SIGTERM, then writes the profile. It is its own module
// (so that the bench module's go.sum need not list the archive's
// dependencies); cmd/ingestbench -profile builds and runs it.
//
//	archiveprof -data DIR -listen-tls 127.0.0.1:P -listen 127.0.0.1:Q -cpuprofile cpu.out
package main

import (
	"context"
	"flag"
	"log"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/dicomshield/dicomshield/internal/archive"
)

func main() {
	data := flag.String("data", "", "data directory (peers registered)")
	listenTLS := flag.String("listen-tls", "127.0.0.1:2762", "TLS listener")
	listen := flag.String("listen", "", "plain listener")
	cpu := flag.String("cpuprofile", "", "write a CPU profile here")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("archiveprof: ")
	a, _, err := archive.Open(*data, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	a.Config.ListenTLS, a.Config.Listen = *listenTLS, *listen
	tlsL, plainL, err := a.Listeners()
	if err != nil {
		log.Fatal(err)
	}
	if *cpu != "" {
		f, err := os.Create(*cpu)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := a.Serve(ctx, tlsL, plainL, 5*time.Second); err != nil {
		log.Print(err)
	}
}
