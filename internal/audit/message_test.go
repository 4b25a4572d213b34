package audit

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var (
	testTime   = time.Date(2026, 3, 14, 9, 26, 53, 589000000, time.UTC)
	testSource = Source{ID: "pacs.example.org", SiteID: "CLINIC", AETitle: "DICOMSHIELD", ProcessID: "4242"}
)

const (
	ctImage = "1.2.840.10008.5.1.4.1.1.2"
	mrImage = "1.2.840.10008.5.1.4.1.1.4"
	study1  = "1.2.826.0.1.3680043.2.1143.1"
	find    = "1.2.840.10008.5.1.4.1.2.2.1"
)

// kindCase is one golden message with what PS3.15 A.5.3 requires of it.
type kindCase struct {
	name  string
	ev    Event
	id    string   // EventID csd-code
	types []string // EventTypeCodes
	act   string   // EventActionCode
	roles []string // RoleIDCodes that must appear, each once
	// objects: "type/role/idtype" of each participant object, in order
	objects []string
}

func kindCases() []kindCase {
	peer := Event{Time: testTime, Peer: "CT01", CallingAE: "CT01", CalledAE: "DICOMSHIELD", Remote: "192.0.2.10", Local: "192.0.2.1"}
	with := func(f func(*Event)) Event { e := peer; f(&e); return e }
	return []kindCase{
		{"application-start", Event{Time: testTime, Kind: AppStart, User: "root", Description: "dicomshield dev started"},
			"110100", []string{"110120"}, "E", []string{"110150", "110151"}, nil},
		{"application-stop", Event{Time: testTime, Kind: AppStop},
			"110100", []string{"110121"}, "E", []string{"110150"}, nil},
		{"association-accepted", with(func(e *Event) {
			e.Kind = AssocAccepted
			e.Description = "registered peer, certificate bound to its AE title"
		}),
			"110113", []string{"110126"}, "E", []string{"110150"}, []string{"2/13/110182"}},
		{"association-refused", with(func(e *Event) {
			e.Kind, e.Outcome, e.Peer = AssocRefused, MinorFailure, ""
			e.CallingAE, e.Description = "STRANGER", "calling AE title not registered"
		}), "110113", []string{"110126"}, "E", []string{"110150"}, []string{"2/13/110182"}},
		{"user-authentication", with(func(e *Event) { e.Kind, e.User = Authentication, "alice" }),
			"110114", []string{"110122"}, "E", []string{"110150"}, nil},
		{"query", with(func(e *Event) {
			e.Kind, e.SOPClasses = Query, []string{find}
			e.Query = []byte("\x08\x00\x52\x00CS\x06\x00STUDY \x10\x00\x20\x00LO\x04\x00PAT*")
		}), "110112", nil, "E", []string{"110153", "110152"}, []string{"2/3/110181"}},
		{"instances-stored", with(func(e *Event) {
			e.Kind, e.Studies, e.Patients, e.Instances = InstancesStored, []string{study1}, []string{"PAT-0001"}, 3
			e.PerClass = map[string]int{ctImage: 2, mrImage: 1}
		}), "110104", nil, "C", []string{"110153", "110152"}, []string{"2/3/110180", "1/1/2"}},
		{"instances-sent-get", with(func(e *Event) {
			e.Kind, e.Studies, e.Patients, e.Instances, e.SOPClasses = InstancesSent, []string{study1}, []string{"PAT-0001"}, 2, []string{ctImage}
		}), "110104", nil, "R", []string{"110153", "110152"}, []string{"2/3/110180", "1/1/2"}},
		{"instances-sent-move", with(func(e *Event) {
			e.Kind, e.Studies, e.Patients, e.Instances, e.SOPClasses = InstancesSent, []string{study1}, []string{"PAT-0001"}, 2, []string{ctImage}
			e.Destination = "VIEWER"
		}), "110104", nil, "R", []string{"110153", "110152"}, []string{"2/3/110180", "1/1/2"}},
		{"security-alert", with(func(e *Event) {
			e.Kind, e.Outcome, e.Alert = SecurityAlert, MinorFailure, "series-sealed"
			e.Description, e.Studies, e.Patients = "store into a sealed series refused", []string{study1}, []string{"PAT-0001"}
		}), "110113", []string{"110132"}, "E", []string{"110150"}, []string{"2/13/110182", "2/3/110180", "1/1/2"}},
		{"configuration-change", Event{Time: testTime, Kind: ConfigChange, Alert: "peer-added", User: "admin", Peer: "CT01",
			Description: "peer CT01 registered: may echo, store"},
			"110113", []string{"110129"}, "E", []string{"110150"}, []string{"2/13/110182"}},
		{"audit-log-used", Event{Time: testTime, Kind: AuditLogUsed, User: "auditor", Object: "file:///srv/pacs/audit/audit.log"},
			"110101", nil, "R", []string{"110150"}, []string{"2/13/12"}},
	}
}

// TestMessagesGolden compares each kind's message with its golden file
// and checks it against the schema and the A.5.3 table of its event.
func TestMessagesGolden(t *testing.T) {
	for _, tc := range kindCases() {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Marshal(tc.ev, testSource)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.ContainsAny(b, "\r\n") {
				t.Errorf("message is not one line")
			}
			golden := filepath.Join("testdata", tc.name+".xml")
			if *update {
				if err := os.WriteFile(golden, append(b, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got := string(b) + "\n"; got != string(want) {
				t.Errorf("message differs from %s:\n got %s\nwant %s", golden, got, want)
			}
			c, err := Check(b)
			if err != nil {
				t.Fatalf("Check: %v\n%s", err, b)
			}
			if c.EventID != tc.id || c.ActionCode != tc.act || !slices.Equal(c.EventTypes, tc.types) {
				t.Errorf("event %s/%s/%v, want %s/%s/%v", c.EventID, c.ActionCode, c.EventTypes, tc.id, tc.act, tc.types)
			}
			if c.Outcome != int(tc.ev.Outcome) {
				t.Errorf("outcome %d, want %d", c.Outcome, tc.ev.Outcome)
			}
			var roles []string
			requestors := 0
			for _, p := range c.Participants {
				roles = append(roles, p.Roles...)
				if p.Requestor {
					requestors++
				}
			}
			for _, r := range tc.roles {
				if n := count(roles, r); n != 1 {
					t.Errorf("role %s appears %d times, want once (roles %v)", r, n, roles)
				}
			}
			if tc.ev.Kind != AppStop && requestors != 1 {
				t.Errorf("%d participants are requestors, want 1", requestors)
			}
			var objs []string
			for _, o := range c.Objects {
				objs = append(objs, o.TypeCode+"/"+o.Role+"/"+o.IDType)
			}
			if !slices.Equal(objs, tc.objects) {
				t.Errorf("objects %v, want %v", objs, tc.objects)
			}
			if c.SourceID != testSource.ID {
				t.Errorf("AuditSourceID %q", c.SourceID)
			}
		})
	}
}

func count(ss []string, s string) int {
	n := 0
	for _, x := range ss {
		if x == s {
			n++
		}
	}
	return n
}

// TestMessageContent checks the fields each kind carries: who, where, and
// the patients, studies, SOP classes and query involved.
func TestMessageContent(t *testing.T) {
	cases := map[string]kindCase{}
	for _, tc := range kindCases() {
		cases[tc.name] = tc
	}
	check := func(name string) *Checked {
		t.Helper()
		b, err := Marshal(cases[name].ev, testSource)
		if err != nil {
			t.Fatal(err)
		}
		c, err := Check(b)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	tests := []struct {
		name string
		test func(t *testing.T, c *Checked)
	}{
		{"query", func(t *testing.T, c *Checked) {
			o := c.Objects[0]
			if o.ID != find || !bytes.Equal(o.Query, cases["query"].ev.Query) || o.Details["TransferSyntax"] != "1.2.840.10008.1.2.1" {
				t.Errorf("query object %+v", o)
			}
			src := c.Participants[0]
			if src.UserID != "CT01" || src.NetworkAccessPointID != "192.0.2.10" || !src.Requestor {
				t.Errorf("requestor %+v", src)
			}
		}},
		{"instances-stored", func(t *testing.T, c *Checked) {
			if c.Objects[0].ID != study1 || c.Objects[0].SOPClasses[ctImage] != 2 || c.Objects[0].SOPClasses[mrImage] != 1 {
				t.Errorf("study %+v", c.Objects[0])
			}
			if c.Objects[1].ID != "PAT-0001" {
				t.Errorf("patient %+v", c.Objects[1])
			}
		}},
		{"instances-sent-get", func(t *testing.T, c *Checked) {
			if c.Objects[0].SOPClasses[ctImage] != 2 {
				t.Errorf("study %+v", c.Objects[0])
			}
			if d := c.Participants[1]; d.UserID != "CT01" || !slices.Equal(d.Roles, []string{"110152"}) || !d.Requestor {
				t.Errorf("destination %+v", d)
			}
		}},
		{"instances-sent-move", func(t *testing.T, c *Checked) {
			if d := c.Participants[1]; d.UserID != "VIEWER" || d.Requestor {
				t.Errorf("destination %+v", d)
			}
			if r := c.Participants[2]; r.UserID != "CT01" || !r.Requestor || len(r.Roles) != 0 {
				t.Errorf("requestor %+v", r)
			}
		}},
		{"association-refused", func(t *testing.T, c *Checked) {
			if c.Outcome != 4 || c.Objects[0].Details["Alert Description"] != "calling AE title not registered" || c.Objects[0].ID != "192.0.2.10" {
				t.Errorf("refusal %+v", c)
			}
			if p := c.Participants[1]; p.UserID != "STRANGER" {
				t.Errorf("peer %+v", p)
			}
		}},
		{"application-start", func(t *testing.T, c *Checked) {
			if a := c.Participants[0]; a.UserID != "4242" || a.AlternativeUserID != "AETITLES=DICOMSHIELD" {
				t.Errorf("application %+v", a)
			}
		}},
		{"configuration-change", func(t *testing.T, c *Checked) {
			if o := c.Objects[0]; o.ID != "CT01" || o.Details["Alert Type"] != "peer-added" {
				t.Errorf("object %+v", o)
			}
			if p := c.Participants[1]; p.UserID != "admin" || !p.Requestor {
				t.Errorf("person %+v", p)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.test(t, check(tt.name)) })
	}
}

func TestMarshalUnknownKind(t *testing.T) {
	if _, err := Marshal(Event{Kind: "nonsense"}, testSource); !errors.Is(err, ErrUnknownKind) {
		t.Fatalf("err = %v", err)
	}
}

// TestMarshalEscapes: peer-controlled text (AE titles, descriptions) can
// neither break the XML nor add lines.
func TestMarshalEscapes(t *testing.T) {
	ev := Event{Time: testTime, Kind: AssocRefused, Outcome: MinorFailure, CallingAE: `"><x a='1'>&`,
		Remote: "192.0.2.7", Description: "line one\nline two </AuditMessage>\x00"}
	b, err := Marshal(ev, testSource)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.ContainsAny(b, "\n\r") {
		t.Fatalf("newline in message: %s", b)
	}
	c, err := Check(b)
	if err != nil {
		t.Fatalf("Check: %v\n%s", err, b)
	}
	if c.Participants[1].UserID != ev.CallingAE {
		t.Fatalf("UserID %q", c.Participants[1].UserID)
	}
}

// TestCheckRefuses: the checker is not a rubber stamp.
func TestCheckRefuses(t *testing.T) {
	good, err := Marshal(kindCases()[5].ev, testSource)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, from, to, want string }{
		{"no event id", `<EventID csd-code="110112" codeSystemName="DCM" originalText="Query"></EventID>`, ``, "EventID"},
		{"bad outcome", `EventOutcomeIndicator="0"`, `EventOutcomeIndicator="3"`, "EventOutcomeIndicator"},
		{"bad time", `EventDateTime="2026-03-14T09:26:53.589Z"`, `EventDateTime="yesterday"`, "EventDateTime"},
		{"no user id", `UserID="CT01"`, ``, "UserID"},
		{"requestor not boolean", `UserIsRequestor="true"`, `UserIsRequestor="yes"`, "boolean"},
		{"no source id", `AuditSourceID="pacs.example.org"`, ``, "AuditSourceID"},
		{"code without meaning", ` originalText="Query"`, ``, "originalText"},
		{"unknown attribute", `<AuditMessage>`, `<AuditMessage foo="1">`, "foo"},
		{"unknown element", `</EventIdentification>`, `<Foo></Foo></EventIdentification>`, "Foo"},
		{"source before participant", `<ActiveParticipant`, `<AuditSourceIdentification AuditSourceID="x"></AuditSourceIdentification><ActiveParticipant`, "ActiveParticipant"},
		{"query not base64", `<ParticipantObjectQuery>`, `<ParticipantObjectQuery>!!`, "base64"},
		{"bad role", `ParticipantObjectTypeCodeRole="3"`, `ParticipantObjectTypeCodeRole="27"`, "ParticipantObjectTypeCodeRole"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := strings.Replace(string(good), tt.from, tt.to, 1)
			if bad == string(good) {
				t.Fatalf("%q not in the message: %s", tt.from, good)
			}
			_, err := Check([]byte(bad))
			if !errors.Is(err, ErrInvalidMessage) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Check = %v, want an error naming %s", err, tt.want)
			}
		})
	}
}
