package dimse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/dicomtest"
	"github.com/dicomshield/dicomshield/internal/ul"
)

// Hostile peers against a running Server on 127.0.0.1. Every test checks
// with dicomtest.CheckGoroutines that the server leaks no goroutine: it is
// called first, so that its check runs after startServer's shutdown.

// logRecorder is a slog handler that keeps every record's message and
// attributes, to assert on what the server logged.
type logRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *logRecorder) WithGroup(string) slog.Handler            { return r }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	b.WriteString(rec.Message)
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key != "stack" {
			fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		}
		return true
	})
	r.mu.Lock()
	r.lines = append(r.lines, b.String())
	r.mu.Unlock()
	return nil
}

// find returns the first line containing s, or "".
func (r *logRecorder) find(s string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.lines {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

func (r *logRecorder) reset() {
	r.mu.Lock()
	r.lines = nil
	r.mu.Unlock()
}

// hostileConfig keeps the timers short so that stalled peers are dropped
// quickly.
var hostileConfig = ul.Config{
	AssociateTimeout: time.Second,
	IdleTimeout:      time.Second,
	CloseTimeout:     200 * time.Millisecond,
}

// hostileServer starts the in-memory archive with short timers and a
// recording logger; mod may change the server before it starts.
func hostileServer(t *testing.T, mod func(*Server)) (*Server, string, *logRecorder) {
	t.Helper()
	rec := &logRecorder{}
	s := newMemArchive().server(nil)
	s.UL = hostileConfig
	s.Logger = slog.New(rec)
	if mod != nil {
		mod(s)
	}
	return s, startServer(t, s), rec
}

// waitIdle waits until the server has no connection left.
func waitIdle(t testing.TB, s *Server, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for s.active.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("server still has %d connections after %v", s.active.Load(), d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func dialOpts() *DialOptions {
	return &DialOptions{CallingAE: "MODALITY", CalledAE: "ARCHIVE", Contexts: allProposals()}
}

// echoWorks checks that a normal client still associates and C-ECHOes.
func echoWorks(t testing.TB, addr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := Dial(ctx, addr, dialOpts())
	if err != nil {
		t.Fatalf("normal client cannot associate: %v", err)
	}
	if err := cl.Echo(ctx); err != nil {
		t.Fatalf("normal client C-ECHO: %v", err)
	}
	if err := cl.Release(); err != nil {
		t.Fatalf("normal client release: %v", err)
	}
}

func rawDial(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// rawAssociate establishes an association as a hand-driven requestor and
// returns it; its Conn can then carry anything.
func rawAssociate(t testing.TB, addr string) *ul.Association {
	t.Helper()
	c := rawDial(t, addr)
	a, err := ul.Request(c, BuildRQ(dialOpts()), &ul.Config{AssociateTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("associate: %v", err)
	}
	return a
}

// readPDU reads one PDU as the peer, within d.
func readPDU(t *testing.T, c net.Conn, d time.Duration) (ul.PDU, error) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	p, _, err := ul.ReadPDU(c, 0, nil)
	return p, err
}

// expectAbort reads an A-ABORT from the service provider with the reason
// and then the end of the connection.
func expectAbort(t *testing.T, c net.Conn, reason byte, d time.Duration) {
	t.Helper()
	p, err := readPDU(t, c, d)
	if err != nil {
		t.Fatalf("reading the A-ABORT: %v", err)
	}
	ab, ok := p.(*ul.Abort)
	if !ok || ab.Source != ul.AbortSourceProvider || ab.Reason != reason {
		t.Fatalf("received %T %+v, want A-ABORT source 2 reason %d", p, p, reason)
	}
	expectEOF(t, c, d)
}

// expectEOF checks that the server closes the connection within d.
func expectEOF(t *testing.T, c net.Conn, d time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v", d)
	}
}

// TestHostileGarbage: bytes that are not an A-ASSOCIATE-RQ get an A-ABORT
// with the matching reason and a closed connection; the server goes on.
func TestHostileGarbage(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	s, addr, _ := hostileServer(t, nil)
	for _, tt := range []struct {
		name   string
		in     []byte
		reason byte
	}{
		{"HTTP request", []byte("GET / HTTP/1.1\r\nHost: pacs\r\n\r\n"), ul.AbortReasonUnrecognizedPDU},
		{"TLS hello", []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03}, ul.AbortReasonUnrecognizedPDU},
		{"A-ASSOCIATE-RQ of noise", append([]byte{1, 0, 0, 0, 0, 80}, bytes.Repeat([]byte{0xA5}, 80)...), ul.AbortReasonInvalidParameter},
		{"P-DATA first", []byte{4, 0, 0, 0, 0, 6, 0, 0, 0, 2, 1, 3}, ul.AbortReasonUnexpectedPDU},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := rawDial(t, addr)
			c.Write(tt.in)
			expectAbort(t, c, tt.reason, 3*time.Second)
		})
	}
	waitIdle(t, s, 3*time.Second)
	echoWorks(t, addr)
}

// TestHostileHugeAssociateRQ: an A-ASSOCIATE-RQ header announcing 4 GiB is
// refused at once (nothing of that size is allocated or awaited); one
// announcing the largest allowed size and sending nothing more is dropped
// after the associate timeout.
func TestHostileHugeAssociateRQ(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	s, addr, _ := hostileServer(t, nil)
	c := rawDial(t, addr)
	start := time.Now()
	c.Write([]byte{ul.TypeAssociateRQ, 0, 0xFF, 0xFF, 0xFF, 0xFF})
	expectAbort(t, c, ul.AbortReasonInvalidParameter, 3*time.Second)
	if el := time.Since(start); el > hostileConfig.AssociateTimeout/2 {
		t.Fatalf("4 GiB announcement refused after %v, want at once", el)
	}
	c = rawDial(t, addr)
	start = time.Now()
	c.Write([]byte{ul.TypeAssociateRQ, 0, 0, 0x10, 0, 0, 1, 0})
	expectEOF(t, c, 5*time.Second)
	if el := time.Since(start); el < hostileConfig.AssociateTimeout*8/10 {
		t.Fatalf("stalled request dropped after %v, before the associate timeout", el)
	}
	waitIdle(t, s, 3*time.Second)
	echoWorks(t, addr)
}

// TestHostileStallMidPDU: after association, half a P-DATA-TF and then
// silence: the server aborts after the idle timeout.
func TestHostileStallMidPDU(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	var opened, closed atomic.Int32
	s, addr, _ := hostileServer(t, func(s *Server) {
		s.ConnState = func(_ *Assoc, open bool) {
			if open {
				opened.Add(1)
			} else {
				closed.Add(1)
			}
		}
	})
	for _, part := range [][]byte{
		{ul.TypePDataTF, 0, 0},                            // half a header
		{ul.TypePDataTF, 0, 0, 0, 0, 100, 0, 0, 0, 40, 1}, // part of the body
	} {
		a := rawAssociate(t, addr)
		start := time.Now()
		a.Conn().Write(part)
		expectAbort(t, a.Conn(), ul.AbortReasonNotSpecified, 5*time.Second)
		if el := time.Since(start); el < hostileConfig.IdleTimeout*8/10 {
			t.Fatalf("aborted after %v, before the idle timeout", el)
		}
	}
	waitIdle(t, s, 3*time.Second)
	if opened.Load() != 2 || closed.Load() != 2 {
		t.Fatalf("ConnState saw %d opened, %d closed", opened.Load(), closed.Load())
	}
	echoWorks(t, addr)
}

// TestHostileHugePData: a P-DATA-TF announcing 4 GiB is refused at once.
func TestHostileHugePData(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	s, addr, _ := hostileServer(t, nil)
	a := rawAssociate(t, addr)
	start := time.Now()
	a.Conn().Write([]byte{ul.TypePDataTF, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0})
	expectAbort(t, a.Conn(), ul.AbortReasonInvalidParameter, 3*time.Second)
	if el := time.Since(start); el > hostileConfig.IdleTimeout/2 {
		t.Fatalf("refused after %v, want at once", el)
	}
	waitIdle(t, s, 3*time.Second)
	echoWorks(t, addr)
}

// storeResult is what a recording Store handler's io.ReadAll returned.
type storeResult struct {
	n   int
	err error
}

// recordingStore is a Store handler that reads the whole data set and
// reports the result on ch.
func recordingStore(ch chan<- storeResult) func(context.Context, *Request, io.Reader) Status {
	return func(_ context.Context, _ *Request, data io.Reader) Status {
		b, err := io.ReadAll(data)
		ch <- storeResult{len(b), err}
		if err != nil {
			return Status{Code: StatusProcessingFailure}
		}
		return Status{Code: StatusSuccess}
	}
}

// TestHostileTruncatedStore: a C-STORE whose data set never ends: the
// peer disconnects, aborts, or goes silent mid-data-set. The Store handler
// must see an error, never a clean end of data.
func TestHostileTruncatedStore(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	results := make(chan storeResult, 1)
	s, addr, _ := hostileServer(t, func(s *Server) { s.Store = recordingStore(results) })
	for _, end := range []string{"disconnect", "abort", "silence"} {
		t.Run(end, func(t *testing.T) {
			ctx := context.Background()
			cl, err := Dial(ctx, addr, dialOpts())
			if err != nil {
				t.Fatal(err)
			}
			defer cl.a.Close()
			id, _, err := cl.contextFor(ctImage, dicom.ExplicitVRLittleEndianUID)
			if err != nil {
				t.Fatal(err)
			}
			rq := &Command{Field: CStoreRQ, MessageID: 1, AffectedSOPClass: ctImage, AffectedSOPInstance: "1.2.3.4", HasDataSet: true}
			w := cl.a.PDVWriter(id, true)
			w.Write(rq.Encode())
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			// 200 KB of data set in PDVs none of which is flagged last.
			data := instance("1.2.3.4")[:200000]
			for chunk := range slices.Chunk(data, 50000) {
				if err := cl.a.SendPData(&ul.PDataTF{PDVs: []ul.PDV{{ContextID: id, Data: chunk}}}); err != nil {
					t.Fatal(err)
				}
			}
			switch end {
			case "disconnect":
				cl.a.Conn().Close()
			case "abort":
				cl.a.Abort()
			}
			var r storeResult
			select {
			case r = <-results:
			case <-time.After(5 * time.Second):
				t.Fatal("Store handler still waiting for data")
			}
			if r.err == nil {
				t.Fatalf("Store handler read %d bytes and a clean end of data", r.n)
			}
			if r.n == 0 || r.n > 200000 {
				t.Fatalf("Store handler read %d bytes", r.n)
			}
			t.Logf("handler: %d bytes, %v", r.n, r.err)
		})
	}
	waitIdle(t, s, 3*time.Second)
	echoWorks(t, addr)
}

// heapSampler samples HeapInuse every few milliseconds until stopped and
// returns the largest value seen.
func heapSampler() func() uint64 {
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return func() uint64 {
		close(stop)
		<-done
		return peak.Load()
	}
}

func heapInuse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// flood opens n connections and keeps them all open until every one is
// done. Each sends, as soon as it is connected, what send returns for its
// index (nothing when nil) and, when expectAnswer says so, reads the
// server's answer. It returns the answers by kind.
func flood(t *testing.T, addr string, n int, send func(i int) []byte, expectAnswer func(i int) bool) map[string]int {
	t.Helper()
	conns := make([]net.Conn, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	var mu sync.Mutex
	answers := map[string]int{}
	count := func(key string) {
		mu.Lock()
		answers[key]++
		mu.Unlock()
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				count("dial error: " + err.Error())
				return
			}
			conns[i] = c
			b := send(i)
			if b == nil {
				return
			}
			c.SetDeadline(time.Now().Add(20 * time.Second))
			if _, err := c.Write(b); err != nil {
				count("write error: " + err.Error())
				return
			}
			if !expectAnswer(i) {
				return
			}
			p, _, err := ul.ReadPDU(c, 0, nil)
			switch p := p.(type) {
			case *ul.AssociateAC:
				count("A-ASSOCIATE-AC")
			case *ul.AssociateRJ:
				count(fmt.Sprintf("A-ASSOCIATE-RJ result %d source %d reason %d", p.Result, p.Source, p.Reason))
			case *ul.Abort:
				count(fmt.Sprintf("A-ABORT source %d reason %d", p.Source, p.Reason))
			default:
				count(fmt.Sprintf("error: %v", err))
			}
		}()
	}
	wg.Wait()
	return answers
}

// TestHostileFlood opens 1,000 connections at once: half say nothing,
// half send a valid A-ASSOCIATE-RQ. The server answers every request with
// an A-ASSOCIATE-AC or, past its limit, a transient rejection, keeps its
// heap bounded, and afterwards serves a normal client.
func TestHostileFlood(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	s, addr, _ := hostileServer(t, func(s *Server) {
		s.UL.AssociateTimeout = 10 * time.Second
		s.UL.IdleTimeout = 10 * time.Second
	})
	const n = 1000
	rq := BuildRQ(dialOpts()).Append(nil)
	base := heapInuse()
	stop := heapSampler()
	answers := flood(t, addr, n, func(i int) []byte {
		if i%2 == 0 {
			return nil
		}
		return rq
	}, func(int) bool { return true })
	peak := stop()
	t.Logf("answers: %v", answers)
	t.Logf("HeapInuse: %.1f MiB before, peak %.1f MiB during 1,000 connections (%.1f KiB per connection)",
		float64(base)/(1<<20), float64(peak)/(1<<20), float64(peak-min(base, peak))/1024/n)
	total := 0
	for k, v := range answers {
		if k != "A-ASSOCIATE-AC" && k != "A-ASSOCIATE-RJ result 2 source 3 reason 2" {
			t.Errorf("%d requests answered %q", v, k)
		}
		total += v
	}
	if total != n/2 || answers["A-ASSOCIATE-AC"] == 0 {
		t.Errorf("answers %v", answers)
	}
	if peak-min(base, peak) > 64<<20 {
		t.Errorf("heap grew by %d MiB", (peak-base)>>20)
	}
	waitIdle(t, s, 10*time.Second)
	echoWorks(t, addr)
}

// TestHostileFloodLargeAnnouncements opens 1,000 connections that each
// announce an A-ASSOCIATE-RQ of the largest allowed size (1 MiB) and then
// send nothing. What the server holds must follow what peers send, not
// what they announce.
func TestHostileFloodLargeAnnouncements(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	s, addr, _ := hostileServer(t, func(s *Server) { s.UL.AssociateTimeout = 10 * time.Second })
	const n = 1000
	hdr := []byte{ul.TypeAssociateRQ, 0, 0, 0x10, 0, 0, 0, 1}
	base := heapInuse()
	stop := heapSampler()
	start := time.Now()
	flood(t, addr, n, func(int) []byte { return hdr }, func(int) bool { return false })
	// Let the server read every header before sampling stops.
	time.Sleep(500 * time.Millisecond)
	peak := stop()
	t.Logf("HeapInuse: %.1f MiB before, peak %.1f MiB with 1,000 stalled 1 MiB announcements (%v)",
		float64(base)/(1<<20), float64(peak)/(1<<20), time.Since(start).Round(time.Millisecond))
	if peak-min(base, peak) > 64<<20 {
		t.Errorf("heap grew by %d MiB for 1,000 six-byte announcements", (peak-base)>>20)
	}
	waitIdle(t, s, 10*time.Second)
	echoWorks(t, addr)
}

// TestHostileMaxAssociations: past MaxAssociations the server answers
// A-ASSOCIATE-RJ transient, source presentation, reason local limit
// exceeded; once an association ends, a new one is accepted.
func TestHostileMaxAssociations(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	s, addr, _ := hostileServer(t, func(s *Server) { s.MaxAssociations = 2 })
	ctx := context.Background()
	var held []*Client
	for range 2 {
		cl, err := Dial(ctx, addr, dialOpts())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, cl)
	}
	for range 3 {
		_, err := Dial(ctx, addr, dialOpts())
		var rj *ul.RejectedError
		if !errors.As(err, &rj) {
			t.Fatalf("association over the limit: %v", err)
		}
		if rj.RJ != (ul.AssociateRJ{Result: ul.RejectTransient, Source: ul.SourceServiceProviderPresenta, Reason: ul.ReasonLocalLimitExceeded}) {
			t.Fatalf("rejection %+v, want transient, source 3, reason 2", rj.RJ)
		}
	}
	// The held associations still work.
	for _, cl := range held {
		if err := cl.Echo(ctx); err != nil {
			t.Fatal(err)
		}
	}
	held[0].Release()
	deadline := time.Now().Add(3 * time.Second)
	for s.active.Load() >= 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	echoWorks(t, addr)
	held[1].Release()
	waitIdle(t, s, 3*time.Second)
}

// TestHostileHandlerPanic: a handler that panics ends (at most) its own
// association; other associations go on and new ones are accepted.
func TestHostileHandlerPanic(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	var panics atomic.Int32
	s, addr, rec := hostileServer(t, func(s *Server) {
		s.Echo = func(context.Context, *Request) Status {
			if panics.Add(-1) >= 0 {
				panic("echo handler bug")
			}
			return Status{Code: StatusSuccess}
		}
		find := s.Find
		s.Find = func(ctx context.Context, r *Request, id *dicom.DataSet, emit func(*dicom.DataSet) error) Status {
			if id.String(dicom.TagPatientID) == "PANIC" {
				panic("find handler bug")
			}
			return find(ctx, r, id, emit)
		}
		s.Store = func(context.Context, *Request, io.Reader) Status { panic("store handler bug") }
	})
	ctx := context.Background()
	bystander, err := Dial(ctx, addr, dialOpts())
	if err != nil {
		t.Fatal(err)
	}

	// C-ECHO handler panic: that association is closed.
	panics.Store(1)
	cl, err := Dial(ctx, addr, dialOpts())
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Echo(ctx); err == nil {
		t.Fatal("C-ECHO answered although the handler panicked")
	}
	if rec.find("panicked") == "" {
		t.Fatal("panic not logged")
	}
	if err := bystander.Echo(ctx); err != nil {
		t.Fatalf("other association after a panic: %v", err)
	}

	// C-FIND handler panic: that association is aborted.
	rec.reset()
	cl, err = Dial(ctx, addr, dialOpts())
	if err != nil {
		t.Fatal(err)
	}
	q := &dicom.DataSet{}
	q.Set(dicom.NewText(dicom.TagPatientID, dicom.LO, "PANIC"))
	if _, err := cl.Find(ctx, StudyRootFind, q, func(*dicom.DataSet) error { return nil }); !errors.Is(err, ul.ErrAborted) {
		t.Fatalf("C-FIND with a panicking handler: %v, want an abort", err)
	}
	if rec.find("panicked") == "" {
		t.Fatal("panic not logged")
	}

	// C-STORE handler panic: a failure status; the association goes on.
	rec.reset()
	cl, err = Dial(ctx, addr, dialOpts())
	if err != nil {
		t.Fatal(err)
	}
	st, err := cl.Store(ctx, ctImage, "1.2.3.9", dicom.ExplicitVRLittleEndianUID, bytes.NewReader(instance("1.2.3.9")))
	if !IsStatus(err, StatusProcessingFailure) {
		t.Fatalf("C-STORE with a panicking handler: status 0x%04X, %v", st, err)
	}
	if rec.find("panicked") == "" {
		t.Fatal("panic not logged")
	}
	if err := cl.Echo(ctx); err != nil {
		t.Fatalf("C-ECHO after a store handler panic: %v", err)
	}
	cl.Release()

	if err := bystander.Echo(ctx); err != nil {
		t.Fatalf("other association after panics: %v", err)
	}
	bystander.Release()
	waitIdle(t, s, 3*time.Second)
	echoWorks(t, addr)
}

// gatedReader returns the first part of data, then blocks until gate is
// closed, then returns the rest.
type gatedReader struct {
	first, rest []byte
	gate        chan struct{}
	reached     chan struct{}
	once        sync.Once
}

func newGatedReader(data []byte, at int) *gatedReader {
	return &gatedReader{first: data[:at], rest: data[at:], gate: make(chan struct{}), reached: make(chan struct{})}
}

func (g *gatedReader) Read(p []byte) (int, error) {
	if len(g.first) > 0 {
		n := copy(p, g.first)
		g.first = g.first[n:]
		return n, nil
	}
	g.once.Do(func() { close(g.reached) })
	<-g.gate
	if len(g.rest) == 0 {
		return 0, io.EOF
	}
	n := copy(p, g.rest)
	g.rest = g.rest[n:]
	return n, nil
}

// TestShutdownGraceful: Shutdown stops accepting at once, lets a C-STORE
// in flight finish, and returns when its association is released.
func TestShutdownGraceful(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	results := make(chan storeResult, 1)
	s, addr, _ := hostileServer(t, func(s *Server) { s.Store = recordingStore(results) })
	ctx := context.Background()
	cl, err := Dial(ctx, addr, dialOpts())
	if err != nil {
		t.Fatal(err)
	}
	data := instance("1.2.3.5")
	gr := newGatedReader(data, 100000)
	stored := make(chan error, 1)
	go func() {
		_, err := cl.Store(ctx, ctImage, "1.2.3.5", dicom.ExplicitVRLittleEndianUID, gr)
		stored <- err
	}()
	<-gr.reached
	shutdown := make(chan error, 1)
	go func() {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		shutdown <- s.Shutdown(sctx)
	}()
	// New connections are refused once Shutdown has begun.
	deadline := time.Now().Add(3 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting connections after Shutdown")
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case err := <-shutdown:
		t.Fatalf("Shutdown returned %v with a C-STORE in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(gr.gate)
	if err := <-stored; err != nil {
		t.Fatalf("C-STORE in flight during Shutdown: %v", err)
	}
	if r := <-results; r.err != nil || r.n != len(data) {
		t.Fatalf("handler got %d of %d bytes, %v", r.n, len(data), r.err)
	}
	if err := cl.Release(); err != nil {
		t.Fatalf("release: %v", err)
	}
	select {
	case err := <-shutdown:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return after the last association ended")
	}
}

// TestShutdownDeadline: an association that is never released is cut when
// Shutdown's context ends.
func TestShutdownDeadline(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	s, addr, _ := hostileServer(t, func(s *Server) { s.UL.IdleTimeout = time.Minute })
	cl, err := Dial(context.Background(), addr, dialOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("Shutdown took %v", el)
	}
}

// TestCloseAbortsAtOnce: Close ends every association at once, a C-STORE
// in flight included; the handler sees an error.
func TestCloseAbortsAtOnce(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	results := make(chan storeResult, 1)
	s, addr, _ := hostileServer(t, func(s *Server) {
		s.Store = recordingStore(results)
		s.UL.IdleTimeout = time.Minute
	})
	ctx := context.Background()
	idle, err := Dial(ctx, addr, dialOpts())
	if err != nil {
		t.Fatal(err)
	}
	cl, err := Dial(ctx, addr, dialOpts())
	if err != nil {
		t.Fatal(err)
	}
	gr := newGatedReader(instance("1.2.3.6"), 100000)
	stored := make(chan error, 1)
	go func() {
		_, err := cl.Store(ctx, ctImage, "1.2.3.6", dicom.ExplicitVRLittleEndianUID, gr)
		stored <- err
	}()
	<-gr.reached
	time.Sleep(50 * time.Millisecond) // let the server take in what was sent
	start := time.Now()
	s.Close()
	if el := time.Since(start); el > time.Second {
		t.Fatalf("Close took %v", el)
	}
	if r := <-results; r.err == nil {
		t.Fatalf("handler read %d bytes and a clean end after Close", r.n)
	}
	close(gr.gate)
	if err := <-stored; err == nil {
		t.Fatal("C-STORE succeeded across Close")
	}
	if err := idle.Echo(ctx); err == nil {
		t.Fatal("idle association still works after Close")
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal("still accepting after Close")
	}
}

// TestHostileGetPeerVanishes: a C-GET requestor that disconnects instead
// of answering a C-STORE sub-operation must not leave the association's
// goroutines waiting for that answer.
func TestHostileGetPeerVanishes(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	arch := newMemArchive()
	arch.data["1.2.3.7"] = instance("1.2.3.7")
	arch.ts["1.2.3.7"] = dicom.ExplicitVRLittleEndianUID
	s := arch.server(nil)
	s.UL = hostileConfig
	addr := startServer(t, s)
	ctx := context.Background()
	cl, err := Dial(ctx, addr, dialOpts())
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := cl.contextFor(StudyRootGet, "")
	if err != nil {
		t.Fatal(err)
	}
	q := &dicom.DataSet{}
	q.Set(dicom.NewText(dicom.NewTag(0x0008, 0x0052), dicom.CS, "IMAGE"))
	body, _ := dicom.MarshalDataSet(q, dicom.ExplicitVRLittleEndian)
	if err := cl.c.sendBytes(id, &Command{Field: CGetRQ, MessageID: 1, AffectedSOPClass: StudyRootGet}, body); err != nil {
		t.Fatal(err)
	}
	cmd, pc, err := cl.c.readCommand()
	if err != nil || cmd.Field != CStoreRQ {
		t.Fatalf("expected the C-STORE sub-operation: %v %v", cmd, err)
	}
	// Take the whole data set, so that the server's send succeeds and it
	// waits for the C-STORE-RSP; then vanish.
	if _, err := cl.c.copyDataSet(pc, nil, 0); err != nil {
		t.Fatal(err)
	}
	cl.a.Conn().Close()
	waitIdle(t, s, 5*time.Second)
	echoWorks(t, addr)
}

// pdata encodes one P-DATA-TF with one PDV.
func pdata(ctx byte, command, last bool, data []byte) []byte {
	return (&ul.PDataTF{PDVs: []ul.PDV{{ContextID: ctx, Command: command, Last: last, Data: data}}}).Append(nil)
}

// Presentation context IDs of allProposals.
const (
	pcEcho  = 1
	pcCT    = 3
	pcFind  = 5
	pcGet   = 7
	pcMove  = 9
	pcWrong = 11
)

// sessionSeeds are DIMSE traffic after an association: what
// FuzzServerSession starts from.
func sessionSeeds() [][]byte {
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	q := &dicom.DataSet{}
	q.Set(dicom.NewText(dicom.NewTag(0x0008, 0x0052), dicom.CS, "STUDY"))
	qb, _ := dicom.MarshalDataSet(q, dicom.ExplicitVRLittleEndian)
	inst := instance("1.2.3.8")[:2000]
	echo := (&Command{Field: CEchoRQ, MessageID: 1, AffectedSOPClass: VerificationSOPClass}).Encode()
	store := (&Command{Field: CStoreRQ, MessageID: 2, AffectedSOPClass: ctImage, AffectedSOPInstance: "1.2.3.8", HasDataSet: true}).Encode()
	find := (&Command{Field: CFindRQ, MessageID: 3, AffectedSOPClass: StudyRootFind, HasDataSet: true}).Encode()
	get := (&Command{Field: CGetRQ, MessageID: 4, AffectedSOPClass: StudyRootGet, HasDataSet: true}).Encode()
	move := (&Command{Field: CMoveRQ, MessageID: 5, AffectedSOPClass: StudyRootMove, MoveDestination: "NOWHERE", HasDataSet: true}).Encode()
	cancel := (&Command{Field: CCancelRQ, RespondingTo: 3}).Encode()
	release := (&ul.ReleaseRQ{}).Append(nil)
	return [][]byte{
		cat(pdata(pcEcho, true, true, echo), release),
		cat(pdata(pcCT, true, true, store), pdata(pcCT, false, false, inst[:1000]), pdata(pcCT, false, true, inst[1000:]), release),
		cat(pdata(pcFind, true, true, find), pdata(pcFind, false, true, qb), pdata(pcFind, true, true, cancel)),
		cat(pdata(pcGet, true, true, get), pdata(pcGet, false, true, qb)),
		cat(pdata(pcMove, true, true, move), pdata(pcMove, false, true, qb), release),
		cat(pdata(pcEcho, true, false, echo[:10]), pdata(pcEcho, true, true, echo[10:]), pdata(pcWrong, true, true, echo)),
	}
}

// FuzzServerSession writes arbitrary bytes to a running Server after a
// valid A-ASSOCIATE-RQ, so that they reach the DIMSE layer. The server
// must never panic (it recovers and logs, so the log is checked), must
// end the association once the peer is gone, and must keep serving.
func FuzzServerSession(f *testing.F) {
	for _, s := range sessionSeeds() {
		f.Add(s)
	}
	dicomtest.CheckGoroutines(f)
	rec := &logRecorder{}
	s := newMemArchive().server(nil)
	s.UL = ul.Config{AssociateTimeout: time.Second, IdleTimeout: 500 * time.Millisecond, CloseTimeout: 100 * time.Millisecond}
	s.Logger = slog.New(rec)
	// Nothing accumulates across inputs: stores are discarded, and every
	// retrieve offers the same small instance (so C-GET and C-MOVE reach
	// their sub-operations).
	s.Store = func(_ context.Context, _ *Request, data io.Reader) Status {
		if _, err := io.Copy(io.Discard, data); err != nil {
			return Status{Code: StatusProcessingFailure}
		}
		return Status{Code: StatusSuccess}
	}
	small := instance("1.2.3.10")[:3000]
	s.Retrieve = func(context.Context, *Request, *dicom.DataSet) ([]Instance, Status) {
		return []Instance{{SOPClassUID: ctImage, SOPInstanceUID: "1.2.3.10", TransferSyntax: dicom.ExplicitVRLittleEndianUID,
			Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(small)), nil }}}, Status{Code: StatusSuccess}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	f.Cleanup(func() {
		s.Close()
		if err := <-served; err != ErrServerClosed {
			f.Errorf("Serve returned %v", err)
		}
	})
	addr := l.Addr().String()
	rq := BuildRQ(dialOpts())
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 64<<10 {
			return // inputs are kept small: each one is a TCP association
		}
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("server not accepting: %v", err)
		}
		defer c.Close()
		if _, err := ul.Request(c, rq, &ul.Config{AssociateTimeout: 5 * time.Second}); err != nil {
			t.Fatalf("associate: %v", err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		done := make(chan struct{})
		go func() {
			// Drain what the server answers, so that it never blocks on
			// a full socket.
			io.Copy(io.Discard, c)
			close(done)
		}()
		c.Write(in)
		c.(*net.TCPConn).CloseWrite()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("server did not end the association")
		}
		if l := rec.find("panicked"); l != "" {
			t.Fatalf("server panicked: %s", l)
		}
		select {
		case err := <-served:
			t.Fatalf("Serve returned %v", err)
		default:
		}
		c.Close()
		waitIdle(t, s, 5*time.Second)
	})
}

// TestCloseDuringMove: Close does not wait for a C-MOVE destination that
// accepted the sub-association and then went silent.
func TestCloseDuringMove(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	// The destination accepts, reads and never answers.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	received := make(chan struct{}, 1)
	destDone, stopDest := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(destDone)
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		go func() { <-stopDest; c.Close() }()
		a, _, err := ul.Accept(c, &ul.Config{IdleTimeout: time.Minute}, func(rq *ul.AssociateRQ) (*ul.AssociateAC, *ul.AssociateRJ) {
			return Negotiate(rq, func(string) []string { return []string{dicom.ExplicitVRLittleEndianUID} }), nil
		})
		if err != nil {
			return
		}
		for {
			p, err := a.Next()
			if err != nil {
				return
			}
			if pd, ok := p.(*ul.PDataTF); ok && !pd.PDVs[len(pd.PDVs)-1].Command && pd.PDVs[len(pd.PDVs)-1].Last {
				select {
				case received <- struct{}{}:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() {
		l.Close()
		close(stopDest)
		<-destDone
	})
	arch := newMemArchive()
	arch.data["1.2.3.11"] = instance("1.2.3.11")
	arch.ts["1.2.3.11"] = dicom.ExplicitVRLittleEndianUID
	arch.dests["STALL"] = l.Addr().String()
	s := arch.server(nil)
	s.UL = hostileConfig
	addr := startServer(t, s)
	ctx := context.Background()
	cl, err := Dial(ctx, addr, dialOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.a.Close()
	moved := make(chan error, 1)
	go func() {
		q := &dicom.DataSet{}
		q.Set(dicom.NewText(dicom.NewTag(0x0008, 0x0052), dicom.CS, "IMAGE"))
		_, err := cl.Move(ctx, StudyRootMove, "STALL", q)
		moved <- err
	}()
	select {
	case <-received:
	case <-time.After(5 * time.Second):
		t.Fatal("the destination did not receive the sub-operation")
	}
	start := time.Now()
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(3 * time.Second):
		t.Fatalf("Close still waiting for the silent C-MOVE destination after %v", time.Since(start))
	}
	if err := <-moved; err == nil {
		t.Fatal("C-MOVE succeeded across Close")
	}
}

// cancellingReader cancels a context once half of its data was read, and
// goes on returning data.
type cancellingReader struct {
	r      io.Reader
	at     int
	n      int
	cancel context.CancelFunc
}

func (c *cancellingReader) Read(p []byte) (int, error) {
	if c.n >= c.at {
		c.cancel()
	}
	p = p[:min(len(p), 16<<10)]
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestClientCancelDuringStore: a context cancelled while the client is
// sending a data set ends Store at once, even though the writes and reads
// that follow set their own deadlines.
func TestClientCancelDuringStore(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	_, addr, _ := hostileServer(t, func(s *Server) {
		s.UL.IdleTimeout = time.Minute
		s.Store = func(_ context.Context, _ *Request, data io.Reader) Status {
			io.Copy(io.Discard, data)
			time.Sleep(1500 * time.Millisecond) // a slow archive
			return Status{Code: StatusSuccess}
		}
	})
	cl, err := Dial(context.Background(), addr, dialOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.a.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	data := instance("1.2.3.12")
	start := time.Now()
	_, err = cl.Store(ctx, ctImage, "1.2.3.12", dicom.ExplicitVRLittleEndianUID, &cancellingReader{r: bytes.NewReader(data), at: len(data) / 2, cancel: cancel})
	if el := time.Since(start); el > time.Second {
		t.Fatalf("Store returned %v after %v, although its context was cancelled mid-transfer", err, el)
	}
	if err == nil {
		t.Fatal("Store succeeded with a cancelled context")
	}
}
