package scan

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"iter"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dicomshield/dicomshield/internal/dimse"
	"github.com/dicomshield/dicomshield/internal/ul"
)

// Defaults of Options. Each is the value a zero field selects.
const (
	// DefaultConcurrency is how many services are probed at once. It
	// bounds in-flight work, not the load on any host (PerHost does) or
	// on the network (Rate does). Large ranges are mostly dead or
	// filtered addresses, each of which holds a probe for the whole
	// connect timeout (3 s): at 300 connections a second that is 900
	// probes under way, and with fewer the rate could never be reached
	// (the former 128 allowed 43 addresses a second). Clamped to the
	// open-file limit (see maxProbes).
	DefaultConcurrency = 1024
	// DefaultPerHost is how many probes run against one host at once: a
	// device on a clinic network must never see a flood from a scan, and
	// two lets the ports of a host proceed side by side.
	DefaultPerHost = 2
	// DefaultRate is the new connections per second across the scan:
	// polite for clinic firewalls and IDSs (a /24 on five ports takes
	// seconds), and raised with --rate on networks one owns.
	DefaultRate = 300
	// DefaultConnectTimeout bounds a TCP connect and TLS handshake. A live
	// host answers a SYN in well under a second even across continents;
	// a dead or filtered one costs exactly this.
	DefaultConnectTimeout = 3 * time.Second
	// DefaultAssociateTimeout bounds the wait for A-ASSOCIATE-AC/RJ: real
	// peers answer in milliseconds, slow embedded devices in a second or
	// two; a peer that stalls costs no more.
	DefaultAssociateTimeout = 10 * time.Second
	// DefaultDIMSETimeout bounds each DIMSE exchange (C-ECHO, the query
	// and retrieve probes) from request to final response, and each
	// silence in between: a peer that stalls or floods costs this once.
	DefaultDIMSETimeout = 10 * time.Second
	// DefaultReleaseTimeout bounds the wait for A-RELEASE-RP: the scanner
	// releases properly but does not wait long for a peer that does not.
	DefaultReleaseTimeout = 3 * time.Second
	// DefaultMaxAttempts bounds the association ladder: one random pair of
	// titles, then every title of the shipped wordlist. A device sees at
	// most this many associations (plus one retry) from one scan.
	DefaultMaxAttempts = 20
	// transientPause is the wait before retrying after a transient
	// rejection (congestion): long enough for a busy device to free a slot.
	transientPause = time.Second
)

// DefaultTLSFirstPorts are tried with TLS before plain DICOM: 2762 is the
// registered dicom-tls port (PS3.15 B.12).
var DefaultTLSFirstPorts = []int{2762}

// Options configure a Scanner. The zero Options scan with every default.
type Options struct {
	Concurrency int     // services probed at once; 0: DefaultConcurrency; at most what the open-file limit allows
	PerHost     int     // probes per host at once; 0: DefaultPerHost
	Rate        float64 // new connections per second; 0: DefaultRate, <0: unlimited

	ConnectTimeout   time.Duration // 0: DefaultConnectTimeout
	AssociateTimeout time.Duration // 0: DefaultAssociateTimeout
	DIMSETimeout     time.Duration // 0: DefaultDIMSETimeout

	// Discovery limits what is done inside a service a stranger got into
	// to what a sweep of a large range needs: the services offered and a
	// C-ECHO, without the query and retrieve probes (query and retrieve
	// are then "unproven" where offered). A full scan of what answered
	// follows it.
	Discovery bool

	// NoRetry turns off the one retry of an attempt that failed after the
	// connection was made (reset, timeout, transient rejection).
	NoRetry bool
	// MaxAttempts bounds the association ladder; 0: DefaultMaxAttempts.
	MaxAttempts int
	// Wordlist is the well-known titles to try; nil: the shipped list.
	Wordlist []Title
	// HTTPPorts are where Orthanc's REST API (GET /system) is looked for
	// on each host with a DICOM service; nil: DefaultHTTPPorts, empty:
	// none.
	HTTPPorts []int
	// TLSFirstPorts are tried with TLS first; nil: DefaultTLSFirstPorts.
	TLSFirstPorts []int

	// FollowUp, when set, is called after the ladder and services probes
	// of a service a stranger got into (auth none or weak), with how the
	// scanner got in; it may open its own associations (--prove,
	// --test-write) and fill in r. It runs in the probe's goroutine, under
	// the same per-host limit, before r is emitted.
	FollowUp func(ctx context.Context, a Access, r *Result)

	// Skip, when set, is asked before each endpoint is probed; an
	// endpoint it accepts is passed over (one a resumed scan finished).
	Skip func(Endpoint) bool
	// Finished, when set, is called for each endpoint whose probe ran to
	// its end (not cut short by ctx), whether or not anything answered
	// there, after its result was emitted: what a resumed scan need not
	// probe again. It is called from one goroutine at a time, as emit is.
	Finished func(Endpoint)
	// DropInterrupted leaves out the results of probes that ctx cut
	// short, instead of emitting them with Error saying so: a resumed
	// scan probes them again and emits them once, complete.
	DropInterrupted bool

	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// Sockets a probe holds at most (its association and the host's HTTP
// lookup), and the files kept back for everything else (outputs, the
// resume state, the runtime).
const (
	socketsPerProbe = 2
	reservedFiles   = 64
)

// maxProbes is how many probes the open-file limit allows at once: a
// probe that could not open its socket would report a live service as
// silent. 0 (unknown) allows any number.
func maxProbes(fileLimit uint64) int {
	if fileLimit == 0 || fileLimit > 1<<20 {
		return 1 << 20
	}
	return max(1, (int(fileLimit)-reservedFiles)/socketsPerProbe)
}

// Scanner probes DICOM services. It is safe for one Run at a time.
type Scanner struct {
	o     Options
	limit *rateLimiter
	hosts *hostLimiter
	http  *httpCache
}

// New returns a Scanner for o.
func New(o Options) *Scanner {
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	o.Concurrency = min(o.Concurrency, maxProbes(openFileLimit()))
	if o.PerHost <= 0 {
		o.PerHost = DefaultPerHost
	}
	if o.Rate == 0 {
		o.Rate = DefaultRate
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.AssociateTimeout <= 0 {
		o.AssociateTimeout = DefaultAssociateTimeout
	}
	if o.DIMSETimeout <= 0 {
		o.DIMSETimeout = DefaultDIMSETimeout
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.Wordlist == nil {
		o.Wordlist = Wordlist()
	}
	if o.HTTPPorts == nil {
		o.HTTPPorts = DefaultHTTPPorts
	}
	if o.TLSFirstPorts == nil {
		o.TLSFirstPorts = DefaultTLSFirstPorts
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Scanner{o: o, limit: newRateLimiter(o.Rate), hosts: newHostLimiter(o.PerHost), http: newHTTPCache(o.ConnectTimeout)}
}

// Run probes every endpoint and calls emit with the result of each one
// that speaks DICOM or TLS (closed and silent ports yield nothing). emit is
// called from one goroutine at a time. When ctx ends, no new probe starts,
// the probes under way stop at their next step, and what they found is
// emitted with Error saying they were interrupted; Run then returns
// ctx.Err().
func (s *Scanner) Run(ctx context.Context, endpoints iter.Seq[Endpoint], emit func(*Result)) error {
	work := make(chan Endpoint)
	var emitMu sync.Mutex
	var wg sync.WaitGroup
	for range s.o.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ep := range work {
				r, complete := s.probe(ctx, ep)
				if r == nil && (!complete || s.o.Finished == nil) {
					continue
				}
				emitMu.Lock()
				if r != nil && (complete || !s.o.DropInterrupted) {
					emit(r)
				}
				if complete && s.o.Finished != nil {
					s.o.Finished(ep)
				}
				emitMu.Unlock()
			}
		}()
	}
feed:
	for ep := range endpoints {
		if s.o.Skip != nil && s.o.Skip(ep) {
			continue
		}
		select {
		case work <- ep:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	return ctx.Err()
}

// Probe examines one service and returns what it found, or nil when
// nothing answered there (connection refused or timed out, or a service
// that is neither DICOM nor TLS).
func (s *Scanner) Probe(ctx context.Context, ep Endpoint) *Result {
	r, _ := s.probe(ctx, ep)
	return r
}

// probe is Probe, and reports whether the probe ran to its end: false
// when ctx ended before it did (its result, if any, says so).
func (s *Scanner) probe(ctx context.Context, ep Endpoint) (_ *Result, complete bool) {
	if err := s.hosts.acquire(ctx, ep.Addr); err != nil {
		return nil, false
	}
	defer s.hosts.release(ep.Addr)
	r := &Result{Host: ep.Addr.String(), Port: ep.Port, Time: s.o.Now().UTC(), Auth: AuthUnknown,
		Exposure: Exposure{Query: ExposureClosed, Retrieve: ExposureClosed, Store: ExposureClosed}}
	p := &probe{s: s, ep: ep, r: r}
	order := []bool{false, true}
	if slices.Contains(s.o.TLSFirstPorts, ep.Port) {
		order = []bool{true, false}
	}
	for i, useTLS := range order {
		tcp := p.run(ctx, useTLS)
		if !tcp && i == 0 {
			// Nothing listens (or the host is dead): the connect timeout
			// was the whole cost. Or ctx ended before the connect did.
			return nil, ctx.Err() == nil
		}
		if r.DICOM || r.TLS.ClientCertRequired || ctx.Err() != nil {
			break
		}
	}
	if !r.DICOM && !r.TLS.ClientCertRequired {
		return nil, ctx.Err() == nil
	}
	s.identify(ctx, p)
	complete = ctx.Err() == nil
	if !complete && r.Error == "" {
		r.Error = "scan interrupted before this service was finished"
	}
	classify(r)
	return r, complete
}

// probe is the state of one service's examination.
type probe struct {
	s  *Scanner
	ep Endpoint
	r  *Result

	tlsOn    bool
	attempts int
}

// tlsCapture records what the TLS handshake showed, whether or not the
// association then succeeds.
type tlsCapture struct {
	mu            sync.Mutex
	state         *tls.ConnectionState
	certRequested bool
}

// scanTLS is the client TLS configuration of a probe: the server is
// inspected, not trusted (its chain is recorded), old versions are allowed
// so that they can be reported, and no client certificate is offered.
func scanTLS(capture *tlsCapture) *tls.Config {
	c := &tls.Config{
		InsecureSkipVerify: true, // #nosec: the scanner reports the chain, it does not trust it
		MinVersion:         tls.VersionTLS10,
	}
	if capture != nil {
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			capture.mu.Lock()
			capture.state = &cs
			capture.mu.Unlock()
			return nil
		}
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			capture.mu.Lock()
			capture.certRequested = true
			capture.mu.Unlock()
			return &tls.Certificate{}, nil
		}
	}
	return c
}

// outcome is what one association attempt gave.
type outcome struct {
	cl    *dimse.Client
	rj    *ul.AssociateRJ
	abort bool
	dicom bool // the peer answered with a DICOM PDU
	tcp   bool // the connection was made
	err   error
}

// attempt opens one association with the services proposals.
func (p *probe) attempt(ctx context.Context, useTLS bool, calling, called string) outcome {
	if err := p.s.limit.wait(ctx); err != nil {
		return outcome{err: err}
	}
	var capture *tlsCapture
	o := &dimse.DialOptions{CallingAE: calling, CalledAE: called, Contexts: proposals(),
		ConnectTimeout: p.s.o.ConnectTimeout,
		UL:             ul.Config{AssociateTimeout: p.s.o.AssociateTimeout, IdleTimeout: p.s.o.DIMSETimeout, CloseTimeout: min(DefaultReleaseTimeout, p.s.o.DIMSETimeout)}}
	if useTLS {
		capture = &tlsCapture{}
		o.TLS = scanTLS(capture)
	}
	cl, err := dimse.Dial(ctx, p.ep.String(), o)
	out := outcome{cl: cl, err: err, tcp: true, dicom: err == nil}
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			out.tcp = false
		}
		var rj *ul.RejectedError
		var ab *ul.AbortError
		switch {
		case errors.As(err, &rj):
			out.rj, out.dicom = &rj.RJ, true
		case errors.As(err, &ab):
			out.abort, out.dicom = true, true
		}
	}
	if capture != nil {
		capture.mu.Lock()
		st, req := capture.state, capture.certRequested
		capture.mu.Unlock()
		if cl != nil {
			if tc, ok := cl.Association().Conn().(*tls.Conn); ok {
				cs := tc.ConnectionState()
				st = &cs
			}
		}
		if st != nil {
			p.r.TLS = tlsInfo(st)
			p.r.TLS.Enabled = true
			if req && !out.dicom && err != nil {
				// The server asked for a certificate, got none, and ended
				// the connection: a client certificate is required.
				p.r.TLS.ClientCertRequired = true
			}
		}
	}
	return out
}

// attemptRetry is attempt with the one retry: after a failure once the
// connection was made (not an answer), or a transient rejection.
func (p *probe) attemptRetry(ctx context.Context, useTLS bool, calling, called string) outcome {
	out := p.attempt(ctx, useTLS, calling, called)
	p.attempts++
	if p.s.o.NoRetry || ctx.Err() != nil || p.r.TLS.ClientCertRequired {
		return out
	}
	transient := out.rj != nil && out.rj.Result == ul.RejectTransient
	// A peer that answered with something other than DICOM (a protocol
	// error) would answer the same again: only silence, resets and
	// transient rejections are retried.
	if (out.tcp && !out.dicom && !errors.Is(out.err, ul.ErrProtocol)) || transient {
		if transient {
			select {
			case <-time.After(transientPause):
			case <-ctx.Done():
				return out
			}
		}
		out = p.attempt(ctx, useTLS, calling, called)
		p.attempts++
	}
	return out
}

// record adds an attempt to the ladder of the result.
func (p *probe) record(calling, called string, out outcome) {
	a := Attempt{Calling: calling, Called: called}
	switch {
	case out.cl != nil:
		a.Outcome = "accepted"
	case out.rj != nil:
		a.Outcome = "rejected"
		a.Reject = &Reject{Result: int(out.rj.Result), Source: int(out.rj.Source), Reason: int(out.rj.Reason), Text: RejectText(out.rj)}
	case out.abort:
		a.Outcome = "aborted"
		a.Detail = "the peer answered with A-ABORT"
	default:
		a.Outcome = "error"
		if out.err != nil {
			a.Detail = errorText(out.err)
		}
	}
	p.r.Attempts = append(p.r.Attempts, a)
}

// run climbs the association ladder over one transport and, once in,
// probes the services. It reports whether a connection was made at all.
func (p *probe) run(ctx context.Context, useTLS bool) bool {
	r := p.r
	p.tlsOn = useTLS
	rc, rd := RandomAETitle(), RandomAETitle()
	first := p.attemptRetry(ctx, useTLS, rc, rd)
	if !first.tcp {
		return false
	}
	if !first.dicom {
		if r.TLS.ClientCertRequired {
			r.Transport = "tls"
			r.Auth = AuthStrong
			r.StoppedBy = StoppedByCertificate
			r.AuthDetail = "TLS service that requires a client certificate: a stranger cannot reach DICOM at all"
		} else if first.err != nil && !useTLS {
			r.Error = "not DICOM over plain TCP: " + errorText(first.err)
		}
		return true
	}
	r.DICOM, r.Error = true, ""
	if len(p.s.o.HTTPPorts) > 0 {
		p.s.http.start(ctx, p.s, p.ep.Addr) // overlaps the ladder; identify waits for it
	}
	r.Transport = "plain"
	if useTLS {
		r.Transport = "tls"
	} else {
		r.TLS = TLSInfo{}
	}
	p.record(rc, rd, first)
	if first.cl != nil {
		r.Auth = AuthNone
		r.AuthDetail = fmt.Sprintf("accepted random calling and called AE titles (%s, %s): no AE title check", rc, rd)
		p.inside(ctx, first.cl, rc, rd)
		return true
	}
	// Climb: default called titles, then common calling titles.
	reasons := map[byte]int{}
	note := func(o outcome) {
		if o.rj != nil && o.rj.Source == ul.SourceServiceUser {
			reasons[o.rj.Reason]++
		} else if o.rj != nil {
			reasons[0]++ // provider rejections: said nothing of AE titles
		} else {
			reasons[0]++
		}
	}
	note(first)
	calledOK := ""
	callingFirst := first.rj != nil && first.rj.Source == ul.SourceServiceUser && first.rj.Reason == ul.ReasonCallingAENotRecognized
	if !callingFirst {
		for _, t := range p.calledCandidates(ctx) {
			if p.attempts >= p.s.o.MaxAttempts || ctx.Err() != nil {
				break
			}
			c := RandomAETitle()
			o := p.attemptRetry(ctx, useTLS, c, t.Title)
			p.record(c, t.Title, o)
			note(o)
			if o.cl != nil {
				r.Auth = AuthWeak
				r.AuthDetail = fmt.Sprintf("refused random AE titles but accepted the well-known called AE title %s (%s)", t.Title, t.Source)
				p.inside(ctx, o.cl, c, t.Title)
				return true
			}
			if o.rj != nil && o.rj.Source == ul.SourceServiceUser && o.rj.Reason == ul.ReasonCallingAENotRecognized {
				calledOK = t.Title
				break
			}
		}
	} else {
		calledOK = rd // the called title passed: it is not checked
	}
	if reasons[ul.ReasonCalledAENotRecognized] == 0 || calledOK != "" {
		called := calledOK
		if called == "" {
			called = RandomAETitle()
		}
		for _, t := range p.s.o.Wordlist {
			if !t.Caller {
				continue
			}
			if p.attempts >= p.s.o.MaxAttempts || ctx.Err() != nil {
				break
			}
			o := p.attemptRetry(ctx, useTLS, t.Title, called)
			p.record(t.Title, called, o)
			note(o)
			if o.cl != nil {
				r.Auth = AuthWeak
				r.AuthDetail = fmt.Sprintf("refused random AE titles but accepted the well-known calling AE title %s (%s)", t.Title, t.Source)
				if calledOK != "" {
					r.AuthDetail += fmt.Sprintf(" with called AE title %s", calledOK)
				}
				p.inside(ctx, o.cl, t.Title, called)
				return true
			}
		}
	}
	p.stopped(reasons, calledOK)
	return true
}

// calledCandidates are the called titles of the ladder: the AE title
// Orthanc's REST API gives away (an attacker reads it too), then the
// wordlist's.
func (p *probe) calledCandidates(ctx context.Context) []Title {
	var out []Title
	if sys := p.s.http.lookup(ctx, p.s, p.ep.Addr, p.ep.Port); sys != nil {
		out = append(out, Title{Title: sys.DicomAet, Called: true, Source: fmt.Sprintf("announced by Orthanc's REST API, GET /system on port %d", sys.HTTPPort)})
	}
	for _, t := range p.s.o.Wordlist {
		if t.Called && !slices.ContainsFunc(out, func(x Title) bool { return x.Title == t.Title }) {
			out = append(out, t)
		}
	}
	return out
}

// Which check stopped a stranger (Result.StoppedBy).
const (
	StoppedByCalledAE    = "called-ae"
	StoppedByCallingAE   = "calling-ae"
	StoppedByAddress     = "address"
	StoppedByCertificate = "certificate"
	StoppedByUnstated    = "unstated"
	StoppedByBusy        = "busy"
)

// stopped classifies a service that accepted no attempt.
func (p *probe) stopped(reasons map[byte]int, calledOK string) {
	r := p.r
	transient := 0
	for _, a := range r.Attempts {
		if a.Reject != nil && a.Reject.Result == int(ul.RejectTransient) {
			transient++
		}
	}
	n := len(r.Attempts)
	switch {
	case p.tlsOn && r.TLS.ClientCertRequired:
		r.Auth, r.StoppedBy = AuthStrong, StoppedByCertificate
		r.AuthDetail = "a client certificate is required"
	case transient == n:
		r.Auth, r.StoppedBy = AuthUnknown, StoppedByBusy
		r.AuthDetail = "every attempt was rejected as transient (busy or over a limit): authorization could not be tested"
	case reasons[ul.ReasonCallingAENotRecognized] > 0:
		r.Auth, r.StoppedBy = AuthStrong, StoppedByCallingAE
		r.AuthDetail = fmt.Sprintf("refused %d attempts: calling AE title not recognized (random and well-known calling titles)", n)
		if calledOK != "" {
			r.AuthDetail += "; the called AE title " + calledOK + " was accepted as such"
		}
	case reasons[ul.ReasonCalledAENotRecognized] == n:
		r.Auth, r.StoppedBy = AuthStrong, StoppedByCalledAE
		r.AuthDetail = fmt.Sprintf("refused %d attempts: called AE title not recognized (random and well-known called titles)", n)
	default:
		r.Auth, r.StoppedBy = AuthStrong, StoppedByUnstated
		r.AuthDetail = fmt.Sprintf("refused %d attempts without naming an AE title check: an address filter or an unstated check", n)
	}
	if r.Auth == AuthStrong && p.tlsOn && !r.TLS.ClientCertRequired {
		r.AuthDetail += " (over TLS, no client certificate required)"
	}
}

// Access returns how a follow-up probe can get in as the same stranger.
func (p *probe) access(calling, called string) Access {
	a := Access{Addr: p.ep.String(), CallingAE: calling, CalledAE: called, Timeout: p.s.o.DIMSETimeout}
	if p.tlsOn {
		a.TLS = scanTLS(nil)
	}
	return a
}

// RandomAETitle returns a fresh random AE title (16 characters from an
// alphabet of 32, 80 bits): no server expects it.
func RandomAETitle() string {
	const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 16)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// RejectText says an A-ASSOCIATE-RJ in words, without "association".
func RejectText(rj *ul.AssociateRJ) string {
	return strings.TrimPrefix(rj.String(), "association ")
}

// errorText is an error for a report: one line, bounded, no peer data
// beyond what our own error messages say.
func errorText(err error) string {
	s := err.Error()
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return strings.ReplaceAll(s, "\n", " ")
}

// rateLimiter spaces new connections evenly.
type rateLimiter struct {
	mu       sync.Mutex
	interval time.Duration
	next     time.Time
}

func newRateLimiter(perSecond float64) *rateLimiter {
	if perSecond <= 0 {
		return &rateLimiter{}
	}
	return &rateLimiter{interval: time.Duration(float64(time.Second) / perSecond)}
}

func (l *rateLimiter) wait(ctx context.Context) error {
	if l.interval == 0 {
		return ctx.Err()
	}
	l.mu.Lock()
	now := time.Now()
	if l.next.Before(now) {
		l.next = now
	}
	at := l.next
	l.next = l.next.Add(l.interval)
	l.mu.Unlock()
	d := time.Until(at)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// hostLimiter allows at most n probes per host at once.
type hostLimiter struct {
	n  int
	mu sync.Mutex
	m  map[netip.Addr]*hostSlot
}

type hostSlot struct {
	sem   chan struct{}
	users int
}

func newHostLimiter(n int) *hostLimiter { return &hostLimiter{n: n, m: map[netip.Addr]*hostSlot{}} }

func (h *hostLimiter) acquire(ctx context.Context, a netip.Addr) error {
	h.mu.Lock()
	s := h.m[a]
	if s == nil {
		s = &hostSlot{sem: make(chan struct{}, h.n)}
		h.m[a] = s
	}
	s.users++
	h.mu.Unlock()
	select {
	case s.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		h.drop(a, s)
		return ctx.Err()
	}
}

func (h *hostLimiter) release(a netip.Addr) {
	h.mu.Lock()
	s := h.m[a]
	h.mu.Unlock()
	<-s.sem
	h.drop(a, s)
}

func (h *hostLimiter) drop(a netip.Addr, s *hostSlot) {
	h.mu.Lock()
	s.users--
	if s.users == 0 {
		delete(h.m, a)
	}
	h.mu.Unlock()
}
