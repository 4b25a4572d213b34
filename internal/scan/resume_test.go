package scan

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/dicomshield/dicomshield/internal/dicomtest"
	"github.com/dicomshield/dicomshield/internal/dimse"
	"github.com/dicomshield/dicomshield/internal/ul"
)

// anyonePorts starts n DICOM servers on 127.0.0.1 that accept every AE
// title and context, and returns their ports and a count of the
// associations each one accepted.
func anyonePorts(t *testing.T, n int) ([]int, func(port int) int) {
	t.Helper()
	var mu sync.Mutex
	assocs := map[int]int{}
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		srv := &dimse.Server{Accept: func(r *dimse.AssocRequest) (*ul.AssociateAC, any, *ul.AssociateRJ) {
			mu.Lock()
			assocs[port]++
			mu.Unlock()
			return dimse.Negotiate(r.RQ, func(string) []string { return probeSyntaxes }), nil, nil
		}}
		go srv.Serve(l)
		t.Cleanup(func() { srv.Close() })
		ports = append(ports, port)
	}
	return ports, func(port int) int { mu.Lock(); defer mu.Unlock(); return assocs[port] }
}

// TestResume interrupts a scan of many listeners (the context is
// cancelled once a few results are in, while other probes are under way),
// then runs it again from the state file: every service is reported
// exactly once over both runs, complete, and the resumed run probes none
// of the services the first run finished.
func TestResume(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	const n = 40
	ports, assocs := anyonePorts(t, n)
	lo := netip.MustParseAddr("127.0.0.1")
	set := &TargetSet{Targets: []Target{{First: lo, End: lo}}, Ports: ports}
	path := filepath.Join(t.TempDir(), "scan.state")
	reported := map[int]int{}
	record := func(r *Result) {
		reported[r.Port]++
		if r.Error != "" || r.Echo != "success" {
			t.Errorf("%d: an incomplete result was emitted: error %q, echo %q", r.Port, r.Error, r.Echo)
		}
	}

	// First run: cancelled from inside emit after 10 results, with 8
	// probes at a time, so that several are cut short.
	st, resumed, err := OpenResume(path, set, false)
	if err != nil || resumed {
		t.Fatalf("OpenResume = %v, resumed %v", err, resumed)
	}
	ctx, cancel := context.WithCancel(context.Background())
	o := Options{Rate: -1, Concurrency: 8, PerHost: 8, HTTPPorts: []int{}}
	st.Options(&o)
	first := 0
	err = New(o).Run(ctx, set.Endpoints(), func(r *Result) {
		record(r)
		if first++; first == 10 {
			cancel()
		}
	})
	cancel()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("first run: %v, want context.Canceled", err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if first >= n {
		t.Fatalf("the first run finished all %d services: nothing was left to resume", first)
	}
	before, firstRun := map[int]int{}, map[int]bool{}
	for _, p := range ports {
		before[p], firstRun[p] = assocs(p), reported[p] > 0
	}

	// The state names the first run's services, and only those.
	st, resumed, err = OpenResume(path, set, false)
	if err != nil || !resumed {
		t.Fatalf("reopening: %v, resumed %v", err, resumed)
	}
	if st.Finished() != first {
		t.Errorf("state records %d finished services, the first run emitted %d", st.Finished(), first)
	}
	o = Options{Rate: -1, Concurrency: 8, PerHost: 8, HTTPPorts: []int{}}
	st.Options(&o)
	second := 0
	if err := New(o).Run(context.Background(), set.Endpoints(), func(r *Result) {
		if reported[r.Port] > 0 {
			t.Errorf("%d: scanned again after the first run finished it", r.Port)
		}
		record(r)
		second++
	}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range ports {
		if reported[p] != 1 {
			t.Errorf("port %d reported %d times over both runs", p, reported[p])
		}
	}
	if first+second != n {
		t.Errorf("%d + %d results, want %d", first, second, n)
	}
	cut := 0
	for _, p := range ports {
		switch {
		case firstRun[p] && assocs(p) != before[p]:
			t.Errorf("port %d: finished by the first run, associated with again by the resumed one", p)
		case !firstRun[p] && before[p] > 0:
			cut++ // under way when the first run was interrupted
		}
	}
	t.Logf("first run: %d finished, %d cut short; resumed run: %d", first, cut, second)
	b, _ := os.ReadFile(path)
	if lines := bytes.Count(b, []byte{'\n'}); lines != n+1 {
		t.Errorf("state file has %d lines, want a header and %d endpoints", lines, n)
	}
}

// TestResumeRefusesOtherScan: a state written for other ports is refused
// unless forced; a line cut short by a crash is dropped.
func TestResumeRefusesOtherScan(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	set := &TargetSet{Targets: []Target{{First: lo, End: lo}}, Ports: []int{104, 11112}}
	path := filepath.Join(t.TempDir(), "scan.state")
	st, _, err := OpenResume(path, set, false)
	if err != nil {
		t.Fatal(err)
	}
	st.Add(Endpoint{lo, 104})
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	// A crash in the middle of the next entry.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("127.0.0.1:111")
	f.Close()

	other := &TargetSet{Targets: set.Targets, Ports: []int{104}}
	if _, _, err := OpenResume(path, other, false); !errors.Is(err, ErrResumeMismatch) {
		t.Fatalf("other ports: %v, want ErrResumeMismatch", err)
	}
	st, resumed, err := OpenResume(path, other, true)
	if err != nil || !resumed || !st.Done(Endpoint{lo, 104}) || st.Done(Endpoint{lo, 111}) || st.Finished() != 1 {
		t.Fatalf("forced: %v, resumed %v, finished %d", err, resumed, st.Finished())
	}
	st.Add(Endpoint{lo, 11112})
	st.Close()
	b, _ := os.ReadFile(path)
	if !strings.HasSuffix(string(b), "\n127.0.0.1:104\n127.0.0.1:11112\n") {
		t.Errorf("state file after the cut line:\n%s", b)
	}
	os.WriteFile(path, []byte("not a state\n"), 0o600)
	if _, _, err := OpenResume(path, set, false); err == nil {
		t.Error("a file that is not a state was accepted")
	}
}
