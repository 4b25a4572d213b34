package audit

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// LogDir and LogFile place the local log inside the data directory.
const (
	LogDir  = "audit"
	LogFile = "audit.log"
)

// LogPath returns where the local audit log of the data directory dataDir
// lives.
func LogPath(dataDir string) string { return filepath.Join(dataDir, LogDir, LogFile) }

// MaxRecordSize bounds one record of the local log when it is read back:
// a record is a few KiB, its query identifier included (MaxQuerySize).
const MaxRecordSize = 1 << 20

// MaxQuerySize bounds the C-FIND identifier a message carries: a real
// identifier is well under 1 KiB, and a larger one is cut off, so that a
// hostile query cannot swell every record and syslog message.
const MaxQuerySize = 16 << 10

// Entry is one record of the local log: the event's fields for reading
// and filtering, and the audit message as sent to the collector.
type Entry struct {
	// Seq and Prev chain the record to the line before it (chain.go);
	// zero in records written before the log was chained.
	Seq         int64          `json:"seq,omitempty"`
	Time        time.Time      `json:"time"`
	Kind        Kind           `json:"kind"`
	Outcome     Outcome        `json:"outcome"`
	Alert       string         `json:"alert,omitempty"`
	Description string         `json:"description,omitempty"`
	User        string         `json:"user,omitempty"`
	Peer        string         `json:"peer,omitempty"`
	CallingAE   string         `json:"calling_ae,omitempty"`
	CalledAE    string         `json:"called_ae,omitempty"`
	Remote      string         `json:"remote,omitempty"`
	Destination string         `json:"destination,omitempty"`
	Object      string         `json:"object,omitempty"`
	SOPClasses  []string       `json:"sop_classes,omitempty"`
	Studies     []string       `json:"studies,omitempty"`
	Patients    []string       `json:"patients,omitempty"`
	Instances   int            `json:"instances,omitempty"`
	PerClass    map[string]int `json:"per_class,omitempty"`
	XML         string         `json:"xml"`
	Prev        string         `json:"prev,omitempty"`
}

// NewEntry encodes ev (its Time set) as a record of the local log.
func NewEntry(ev Event, src Source) (Entry, error) {
	if len(ev.Query) > MaxQuerySize {
		ev.Query = ev.Query[:MaxQuerySize]
	}
	x, err := Marshal(ev, src)
	if err != nil {
		return Entry{}, err
	}
	return Entry{Time: ev.Time.UTC(), Kind: ev.Kind, Outcome: ev.Outcome, Alert: ev.Alert, Description: ev.Description,
		User: ev.User, Peer: ev.Peer, CallingAE: ev.CallingAE, CalledAE: ev.CalledAE, Remote: ev.Remote,
		Destination: ev.Destination, Object: ev.Object, SOPClasses: ev.SOPClasses, Studies: ev.Studies,
		Patients: ev.Patients, Instances: ev.Instances, PerClass: ev.PerClass, XML: string(x)}, nil
}

// OpenLog opens the local log at path for appending (and for reading its
// last line, to chain to it), creating it (0600, in a 0700 directory) if
// needed. Every write goes to the end of the
// file (O_APPEND), whatever other process appends to it meanwhile, so
// records are never overwritten; each record is written with a single
// write, so records from two processes do not interleave.
func OpenLog(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return f, nil
}

// Append records ev in the local log at path at once and durably (the
// file is synced before it returns), chained to the record before it. It
// is for commands that run without the server, such as peer registration.
func Append(path string, src Source, ev Event) error {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	e, err := NewEntry(ev, src)
	if err != nil {
		return err
	}
	f, err := OpenLog(path)
	if err != nil {
		return err
	}
	tail := chainTail{invalid: true}
	if _, err := appendChained(f, path, []Entry{e}, &tail); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("audit: %w", err)
	}
	return f.Close()
}

// ErrMalformed is wrapped by ReadLog's error for a record it cannot
// decode; the other records were still delivered.
var ErrMalformed = errors.New("audit: malformed record")

// ReadLog calls fn for each record of the local log read from r, oldest
// first. A record that cannot be decoded (a line cut short by a crash,
// say) is skipped; ReadLog then returns an error wrapping ErrMalformed
// that counts them, after the rest. An error from fn stops the reading
// and is returned.
func ReadLog(r io.Reader, fn func(Entry) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	bad, n := 0, 0
	firstBad := 0
	for {
		line, err := readLine(br)
		if len(line) > 0 {
			n++
			var e Entry
			if jerr := json.Unmarshal(line, &e); jerr != nil || e.Kind == "" {
				if bad == 0 {
					firstBad = n
				}
				bad++
			} else if ferr := fn(e); ferr != nil {
				return ferr
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("audit: reading the log: %w", err)
		}
	}
	if bad > 0 {
		return fmt.Errorf("%w: %d record(s) could not be read, the first at line %d", ErrMalformed, bad, firstBad)
	}
	return nil
}

// readLine returns the next line without its newline; a line longer than
// MaxRecordSize is returned cut (and then fails to decode).
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) <= MaxRecordSize {
			line = append(line, chunk...)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if len(line) > 0 && line[len(line)-1] == '\n' {
			line = line[:len(line)-1]
		}
		return line, err
	}
}
