package dicomtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// DCMTKPackage is the Debian package that provides the DCMTK tools.
const DCMTKPackage = "dcmtk"

// DCMTKTimeout bounds one run of a DCMTK tool by RunDCMTK.
const DCMTKTimeout = 2 * time.Minute

// DCMTKTool returns the path of the DCMTK tool name (dcmdump, dcmconv,
// storescp...). When it is not installed the test fails, saying to install
// the Debian package dcmtk: interoperability tests are never skipped.
func DCMTKTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("DCMTK tool %s not found (%v): install the Debian package %s (apt-get install %s)",
			name, err, DCMTKPackage, DCMTKPackage)
	}
	return p
}

// RequireDCMTK fails the test unless every tool in names is installed.
func RequireDCMTK(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		DCMTKTool(t, n)
	}
}

// Result is the outcome of one run of a tool.
type Result struct {
	Cmd      string // the command line, for messages
	Stdout   []byte
	Stderr   []byte
	ExitCode int // -1 when the process did not exit normally
}

// Diagnostics returns the lines of stdout and stderr in which DCMTK reports
// a warning, an error or a fatal error ("W:", "E:", "F:").
func (r *Result) Diagnostics() []string {
	var out []string
	for _, b := range [][]byte{r.Stderr, r.Stdout} {
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 64<<10), 64<<20)
		for sc.Scan() {
			l := sc.Text()
			if strings.Contains(l, "W:") || strings.Contains(l, "E:") || strings.Contains(l, "F:") {
				out = append(out, l)
			}
		}
	}
	return out
}

// String summarises the run for a failure message.
func (r *Result) String() string {
	return fmt.Sprintf("%s: exit status %d\nstderr:\n%s", r.Cmd, r.ExitCode, r.Stderr)
}

// RunDCMTK runs the DCMTK tool name with args and returns its output,
// whatever its exit status. The test fails if the tool is missing, cannot
// be started or runs longer than DCMTKTimeout.
func RunDCMTK(t testing.TB, name string, args ...string) *Result {
	t.Helper()
	path := DCMTKTool(t, name)
	ctx, cancel := context.WithTimeout(context.Background(), DCMTKTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := &Result{Cmd: name + " " + strings.Join(args, " "), Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case ctx.Err() != nil:
		t.Fatalf("%s: did not finish within %v", r.Cmd, DCMTKTimeout)
	case errors.As(err, &ee):
		r.ExitCode = ee.ExitCode()
	default:
		t.Fatalf("%s: %v", r.Cmd, err)
	}
	return r
}

// MustRunDCMTK is RunDCMTK that also fails the test on a non-zero exit
// status.
func MustRunDCMTK(t testing.TB, name string, args ...string) *Result {
	t.Helper()
	r := RunDCMTK(t, name, args...)
	if r.ExitCode != 0 {
		t.Fatalf("%s", r)
	}
	return r
}

// Process is a DCMTK tool running in the background (a storescp or
// dcmqrscp peer of a network test).
type Process struct {
	Cmd    string
	cmd    *exec.Cmd
	out    *syncBuffer
	done   chan struct{}
	err    error
	mu     sync.Mutex
	closed bool
}

// StartDCMTK starts the DCMTK tool name with args in the background. It is
// killed, if still running, when the test ends.
func StartDCMTK(t testing.TB, name string, args ...string) *Process {
	t.Helper()
	path := DCMTKTool(t, name)
	p := &Process{Cmd: name + " " + strings.Join(args, " "), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(path, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("%s: %v", p.Cmd, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.Stop() })
	return p
}

// Output returns what the process wrote so far, stdout and stderr
// interleaved.
func (p *Process) Output() string { return p.out.String() }

// Wait waits up to d for the process to exit. exited is false when it is
// still running; otherwise err is its exit error (nil for status 0).
func (p *Process) Wait(d time.Duration) (exited bool, err error) {
	select {
	case <-p.done:
		return true, p.err
	case <-time.After(d):
		return false, nil
	}
}

// Stop kills the process (this process only, by its id) if it still runs,
// and waits for it.
func (p *Process) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// DumpLine is one element, item or fragment line of dcmdump output.
type DumpLine struct {
	// Path locates the line: "(0008,1115)[0].(0008,1150)" for an element
	// in the first item of a sequence, "(0008,1115)[1]" for the second
	// item itself, "(7fe0,0010){0}" for the first pixel data fragment (the
	// basic offset table). Tags are lower-case hexadecimal, as dcmdump
	// prints them.
	Path  string
	Depth int    // nesting level: 2 per sequence
	Group uint16 // tag group
	Elem  uint16 // tag element
	VR    string // as printed: "PN", "SQ", "na" (item), "pi" (fragment), "??"
	// Value as printed between the tag and the "#": for strings the text
	// between the brackets (Bracketed is then true), for others the value
	// as printed ("1\2", "00\ff", "(no value available)", "(Item with
	// explicit length #=3)"...). Bytes are kept as dcmdump wrote them.
	Value     string
	Bracketed bool
	Length    int64 // value length dcmdump reports; -1 for "u/l"
	VM        int
	Name      string // dictionary name dcmdump prints
	Line      int    // 1-based line number in the output
}

// Dump is parsed dcmdump output.
type Dump struct {
	// MetaTransferSyntax and DataSetTransferSyntax are the names dcmdump
	// prints on its "# Used TransferSyntax:" lines ("Little Endian
	// Explicit", "Big Endian Explicit", "Unknown Transfer Syntax"...).
	MetaTransferSyntax    string
	DataSetTransferSyntax string
	Meta                  []DumpLine // the file meta information lines
	DataSet               []DumpLine // the data set lines, delimiters left out
}

var dumpLineRE = regexp.MustCompile(`^( *)\(([0-9a-f]{4}),([0-9a-f]{4})\) (\S\S) (.*) #\s*(\d+|u/l),\s*(\d+) (.*)$`)

// ParseDcmdump parses the output of dcmdump in its default (indented)
// format. Sequence and item delimitation lines are left out; every other
// line that starts with a tag must parse, and comment lines other than the
// section headers are ignored.
func ParseDcmdump(out []byte) (*Dump, error) {
	d := &Dump{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 256<<20)
	section := &d.DataSet
	inMeta := false
	var prefix []string
	count := map[string]int{}
	n := 0
	for sc.Scan() {
		n++
		l := sc.Text()
		switch {
		case l == "# Dicom-Meta-Information-Header":
			section, inMeta = &d.Meta, true
			continue
		case l == "# Dicom-Data-Set":
			section, inMeta = &d.DataSet, false
			prefix, count = nil, map[string]int{}
			continue
		case strings.HasPrefix(l, "# Used TransferSyntax: "):
			name := strings.TrimPrefix(l, "# Used TransferSyntax: ")
			if inMeta {
				d.MetaTransferSyntax = name
			} else {
				d.DataSetTransferSyntax = name
			}
			continue
		case strings.TrimSpace(l) == "" || strings.HasPrefix(strings.TrimSpace(l), "#"):
			continue
		}
		m := dumpLineRE.FindStringSubmatch(l)
		if m == nil {
			return nil, fmt.Errorf("dcmdump line %d does not parse: %q", n, l)
		}
		g, _ := strconv.ParseUint(m[2], 16, 16)
		e, _ := strconv.ParseUint(m[3], 16, 16)
		if g == 0xfffe && (e == 0xe00d || e == 0xe0dd) {
			continue
		}
		dl := DumpLine{Depth: len(m[1]) / 2, Group: uint16(g), Elem: uint16(e), VR: m[4], Name: m[8], Line: n, Length: -1}
		if len(m[1])%2 != 0 {
			return nil, fmt.Errorf("dcmdump line %d: odd indentation: %q", n, l)
		}
		v := strings.TrimRight(m[5], " ")
		if len(v) >= 2 && v[0] == '[' && v[len(v)-1] == ']' {
			v, dl.Bracketed = v[1:len(v)-1], true
		}
		dl.Value = v
		if m[6] != "u/l" {
			dl.Length, _ = strconv.ParseInt(m[6], 10, 64)
		}
		dl.VM, _ = strconv.Atoi(m[7])
		tag := fmt.Sprintf("(%s,%s)", m[2], m[3])
		if dl.Depth > len(prefix) {
			return nil, fmt.Errorf("dcmdump line %d: nesting jumps to level %d: %q", n, dl.Depth, l)
		}
		prefix = prefix[:dl.Depth]
		switch {
		case g == 0xfffe && e == 0xe000:
			if dl.Depth == 0 {
				return nil, fmt.Errorf("dcmdump line %d: item outside a sequence: %q", n, l)
			}
			parent := prefix[dl.Depth-1]
			open, end := "[", "]"
			if dl.VR == "pi" {
				open, end = "{", "}"
			}
			dl.Path = fmt.Sprintf("%s%s%d%s", parent, open, count[parent], end)
			count[parent]++
		case dl.Depth == 0:
			dl.Path = tag
		default:
			dl.Path = prefix[dl.Depth-1] + "." + tag
		}
		prefix = append(prefix, dl.Path)
		*section = append(*section, dl)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return d, nil
}
