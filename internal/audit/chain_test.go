package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/dicomshield/dicomshield/internal/dicomtest"
)

// writeChainedLog writes n records through a trail while other writers
// (as `peer add` beside serve would) append at the same time, and returns
// the log's lines.
func writeChainedLog(t *testing.T, n int) (string, [][]byte) {
	t.Helper()
	dicomtest.CheckGoroutines(t)
	path := LogPath(t.TempDir())
	tr, err := NewTrail(Options{Path: path, Source: testSource})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n/6; i++ {
				if err := Append(path, testSource, Event{Time: testTime, Kind: ConfigChange, Alert: "peer-added", Description: fmt.Sprintf("writer %d record %d", w, i)}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	for i := 0; i < n-3*(n/6); i++ {
		tr.Record(Event{Time: testTime, Kind: AssocAccepted, Description: fmt.Sprintf("trail record %d", i)})
	}
	wg.Wait()
	if err := tr.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
	if len(lines) != n {
		t.Fatalf("%d lines, want %d", len(lines), n)
	}
	return path, lines
}

func join(lines [][]byte) []byte {
	return append(bytes.Join(lines, []byte("\n")), '\n')
}

// relink rewrites every record from line i on so that the chain is whole
// again: what someone who knows the format can do, and only a recorded
// head shows.
func relink(t *testing.T, lines [][]byte, from int) {
	prev := LineHash(lines[from-1])
	for j := from; j < len(lines); j++ {
		var e Entry
		if err := json.Unmarshal(lines[j], &e); err != nil {
			t.Fatal(err)
		}
		e.Prev = prev
		b, _ := json.Marshal(&e)
		lines[j] = b
		prev = LineHash(b)
	}
}

// TestChainDetectsTampering: the log written by a trail and concurrent
// appenders is one unbroken chain; each way of tampering with it is
// reported, with the line, and a whole chain is not.
func TestChainDetectsTampering(t *testing.T) {
	const n = 30
	_, orig := writeChainedLog(t, n)
	head := Head{Seq: n, Hash: LineHash(orig[n-1])}
	clone := func() [][]byte {
		out := make([][]byte, len(orig))
		for i, l := range orig {
			out[i] = bytes.Clone(l)
		}
		return out
	}
	tests := []struct {
		name   string
		tamper func(lines [][]byte) []byte
		expect *Head
		want   []string // kinds of problem, in order; none: whole
	}{
		{"untouched", func(l [][]byte) []byte { return join(l) }, nil, nil},
		{"untouched, head recorded", func(l [][]byte) []byte { return join(l) }, &head, nil},
		{"a record edited", func(l [][]byte) []byte {
			l[9] = bytes.Replace(l[9], []byte("record"), []byte("recorD"), 1)
			return join(l)
		}, nil, []string{ChainEdited}},
		{"a record deleted", func(l [][]byte) []byte {
			return join(append(l[:9:9], l[10:]...))
		}, nil, []string{ChainDeleted}},
		{"the first record deleted", func(l [][]byte) []byte { return join(l[1:]) }, nil, []string{ChainDeleted}},
		{"the last records cut off, head recorded", func(l [][]byte) []byte { return join(l[:n-3]) }, &head, []string{ChainTruncated}},
		{"cut inside the last line", func(l [][]byte) []byte {
			b := join(l)
			return b[:len(b)-20]
		}, nil, []string{ChainCut, ChainTruncated}},
		{"chain fields stripped from a record", func(l [][]byte) []byte {
			var e Entry
			json.Unmarshal(l[5], &e)
			e.Seq, e.Prev = 0, ""
			l[5], _ = json.Marshal(&e)
			return join(l)
		}, nil, []string{ChainCut, ChainDeleted}}, // record 6 is no longer in the chain
		{"rewritten and relinked, no head", func(l [][]byte) []byte {
			l[20] = bytes.Replace(l[20], []byte("record"), []byte("recorD"), 1)
			relink(t, l, 21)
			return join(l)
		}, nil, nil},
		{"rewritten and relinked, head recorded", func(l [][]byte) []byte {
			l[20] = bytes.Replace(l[20], []byte("record"), []byte("recorD"), 1)
			relink(t, l, 21)
			return join(l)
		}, &head, []string{ChainTruncated}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := VerifyChain(bytes.NewReader(tt.tamper(clone())), tt.expect)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range rep.Problems {
				got = append(got, p.Kind)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("problems %v, want %v: %+v", got, tt.want, rep.Problems)
			}
			if tt.want == nil && tt.name == "untouched" && (rep.Head != head || rep.Records != n) {
				t.Errorf("head %+v after %d records, want %+v after %d", rep.Head, rep.Records, head, n)
			}
		})
	}
}

// TestChainContinues: a log begun by an older dicomshield (records without
// a chain) and a line a crash cut short are chained onto, not broken: the
// old records are counted as unchained, the cut line reported, and the
// records after it link to it.
func TestChainContinues(t *testing.T) {
	path := LogPath(t.TempDir())
	old, _ := NewEntry(Event{Time: testTime, Kind: AppStart}, testSource)
	b, _ := json.Marshal(old)
	legacy := string(b) + "\n" + string(b) + "\n"
	if err := os.MkdirAll(strings.TrimSuffix(path, LogFile), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(legacy), 0o600); err != nil {
		t.Fatal(err)
	}
	ev := Event{Time: testTime, Kind: ConfigChange, Description: "after the old records"}
	if err := Append(path, testSource, ev); err != nil {
		t.Fatal(err)
	}
	// A crash cuts the next record short; the next writer goes on.
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"seq":2,"time":"2026-`)
	f.Close()
	for i := 0; i < 2; i++ {
		if err := Append(path, testSource, ev); err != nil {
			t.Fatal(err)
		}
	}
	data, _ := os.ReadFile(path)
	rep, err := VerifyChain(bytes.NewReader(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Unchained != 2 || rep.Records != 3 || rep.Head.Seq != 3 {
		t.Errorf("unchained %d, records %d, head %+v; want 2, 3, seq 3", rep.Unchained, rep.Records, rep.Head)
	}
	if len(rep.Problems) != 1 || rep.Problems[0].Kind != ChainCut || rep.Problems[0].Line != 4 {
		t.Errorf("problems %+v, want only the cut line 4", rep.Problems)
	}
	var n int
	ReadLog(bytes.NewReader(data), func(Entry) error { n++; return nil })
	if n != 5 {
		t.Errorf("ReadLog read %d records, want 5 (the cut line skipped)", n)
	}
}
