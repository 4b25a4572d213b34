package net

import (
	"bufio"
	"fmt"
	stdnet "net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*stdnet.TCPAddr).Port, nil
}

// WaitListening waits until something listens on the TCP port, read from
// /proc/net/tcp so that no connection is made (a bare connect makes
// storescp log a failed association).
func WaitListening(port int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	want := fmt.Sprintf(":%04X", port)
	for {
		for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
			if listening(f, want) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on port %d after %v", port, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func listening(file, port string) bool {
	fh, err := os.Open(file)
	if err != nil {
		return false
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// sl local_address rem_address st ...; st 0A is LISTEN.
		if len(f) > 3 && strings.HasSuffix(f[1], port) && f[3] == "0A" {
			return true
		}
	}
	return false
}

// TreeCPU returns the CPU time (user+system) used so far by process pid,
// its reaped children and its live or zombie descendants, from /proc (10 ms
// resolution). It lets the harness charge a long-running server (storescp
// --fork included) with what one run cost it.
func TreeCPU(pid int) (time.Duration, error) {
	children := map[int][]int{}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	ticks := map[int]int64{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, t, err := statCPU(p)
		if err != nil {
			continue
		}
		ticks[p] = t
		children[ppid] = append(children[ppid], p)
	}
	if _, ok := ticks[pid]; !ok {
		return 0, fmt.Errorf("process %d not found", pid)
	}
	var total int64
	var walk func(int)
	walk = func(p int) {
		total += ticks[p]
		for _, c := range children[p] {
			walk(c)
		}
	}
	walk(pid)
	return time.Duration(total) * time.Second / clockTicks, nil
}

// clockTicks is USER_HZ, 100 on Linux for every architecture Go runs on.
const clockTicks = 100

// statCPU returns the parent pid and utime+stime+cutime+cstime of p.
func statCPU(p int) (int, int64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p), "stat"))
	if err != nil {
		return 0, 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("bad stat")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is state (field 3); ppid is field 4, utime..cstime fields 14..17.
	if len(f) < 15 {
		return 0, 0, fmt.Errorf("bad stat")
	}
	ppid, _ := strconv.Atoi(f[1])
	var sum int64
	for _, k := range []int{11, 12, 13, 14} {
		v, _ := strconv.ParseInt(f[k], 10, 64)
		sum += v
	}
	return ppid, sum, nil
}

// Server is a storage SCP running as a child process.
type Server struct {
	Name string
	Port int
	Dir  string // output directory (emptied by Clear)
	Cmd  *exec.Cmd
	Log  string // file with its stdout and stderr
}

// Start runs argv (with stdout and stderr into logFile, and env added to
// this process's environment) and waits until it listens on port.
func Start(name string, port int, dir, logFile string, env []string, argv ...string) (*Server, error) {
	lf, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(os.Environ(), env...)
	// Its own process group, so that Stop also reaches the children of
	// storescp --fork.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, err
	}
	lf.Close()
	s := &Server{Name: name, Port: port, Dir: dir, Cmd: cmd, Log: logFile}
	if err := WaitListening(port, 10*time.Second); err != nil {
		s.Stop()
		return nil, fmt.Errorf("%s: %w (see %s)", name, err, logFile)
	}
	return s, nil
}

// Addr is the server's address.
func (s *Server) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.Port) }

// CPU is the server's CPU time so far (children included).
func (s *Server) CPU() (time.Duration, error) { return TreeCPU(s.Cmd.Process.Pid) }

// Stop ends the server (SIGTERM, then SIGKILL after 5 s) and waits.
func (s *Server) Stop() error {
	if s.Cmd.Process == nil {
		return nil
	}
	pgid := s.Cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- s.Cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		syscall.Kill(-pgid, syscall.SIGKILL)
		return <-done
	}
}

// Clear empties the output directory.
func (s *Server) Clear() error { return ClearDir(s.Dir) }

// ClearDir removes everything inside dir.
func ClearDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// CountFiles counts the regular files in dir (recursively) and their total
// size, leaving out temporary files (names starting with '.').
func CountFiles(dir string) (int, int64, error) {
	n, size := 0, int64(0)
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && !strings.HasPrefix(d.Name(), ".") {
			st, err := d.Info()
			if err != nil {
				return err
			}
			n++
			size += st.Size()
		}
		return nil
	})
	return n, size, err
}
