package audit

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Syslog framing (RFC 5424 message, RFC 5425 transport).
const (
	// syslogPRI is facility 10 (security/authorization, what IHE ATNA
	// asks for audit records) and severity 5 (notice): 10*8+5.
	syslogPRI = 85
	// syslogMsgID is the MSGID IHE ATNA gives audit messages of this
	// format.
	syslogMsgID = "IHE+RFC-3881"
	// utf8BOM starts MSG: RFC 5424 6.4 says a UTF-8 MSG begins with it.
	utf8BOM = "\xef\xbb\xbf"
)

// Defaults of the syslog sender; each applies when its field is zero.
const (
	// DefaultSyslogBacklog is how many messages wait for an unreachable
	// collector: a day of a busy clinic's associations at a few hundred
	// bytes to a few KiB each, a few MiB of memory. Every message is in
	// the local log as well, so an overflow loses no record.
	DefaultSyslogBacklog = 10000
	// DefaultDialTimeout bounds connecting and the TLS handshake with the
	// collector: a collector on the LAN answers in milliseconds.
	DefaultDialTimeout = 10 * time.Second
	// DefaultWriteTimeout bounds one write to the collector, so that a
	// collector that stops reading is noticed and the connection made
	// again.
	DefaultWriteTimeout = 10 * time.Second
	// DefaultMinBackoff and DefaultMaxBackoff space the attempts to reach
	// a collector that is down: fast at first, then once every 30 s, so
	// that a long outage costs nothing and a restart is soon noticed.
	DefaultMinBackoff = 200 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
	// syslogBatch is how many queued messages go in one write.
	syslogBatch = 64
)

// SyslogOptions configure a Syslog sender.
type SyslogOptions struct {
	// Addr is the collector's host:port (6514 is the port of syslog over
	// TLS).
	Addr string
	// TLS must verify the collector: RootCAs set, ServerName its name.
	// MinVersion is raised to TLS 1.2 when lower.
	TLS *tls.Config
	// Hostname and AppName fill the RFC 5424 header ("-" when empty).
	Hostname, AppName string
	// ProcID is the PROCID of the header, the process ID by default.
	ProcID string
	// Backlog bounds the messages waiting to be sent; zero means
	// DefaultSyslogBacklog. When it is full new messages are dropped
	// (and counted).
	Backlog int
	// Zero means the default of each.
	DialTimeout, WriteTimeout, MinBackoff, MaxBackoff time.Duration
	// OnError, when set, is told of failures to reach the collector (at
	// most once per outage).
	OnError func(error)
}

// Syslog sends audit messages to a collector over TLS (RFC 5425): each
// message an RFC 5424 record, framed by octet counting. It reconnects
// with backoff and keeps a bounded backlog meanwhile. Send never blocks.
type Syslog struct {
	opts SyslogOptions

	mu      sync.Mutex
	queue   [][]byte
	wake    chan struct{}
	closing chan struct{}
	abort   chan struct{}
	done    chan struct{}
	once    sync.Once

	sent, dropped atomic.Uint64
}

// NewSyslog starts a sender. Close it to flush and stop.
func NewSyslog(opts SyslogOptions) (*Syslog, error) {
	if opts.Addr == "" {
		return nil, errors.New("audit: syslog: no collector address")
	}
	if opts.TLS == nil {
		return nil, errors.New("audit: syslog: TLS configuration required")
	}
	tc := opts.TLS.Clone()
	if tc.MinVersion < tls.VersionTLS12 {
		tc.MinVersion = tls.VersionTLS12
	}
	if tc.ServerName == "" && !tc.InsecureSkipVerify {
		host, _, err := net.SplitHostPort(opts.Addr)
		if err != nil {
			return nil, fmt.Errorf("audit: syslog: %w", err)
		}
		tc.ServerName = host
	}
	opts.TLS = tc
	if opts.Backlog <= 0 {
		opts.Backlog = DefaultSyslogBacklog
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = DefaultDialTimeout
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	if opts.ProcID == "" {
		opts.ProcID = strconv.Itoa(osPid())
	}
	s := &Syslog{opts: opts, wake: make(chan struct{}, 1), closing: make(chan struct{}),
		abort: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	return s, nil
}

// Frame returns msg as an RFC 5424 record framed for RFC 5425:
// "LEN SP <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - BOM MSG".
func Frame(t time.Time, hostname, appName, procID string, msg []byte) []byte {
	rec := make([]byte, 0, len(msg)+128)
	rec = fmt.Appendf(rec, "<%d>1 %s %s %s %s %s - %s", syslogPRI, t.UTC().Format("2006-01-02T15:04:05.000000Z"),
		headerField(hostname, 255), headerField(appName, 48), headerField(procID, 128), syslogMsgID, utf8BOM)
	rec = append(rec, msg...)
	out := strconv.AppendInt(make([]byte, 0, len(rec)+8), int64(len(rec)), 10)
	out = append(out, ' ')
	return append(out, rec...)
}

// headerField makes s a valid RFC 5424 header field: printable US-ASCII
// without spaces, at most max characters, "-" when empty.
func headerField(s string, max int) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s) && len(b) < max; i++ {
		if c := s[i]; c > 32 && c < 127 {
			b = append(b, c)
		}
	}
	if len(b) == 0 {
		return "-"
	}
	return string(b)
}

// Send queues a framed record; it drops it, counted, when the backlog is
// full or the sender is closing.
func (s *Syslog) Send(record []byte) {
	s.mu.Lock()
	select {
	case <-s.closing:
		s.mu.Unlock()
		s.dropped.Add(1)
		return
	default:
	}
	if len(s.queue) >= s.opts.Backlog {
		s.mu.Unlock()
		s.dropped.Add(1)
		return
	}
	s.queue = append(s.queue, record)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Sent and Dropped count the records delivered to the connection and
// those dropped.
func (s *Syslog) Sent() uint64    { return s.sent.Load() }
func (s *Syslog) Dropped() uint64 { return s.dropped.Load() }

// Pending returns how many records wait to be sent.
func (s *Syslog) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

// Close stops taking records and sends what is queued until ctx ends;
// what is left then is dropped and the connection closed.
func (s *Syslog) Close(ctx context.Context) error {
	s.once.Do(func() {
		s.mu.Lock()
		close(s.closing)
		s.mu.Unlock()
	})
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
	}
	select {
	case <-s.abort:
	default:
		close(s.abort)
	}
	<-s.done
	return ctx.Err()
}

func (s *Syslog) run() {
	defer close(s.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.abort:
			cancel()
		case <-s.done:
		}
	}()
	var conn net.Conn
	var dead chan struct{} // closed when the collector closes conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
		s.mu.Lock()
		s.dropped.Add(uint64(len(s.queue)))
		s.queue = nil
		s.mu.Unlock()
	}()
	backoff := s.opts.MinBackoff
	reported := false
	for {
		s.mu.Lock()
		batch := s.queue[:min(len(s.queue), syslogBatch)]
		s.mu.Unlock()
		if len(batch) == 0 {
			select {
			case <-s.wake:
				continue
			case <-dead:
				conn.Close()
				conn, dead = nil, nil
				if s.opts.OnError != nil {
					s.opts.OnError(fmt.Errorf("audit: syslog collector %s closed the connection", s.opts.Addr))
				}
				continue
			case <-s.closing:
				return
			case <-s.abort:
				return
			}
		}
		if conn == nil {
			c, err := s.dial(ctx)
			if err != nil {
				if !reported && s.opts.OnError != nil && ctx.Err() == nil {
					s.opts.OnError(fmt.Errorf("audit: syslog collector %s: %w", s.opts.Addr, err))
				}
				reported = true
				t := time.NewTimer(backoff)
				select {
				case <-t.C:
				case <-s.abort:
					t.Stop()
					return
				}
				backoff = min(2*backoff, s.opts.MaxBackoff)
				continue
			}
			conn, backoff, reported = c, s.opts.MinBackoff, false
			dead = watchClose(c)
		}
		select {
		case <-dead:
			// The collector closed the connection (a restart, say): a
			// write would still succeed locally and the records be lost,
			// so connect again first.
			conn.Close()
			conn, dead = nil, nil
			if s.opts.OnError != nil && !reported {
				s.opts.OnError(fmt.Errorf("audit: syslog collector %s closed the connection", s.opts.Addr))
				reported = true
			}
			continue
		default:
		}
		var buf []byte
		for _, r := range batch {
			buf = append(buf, r...)
		}
		conn.SetWriteDeadline(time.Now().Add(s.opts.WriteTimeout))
		if _, err := conn.Write(buf); err != nil {
			// The batch is kept and written again on the next
			// connection: the collector may see part of it twice,
			// rather than not at all.
			conn.Close()
			conn, dead = nil, nil
			if s.opts.OnError != nil && !reported {
				s.opts.OnError(fmt.Errorf("audit: syslog collector %s: %w", s.opts.Addr, err))
				reported = true
			}
			continue
		}
		s.mu.Lock()
		s.queue = s.queue[len(batch):]
		if len(s.queue) == 0 {
			s.queue = nil
		}
		s.mu.Unlock()
		s.sent.Add(uint64(len(batch)))
	}
}

// watchClose reads from c, on which a collector never sends anything,
// and closes the returned channel when the read ends: the collector
// closed the connection, or we did.
func watchClose(c net.Conn) chan struct{} {
	dead := make(chan struct{})
	go func() {
		var b [1]byte
		for {
			if _, err := c.Read(b[:]); err != nil {
				close(dead)
				return
			}
		}
	}()
	return dead
}

func (s *Syslog) dial(ctx context.Context) (net.Conn, error) {
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: s.opts.DialTimeout}, Config: s.opts.TLS}
	dctx, cancel := context.WithTimeout(ctx, s.opts.DialTimeout)
	defer cancel()
	return d.DialContext(dctx, "tcp", s.opts.Addr)
}
