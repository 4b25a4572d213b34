//go:build unix

package cli

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dicomshield/dicomshield/internal/dimse"
	"github.com/dicomshield/dicomshield/internal/scan"
	"github.com/dicomshield/dicomshield/internal/ul"
)

// TestScanResume: a scan with --resume records what it finished; run
// again after an interruption (emulated by cutting the state and the
// results back to the first service) it probes only what is left and
// appends to the --json file, so that every service is in it once; a
// state of other ports is refused unless forced.
func TestScanResume(t *testing.T) {
	var ports []string
	for range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &dimse.Server{Accept: func(r *dimse.AssocRequest) (*ul.AssociateAC, any, *ul.AssociateRJ) {
			return dimse.Negotiate(r.RQ, func(string) []string { return []string{"1.2.840.10008.1.2"} }), nil, nil
		}}
		go srv.Serve(l)
		t.Cleanup(func() { srv.Close() })
		ports = append(ports, fmt.Sprint(l.Addr().(*net.TCPAddr).Port))
	}
	dir := t.TempDir()
	state, jsonl := filepath.Join(dir, "scan.state"), filepath.Join(dir, "r.jsonl")
	args := []string{"scan", "127.0.0.1", "-p", strings.Join(ports, ","), "--http-ports", "", "--json", jsonl, "--resume", state, "-q"}
	if code, _, stderr := runCLI(args...); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	st, _ := os.ReadFile(state)
	js, _ := os.ReadFile(jsonl)
	stLines, jsLines := bytes.SplitAfter(st, []byte{'\n'}), bytes.SplitAfter(js, []byte{'\n'})
	if len(stLines) != 5 || len(jsLines) != 4 { // a trailing empty element each
		t.Fatalf("state:\n%s\nresults:\n%s", st, js)
	}
	// Interrupted after the first service.
	os.WriteFile(state, bytes.Join(stLines[:2], nil), 0o600)
	os.WriteFile(jsonl, jsLines[0], 0o600)
	code, _, stderr := runCLI(args...)
	if code != 0 || !strings.Contains(stderr, "1 endpoint(s) finished by earlier runs are skipped") {
		t.Fatalf("resumed: exit %d: %s", code, stderr)
	}
	js, _ = os.ReadFile(jsonl)
	rs, err := scan.ReadJSONL(bytes.NewReader(js))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, r := range rs {
		seen[fmt.Sprint(r.Port)]++
	}
	for _, p := range ports {
		if seen[p] != 1 {
			t.Errorf("port %s is in the results %d times:\n%s", p, seen[p], js)
		}
	}
	// Run again: nothing is left, nothing is added.
	if code, _, stderr := runCLI(args...); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if again, _ := os.ReadFile(jsonl); !bytes.Equal(again, js) {
		t.Errorf("a finished scan, resumed, changed the results:\n%s", again)
	}
	other := append([]string{}, args...)
	other[3] = ports[0]
	if code, _, stderr := runCLI(other...); code == 0 || !strings.Contains(stderr, "--resume-force") {
		t.Errorf("other ports: exit %d: %s", code, stderr)
	}
	if code, _, stderr := runCLI(append(other, "--resume-force")...); code != 0 {
		t.Errorf("other ports, forced: exit %d: %s", code, stderr)
	}
}
