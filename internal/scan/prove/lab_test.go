package prove_test

// Lab tests: real Orthanc servers loaded with synthetic patients (random
// made-up names and IDs), probed as a stranger; the counts must equal what
// was loaded and nothing loaded may appear in what the scanner produces.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dicomshield/dicomshield/internal/cli"
	"github.com/dicomshield/dicomshield/internal/dicomtest"
	"github.com/dicomshield/dicomshield/internal/scan"
	"github.com/dicomshield/dicomshield/internal/scan/prove"
)

// lab is one Orthanc configuration with its data.
type lab struct {
	o        *dicomtest.Orthanc
	patients []dicomtest.Patient
	studies  int
	moveL    net.Listener // the scanner's listener Orthanc knows as moveAE
}

// moveAE is the AE title the open labs know as a C-MOVE destination (at
// the scanner's listener): a destination the owner configured, not one
// the stranger made up.
const moveAE = "DSSCANDEST"

// startLab starts Orthanc with extra configuration, loaded with n
// patients; when open, it knows moveAE at a listener of the test.
func startLab(t *testing.T, extra map[string]any, open bool, n int) *lab {
	l := &lab{}
	cfg := dicomtest.OrthancConfig{Extra: extra}
	if open {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		l.moveL = ln
		cfg.Modalities = map[string]dicomtest.OrthancModality{
			"scanner": {AET: moveAE, Port: ln.Addr().(*net.TCPAddr).Port},
		}
	}
	l.o = dicomtest.StartOrthanc(t, cfg)
	l.patients = dicomtest.Patients(t, n)
	l.studies = l.o.LoadPatients(t, l.patients)
	return l
}

func (l *lab) access(t testing.TB) scan.Access {
	return scan.Access{Addr: fmt.Sprintf("127.0.0.1:%d", l.o.DicomPort), CallingAE: "Z" + dicomtest.RandomString(t, dicomtest.Upper, 11),
		CalledAE: l.o.AET, Timeout: 10 * time.Second}
}

// secrets are the loaded values that must never appear in the output.
func (l *lab) secrets() []string { return dicomtest.Secrets(l.patients) }

func assertNoLeak(t *testing.T, what string, out []byte, secrets []string) {
	t.Helper()
	dicomtest.NoPatientData(t, what, out, secrets)
}

// readValues is what a lab's Read must show.
type readWant struct {
	patients, studies  int // -1: refused
	get, move, anyDest string
	fields             map[string]bool
}

func TestOrthancLabs(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	openQR := map[string]any{"DicomAlwaysAllowFind": true, "DicomAlwaysAllowGet": true, "DicomAlwaysAllowMove": true}
	withOverwrite := map[string]any{"OverwriteInstances": true}
	for k, v := range openQR {
		withOverwrite[k] = v
	}
	labs := map[string]*lab{
		"default":           startLab(t, nil, false, 3),
		"open":              startLab(t, openQR, true, 5),
		"open, overwriting": startLab(t, withOverwrite, true, 2),
	}
	// Fields Orthanc hands out when queries are open: what was loaded, and
	// nothing that was not (no phone numbers were loaded).
	loaded := map[string]bool{"PatientName": true, "PatientID": true, "PatientBirthDate": true, "PatientSex": true,
		"PatientAddress": true, "PatientTelephoneNumbers": false, "PatientMotherBirthName": false, "StudyDate": true}

	t.Run("read", func(t *testing.T) {
		for _, tc := range []struct {
			lab  string
			want func(l *lab) readWant
		}{
			{"default", func(l *lab) readWant {
				return readWant{patients: -1, studies: -1, get: "closed", move: "closed", anyDest: "closed"}
			}},
			{"open", func(l *lab) readWant {
				return readWant{patients: len(l.patients), studies: l.studies, get: "open", move: "open", anyDest: "closed", fields: loaded}
			}},
		} {
			t.Run(tc.lab, func(t *testing.T) {
				l := labs[tc.lab]
				want := tc.want(l)
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				p, err := prove.Read(ctx, l.access(t), &prove.Options{HashSalt: "lab-salt", MoveListener: l.moveL, MoveAE: moveAE})
				if err != nil {
					t.Fatalf("Read: %v", err)
				}
				l.moveL = nil // Read closed it
				if p.Records[prove.LevelPatient] != want.patients || p.Records[prove.LevelStudy] != want.studies || p.Truncated {
					t.Errorf("records %v (truncated %v), want PATIENT %d STUDY %d", p.Records, p.Truncated, want.patients, want.studies)
				}
				if p.Get != want.get || p.Move != want.move || p.MoveAnyDest != want.anyDest {
					t.Errorf("get %s move %s any destination %s, want %s %s %s", p.Get, p.Move, p.MoveAnyDest, want.get, want.move, want.anyDest)
				}
				for k, v := range want.fields {
					if p.Fields[k] != v {
						t.Errorf("field %s present = %v, want %v (fields %v)", k, p.Fields[k], v, p.Fields)
					}
				}
				if p.UserIdentity != prove.IdentityIgnored {
					t.Errorf("user identity %q, want ignored (Orthanc has no user identity)", p.UserIdentity)
				}
				// Hashes: one per patient, salted, none of them the raw ID.
				if want.patients > 0 {
					var hs []string
					for _, pt := range l.patients {
						h := sha256.Sum256([]byte("lab-salt\x00" + pt.ID))
						hs = append(hs, hex.EncodeToString(h[:]))
					}
					slices.Sort(hs)
					if !slices.Equal(hs, p.PatientIDHashes) {
						t.Errorf("patient ID hashes %v, want %v", p.PatientIDHashes, hs)
					}
				} else if len(p.PatientIDHashes) != 0 {
					t.Errorf("hashes %v from a server that refused queries", p.PatientIDHashes)
				}
				r := &scan.Result{Host: "127.0.0.1", Port: l.o.DicomPort, Proof: p}
				prove.Apply(r)
				b, _ := json.Marshal(r)
				assertNoLeak(t, "the result", b, l.secrets())
				t.Logf("%s: %s", tc.lab, b)
			})
		}
	})

	t.Run("truncated", func(t *testing.T) {
		l := labs["open"]
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		p, err := prove.Read(ctx, l.access(t), &prove.Options{MaxRecords: 2})
		if err != nil {
			t.Fatal(err)
		}
		if p.Records[prove.LevelPatient] != 2 || p.Records[prove.LevelStudy] != 2 || !p.Truncated || p.PatientIDHashes != nil {
			t.Errorf("records %v truncated %v hashes %v; want 2, 2, true, none", p.Records, p.Truncated, p.PatientIDHashes)
		}
		// The association survived the C-CANCELs: the retrieve probes ran.
		if p.Get != scan.ExposureOpen {
			t.Errorf("get %q after a cancelled count, want open", p.Get)
		}
	})

	// The command line, end to end, before the write tests add their
	// synthetic patient: counts as loaded, nothing loaded in any output.
	t.Run("cli", func(t *testing.T) {
		l := labs["open"]
		var out, errb bytes.Buffer
		code := cli.Main([]string{"scan", fmt.Sprintf("127.0.0.1:%d", l.o.DicomPort), "--prove", "--hash-ids", "cli-salt",
			"--json", "-", "--http-ports", "", "-q"}, &out, &errb)
		if code != 0 {
			t.Fatalf("scan: exit %d: %s", code, errb.String())
		}
		assertNoLeak(t, "stdout", out.Bytes(), l.secrets())
		assertNoLeak(t, "stderr", errb.Bytes(), l.secrets())
		rs, err := scan.ReadJSONL(&out)
		if err != nil || len(rs) != 1 || rs[0].Proof == nil {
			t.Fatalf("results %+v, %v: want one with a proof", rs, err)
		}
		r := rs[0]
		if r.Proof.Records[prove.LevelPatient] != len(l.patients) || r.Proof.Records[prove.LevelStudy] != l.studies ||
			len(r.Proof.PatientIDHashes) != len(l.patients) {
			t.Errorf("proof %+v, want %d patients and %d studies", r.Proof, len(l.patients), l.studies)
		}
		if r.Exposure.Query != scan.ExposureOpen || r.Exposure.Retrieve != scan.ExposureOpen || r.WriteTest != nil {
			t.Errorf("exposure %+v write test %+v", r.Exposure, r.WriteTest)
		}
		found := false
		for _, f := range r.Findings {
			if f.ID == scan.FindingQueryOpen && strings.Contains(f.Title, fmt.Sprintf("%d records", l.studies)) {
				found = true
			}
		}
		if !found {
			t.Errorf("findings %+v: no %s with the count", r.Findings, scan.FindingQueryOpen)
		}
	})

	t.Run("write", func(t *testing.T) {
		for _, tc := range []struct {
			lab       string
			overwrite string
			// kept is the Instance Number Orthanc really holds for the
			// first synthetic instance after the overwrite attempt.
			kept string
		}{
			{"default", prove.WriteUnverified, "1"},
			{"open", prove.WriteIgnored, "1"},
			{"open, overwriting", prove.WriteAccepted, "9001"},
		} {
			t.Run(tc.lab, func(t *testing.T) {
				l := labs[tc.lab]
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				w := prove.Write(ctx, l.access(t))
				if !w.Stored || w.Append != prove.WriteAccepted || w.Overwrite != tc.overwrite {
					t.Fatalf("write test %+v, want stored, append accepted, overwrite %s", w, tc.overwrite)
				}
				if !strings.Contains(w.Detail, "created moments earlier") {
					t.Errorf("detail %q does not say the appended series was fresh", w.Detail)
				}
				if len(w.Created) != 4 {
					t.Fatalf("created %v, want study, series and two instances", w.Created)
				}
				for _, uid := range w.Created {
					if !strings.HasPrefix(uid, prove.ScannerUIDRoot+".") {
						t.Errorf("created UID %s is not under the scanner's root", uid)
					}
				}
				// What Orthanc really holds: both instances, in one series,
				// labelled; the first with the content its policy kept.
				for i, uid := range w.Created[2:] {
					id := l.o.InstanceByUID(t, uid)
					if id == "" {
						t.Fatalf("Orthanc does not hold created instance %d", i)
					}
					var tags map[string]string
					l.o.GetJSON(t, "/instances/"+id+"/simplified-tags", &tags)
					if tags["PatientName"] != prove.TestPatientName || tags["SeriesInstanceUID"] != w.Created[1] ||
						!strings.Contains(tags["SeriesDescription"], "SCANNER WRITE TEST") {
						t.Errorf("instance %d stored as %v", i, tags)
					}
					if i == 0 && tags["InstanceNumber"] != tc.kept {
						t.Errorf("Orthanc holds instance number %q after the overwrite, the test expected %q: the report would be wrong",
							tags["InstanceNumber"], tc.kept)
					}
				}
				r := &scan.Result{Host: "127.0.0.1", Port: l.o.DicomPort, WriteTest: w}
				prove.Apply(r)
				b, _ := json.Marshal(r)
				assertNoLeak(t, "the result", b, l.secrets())
				t.Logf("%s: %s", tc.lab, b)
			})
		}
	})
}
