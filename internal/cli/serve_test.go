package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dicomshield/dicomshield/internal/config"
)

// lockedBuffer is a bytes.Buffer safe for the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestServeLogConfig: serve logs in the format and from the level of the
// config's [log] section, and --log-format and --log-level override it.
// The archive serves metrics on a loopback port the system picks, which
// it logs at info level as it starts: that line shows format and level.
func TestServeLogConfig(t *testing.T) {
	tests := []struct {
		name          string
		format, level string   // in the config
		flags         []string // added to serve's
		wantJSON      bool
		wantInfo      bool // the info line is logged
	}{
		{"config json", "json", "info", nil, true, true},
		{"config text", "text", "info", nil, false, true},
		{"flag text over config json", "json", "info", []string{"--log-format", "text"}, false, true},
		{"flag json over config text", "text", "info", []string{"--log-format=json"}, true, true},
		{"config level warn", "json", "warn", nil, true, false},
		{"flag level info over config warn", "json", "warn", []string{"--log-level", "info"}, true, true},
		{"config level debug", "text", "debug", nil, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			writeServeConfig(t, dir, map[string]string{
				`format = "text"`:            `format = "` + tc.format + `"`,
				`level = "info"`:             `level = "` + tc.level + `"`,
				`metrics = "127.0.0.1:9762"`: `metrics = "127.0.0.1:0"`,
			})
			stdout, stderr := &lockedBuffer{}, &lockedBuffer{}
			cmd := newServeCmd()
			cmd.SetArgs(append([]string{"--data", dir, "--listen-tls", "127.0.0.1:0", "--listen-enroll="}, tc.flags...))
			cmd.SetOut(stdout)
			cmd.SetErr(stderr)
			cmd.SilenceUsage, cmd.SilenceErrors = true, true
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- cmd.ExecuteContext(ctx) }()
			deadline := time.After(30 * time.Second)
			for !strings.Contains(stdout.String(), "registered") {
				select {
				case err := <-done:
					t.Fatalf("serve ended early: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
				case <-deadline:
					t.Fatalf("serve did not start:\nstdout:\n%s\nstderr:\n%s", stdout, stderr)
				case <-time.After(10 * time.Millisecond):
				}
			}
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("serve: %v\nstderr:\n%s", err, stderr)
				}
			case <-time.After(40 * time.Second):
				t.Fatal("serve did not stop when its context ended")
			}
			checkLogLines(t, stderr.String(), tc.wantJSON, tc.wantInfo)
		})
	}
}

// checkLogLines requires every line of log to be a JSON object with
// time, level and msg (wantJSON) or slog's text form, and the metrics
// line to be there exactly when wantInfo.
func checkLogLines(t *testing.T, log string, wantJSON, wantInfo bool) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(log, "\n"), "\n")
	if log == "" {
		lines = nil
	}
	info := false
	for _, l := range lines {
		var rec map[string]any
		isJSON := json.Unmarshal([]byte(l), &rec) == nil
		switch {
		case wantJSON && (!isJSON || rec["time"] == nil || rec["level"] == nil || rec["msg"] == nil):
			t.Errorf("log line is not slog JSON: %q", l)
		case !wantJSON && (isJSON || !strings.HasPrefix(l, "time=") || !strings.Contains(l, " level=")):
			t.Errorf("log line is not slog text: %q", l)
		}
		if strings.Contains(l, "metrics on http://127.0.0.1:") {
			info = true
		}
	}
	if info != wantInfo {
		t.Errorf("metrics line (info) logged: %v, want %v; log:\n%s", info, wantInfo, log)
	}
}

// writeServeConfig writes the default config into dir with the lines in
// edit (old: new) replaced, each of which must be there.
func writeServeConfig(t *testing.T, dir string, edit map[string]string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	p := config.Path(dir)
	if err := config.WriteDefault(p); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	for old, repl := range edit {
		if !bytes.Contains(b, []byte(old)) {
			t.Fatalf("default config has no line %q", old)
		}
		b = bytes.Replace(b, []byte(old), []byte(repl), 1)
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
