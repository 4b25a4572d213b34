package scan

import (
	"bytes"
	"strings"
	"testing"
)

// TestTableListsCreated: after the table, every UID --test-write stored,
// by service and level, and nothing when nothing was stored.
func TestTableListsCreated(t *testing.T) {
	stored := &Result{Host: "127.0.0.1", Port: 4242, WriteTest: &WriteTest{Stored: true,
		Created: []string{"2.25.1", "2.25.2", "2.25.3", "2.25.4"}}}
	refused := &Result{Host: "127.0.0.1", Port: 104, WriteTest: &WriteTest{}}
	var b bytes.Buffer
	s := &TableSink{W: &b}
	s.Write(stored)
	s.Write(refused)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(b.String(), "2 DICOM service(s)\n")
	if !ok {
		t.Fatalf("no service count:\n%s", b.String())
	}
	want := []string{"", "Stored by --test-write; delete them:", "SERVICE         LEVEL     UID",
		"127.0.0.1:4242  study     2.25.1", "127.0.0.1:4242  series    2.25.2",
		"127.0.0.1:4242  instance  2.25.3", "127.0.0.1:4242  instance  2.25.4", ""}
	if got := strings.Split(after, "\n"); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("after the table:\n%s\nwant:\n%s", after, strings.Join(want, "\n"))
	}

	b.Reset()
	s = &TableSink{W: &b}
	s.Write(refused)
	s.Close()
	if strings.Contains(b.String(), "--test-write") {
		t.Errorf("a created-UID section with nothing stored:\n%s", b.String())
	}
}
