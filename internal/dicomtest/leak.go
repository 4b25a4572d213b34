package dicomtest

import (
	"bytes"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// DefaultLeakGrace is how long CheckGoroutines waits, at cleanup, for the
// goroutines a test started to end.
const DefaultLeakGrace = 5 * time.Second

// CheckGoroutines records the goroutines running now and, when the test
// ends, fails it if goroutines started since are still running after
// DefaultLeakGrace, listing their stacks. Goroutines of the runtime and of
// the testing package are ignored.
//
// Cleanups run last registered first, so call it at the top of the test:
// its check then runs after the cleanups that stop servers and close
// connections.
func CheckGoroutines(t testing.TB) {
	t.Helper()
	CheckGoroutinesWithin(t, DefaultLeakGrace)
}

// CheckGoroutinesWithin is CheckGoroutines with another grace period.
func CheckGoroutinesWithin(t testing.TB, grace time.Duration) {
	t.Helper()
	before := map[int]bool{}
	for _, g := range goroutines() {
		before[g.id] = true
	}
	t.Cleanup(func() {
		t.Helper()
		var leaked []goroutine
		deadline := time.Now().Add(grace)
		for wait := time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
			leaked = leaked[:0]
			for _, g := range goroutines() {
				if !before[g.id] && !ignoredGoroutine(g.stack) {
					leaked = append(leaked, g)
				}
			}
			if len(leaked) == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(wait)
		}
		if len(leaked) == 0 {
			return
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%d goroutine(s) still running %v after the test:\n", len(leaked), grace)
		for _, g := range leaked {
			b.WriteString("\n")
			b.WriteString(g.stack)
			b.WriteString("\n")
		}
		t.Error(b.String())
	})
}

type goroutine struct {
	id    int
	stack string
}

// goroutines returns every goroutine's stack, from runtime.Stack.
func goroutines() []goroutine {
	buf := make([]byte, 64<<10)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []goroutine
	for _, block := range bytes.Split(buf, []byte("\n\n")) {
		s := strings.TrimSpace(string(block))
		rest, ok := strings.CutPrefix(s, "goroutine ")
		if !ok {
			continue
		}
		end := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
		if end <= 0 {
			continue
		}
		id, err := strconv.Atoi(rest[:end])
		if err != nil {
			continue
		}
		out = append(out, goroutine{id: id, stack: s})
	}
	return out
}

// ignoredPrefixes are the functions whose goroutines belong to the runtime
// or to the test framework rather than to the code under test.
var ignoredPrefixes = []string{
	"testing.",
	"runtime.",
	"runtime/",
	"os/signal.",
	"internal/fuzz.",
	"testing/",
}

// ignoredGoroutine reports whether a goroutine is the runtime's or the
// testing framework's: a test's own goroutine (tRunner), the fuzzing
// engine's, or one whose every frame and creator is in those packages.
func ignoredGoroutine(stack string) bool {
	if strings.Contains(stack, "\ntesting.tRunner(") || strings.Contains(stack, "\ntesting.(*F).Fuzz") ||
		strings.Contains(stack, "\ntesting.runFuzzing(") || strings.Contains(stack, "\ntesting.(*M).") {
		return true
	}
	lines := strings.Split(stack, "\n")[1:]
	for _, l := range lines {
		if l == "" || l[0] == '\t' {
			continue // file:line
		}
		fn := strings.TrimPrefix(l, "created by ")
		if !slices.ContainsFunc(ignoredPrefixes, func(p string) bool { return strings.HasPrefix(fn, p) }) {
			return false
		}
	}
	return true
}
