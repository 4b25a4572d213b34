package archive_test

// Abuse resistance end to end: real servers on loopback, DCMTK and our own
// client as the peers, an injected clock to end bans without waiting.

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dicomshield/dicomshield/internal/archive"
	"github.com/dicomshield/dicomshield/internal/audit"
	"github.com/dicomshield/dicomshield/internal/config"
	"github.com/dicomshield/dicomshield/internal/dicomtest"
	"github.com/dicomshield/dicomshield/internal/dimse"
	"github.com/dicomshield/dicomshield/internal/ul"
)

// fakeClock is a clock the test moves; the server reads it concurrently.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// alerts collects the security alerts an archive records.
type alerts struct {
	mu  sync.Mutex
	evs []audit.Event
	ch  chan audit.Event
}

func newAlerts() *alerts { return &alerts{ch: make(chan audit.Event, 1024)} }

func (r *alerts) Record(ev audit.Event) {
	if ev.Kind != audit.SecurityAlert {
		return
	}
	r.mu.Lock()
	r.evs = append(r.evs, ev)
	r.mu.Unlock()
	select {
	case r.ch <- ev:
	default:
	}
}

// wait returns the next alert named name, failing the test after 10 s.
func (r *alerts) wait(t testing.TB, name string) audit.Event {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-r.ch:
			if ev.Alert == name {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %q alert recorded", name)
		}
	}
}

func (r *alerts) count(name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, ev := range r.evs {
		if ev.Alert == name {
			n++
		}
	}
	return n
}

// startGuarded serves the archive in dir like startServer, with the
// injected clock, the abuse limits set by modify, and alerts collected.
func startGuarded(t *testing.T, dir string, clock *fakeClock, modify func(*config.Config)) (*testServer, *alerts) {
	t.Helper()
	logs := &logBuffer{}
	a, _, err := archive.Open(dir, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatalf("archive.Open(%s): %v", dir, err)
	}
	a.Now = clock.Now
	al := newAlerts()
	a.Audit = al
	if modify != nil {
		modify(a.Config)
	}
	if errs := a.Config.Validate(); len(errs) > 0 {
		t.Fatalf("test configuration: %v", errs)
	}
	tlsL, plainL, err := listenersOf(t, a)
	if err != nil {
		a.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &testServer{Dir: dir, A: a, TLSAddr: tlsL.Addr().String(), PlainAddr: plainL.Addr().String(),
		Logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- a.Serve(ctx, tlsL, plainL, serveGrace) }()
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
		a.Close()
		if t.Failed() {
			t.Logf("archive log:\n%s", logs.String())
		}
	})
	return s, al
}

// dialFrom associates with addr from the local address from (127.0.0.x).
func dialFrom(from, addr, ae string, tc *tls.Config) (*dimse.Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return dimse.Dial(ctx, addr, &dimse.DialOptions{CallingAE: ae, CalledAE: archiveAE, TLS: tc,
		Contexts: proposals(nil, nil), ConnectTimeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}})
}

// echoFrom runs one C-ECHO association from the local address from.
func echoFrom(from, addr, ae string, tc *tls.Config) error {
	cl, err := dialFrom(from, addr, ae, tc)
	if err != nil {
		return err
	}
	defer cl.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return cl.Echo(ctx)
}

// refusedEarly reports whether err is a refusal before the association:
// the connection closed without an A-ASSOCIATE-RJ or A-ASSOCIATE-AC.
func refusedEarly(err error) bool {
	var rj *ul.RejectedError
	return err != nil && !errors.As(err, &rj)
}

// TestAbuseBanEvidence is issue 5's evidence: 50 rapid rejected
// associations from one address (DCMTK's echoscu with an unknown calling
// AE title, and over TLS without a client certificate), after which even
// a registered peer at that address is refused until the ban ends, while
// a registered peer at another address is served. The ban is logged and
// audited once, however many connections it refuses.
func TestAbuseBanEvidence(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	dicomtest.RequireDCMTK(t, "echoscu")
	const rejections = 50
	dir := filepath.Join(t.TempDir(), "data")
	clock := newFakeClock()
	s, al := startGuarded(t, dir, clock, func(c *config.Config) { c.Abuse.RejectionsBeforeBan = rejections })
	m := addPeer(t, dir, "MODALITY", "--allow", "echo")
	far := addPeer(t, dir, "FARAWAY", "--host", "127.0.0.2", "--allow", "echo")
	tlsPort := port(t, s.TLSAddr)
	echoscu := func(args ...string) (string, bool) {
		r := dicomtest.RunSCUIn(t, m.Dir, "echoscu", append(append([]string{"-v", "-to", "5", "-ta", "5", "-td", "5"}, args...), "127.0.0.1", tlsPort)...)
		return strings.ToLower(string(r.Stderr) + string(r.Stdout)), r.ExitCode == 0
	}
	stranger := append([]string{"-aet", "STRANGER", "-aec", archiveAE}, m.DCMTKTLS()...)
	noCert := []string{"-aet", m.AE, "-aec", archiveAE, "+tla", "+cf", m.CA}
	valid := append([]string{"-aet", m.AE, "-aec", archiveAE}, m.DCMTKTLS()...)

	if out, ok := echoscu(valid...); !ok {
		t.Fatalf("registered peer refused before any abuse:\n%s", out)
	}
	start := time.Now()
	for i := range rejections {
		args, what := stranger, "unknown calling AE title"
		if i%2 == 1 {
			args, what = noCert, "no client certificate"
		}
		out, ok := echoscu(args...)
		if ok {
			t.Fatalf("attempt %d (%s) succeeded:\n%s", i+1, what, out)
		}
		if i%2 == 0 && !strings.Contains(out, "calling ae title not recognized") {
			t.Fatalf("attempt %d (%s) was not rejected by the policy (banned too early?):\n%s", i+1, what, out)
		}
	}
	elapsed := time.Since(start)
	ban := al.wait(t, "address-banned")
	if ban.Remote != "127.0.0.1" || !strings.Contains(ban.Description, "rejected associations") {
		t.Fatalf("ban alert %+v", ban)
	}
	t.Logf("%d rejected associations from 127.0.0.1 in %v, then banned", rejections, elapsed.Round(time.Millisecond))

	// Refused before the association: no A-ASSOCIATE-RJ, no handshake.
	for i := range 5 {
		out, ok := echoscu(valid...)
		if ok || strings.Contains(out, "association rejected") || strings.Contains(out, "received echo response") {
			t.Fatalf("banned address, attempt %d: not refused before the association:\n%s", i+1, out)
		}
	}
	if err := echoFrom("127.0.0.1", s.TLSAddr, m.AE, m.TLS(t)); !refusedEarly(err) {
		t.Fatalf("our client from the banned address: %v, want a refusal before the association", err)
	}
	if err := echoFrom("127.0.0.2", s.TLSAddr, far.AE, far.TLS(t)); err != nil {
		t.Fatalf("registered peer at 127.0.0.2 during the ban: %v", err)
	}

	clock.Advance(config.DefaultBanDuration - time.Second)
	if _, ok := echoscu(valid...); ok {
		t.Fatal("ban ended a second early")
	}
	clock.Advance(time.Second)
	if out, ok := echoscu(valid...); !ok {
		t.Fatalf("registered peer refused after the ban ended:\n%s", out)
	}
	if n := al.count("address-banned"); n != 1 {
		t.Fatalf("%d address-banned alerts for one ban, want 1", n)
	}
	if n := strings.Count(s.Logs.String(), "level=WARN msg=\"address refused until"); n != 1 {
		t.Fatalf("the ban was logged %d times, want once:\n%s", n, s.Logs.String())
	}
}

// TestAbuseNeverBan: with never_ban = ["127.0.0.1/32"], the treatment
// that bans an address in TestAbuseBanEvidence (50 rejected echoscu
// attempts, unknown AE title and no client certificate in turn) leaves
// 127.0.0.1 unbanned, its registered peer served throughout, while the
// same 50 attempts from 127.0.0.2, which is not exempt, ban 127.0.0.2.
// echoscu cannot choose its source address, so its connections for
// 127.0.0.2 go through a relay that dials the server from there.
func TestAbuseNeverBan(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	dicomtest.RequireDCMTK(t, "echoscu")
	const rejections = 50
	dir := filepath.Join(t.TempDir(), "data")
	clock := newFakeClock()
	s, al := startGuarded(t, dir, clock, func(c *config.Config) {
		c.Abuse.RejectionsBeforeBan = rejections
		c.Abuse.NeverBan = []string{"127.0.0.1/32"}
	})
	m := addPeer(t, dir, "MODALITY", "--allow", "echo")
	far := addPeer(t, dir, "FARAWAY", "--host", "127.0.0.2", "--allow", "echo")
	if !strings.Contains(s.Logs.String(), "never_ban=127.0.0.1/32") {
		t.Errorf("the exemption is not logged at start:\n%s", s.Logs.String())
	}
	type source struct {
		name string
		port string // what echoscu connects to on 127.0.0.1
		peer bundle
	}
	sources := []source{
		{"127.0.0.1", port(t, s.TLSAddr), m},
		{"127.0.0.2", port(t, relayFrom(t, "127.0.0.2", s.TLSAddr)), far},
	}
	echoscu := func(src source, args ...string) (string, bool) {
		r := dicomtest.RunSCUIn(t, src.peer.Dir, "echoscu", append(append([]string{"-v", "-to", "5", "-ta", "5", "-td", "5"}, args...), "127.0.0.1", src.port)...)
		return strings.ToLower(string(r.Stderr) + string(r.Stdout)), r.ExitCode == 0
	}
	valid := func(src source) []string {
		return append([]string{"-aet", src.peer.AE, "-aec", archiveAE}, src.peer.DCMTKTLS()...)
	}
	abuse := func(src source) {
		t.Helper()
		stranger := append([]string{"-aet", "STRANGER", "-aec", archiveAE}, src.peer.DCMTKTLS()...)
		noCert := []string{"-aet", src.peer.AE, "-aec", archiveAE, "+tla", "+cf", src.peer.CA}
		for i := range rejections {
			args, what := stranger, "unknown calling AE title"
			if i%2 == 1 {
				args, what = noCert, "no client certificate"
			}
			out, ok := echoscu(src, args...)
			if ok {
				t.Fatalf("%s, attempt %d (%s) succeeded:\n%s", src.name, i+1, what, out)
			}
			if i%2 == 0 && !strings.Contains(out, "calling ae title not recognized") {
				t.Fatalf("%s, attempt %d (%s) was not rejected by the policy (banned?):\n%s", src.name, i+1, what, out)
			}
		}
	}
	for _, src := range sources {
		if out, ok := echoscu(src, valid(src)...); !ok {
			t.Fatalf("registered peer at %s refused before any abuse:\n%s", src.name, out)
		}
	}

	exempt, other := sources[0], sources[1]
	abuse(exempt)
	if out, ok := echoscu(exempt, valid(exempt)...); !ok || !strings.Contains(out, "received echo response") {
		t.Fatalf("registered peer at the exempt 127.0.0.1 refused after %d rejections:\n%s", rejections, out)
	}
	if err := echoFrom("127.0.0.1", s.TLSAddr, m.AE, m.TLS(t)); err != nil {
		t.Fatalf("our client from the exempt 127.0.0.1: %v", err)
	}
	if n := al.count("address-banned"); n != 0 {
		t.Fatalf("%d address-banned alerts after rejections from the exempt address, want none", n)
	}
	t.Logf("%d rejected associations from the exempt 127.0.0.1: not banned", rejections)

	abuse(other)
	ban := al.wait(t, "address-banned")
	if ban.Remote != "127.0.0.2" {
		t.Fatalf("ban alert %+v, want 127.0.0.2 banned", ban)
	}
	t.Logf("%d rejected associations from 127.0.0.2: banned", rejections)
	if out, ok := echoscu(other, valid(other)...); ok || strings.Contains(out, "association rejected") {
		t.Fatalf("registered peer at the banned 127.0.0.2: not refused before the association:\n%s", out)
	}
	if err := echoFrom("127.0.0.2", s.TLSAddr, far.AE, far.TLS(t)); !refusedEarly(err) {
		t.Fatalf("our client from the banned 127.0.0.2: %v, want a refusal before the association", err)
	}
	// Still served at the exempt address, and still not banned by more.
	abuse(exempt)
	if out, ok := echoscu(exempt, valid(exempt)...); !ok {
		t.Fatalf("registered peer at 127.0.0.1 refused during the ban of 127.0.0.2:\n%s", out)
	}
	if n := al.count("address-banned"); n != 1 {
		t.Fatalf("%d address-banned alerts, want 1 (127.0.0.2's)", n)
	}
}

// relayFrom forwards each connection made to the loopback address it
// returns to target, dialled from the local address from: the server sees
// the connection come from there, whatever program made it.
func relayFrom(t *testing.T, from, target string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]bool{}
	)
	track := func(c net.Conn) bool {
		mu.Lock()
		defer mu.Unlock()
		if conns == nil {
			c.Close()
			return false
		}
		conns[c] = true
		return true
	}
	pipe := func(dst, src net.Conn) {
		defer wg.Done()
		io.Copy(dst, src)
		dst.(*net.TCPConn).CloseWrite()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if !track(c) {
				return
			}
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
			u, err := d.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			if !track(u) {
				c.Close()
				return
			}
			wg.Add(2)
			go pipe(u, c)
			go pipe(c, u)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		conns = nil
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().String()
}

// TestAbuseLimits: each limit on its own, with our client.
func TestAbuseLimits(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	dir := filepath.Join(t.TempDir(), "data")
	m := addPeer(t, dir, "MODALITY", "--allow", "echo")
	far := addPeer(t, dir, "FARAWAY", "--host", "127.0.0.2", "--allow", "echo")
	legacy := addPeer(t, dir, "LEGACY", "--allow", "echo", "--plaintext")

	tests := []struct {
		name   string
		modify func(*config.Config)
		run    func(t *testing.T, s *testServer, al *alerts, clock *fakeClock)
	}{
		{"default: ten rejections ban the address", nil, func(t *testing.T, s *testServer, al *alerts, clock *fakeClock) {
			for i := range config.DefaultRejectionsBeforeBan {
				if err := echoFrom("127.0.0.1", s.TLSAddr, "STRANGER", m.TLS(t)); refusedEarly(err) || err == nil {
					t.Fatalf("attempt %d: %v, want a rejection", i+1, err)
				}
			}
			al.wait(t, "address-banned")
			if err := echoFrom("127.0.0.1", s.TLSAddr, m.AE, m.TLS(t)); !refusedEarly(err) {
				t.Fatalf("registered peer at the banned address: %v", err)
			}
			if err := echoFrom("127.0.0.1", s.PlainAddr, legacy.AE, nil); !refusedEarly(err) {
				t.Fatalf("the ban does not hold on the plain listener: %v", err)
			}
		}},
		{"failed TLS handshakes ban the address", func(c *config.Config) { c.Abuse.RejectionsBeforeBan = 3 }, func(t *testing.T, s *testServer, al *alerts, clock *fakeClock) {
			noCert := m.TLS(t)
			noCert.Certificates = nil
			for i := range 3 {
				if err := echoFrom("127.0.0.1", s.TLSAddr, m.AE, noCert); err == nil {
					t.Fatalf("attempt %d accepted without a certificate", i+1)
				}
			}
			al.wait(t, "address-banned")
			if err := echoFrom("127.0.0.1", s.TLSAddr, m.AE, m.TLS(t)); !refusedEarly(err) {
				t.Fatalf("registered peer at the banned address: %v", err)
			}
			if err := echoFrom("127.0.0.2", s.TLSAddr, far.AE, far.TLS(t)); err != nil {
				t.Fatalf("registered peer at 127.0.0.2: %v", err)
			}
		}},
		{"transient rejections do not count", func(c *config.Config) { c.Abuse.RejectionsBeforeBan = 2; c.Limits.MaxAssociationsPerPeer = 1 }, func(t *testing.T, s *testServer, al *alerts, clock *fakeClock) {
			// The per-peer limit rejects transiently: the peer's own
			// associations must not get its address banned.
			held, err := dialFrom("127.0.0.1", s.TLSAddr, m.AE, m.TLS(t))
			if err != nil {
				t.Fatal(err)
			}
			defer held.Release()
			for i := range 4 {
				_, err := dialFrom("127.0.0.1", s.TLSAddr, m.AE, m.TLS(t))
				var rj *ul.RejectedError
				if !errors.As(err, &rj) || rj.RJ.Result != ul.RejectTransient {
					t.Fatalf("attempt %d over the per-peer limit: %v, want a transient rejection", i+1, err)
				}
			}
			held.Release()
			if err := echoFrom("127.0.0.1", s.TLSAddr, m.AE, m.TLS(t)); err != nil {
				t.Fatalf("peer refused after transient rejections: %v", err)
			}
			if n := al.count("address-banned"); n != 0 {
				t.Fatalf("%d bans", n)
			}
		}},
		{"connections per minute", func(c *config.Config) { c.Abuse.AttemptsPerMinute = 5 }, func(t *testing.T, s *testServer, al *alerts, clock *fakeClock) {
			for i := range 5 {
				if err := echoFrom("127.0.0.1", s.TLSAddr, m.AE, m.TLS(t)); err != nil {
					t.Fatalf("association %d of 5: %v", i+1, err)
				}
			}
			if err := echoFrom("127.0.0.1", s.TLSAddr, m.AE, m.TLS(t)); !refusedEarly(err) {
				t.Fatalf("sixth association within the minute: %v, want a refusal", err)
			}
			ev := al.wait(t, "rate-limited")
			if ev.Remote != "127.0.0.1" || ev.Local != s.TLSAddr {
				t.Fatalf("alert %+v", ev)
			}
			if err := echoFrom("127.0.0.2", s.TLSAddr, far.AE, far.TLS(t)); err != nil {
				t.Fatalf("another address: %v", err)
			}
			clock.Advance(12 * time.Second) // one attempt's worth
			if err := echoFrom("127.0.0.1", s.TLSAddr, m.AE, m.TLS(t)); err != nil {
				t.Fatalf("after 12 s: %v", err)
			}
			if err := echoFrom("127.0.0.1", s.TLSAddr, m.AE, m.TLS(t)); !refusedEarly(err) {
				t.Fatalf("second association after 12 s: %v, want a refusal", err)
			}
			if n := al.count("rate-limited"); n != 1 {
				t.Fatalf("%d rate-limited alerts within a minute, want 1", n)
			}
		}},
		{"open connections per address", func(c *config.Config) { c.Abuse.MaxConnectionsPerAddress = 2 }, func(t *testing.T, s *testServer, al *alerts, clock *fakeClock) {
			var held []*dimse.Client
			for i := range 2 {
				cl, err := dialFrom("127.0.0.1", s.TLSAddr, m.AE, m.TLS(t))
				if err != nil {
					t.Fatalf("association %d of 2: %v", i+1, err)
				}
				held = append(held, cl)
			}
			// A bare TCP connection (a stalled handshake) counts too.
			if err := echoFrom("127.0.0.1", s.PlainAddr, legacy.AE, nil); !refusedEarly(err) {
				t.Fatalf("third connection: %v, want a refusal", err)
			}
			ev := al.wait(t, "too-many-connections")
			if ev.Remote != "127.0.0.1" {
				t.Fatalf("alert %+v", ev)
			}
			if err := echoFrom("127.0.0.2", s.TLSAddr, far.AE, far.TLS(t)); err != nil {
				t.Fatalf("another address: %v", err)
			}
			held[0].Release()
			if err := waitFor(func() error { return echoFrom("127.0.0.1", s.TLSAddr, m.AE, m.TLS(t)) }); err != nil {
				t.Fatalf("after one association ended: %v", err)
			}
			held[1].Release()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			s, al := startGuarded(t, dir, clock, tt.modify)
			tt.run(t, s, al, clock)
		})
	}
}

// waitFor retries f while it fails, for up to 5 s: the server releases a
// connection's slot when it has closed it, a moment after the peer's
// release returned.
func waitFor(f func() error) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}
