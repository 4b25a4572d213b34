package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/dicomshield/dicomshield/internal/privfile"
)

// The local log is a hash chain, as the ledger is for instances: each
// record carries its sequence number ("seq", 1 for the first) and the hash
// of the line before it ("prev"), so that editing or deleting a record
// breaks the link of the one after it.
//
// The hashed bytes: prev is the lowercase hex SHA-256 of the previous line
// of the file exactly as stored, without its terminating newline (whatever
// that line holds, even a line a crash cut short); ChainGenesis for the
// first line of the file. The head is the last record's seq and the
// SHA-256 of the last line, computed the same way: record it elsewhere
// (`dicomshield audit --verify` prints it), and a log cut short or
// rewritten from some record on shows as a head that is no longer there.
//
// Writers (the trail of serve, commands such as `peer add`) append under
// an advisory lock on "<log>.lock", reading the last line to chain to it.

// ChainGenesis is the prev of the first record of a log.
const ChainGenesis = "0000000000000000000000000000000000000000000000000000000000000000"

// LineHash returns the chain hash of one line of the log (without its
// newline).
func LineHash(line []byte) string {
	s := sha256.Sum256(line)
	return hex.EncodeToString(s[:])
}

// Head is the last record of the chain.
type Head struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
}

// chainTail is what a writer needs to chain the next record: the last
// record's seq and the last line's hash, whether the file ends without a
// newline (a line cut short), and the file's size when this was read.
type chainTail struct {
	seq     int64
	hash    string
	needNL  bool
	size    int64
	invalid bool // not read yet
}

// maxTailRead bounds how far back from the end a writer reads to find the
// last line and the last record's seq.
const maxTailRead = 8 * MaxRecordSize

// readTail reads the end of the log f to find the last line and the seq
// of the last record that has one.
func readTail(f *os.File) (chainTail, error) {
	fi, err := f.Stat()
	if err != nil {
		return chainTail{}, err
	}
	t := chainTail{hash: ChainGenesis, size: fi.Size()}
	if t.size == 0 {
		return t, nil
	}
	n := min(t.size, maxTailRead)
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, t.size-n); err != nil && !errors.Is(err, io.EOF) {
		return chainTail{}, err
	}
	if buf[len(buf)-1] != '\n' {
		t.needNL = true
	} else {
		buf = buf[:len(buf)-1]
	}
	// The last line, then earlier ones until one holds a seq.
	first := true
	for len(buf) > 0 || first {
		i := bytes.LastIndexByte(buf, '\n')
		if i < 0 && n < t.size {
			// The read began inside this line: it is longer than any
			// record, or the seq lies further back than we read.
			if first {
				return chainTail{}, fmt.Errorf("audit: the last line of the log is longer than %d bytes", maxTailRead)
			}
			break
		}
		line := buf[i+1:]
		if first {
			t.hash = LineHash(line)
			first = false
		}
		var r struct {
			Seq int64 `json:"seq"`
		}
		if json.Unmarshal(line, &r) == nil && r.Seq > 0 {
			t.seq = r.Seq
			break
		}
		if i < 0 {
			break
		}
		buf = buf[:i]
	}
	return t, nil
}

// appendChained appends the entries to the log f (opened with O_APPEND)
// under the log's lock, chaining each to the line before it, in one write;
// tail is the writer's last known end of the log, used when the file has
// not changed size since (no other writer in between), and updated.
func appendChained(f *os.File, path string, entries []Entry, tail *chainTail) (int, error) {
	unlock, err := privfile.Lock(path + ".lock")
	if err != nil {
		return 0, fmt.Errorf("audit: locking the log: %w", err)
	}
	defer unlock()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("audit: %w", err)
	}
	if tail.invalid || fi.Size() != tail.size {
		t, err := readTail(f)
		if err != nil {
			return 0, fmt.Errorf("audit: reading the end of the log: %w", err)
		}
		*tail = t
	}
	var buf []byte
	if tail.needNL {
		buf = append(buf, '\n')
	}
	seq, prev := tail.seq, tail.hash
	for i := range entries {
		seq++
		entries[i].Seq, entries[i].Prev = seq, prev
		b, err := json.Marshal(&entries[i])
		if err != nil {
			return 0, fmt.Errorf("audit: %w", err)
		}
		prev = LineHash(b)
		buf = append(append(buf, b...), '\n')
	}
	if _, err := f.Write(buf); err != nil {
		tail.invalid = true
		return 0, fmt.Errorf("audit: writing the local log: %w", err)
	}
	*tail = chainTail{seq: seq, hash: prev, size: fi.Size() + int64(len(buf))}
	return len(entries), nil
}

// Kinds of ChainProblem.
const (
	// ChainEdited: a record's prev is not the hash of the line before it,
	// the sequence being unbroken: that line was edited (or this record's
	// prev was).
	ChainEdited = "edited"
	// ChainDeleted: a gap in the sequence: records were deleted.
	ChainDeleted = "deleted"
	// ChainCut: a line that is not a whole record (cut short by a crash,
	// or by an edit), or a record without a chain after chained ones.
	ChainCut = "not-a-record"
	// ChainTruncated: a head recorded earlier is not in the log (it was
	// cut short or rewritten), or the log ends inside a line.
	ChainTruncated = "truncated"
)

// ChainProblem is one break VerifyChain found. Line is the line number in
// the file (1 for the first).
type ChainProblem struct {
	Kind   string `json:"kind"`
	Line   int    `json:"line"`
	Seq    int64  `json:"seq,omitempty"`
	Detail string `json:"detail"`
}

// ChainReport is what VerifyChain found.
type ChainReport struct {
	Head Head `json:"head"`
	// Records counts the chained records; Unchained the records written
	// before the log was chained (at its start, by an older dicomshield),
	// which nothing protects.
	Records   int64          `json:"records"`
	Unchained int            `json:"unchained"`
	Problems  []ChainProblem `json:"problems"`
}

// OK reports whether the chain is whole.
func (r *ChainReport) OK() bool { return len(r.Problems) == 0 }

// VerifyChain walks the chain of the log read from r and reports every
// break: a record edited, records deleted, lines that are not records, a
// log that ends inside a line. expect, if not nil, is a head recorded
// earlier that the log must still hold with that hash: only it shows a log
// cut short at a line boundary, or rewritten from some record on with
// every later link recomputed.
func VerifyChain(r io.Reader, expect *Head) (*ChainReport, error) {
	rep := &ChainReport{Head: Head{Hash: ChainGenesis}, Problems: []ChainProblem{}}
	br := bufio.NewReaderSize(r, 64<<10)
	prev := ChainGenesis
	var last int64
	chained, seenExpect := false, false
	add := func(kind string, line int, seq int64, format string, a ...any) {
		rep.Problems = append(rep.Problems, ChainProblem{Kind: kind, Line: line, Seq: seq, Detail: fmt.Sprintf(format, a...)})
	}
	for n := 1; ; n++ {
		line, err := readRawLine(br)
		if errors.Is(err, io.EOF) && line == nil {
			break
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("audit: reading the log: %w", err)
		}
		cut := errors.Is(err, io.EOF) // the file ends inside this line
		var e struct {
			Seq  int64  `json:"seq"`
			Prev string `json:"prev"`
			Kind Kind   `json:"kind"`
		}
		h := LineHash(line)
		switch {
		case json.Unmarshal(line, &e) != nil || e.Kind == "":
			add(ChainCut, n, 0, "line %d is not a whole record: cut short (a crash while writing) or edited", n)
		case e.Seq == 0 && e.Prev == "" && !chained:
			rep.Unchained++
		case e.Seq == 0 || e.Prev == "":
			add(ChainCut, n, 0, "line %d is a record without its chain link after chained records: written or edited outside dicomshield", n)
		default:
			chained = true
			rep.Records++
			switch {
			case e.Seq != last+1:
				if e.Seq > last+1 {
					add(ChainDeleted, n, e.Seq, "record %d follows record %d: %d record(s) were deleted", e.Seq, last, e.Seq-last-1)
				} else {
					add(ChainDeleted, n, e.Seq, "record %d follows record %d: records were removed, reordered or renumbered", e.Seq, last)
				}
			case e.Prev != prev:
				add(ChainEdited, n, e.Seq, "record %d does not chain to line %d: that line (record %d) was edited", e.Seq, n-1, last)
			}
			last = e.Seq
			rep.Head = Head{Seq: e.Seq, Hash: h}
			if expect != nil && e.Seq == expect.Seq {
				seenExpect = true
				if h != expect.Hash {
					add(ChainTruncated, n, e.Seq, "record %d no longer has the recorded hash: the log was rewritten from there on", e.Seq)
				}
			}
		}
		if cut {
			add(ChainTruncated, n, 0, "the log ends inside line %d: it was cut short", n)
		}
		prev = h
		if cut {
			break
		}
	}
	if expect != nil && !seenExpect {
		add(ChainTruncated, 0, expect.Seq, "the recorded head is record %d, but the log ends at record %d: records were removed from its end", expect.Seq, rep.Head.Seq)
	}
	return rep, nil
}

// readRawLine returns the next line without its newline, and io.EOF with
// a last line that has none (nil at the end of the file). A line longer
// than MaxRecordSize is returned cut.
func readRawLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) <= MaxRecordSize+1 {
			line = append(line, chunk...)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err == nil {
			return line[:len(line)-1], nil
		}
		if len(line) == 0 {
			return nil, err
		}
		return line, err
	}
}

// ParseHead parses a head written as "SEQ:HASH" or "SEQ HASH".
func ParseHead(s string) (*Head, error) {
	s = strings.TrimSpace(s)
	seqText, hash, ok := strings.Cut(s, ":")
	if !ok {
		seqText, hash, ok = strings.Cut(s, " ")
	}
	seq, err := strconv.ParseInt(seqText, 10, 64)
	if !ok || err != nil || seq < 1 || len(hash) != 64 || strings.Trim(hash, "0123456789abcdef") != "" {
		return nil, fmt.Errorf("head %q: write it as SEQ:HASH, the record number and the 64 hex digits audit --verify printed", s)
	}
	return &Head{Seq: seq, Hash: hash}, nil
}
