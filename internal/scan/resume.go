package scan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"
)

// DefaultResumeSync is how often a resume state is flushed to stable
// storage (fsync) while a scan runs: a power cut loses at most this much
// of the record of finished endpoints, which a resumed scan then probes
// again; a crash of the scanner alone loses nothing (every entry is
// written as it comes).
const DefaultResumeSync = time.Second

// resumeMagic names the format of a resume state file (its first line).
const resumeMagic = "dicomshield-scan-state"

// ErrResumeMismatch is returned when a resume state was written by a scan
// of other targets, ports or exclusions.
var ErrResumeMismatch = errors.New("scan: the resume state is of a different scan")

// resumeHeader is the first line of a state file: what was scanned.
type resumeHeader struct {
	Format  string   `json:"format"`
	Version int      `json:"version"`
	Targets []string `json:"targets"`
	Exclude []string `json:"exclude"`
	Ports   []int    `json:"ports"`
}

// ResumeState records which endpoints of a scan are finished, so that an
// interrupted scan can be run again and probe only what is left. The file
// is a header line (the targets, exclusions and ports) followed by one
// line per finished endpoint (host:port), appended as each finishes and
// flushed to stable storage every DefaultResumeSync and on Close. The
// finished endpoints are held in memory (tens of bytes each: a /16 on five
// ports, 327,680 endpoints, is some 20 MB; scan a /8 as /16s).
type ResumeState struct {
	// SyncFirst are files flushed to stable storage before each flush of
	// the state (the results the finished entries stand for), so that
	// after a power cut no endpoint is recorded finished whose result was
	// lost.
	SyncFirst []*os.File

	mu       sync.Mutex
	f        *os.File
	done     map[netip.AddrPort]struct{}
	lastSync time.Time
	err      error // the first write or sync error
	buf      []byte
}

// OpenResume opens the state file at path for a scan of set: it is
// created when missing, and read when present (resumed reports so). A
// state of a different scan (other targets, exclusions or ports) is
// refused with ErrResumeMismatch unless force is set; then its finished
// endpoints are still skipped wherever they fall in the new scan.
func OpenResume(path string, set *TargetSet, force bool) (_ *ResumeState, resumed bool, _ error) {
	h := headerOf(set)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, false, err
	}
	s := &ResumeState{f: f, done: map[netip.AddrPort]struct{}{}, lastSync: time.Now()}
	fail := func(err error) (*ResumeState, bool, error) {
		f.Close()
		return nil, false, err
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return fail(err)
	}
	if len(data) == 0 {
		line, _ := json.Marshal(h)
		if _, err := f.Write(append(line, '\n')); err != nil {
			return fail(err)
		}
		if err := f.Sync(); err != nil {
			return fail(err)
		}
		return s, false, nil
	}
	// A line cut short by a crash is dropped (and cut off the file, so
	// that the next entry starts a line of its own): its endpoint is
	// probed again.
	if i := bytes.LastIndexByte(data, '\n'); i < len(data)-1 {
		data = data[:i+1]
		if err := f.Truncate(int64(len(data))); err != nil {
			return fail(err)
		}
	}
	first, rest, ok := bytes.Cut(data, []byte{'\n'})
	var old resumeHeader
	if !ok || json.Unmarshal(first, &old) != nil || old.Format != resumeMagic {
		return fail(fmt.Errorf("scan: %s is not a scan resume state", path))
	}
	if old.Version != 1 {
		return fail(fmt.Errorf("scan: %s: resume state version %d (this scanner writes version 1)", path, old.Version))
	}
	if !force && !sameScan(old, h) {
		return fail(fmt.Errorf("%w: %s was written for targets %v, exclusions %v, ports %v; this scan has targets %v, exclusions %v, ports %v",
			ErrResumeMismatch, path, old.Targets, old.Exclude, old.Ports, h.Targets, h.Exclude, h.Ports))
	}
	for n := 2; len(rest) > 0; n++ {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte{'\n'})
		ap, err := netip.ParseAddrPort(string(line))
		if err != nil {
			return fail(fmt.Errorf("scan: %s line %d: not host:port", path, n))
		}
		s.done[ap] = struct{}{}
	}
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		return fail(err)
	}
	return s, true, nil
}

func sameScan(a, b resumeHeader) bool {
	return slices.Equal(a.Targets, b.Targets) && slices.Equal(a.Exclude, b.Exclude) && slices.Equal(a.Ports, b.Ports)
}

// headerOf describes the scan of set.
func headerOf(set *TargetSet) resumeHeader {
	h := resumeHeader{Format: resumeMagic, Version: 1, Targets: []string{}, Exclude: []string{}, Ports: set.Ports}
	for _, t := range set.Targets {
		h.Targets = append(h.Targets, t.String())
	}
	for _, t := range set.Exclude {
		h.Exclude = append(h.Exclude, t.String())
	}
	if h.Ports == nil {
		h.Ports = []int{}
	}
	return h
}

// String is the target as ParseTarget reads it: an address, first-last,
// or a name, with :port when it has one.
func (t Target) String() string {
	s := t.Name
	if s == "" {
		s = t.First.String()
		if t.End != t.First {
			s += "-" + t.End.String()
		}
	}
	if t.Port != 0 {
		if t.Name == "" && t.First.Is6() && t.First == t.End {
			return "[" + s + "]:" + strconv.Itoa(t.Port)
		}
		s += ":" + strconv.Itoa(t.Port)
	}
	return s
}

// Finished returns how many endpoints the state records as finished.
func (s *ResumeState) Finished() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.done)
}

// Done reports whether ep was finished (by this run or an earlier one).
func (s *ResumeState) Done(ep Endpoint) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.done[netip.AddrPortFrom(ep.Addr, uint16(ep.Port))]
	return ok
}

// Add records ep as finished: one line written at once, flushed to
// stable storage when DefaultResumeSync has passed since the last flush.
// After a failed write or flush, Add does nothing and Close reports it.
func (s *ResumeState) Add(ep Endpoint) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ap := netip.AddrPortFrom(ep.Addr, uint16(ep.Port))
	if _, ok := s.done[ap]; ok || s.err != nil {
		return
	}
	s.done[ap] = struct{}{}
	s.buf = append(ap.AppendTo(s.buf[:0]), '\n')
	if _, err := s.f.Write(s.buf); err != nil {
		s.err = err
		return
	}
	if time.Since(s.lastSync) >= DefaultResumeSync {
		s.syncLocked()
	}
}

func (s *ResumeState) syncLocked() {
	s.lastSync = time.Now()
	for _, f := range s.SyncFirst {
		if err := f.Sync(); err != nil && s.err == nil {
			s.err = err
		}
	}
	if err := s.f.Sync(); err != nil && s.err == nil {
		s.err = err
	}
}

// Close flushes the state to stable storage and closes it; it returns
// the first error of any write or flush.
func (s *ResumeState) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.syncLocked()
	if err := s.f.Close(); err != nil && s.err == nil {
		s.err = err
	}
	if s.err != nil {
		return fmt.Errorf("scan: resume state: %w", s.err)
	}
	return nil
}

// Options sets o to record finished endpoints in s, skip those already
// finished, and leave out results that an interruption cut short (a
// resumed scan probes them again).
func (s *ResumeState) Options(o *Options) {
	o.Skip = s.Done
	o.Finished = s.Add
	o.DropInterrupted = true
}
