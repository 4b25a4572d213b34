package dicomtest

import (
	"bufio"
	"bytes"
	"context"
	"html"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// Headless Chromium (Debian package chromium) for tests that open an HTML
// report as a person would, from disk, and read what it rendered.

// chromiumTimeout bounds one page load: Chromium's start on a loaded
// machine takes seconds, not a minute.
const chromiumTimeout = 60 * time.Second

// NetRecorder is a stand-in HTTP proxy that records the first line of
// every request Chromium sends it and answers nothing. Pointing Chromium
// at it makes every network fetch of a page visible to the test.
type NetRecorder struct {
	ln    net.Listener
	mu    sync.Mutex
	lines []string
	wg    sync.WaitGroup
}

// StartNetRecorder listens on loopback until the test ends.
func StartNetRecorder(t testing.TB) *NetRecorder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &NetRecorder{ln: ln}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				defer c.Close()
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				line, _ := bufio.NewReader(c).ReadString('\n')
				p.mu.Lock()
				p.lines = append(p.lines, strings.TrimSpace(line))
				p.mu.Unlock()
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

// Requests returns the first line of every request seen so far.
func (p *NetRecorder) Requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// chromiumHosts are Chromium's own services (component updates, time,
// sign-in) that it may still call despite the flags of ChromiumDOM; a
// page's requests never go there.
var chromiumHosts = regexp.MustCompile(`^(CONNECT |[A-Z]+ https?://)[^/ ]*\b(google\.com|googleapis\.com|gvt1\.com|gstatic\.com)\b`)

// PageRequests returns the requests that are not Chromium's own.
func (p *NetRecorder) PageRequests() []string {
	var out []string
	for _, l := range p.Requests() {
		if l != "" && !chromiumHosts.MatchString(l) {
			out = append(out, l)
		}
	}
	return out
}

// ChromiumDOM opens file in headless Chromium and returns the DOM after
// the page loaded (scripts run). Every network request goes to p. It
// fails the test, never skips it, when chromium is not installed.
func ChromiumDOM(t testing.TB, file string, p *NetRecorder) string {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is needed (Debian package chromium; .ci/run installs it): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), chromiumTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-extensions", "--disable-default-apps", "--no-pings", "--disable-domain-reliability",
		"--disable-client-side-phishing-detection", "--disable-breakpad",
		"--user-data-dir="+t.TempDir(),
		"--proxy-server=http://"+p.ln.Addr().String(), "--proxy-bypass-list=<-loopback>",
		"--dump-dom", "file://"+file)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	if out.Len() == 0 {
		t.Fatalf("chromium printed no DOM:\n%s", stderr.String())
	}
	return out.String()
}

// DOMText returns the text of the element with id in a serialized DOM
// (an element holding text only, such as a report's figure).
func DOMText(t testing.TB, dom, id string) string {
	t.Helper()
	m := regexp.MustCompile(`id="` + regexp.QuoteMeta(id) + `"[^>]*>([^<]*)<`).FindStringSubmatch(dom)
	if m == nil {
		t.Fatalf("rendered page has no element #%s", id)
	}
	return html.UnescapeString(m[1])
}
