package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dicomshield/dicomshield/internal/dicomtest"
)

func readEntries(t *testing.T, path string) []Entry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var es []Entry
	if err := ReadLog(f, func(e Entry) error { es = append(es, e); return nil }); err != nil {
		t.Fatal(err)
	}
	return es
}

func TestTrailWritesLocalLog(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	path := LogPath(t.TempDir())
	tr, err := NewTrail(Options{Path: path, Source: testSource})
	if err != nil {
		t.Fatal(err)
	}
	cases := kindCases()
	for _, tc := range cases {
		tr.Record(tc.ev)
	}
	if err := tr.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	tr.Record(cases[0].ev) // after Close: dropped, no panic
	es := readEntries(t, path)
	if len(es) != len(cases) {
		t.Fatalf("%d records, want %d", len(es), len(cases))
	}
	for i, e := range es {
		if e.Kind != cases[i].ev.Kind || !e.Time.Equal(testTime) {
			t.Errorf("record %d: %s at %v", i, e.Kind, e.Time)
		}
		if _, err := Check([]byte(e.XML)); err != nil {
			t.Errorf("record %d: %v", i, err)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("log mode %v, want 0600", fi.Mode().Perm())
	}
	if di, _ := os.Stat(filepath.Dir(path)); di.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, want 0700", di.Mode().Perm())
	}
	if s := tr.Stats(); s.Written != uint64(len(cases)) || s.Dropped != 1 {
		t.Errorf("stats %+v", s)
	}

	// Append (the CLI's way) adds to the same log; nothing is overwritten.
	if err := Append(path, testSource, Event{Kind: ConfigChange, Alert: "peer-removed", Peer: "CT01"}); err != nil {
		t.Fatal(err)
	}
	if es := readEntries(t, path); len(es) != len(cases)+1 || es[len(es)-1].Alert != "peer-removed" || es[len(es)-1].Time.IsZero() {
		t.Fatalf("after Append: %d records", len(es))
	}
}

// TestTrailDropsAndAlerts: a full queue drops events without blocking the
// caller, and the trail records a security alert saying how many.
func TestTrailDropsAndAlerts(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	path := LogPath(t.TempDir())
	tr, err := newTrail(Options{Path: path, Source: testSource, QueueSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	// The writer is not running yet: the queue holds 2, the rest drop.
	for i := range 5 {
		tr.Record(Event{Kind: Query, CallingAE: "CT" + strconv.Itoa(i), SOPClasses: []string{find}})
	}
	go tr.run()
	if err := tr.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	es := readEntries(t, path)
	if len(es) != 3 {
		t.Fatalf("%d records, want the alert and 2 events", len(es))
	}
	a := es[0]
	if a.Kind != SecurityAlert || a.Alert != "audit-events-dropped" || a.Outcome != SeriousFailure || !strings.Contains(a.Description, "3 audit event(s)") {
		t.Fatalf("first record %+v", a)
	}
	c, err := Check([]byte(a.XML))
	if err != nil || c.EventTypes[0] != "110133" {
		t.Fatalf("alert message: %v %+v", err, c)
	}
	if es[1].CallingAE != "CT0" || es[2].CallingAE != "CT1" {
		t.Fatalf("kept %s, %s; want the first two", es[1].CallingAE, es[2].CallingAE)
	}
}

func TestReadLogSkipsMalformed(t *testing.T) {
	e, err := NewEntry(Event{Time: testTime, Kind: AppStart}, testSource)
	if err != nil {
		t.Fatal(err)
	}
	good, _ := json.Marshal(e)
	in := string(good) + "\n{not json\n" + string(good) + "\n" + `{"kind":` // cut short by a crash
	var n int
	err = ReadLog(strings.NewReader(in), func(Entry) error { n++; return nil })
	if n != 2 || !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "2 record(s)") || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("read %d, err %v", n, err)
	}
}

func TestFrame(t *testing.T) {
	tests := []struct {
		name, host, app, proc, wantHeader string
	}{
		{"plain", "pacs", "dicomshield", "42", "<85>1 2026-03-14T09:26:53.589000Z pacs dicomshield 42 IHE+RFC-3881 - \xef\xbb\xbf"},
		{"empty fields", "", "", "", "<85>1 2026-03-14T09:26:53.589000Z - - - IHE+RFC-3881 - \xef\xbb\xbf"},
		{"spaces removed", "my host", "dicom shield", "4 2", "<85>1 2026-03-14T09:26:53.589000Z myhost dicomshield 42 IHE+RFC-3881 - \xef\xbb\xbf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := Frame(testTime, tt.host, tt.app, tt.proc, []byte("<AuditMessage/>"))
			n, rest, ok := bytes.Cut(f, []byte(" "))
			if !ok {
				t.Fatalf("no length: %q", f)
			}
			if l, err := strconv.Atoi(string(n)); err != nil || l != len(rest) {
				t.Fatalf("length %q, record %d bytes", n, len(rest))
			}
			if want := tt.wantHeader + "<AuditMessage/>"; string(rest) != want {
				t.Fatalf("record %q, want %q", rest, want)
			}
		})
	}
}

// collector is a syslog-over-TLS receiver for unit tests: it parses
// octet-counted frames.
type collector struct {
	l     net.Listener
	mu    sync.Mutex
	recs  []string
	conns []net.Conn
	wg    sync.WaitGroup
	got   chan struct{}
}

func startCollector(t *testing.T, pki *dicomtest.PKI, addr string) *collector {
	t.Helper()
	sc := pki.Server.Clone()
	sc.ClientAuth = tls.NoClientCert
	l, err := tls.Listen("tcp", addr, sc)
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{l: l, got: make(chan struct{}, 1000)}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			c.mu.Lock()
			c.conns = append(c.conns, conn)
			c.mu.Unlock()
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				defer conn.Close()
				br := bufio.NewReader(conn)
				for {
					n, err := br.ReadString(' ')
					if err != nil {
						return
					}
					l, err := strconv.Atoi(strings.TrimSuffix(n, " "))
					if err != nil {
						return
					}
					buf := make([]byte, l)
					if _, err := io.ReadFull(br, buf); err != nil {
						return
					}
					c.mu.Lock()
					c.recs = append(c.recs, string(buf))
					c.mu.Unlock()
					c.got <- struct{}{}
				}
			}()
		}
	}()
	t.Cleanup(c.stop)
	return c
}

// stop closes the listener and every connection (the collector "goes
// down").
func (c *collector) stop() {
	c.l.Close()
	c.mu.Lock()
	for _, conn := range c.conns {
		conn.Close()
	}
	c.mu.Unlock()
	c.wg.Wait()
}

func (c *collector) wait(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		c.mu.Lock()
		if len(c.recs) >= n {
			r := append([]string(nil), c.recs...)
			c.mu.Unlock()
			return r
		}
		c.mu.Unlock()
		select {
		case <-c.got:
		case <-deadline:
			t.Fatalf("collector received %d records, want %d", len(c.recs), n)
		}
	}
}

func TestSyslogSendsAndReconnects(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	pki := dicomtest.NewPKI(t, "unused")
	col := startCollector(t, pki, "127.0.0.1:0")
	addr := col.l.Addr().String()
	path := LogPath(t.TempDir())
	errc := make(chan error, 100)
	tr, err := NewTrail(Options{Path: path, Source: testSource, OnError: func(err error) { errc <- err }, Syslog: &SyslogOptions{Addr: addr,
		TLS: &tls.Config{RootCAs: pki.Client.RootCAs}, AppName: "dicomshield", MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close(context.Background())
	tr.Record(kindCases()[5].ev)
	recs := col.wait(t, 1)
	if !strings.HasPrefix(recs[0], "<85>1 ") || !strings.Contains(recs[0], " dicomshield ") || !strings.Contains(recs[0], "IHE+RFC-3881 - \xef\xbb\xbf<AuditMessage>") {
		t.Fatalf("record %q", recs[0])
	}
	_, msg, _ := strings.Cut(recs[0], "\xef\xbb\xbf")
	if c, err := Check([]byte(msg)); err != nil || c.EventID != "110112" {
		t.Fatalf("Check: %v", err)
	}

	// The collector goes down and comes back on the same address: the
	// sender reconnects and delivers what was recorded meanwhile.
	col.stop()
	select {
	case err := <-errc: // the sender noticed
		if !strings.Contains(err.Error(), "closed the connection") {
			t.Fatalf("error %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the sender did not notice the collector going away")
	}
	for i := range 3 {
		tr.Record(Event{Kind: AssocRefused, Outcome: MinorFailure, CallingAE: "X" + strconv.Itoa(i), Remote: "127.0.0.1"})
	}
	col2 := startCollector(t, pki, addr)
	recs = col2.wait(t, 3)
	if !strings.Contains(recs[len(recs)-1], `UserID="X2"`) {
		t.Fatalf("last record after reconnecting: %q", recs[len(recs)-1])
	}
	if err := tr.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := tr.Stats(); s.SyslogSent < 4 || s.SyslogPending != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// TestSyslogRefusesUnverifiedCollector: a collector whose certificate the
// configured CA did not sign gets nothing.
func TestSyslogRefusesUnverifiedCollector(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	pki, other := dicomtest.NewPKI(t, "a"), dicomtest.NewPKI(t, "b")
	col := startCollector(t, pki, "127.0.0.1:0")
	errc := make(chan error, 10)
	s, err := NewSyslog(SyslogOptions{Addr: col.l.Addr().String(), TLS: &tls.Config{RootCAs: other.Client.RootCAs},
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		OnError: func(err error) { errc <- err }})
	if err != nil {
		t.Fatal(err)
	}
	s.Send(Frame(testTime, "h", "a", "1", []byte("<AuditMessage/>")))
	select {
	case err := <-errc:
		if !strings.Contains(err.Error(), "certificate") {
			t.Errorf("error %v, want a certificate error", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no error reported")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close = %v, want the deadline (the record could not be delivered)", err)
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	if len(col.recs) != 0 || s.Dropped() != 1 {
		t.Fatalf("collector got %d records, dropped %d", len(col.recs), s.Dropped())
	}
}

// TestSyslogBacklogBounded: with the collector away, the backlog keeps at
// most Backlog records and counts the rest; Send never blocks.
func TestSyslogBacklogBounded(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	pki := dicomtest.NewPKI(t, "a")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nobody listens there now
	s, err := NewSyslog(SyslogOptions{Addr: addr, TLS: &tls.Config{RootCAs: pki.Client.RootCAs}, Backlog: 10,
		MinBackoff: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for range 1000 {
		s.Send([]byte("3 abc"))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("1000 sends took %v", d)
	}
	if s.Pending() > 10 || s.Dropped() < 990 {
		t.Fatalf("pending %d, dropped %d", s.Pending(), s.Dropped())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	s.Close(ctx)
	if s.Dropped() != 1000 {
		t.Fatalf("dropped %d after Close, want all 1000", s.Dropped())
	}
}
