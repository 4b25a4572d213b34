package archive_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dicomshield/dicomshield/internal/archive"
	"github.com/dicomshield/dicomshield/internal/audit"
	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/dicomtest"
)

// recorded collects the events the archive reports.
type recorded struct {
	mu sync.Mutex
	ev []audit.Event
}

func (e *recorded) Record(ev audit.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ev = append(e.ev, ev)
}

// of returns the events of kind so far.
func (e *recorded) of(kind audit.Kind) []audit.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []audit.Event
	for _, ev := range e.ev {
		if ev.Kind == kind {
			out = append(out, ev)
		}
	}
	return out
}

// waitFor waits until n recorded of kind were recorded: transfers are
// recorded when the association ends, which the server sees just after
// the client released it.
func (e *recorded) waitFor(t *testing.T, kind audit.Kind, n int) []audit.Event {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if got := e.of(kind); len(got) >= n || time.Now().After(deadline) {
			if len(got) != n {
				t.Fatalf("%d %s recorded, want %d: %+v", len(got), kind, n, got)
			}
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestArchiveAuditEvents: the archive reports every association accepted
// or refused, each query with its identifier, what was stored and what
// was sent per study with its patient, and its own start and stop; every
// event encodes to a valid message.
func TestArchiveAuditEvents(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	dir := filepath.Join(t.TempDir(), "data")
	rec := &recorded{}
	s := startServerWith(t, dir, func(a *archive.Archive) { a.Audit = rec })
	ct := addPeer(t, dir, "CT01", "--allow", "echo,store,find,get")

	// Refused: an unknown calling AE title.
	if _, err := dialAs(testCtx(t), s.TLSAddr, "STRANGER", ct.TLS(t)); err == nil {
		t.Fatal("STRANGER was accepted")
	}
	refused := rec.waitFor(t, audit.AssocRefused, 1)[0]
	if refused.CallingAE != "STRANGER" || refused.Outcome != audit.MinorFailure || refused.Remote != "127.0.0.1" || refused.Description == "" {
		t.Errorf("refusal %+v", refused)
	}

	study := newUID()
	insts := []*instance{
		makeInstance(t, instanceSpec{Study: study, Patient: "PAT-A1", Class: ctImage}),
		makeInstance(t, instanceSpec{Study: study, Patient: "PAT-A1", Class: ctImage}),
		makeInstance(t, instanceSpec{Study: study, Patient: "PAT-A1", Class: scImage}),
	}
	cl := mustDial(t, s.TLSAddr, ct.AE, ct.TLS(t))
	mustStore(t, cl, insts...)
	if _, err := find(t, cl, identifier("STUDY", dicom.TagPatientID, "PAT-A*", dicom.TagStudyInstanceUID, "")); err != nil {
		t.Fatal(err)
	}
	got, _, err := get(t, cl, identifier("STUDY", dicom.TagStudyInstanceUID, study))
	if err != nil || len(got) != 3 {
		t.Fatalf("C-GET: %d instances, %v", len(got), err)
	}
	if err := cl.Release(); err != nil {
		t.Fatal(err)
	}

	acc := rec.waitFor(t, audit.AssocAccepted, 1)[0]
	if acc.Peer != "CT01" || acc.CallingAE != "CT01" || acc.CalledAE != archiveAE || acc.Remote != "127.0.0.1" || acc.Local != "127.0.0.1" {
		t.Errorf("accepted %+v", acc)
	}
	q := rec.waitFor(t, audit.Query, 1)[0]
	if q.Peer != "CT01" || len(q.SOPClasses) != 1 || !strings.Contains(string(q.Query), "PAT-A*") {
		t.Errorf("query %+v", q)
	}
	for _, kind := range []audit.Kind{audit.InstancesStored, audit.InstancesSent} {
		ev := rec.waitFor(t, kind, 1)[0]
		if ev.Peer != "CT01" || ev.Instances != 3 || !slices.Equal(ev.Studies, []string{study}) || !slices.Equal(ev.Patients, []string{"PAT-A1"}) ||
			ev.PerClass[ctImage] != 2 || ev.PerClass[scImage] != 1 || ev.Outcome != audit.Success {
			t.Errorf("%s %+v", kind, ev)
		}
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	start, stop := rec.of(audit.AppStart), rec.of(audit.AppStop)
	if len(start) != 1 || len(stop) != 1 || !strings.Contains(start[0].Description, archiveAE) {
		t.Errorf("start %+v stop %+v", start, stop)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.ev[0].Kind != audit.AppStart || rec.ev[len(rec.ev)-1].Kind != audit.AppStop {
		t.Errorf("first %s, last %s", rec.ev[0].Kind, rec.ev[len(rec.ev)-1].Kind)
	}
	for _, ev := range rec.ev {
		b, err := audit.Marshal(ev, archive.AuditSource(s.A.Config))
		if err != nil {
			t.Fatalf("%s: %v", ev.Kind, err)
		}
		if _, err := audit.Check(b); err != nil {
			t.Errorf("%s: %v", ev.Kind, err)
		}
	}
}

// TestPeerChangesAudited: peer add and remove, run without the server,
// append configuration-change records to the data directory's log.
func TestPeerChangesAudited(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	addPeer(t, dir, "CT02", "--allow", "echo")
	runCLI(t, "peer", "remove", "CT02", "--data", dir)
	es := readAuditLog(t, dir)
	var alerts []string
	for _, e := range es {
		if e.Kind != audit.ConfigChange || e.Peer != "CT02" || e.User == "" {
			t.Errorf("record %+v", e)
		}
		alerts = append(alerts, e.Alert)
		c, err := audit.Check([]byte(e.XML))
		if err != nil || c.EventID != "110113" || c.EventTypes[0] != "110129" {
			t.Errorf("%s: %v %+v", e.Alert, err, c)
		}
	}
	if !slices.Equal(alerts, []string{"peer-added", "peer-removed"}) {
		t.Fatalf("alerts %v", alerts)
	}
}

func readAuditLog(t *testing.T, dataDir string) []audit.Entry {
	t.Helper()
	f, err := os.Open(audit.LogPath(dataDir))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var es []audit.Entry
	if err := audit.ReadLog(f, func(e audit.Entry) error { es = append(es, e); return nil }); err != nil {
		t.Fatal(err)
	}
	return es
}
