package net_test

// In-process network benchmarks, run by `make bench`: internal/dimse's
// Client sending the generated sets to (a) the benchmark SCP (internal/dimse
// Server writing files, same code as cmd/dsscp) in this process and (b)
// DCMTK storescp when it is installed. One op is one whole set. They are
// for profiling (go test -cpuprofile) and regression tracking; the
// side-by-side comparison of the real command-line tools is cmd/netbench.

import (
	"bytes"
	"context"
	"errors"
	stdnet "net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	benchnet "github.com/dicomshield/dicomshield/bench/net"
	"github.com/dicomshield/dicomshield/internal/dimse"
)

type set struct {
	gen   *benchnet.Generated
	infos []*benchnet.FileInfo
}

var (
	setsOnce sync.Once
	setsDir  string
	sets     []*set
	setsErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if setsDir != "" {
		os.RemoveAll(setsDir)
	}
	os.Exit(code)
}

func testSets(tb testing.TB) []*set {
	tb.Helper()
	setsOnce.Do(func() {
		setsDir, setsErr = os.MkdirTemp("", "dicomshield-net-bench-")
		if setsErr != nil {
			return
		}
		for i, s := range []benchnet.Set{benchnet.SetCT, benchnet.SetMF} {
			g, err := benchnet.Generate(filepath.Join(setsDir, s.Name), s, i+1)
			if err != nil {
				setsErr = err
				return
			}
			st := &set{gen: g}
			for _, p := range g.Paths {
				fi, err := benchnet.ReadInfo(p)
				if err != nil {
					setsErr = err
					return
				}
				st.infos = append(st.infos, fi)
			}
			sets = append(sets, st)
		}
	})
	if setsErr != nil {
		tb.Fatalf("generating files: %v", setsErr)
	}
	return sets
}

// startSCP runs the benchmark SCP in this process.
func startSCP(tb testing.TB, opts benchnet.SCPOptions) string {
	tb.Helper()
	l, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := benchnet.NewSCP(opts)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	tb.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, dimse.ErrServerClosed) {
			tb.Errorf("Serve: %v", err)
		}
	})
	return l.Addr().String()
}

// TestSCPWritesFiles checks that the benchmark SCP writes every instance
// as a Part 10 file whose data set is byte for byte what was sent.
func TestSCPWritesFiles(t *testing.T) {
	s := testSets(t)[0]
	out := t.TempDir()
	addr := startSCP(t, benchnet.SCPOptions{OutDir: out})
	files := s.infos[:10]
	if err := benchnet.Send(context.Background(), addr, files, 2, nil); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		got := filepath.Join(out, f.SOPInstance+".dcm")
		gi, err := benchnet.ReadInfo(got)
		if err != nil {
			t.Fatal(err)
		}
		if gi.SOPClass != f.SOPClass || gi.TransferSyntax != f.TransferSyntax {
			t.Fatalf("%s: meta %+v", got, gi)
		}
		a, _ := os.ReadFile(f.Path)
		b, _ := os.ReadFile(got)
		if !bytes.Equal(a[f.DataOffset:], b[gi.DataOffset:]) {
			t.Fatalf("%s: data set differs from %s", got, f.Path)
		}
	}
	if n, _, _ := benchnet.CountFiles(out); n != len(files) {
		t.Fatalf("%d files in the output directory, want %d", n, len(files))
	}
}

func runSend(b *testing.B, addr string, s *set, jobs int, out string) {
	b.SetBytes(s.gen.Bytes)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := benchnet.Send(context.Background(), addr, s.infos, jobs, nil); err != nil {
			b.Fatal(err)
		}
		if out != "" {
			b.StopTimer()
			if err := benchnet.ClearDir(out); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	}
	b.ReportMetric(float64(b.N*len(s.infos))/b.Elapsed().Seconds(), "files/s")
}

// BenchmarkStore: internal/dimse Client -> internal/dimse Server, both in
// this process, writing files (dsscp) or discarding them.
func BenchmarkStore(b *testing.B) {
	for _, s := range testSets(b) {
		for _, jobs := range []int{1, 4} {
			b.Run(s.gen.Set.Name+"/dsscp/j"+strconv.Itoa(jobs), func(b *testing.B) {
				out := b.TempDir()
				runSend(b, startSCP(b, benchnet.SCPOptions{OutDir: out}), s, jobs, out)
			})
		}
		b.Run(s.gen.Set.Name+"/discard/j1", func(b *testing.B) {
			runSend(b, startSCP(b, benchnet.SCPOptions{Discard: true}), s, 1, "")
		})
	}
}

// BenchmarkStoreToStorescp: internal/dimse Client -> DCMTK storescp (a
// child process writing files); skipped without storescp on PATH. A CPU
// profile of this benchmark is the client side alone.
func BenchmarkStoreToStorescp(b *testing.B) {
	bin, err := exec.LookPath("storescp")
	if err != nil {
		b.Skip("storescp not installed")
	}
	for _, s := range testSets(b) {
		b.Run(s.gen.Set.Name+"/j1", func(b *testing.B) {
			out := b.TempDir()
			port, err := benchnet.FreePort()
			if err != nil {
				b.Fatal(err)
			}
			srv, err := benchnet.Start("storescp", port, out, filepath.Join(b.TempDir(), "storescp.log"),
				// DCMTK leaves Nagle's algorithm on unless TCP_NODELAY=1,
				// which costs a delayed ACK (~40 ms) per C-STORE.
				[]string{"TCP_NODELAY=1"}, bin, "-od", out, strconv.Itoa(port))
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Stop()
			runSend(b, srv.Addr(), s, 1, out)
		})
	}
}
