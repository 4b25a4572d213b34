package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	benchnet "github.com/dicomshield/dicomshield/bench/net"
)

// profileArchive builds archiveprof (the archive with a CPU profiler, its
// own module in ./archiveprof) and has one storescu send every folder to
// it -runs times, over the plain listener (or TLS with -profile-tls), into
// one data directory per run; the profile covers all runs.
func (b *bench) profileArchive() error {
	prof, err := filepath.Abs(b.o.profile)
	if err != nil {
		return err
	}
	bin := prof + ".archiveprof"
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = filepath.Join("cmd", "ingestbench", "archiveprof")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build archiveprof: %v\n%s", err, out)
	}
	for r := 0; r < max(b.o.runs, 1); r++ {
		dir := filepath.Join(b.work, "srv", fmt.Sprintf("profile-%d", r))
		os.MkdirAll(filepath.Dir(dir), 0o755)
		if out, err := exec.Command("cp", "-a", b.template, dir).CombinedOutput(); err != nil {
			return fmt.Errorf("cp: %v: %s", err, out)
		}
		pt, _ := benchnet.FreePort()
		pp, _ := benchnet.FreePort()
		port := pp
		if b.o.profTLS {
			port = pt
		}
		s, err := benchnet.Start("archiveprof", port, dir, filepath.Join(b.work, fmt.Sprintf("server-profile-%d.log", r)), nil, bin,
			"-data", dir, "-listen-tls", fmt.Sprintf("127.0.0.1:%d", pt), "-listen", fmt.Sprintf("127.0.0.1:%d", pp),
			"-cpuprofile", fmt.Sprintf("%s.%d", prof, r))
		if err != nil {
			return err
		}
		rcv := &receiver{srv: s, dir: dir, port: port, aec: dsAE, tls: b.o.profTLS}
		wall, err := b.send(rcv, [][]string{b.folders})
		rcv.stop()
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "run %d: %d files in %.3f s; profile %s.%d\n", r+1, b.files, wall.Seconds(), prof, r)
	}
	fmt.Fprintf(os.Stderr, "CPU profiles: go tool pprof -top %s %s.*\n", bin, prof)
	return nil
}
