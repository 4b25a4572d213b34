package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The storescp-durable receiver: storescp --fork with bench/durable/
// fsync_on_close.c preloaded, which fdatasyncs every received file before
// its fclose and fsyncs the file's directory after it, so that storescp,
// like dicomshield, answers a C-STORE only once the instance is on disk.
// See the comment in the C file for how storescp writes (strace) and which
// files are synced (those under DURABLE_DIR, the -od directory).

const shimSource = "durable/fsync_on_close.c" // in the bench module

// buildShim compiles the shim with gcc into dir and returns the .so's path.
func buildShim(dir string) (string, error) {
	mod, err := output("go", "list", "-m", "-f", "{{.Dir}}", "github.com/dicomshield/dicomshield/bench")
	if err != nil {
		return "", fmt.Errorf("locating the bench module (run from the bench directory): %w", err)
	}
	src := filepath.Join(mod, shimSource)
	so, err := filepath.Abs(filepath.Join(dir, "fsync_on_close.so"))
	if err != nil {
		return "", err
	}
	cmd := exec.Command("gcc", "-O2", "-Wall", "-Wextra", "-shared", "-fPIC", "-o", so, src, "-ldl")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("gcc %s (the storescp-durable receiver needs gcc): %v\n%s", src, err, out)
	}
	return so, nil
}

// shimEnv is the environment that preloads the shim into a storescp whose
// output directory (-od) is dir.
func shimEnv(so, dir string) []string {
	return []string{"LD_PRELOAD=" + so, "DURABLE_DIR=" + dir}
}

// shimLoaded checks that the process pid has the shim mapped.
func shimLoaded(pid int, so string) error {
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return err
	}
	if !strings.Contains(string(maps), so) {
		return fmt.Errorf("%s is not loaded (LD_PRELOAD ignored?)", so)
	}
	return nil
}
