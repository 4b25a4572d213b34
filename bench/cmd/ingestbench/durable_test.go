package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	benchnet "github.com/dicomshield/dicomshield/bench/net"
)

// TestDurableShim runs storescp --fork under strace, with and without the
// fsync_on_close shim, sends it a few files with storescu over 127.0.0.1,
// and reads the sync calls back from the trace: with the shim, exactly one
// fdatasync of each received file and one fsync of the output directory
// per file, each pair before the C-STORE-RSP goes out, and no sync of
// anything outside the output directory; without it, none. strace is
// needed only here (apt-get install strace), not by the benchmark.
//
//	cd bench && go test -run DurableShim -v ./cmd/ingestbench
func TestDurableShim(t *testing.T) {
	for _, tool := range []string{"gcc", "strace", "storescp", "storescu"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (apt-get install gcc strace dcmtk): this test checks the shim and cannot pass without it", tool)
		}
	}
	tmp, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	so, err := buildShim(tmp)
	if err != nil {
		t.Fatal(err)
	}
	set := benchnet.SetCT
	set.Files = 4
	g, err := benchnet.Generate(filepath.Join(tmp, "data"), set, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, withShim := range []bool{true, false} {
		name := map[bool]string{true: "shim", false: "plain"}[withShim]
		t.Run(name, func(t *testing.T) {
			od := filepath.Join(tmp, "od-"+name)
			if err := os.Mkdir(od, 0o755); err != nil {
				t.Fatal(err)
			}
			trace := filepath.Join(tmp, "trace-"+name)
			port, err := benchnet.FreePort()
			if err != nil {
				t.Fatal(err)
			}
			env := []string{noDelay}
			if withShim {
				env = append(env, shimEnv(so, od)...)
			}
			s, err := benchnet.Start("storescp", port, od, filepath.Join(tmp, "storescp-"+name+".log"), env,
				"strace", "-f", "-y", "-o", trace, "-e", "trace=fdatasync,fsync,write",
				"storescp", "--fork", "-aet", "STORESCP", "-od", od, strconv.Itoa(port))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			out, err := exec.CommandContext(ctx, "storescu", "-aet", peerAE, "-aec", "STORESCP", "+sd",
				"127.0.0.1", strconv.Itoa(port), g.Dir).CombinedOutput()
			cancel()
			s.Stop() // strace and storescp (one process group); the trace is complete
			if err != nil {
				t.Fatalf("storescu: %v\n%s", err, out)
			}
			ents, err := os.ReadDir(od)
			if err != nil {
				t.Fatal(err)
			}
			if len(ents) != len(g.Paths) {
				t.Fatalf("%d files in the output directory, want %d", len(ents), len(g.Paths))
			}
			raw, err := os.ReadFile(trace)
			if err != nil {
				t.Fatal(err)
			}
			ev := syncEvents(t, string(raw), od)
			if !withShim {
				if n := ev.total(); n != 0 {
					t.Errorf("storescp without the shim made %d sync calls on the received files or their directory", n)
				}
				t.Logf("without the shim: %d files received; sync calls on them or their directory: %d, elsewhere: %d", len(ents), ev.total(), ev.elsewhere)
				return
			}
			if ev.elsewhere != 0 {
				t.Errorf("%d sync calls outside the output directory (the shim must sync only the received files)", ev.elsewhere)
			}
			per := map[int]int{} // fdatasync calls per file -> files
			for i, e := range ents {
				n := ev.fdatasync[filepath.Join(od, e.Name())]
				per[n]++
				if n != 1 {
					t.Errorf("received file %d of %d: %d fdatasync calls, want 1", i+1, len(ents), n)
				}
			}
			if len(ev.fdatasync) != len(ents) || ev.dirFsync != len(ents) || ev.other != 0 {
				t.Errorf("%d files fdatasynced, %d fsyncs of the directory, %d other sync calls; want %d, %d, 0",
					len(ev.fdatasync), ev.dirFsync, ev.other, len(ents), len(ents))
			}
			// Each file's pair of syncs, then the answer (one or more
			// socket writes), before the next file.
			if !regexp.MustCompile(`^W*(DFW+)+$`).MatchString(ev.order) {
				t.Errorf("order of file fdatasync (D), directory fsync (F) and socket writes (W): %s; want each DF before the answer", ev.order)
			}
			t.Logf("with the shim: %d files received; files by number of fdatasync calls on them: %v; fsync of the directory: %d; other syncs under it: %d, elsewhere: %d; order (D file fdatasync, F directory fsync, W socket write): %s",
				len(ents), per, ev.dirFsync, ev.other, ev.elsewhere, ev.order)
		})
	}
}

type events struct {
	fdatasync map[string]int // per file under the output directory
	dirFsync  int            // fsync of the output directory
	other     int            // any other sync of something under it
	elsewhere int            // sync calls on anything else
	order     string         // D: file fdatasync, F: directory fsync, W: socket write
}

func (e events) total() int {
	n := e.dirFsync + e.other
	for _, c := range e.fdatasync {
		n += c
	}
	return n
}

// syncEvents reads a `strace -f -y -e trace=fdatasync,fsync,write` log.
func syncEvents(t *testing.T, trace, od string) events {
	re := regexp.MustCompile(`\b(fdatasync|fsync|write)\(\d+<([^>]*)>`)
	e := events{fdatasync: map[string]int{}}
	var order strings.Builder
	for _, line := range strings.Split(trace, "\n") {
		m := re.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		call, path := m[1], m[2]
		under := strings.HasPrefix(path, od+string(filepath.Separator))
		switch {
		case call == "write":
			if strings.HasPrefix(path, "socket:") {
				order.WriteByte('W')
			}
		case call == "fdatasync" && under:
			e.fdatasync[path]++
			order.WriteByte('D')
		case call == "fsync" && path == od:
			e.dirFsync++
			order.WriteByte('F')
		case under || path == od:
			e.other++
		default:
			e.elsewhere++
			t.Logf("%s outside the output directory: %s", call, path)
		}
	}
	e.order = order.String()
	return e
}
