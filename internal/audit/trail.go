package audit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of the trail; each applies when its field is zero.
const (
	// DefaultQueueSize is how many events wait to be written. Writing is
	// one buffered write and one fsync per batch, far faster than events
	// arrive, so the queue only fills when the disk stalls; 10000 events
	// are a few MiB.
	DefaultQueueSize = 10000
	// maxBatch bounds the events written (and synced) together.
	maxBatch = 512
)

// Options configure a Trail.
type Options struct {
	// Path is the local log (LogPath of the data directory). Required.
	Path string
	// Source identifies this dicomshield in the messages.
	Source Source
	// QueueSize bounds the events waiting to be written; zero means
	// DefaultQueueSize. Events past it are dropped, counted, and an
	// "audit-events-dropped" security alert is recorded in their place.
	QueueSize int
	// Syslog, when set, also sends every message to a collector.
	Syslog *SyslogOptions
	// OnError, when set, is told when the local log cannot be written
	// and when the collector cannot be reached.
	OnError func(error)
}

// Trail is the Recorder the archive uses: it never blocks the caller.
// Events go through a bounded queue to one writer that appends them to
// the local log, syncing once per batch, and hands them to the syslog
// sender, if any.
type Trail struct {
	opts   Options
	file   *os.File
	tail   chainTail // the end of the log as this trail last wrote it
	syslog *Syslog
	host   string

	mu     sync.RWMutex
	closed bool
	queue  chan Event
	done   chan struct{}

	written, dropped, failed atomic.Uint64
}

// NewTrail opens the local log and starts the writer (and the syslog
// sender). Close it to drain the queue and stop.
func NewTrail(opts Options) (*Trail, error) {
	t, err := newTrail(opts)
	if err != nil {
		return nil, err
	}
	go t.run()
	return t, nil
}

// newTrail makes a trail whose writer is not started yet.
func newTrail(opts Options) (*Trail, error) {
	if opts.Path == "" {
		return nil, errors.New("audit: no log path")
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	host, _ := os.Hostname()
	if opts.Source.ID == "" {
		opts.Source.ID = host
	}
	f, err := OpenLog(opts.Path)
	if err != nil {
		return nil, err
	}
	t := &Trail{opts: opts, file: f, tail: chainTail{invalid: true}, host: host, queue: make(chan Event, opts.QueueSize), done: make(chan struct{})}
	if opts.Syslog != nil {
		so := *opts.Syslog
		if so.Hostname == "" {
			so.Hostname = host
		}
		if so.OnError == nil {
			so.OnError = opts.OnError
		}
		if t.syslog, err = NewSyslog(so); err != nil {
			f.Close()
			return nil, err
		}
	}
	return t, nil
}

// Record queues ev without waiting: when the queue is full (or the trail
// closed) the event is dropped and counted.
func (t *Trail) Record(ev Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.closed {
		t.dropped.Add(1)
		return
	}
	select {
	case t.queue <- ev:
	default:
		t.dropped.Add(1)
	}
}

// Stats counts what the trail did.
type Stats struct {
	Written       uint64 // records appended to the local log
	Dropped       uint64 // events lost because the queue was full
	Failed        uint64 // records that could not be written to the local log
	SyslogSent    uint64
	SyslogDropped uint64
	SyslogPending int
}

// Stats returns the trail's counters.
func (t *Trail) Stats() Stats {
	s := Stats{Written: t.written.Load(), Dropped: t.dropped.Load(), Failed: t.failed.Load()}
	if t.syslog != nil {
		s.SyslogSent, s.SyslogDropped, s.SyslogPending = t.syslog.Sent(), t.syslog.Dropped(), t.syslog.Pending()
	}
	return s
}

// Close stops taking events, writes those queued, then lets the syslog
// sender deliver its backlog until ctx ends.
func (t *Trail) Close(ctx context.Context) error {
	t.mu.Lock()
	if !t.closed {
		t.closed = true
		close(t.queue)
	}
	t.mu.Unlock()
	<-t.done
	var err error
	if t.syslog != nil {
		err = t.syslog.Close(ctx)
	}
	if cerr := t.file.Close(); err == nil {
		err = cerr
	}
	return err
}

func (t *Trail) run() {
	defer close(t.done)
	var alerted, syslogAlerted uint64
	batch := make([]Event, 0, maxBatch)
	for ev := range t.queue {
		batch = append(batch[:0], ev)
	fill:
		for len(batch) < maxBatch {
			select {
			case e, ok := <-t.queue:
				if !ok {
					break fill
				}
				batch = append(batch, e)
			default:
				break fill
			}
		}
		// Events lost since the last alert are reported first, by
		// an alert of their own (which the queue cannot drop).
		if d := t.dropped.Load(); d > alerted {
			batch = append([]Event{dropAlert(d-alerted, "the audit queue was full")}, batch...)
			alerted = d
		}
		if t.syslog != nil {
			if d := t.syslog.Dropped(); d > syslogAlerted {
				// Told only to the local log: the collector's backlog is
				// what overflowed.
				t.write([]Event{dropAlert(d-syslogAlerted, "the syslog backlog was full; the records are in the local log")}, false)
				syslogAlerted = d
			}
		}
		t.write(batch, true)
	}
}

func dropAlert(n uint64, why string) Event {
	return Event{Time: time.Now(), Kind: SecurityAlert, Outcome: SeriousFailure, Alert: "audit-events-dropped",
		Description: fmt.Sprintf("%d audit event(s) were not recorded: %s", n, why)}
}

// write appends the batch to the local log in one write, chained to the
// records before it, syncs it, and forwards each record to the collector.
func (t *Trail) write(batch []Event, forward bool) {
	entries := make([]Entry, 0, len(batch))
	var msgs [][]byte
	for _, ev := range batch {
		e, err := NewEntry(ev, t.opts.Source)
		if err != nil {
			t.failed.Add(1)
			t.report(fmt.Errorf("audit: encoding a %s event: %w", ev.Kind, err))
			continue
		}
		entries = append(entries, e)
		if forward && t.syslog != nil {
			msgs = append(msgs, Frame(ev.Time, t.syslog.opts.Hostname, t.syslog.opts.AppName, t.syslog.opts.ProcID, []byte(e.XML)))
		}
	}
	if len(entries) > 0 {
		n := uint64(len(entries))
		if _, err := appendChained(t.file, t.opts.Path, entries, &t.tail); err != nil {
			t.failed.Add(n)
			t.report(err)
		} else if err := t.file.Sync(); err != nil {
			t.failed.Add(n)
			t.report(fmt.Errorf("audit: syncing the local log: %w", err))
		} else {
			t.written.Add(n)
		}
	}
	for _, m := range msgs {
		t.syslog.Send(m)
	}
}

func (t *Trail) report(err error) {
	if t.opts.OnError != nil {
		t.opts.OnError(err)
	}
}

func osPid() int { return os.Getpid() }
