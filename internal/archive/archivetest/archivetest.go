// Package archivetest runs dicomshield serve's archive in-process on
// loopback, for the tests of other packages (the scanner's labs) that
// need a real serve to probe.
package archivetest

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/dicomshield/dicomshield/internal/archive"
)

// grace is how long in-flight operations may finish when the test ends.
const grace = 5 * time.Second

// Start opens the data directory dir (creating it, its configuration and
// CA, as a first start of serve does) and serves it on loopback until the
// test ends: DICOM over TLS always, plain DICOM only when plain is set
// (serve's default has it off), no metrics. It returns the archive, whose
// index and blobs the test may read, and the listeners' addresses
// (plainAddr "" without plain).
func Start(t testing.TB, dir string, plain bool) (a *archive.Archive, tlsAddr, plainAddr string) {
	t.Helper()
	a, _, err := archive.Open(dir, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	a.Config.ListenTLS, a.Config.Metrics = "127.0.0.1:0", ""
	if plain {
		a.Config.Listen = "127.0.0.1:0"
	}
	tl, pl, err := a.Listeners()
	if err != nil {
		a.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, tl, pl, grace) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		a.Close()
	})
	tlsAddr = tl.Addr().String()
	if pl != nil {
		plainAddr = pl.Addr().String()
	}
	return a, tlsAddr, plainAddr
}
