package ul

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

func sampleRQ() *AssociateRQ {
	return &AssociateRQ{Associate{
		ProtocolVersion: 1,
		CalledAE:        "ARCHIVE",
		CallingAE:       "MODALITY1",
		AppContext:      ApplicationContextName,
		Contexts: []PresentationContext{
			{ID: 1, AbstractSyntax: "1.2.840.10008.1.1", TransferSyntaxes: []string{"1.2.840.10008.1.2"}},
			{ID: 3, AbstractSyntax: "1.2.840.10008.5.1.4.1.1.2", TransferSyntaxes: []string{"1.2.840.10008.1.2.1", "1.2.840.10008.1.2"}},
		},
		User: UserInfo{
			MaxLength:              16384,
			ImplementationClassUID: "2.25.1",
			ImplementationVersion:  "TEST_1",
			AsyncWindow:            &[2]uint16{1, 1},
			Roles:                  []RoleSelection{{SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", SCU: true, SCP: true}},
			Extended:               []SOPClassExtended{{SOPClassUID: "1.2.840.10008.5.1.4.1.2.2.1", Info: []byte{1, 1, 0}}},
			CommonExtended: []SOPClassCommonExtended{{SOPClassUID: "1.2.840.10008.5.1.4.1.1.2",
				ServiceClassUID: "1.2.840.10008.4.2", RelatedGeneral: []string{"1.2.840.10008.5.1.4.1.1.2.1"}}},
			Identity: &UserIdentity{Type: IdentityUsernamePasscode, PositiveResponseRequested: true,
				Primary: []byte("alice"), Secondary: []byte("secret")},
		},
	}}
}

func sampleAC() *AssociateAC {
	return &AssociateAC{Associate{
		ProtocolVersion: 1,
		CalledAE:        "ARCHIVE",
		CallingAE:       "MODALITY1",
		AppContext:      ApplicationContextName,
		Contexts: []PresentationContext{
			{ID: 1, Result: ResultAcceptance, TransferSyntaxes: []string{"1.2.840.10008.1.2"}},
			{ID: 3, Result: ResultAbstractSyntaxNotSupported, TransferSyntaxes: []string{"1.2.840.10008.1.2"}},
		},
		User: UserInfo{
			MaxLength:              1 << 20,
			ImplementationClassUID: "2.25.2",
			ImplementationVersion:  "TEST_2",
			Roles:                  []RoleSelection{{SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", SCU: false, SCP: true}},
			IdentityResp:           []byte("ok"),
			HasIdentityResp:        true,
		},
	}}
}

func allPDUs() map[string]PDU {
	return map[string]PDU{
		"associate_rq": sampleRQ(),
		"associate_ac": sampleAC(),
		"associate_rj": &AssociateRJ{Result: RejectPermanent, Source: SourceServiceUser, Reason: ReasonCallingAENotRecognized},
		"p_data_tf": &PDataTF{PDVs: []PDV{
			{ContextID: 1, Command: true, Last: true, Data: []byte{1, 2, 3, 4}},
			{ContextID: 1, Command: false, Last: false, Data: []byte{5, 6}},
		}},
		"release_rq": &ReleaseRQ{},
		"release_rp": &ReleaseRP{},
		"abort":      &Abort{Source: AbortSourceProvider, Reason: AbortReasonInvalidParameter},
	}
}

// TestPDUGolden pins the encoding of every PDU type to checked-in hex
// files and decodes them back to the same value.
func TestPDUGolden(t *testing.T) {
	for name, p := range allPDUs() {
		t.Run(name, func(t *testing.T) {
			enc := p.Append(nil)
			path := filepath.Join("testdata", "golden", name+".hex")
			if *update {
				os.MkdirAll(filepath.Dir(path), 0o755)
				os.WriteFile(path, []byte(hex.Dump(enc)), 0o644)
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (go test -run Golden -update creates it)", err)
			}
			if hex.Dump(enc) != string(want) {
				t.Fatalf("encoding changed:\n%s", hex.Dump(enc))
			}
			got, _, err := ReadPDU(bytes.NewReader(enc), 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, p) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, p)
			}
		})
	}
}

func TestReadPDULimits(t *testing.T) {
	tests := []struct {
		name   string
		in     []byte
		max    uint32
		reason byte
	}{
		{"4 GiB P-DATA", []byte{4, 0, 0xFF, 0xFF, 0xFF, 0xFF}, 0, AbortReasonInvalidParameter},
		{"P-DATA over negotiated max", []byte{4, 0, 0, 0, 0x40, 0x01}, 16384, AbortReasonInvalidParameter},
		{"2 MiB associate", []byte{1, 0, 0, 0x20, 0, 0}, 0, AbortReasonInvalidParameter},
		{"unknown type", []byte{9, 0, 0, 0, 0, 4, 0, 0, 0, 0}, 0, AbortReasonUnrecognizedPDU},
		{"long release", []byte{5, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0}, 0, AbortReasonInvalidParameter},
		{"empty P-DATA", []byte{4, 0, 0, 0, 0, 0}, 0, AbortReasonInvalidParameter},
		{"PDV longer than PDU", []byte{4, 0, 0, 0, 0, 6, 0, 0, 0, 9, 1, 3}, 0, AbortReasonInvalidParameter},
		{"PDV shorter than header", []byte{4, 0, 0, 0, 0, 5, 0, 0, 0, 1, 1}, 0, AbortReasonInvalidParameter},
		{"PDV reserved bits", []byte{4, 0, 0, 0, 0, 7, 0, 0, 0, 3, 1, 0x83, 0}, 0, AbortReasonInvalidParameter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ReadPDU(bytes.NewReader(tt.in), tt.max, nil)
			var pe *ProtocolError
			if !errors.As(err, &pe) || pe.Reason != tt.reason {
				t.Fatalf("err = %v, want protocol error with reason %d", err, tt.reason)
			}
		})
	}
}

// TestAssociateDecodeErrors truncates and corrupts a valid A-ASSOCIATE-RQ
// at every byte: each variant decodes or fails with a ProtocolError, never
// a panic, and every truncation fails.
func TestAssociateDecodeErrors(t *testing.T) {
	enc := sampleRQ().Append(nil)
	body := enc[6:]
	for n := 0; n < len(body); n++ {
		if _, err := DecodePDU(TypeAssociateRQ, body[:n]); !errors.Is(err, ErrProtocol) {
			t.Fatalf("truncated to %d bytes: err = %v", n, err)
		}
	}
	for i := range body {
		c := append([]byte(nil), body...)
		c[i] ^= 0xFF
		if _, err := DecodePDU(TypeAssociateRQ, c); err != nil && !errors.Is(err, ErrProtocol) {
			t.Fatalf("corrupt byte %d: non-protocol error %v", i, err)
		}
	}
}

func TestRejectText(t *testing.T) {
	tests := []struct {
		rj   AssociateRJ
		want string
	}{
		{AssociateRJ{1, 1, 3}, "association rejected permanently by the called application: calling AE title not recognized"},
		{AssociateRJ{1, 1, 7}, "association rejected permanently by the called application: called AE title not recognized"},
		{AssociateRJ{2, 3, 1}, "association rejected for now (transient) by the peer's presentation layer: temporary congestion"},
		{AssociateRJ{1, 2, 2}, "association rejected permanently by the peer's association control (ACSE): protocol version not supported"},
		{AssociateRJ{1, 1, 9}, "association rejected permanently by the called application: reason code 9"},
	}
	for _, tt := range tests {
		if got := tt.rj.String(); got != tt.want {
			t.Errorf("%+v: %q", tt.rj, got)
		}
	}
}

func FuzzDecodePDU(f *testing.F) {
	for _, p := range allPDUs() {
		enc := p.Append(nil)
		f.Add(enc[0], enc[6:])
	}
	f.Fuzz(func(t *testing.T, typ byte, body []byte) {
		p, err := DecodePDU(typ, body)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("non-protocol error %v", err)
			}
			return
		}
		// What decodes re-encodes and decodes to the same value.
		enc := p.Append(nil)
		p2, err := DecodePDU(enc[0], enc[6:])
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !reflect.DeepEqual(normalize(p), normalize(p2)) {
			t.Fatalf("round trip differs:\n%+v\n%+v", p, p2)
		}
	})
}

// normalize clears what the encoding does not keep: AE titles are padded
// and trimmed, and PDU fields decoders do not read.
func normalize(p PDU) PDU {
	switch p := p.(type) {
	case *AssociateRJ:
		return &AssociateRJ{p.Result, p.Source, p.Reason}
	}
	return p
}
