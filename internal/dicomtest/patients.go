package dicomtest

import (
	"crypto/rand"
	"fmt"
	"math/big"
	"strings"
	"testing"

	"github.com/dicomshield/dicomshield/internal/dicom"
)

// Synthetic patients for lab servers: random made-up names, IDs, birth
// dates and addresses, generated in the test, so that a test can load a
// real server with them and then search everything the scanner wrote for
// each value (a value found there was leaked).

// Upper is the alphabet of made-up names and AE titles.
const Upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

// RandomString returns n characters drawn from letters.
func RandomString(t testing.TB, letters string, n int) string {
	b := make([]byte, n)
	for i := range b {
		k, err := rand.Int(rand.Reader, big.NewInt(int64(len(letters))))
		if err != nil {
			t.Fatal(err)
		}
		b[i] = letters[k.Int64()]
	}
	return string(b)
}

// RandomUID returns a UID under the UUID root 2.25 nobody else uses.
func RandomUID(t testing.TB) string {
	return "2.25." + RandomString(t, "123456789", 1) + RandomString(t, "0123456789", 30)
}

// Patient is a made-up patient: every value is random.
type Patient struct {
	Name, ID, Address, BirthDate string
	Studies                      int // how many studies LoadPatients makes for it
}

// Patients makes n patients with 1 or 2 studies each (alternately).
func Patients(t testing.TB, n int) []Patient {
	var ps []Patient
	for i := range n {
		ps = append(ps, Patient{
			Name:    RandomString(t, Upper, 9) + "^" + RandomString(t, Upper, 7),
			ID:      "P" + RandomString(t, "0123456789", 9),
			Address: RandomString(t, "0123456789", 3) + " " + RandomString(t, Upper, 10) + " STREET",
			BirthDate: "19" + RandomString(t, "345678", 1) + RandomString(t, "0123456789", 1) +
				fmt.Sprintf("%02d%02d", 1+i%12, 10+i%18),
			Studies: 1 + i%2,
		})
	}
	return ps
}

// Secrets are p's values that must never appear in what a scanner
// writes: the name, each of its components, the ID, the birth date and
// the address.
func (p Patient) Secrets() []string {
	s := []string{p.Name, p.ID, p.Address, p.BirthDate}
	return append(s, strings.Split(p.Name, "^")...)
}

// StudyFile is one Part 10 secondary capture instance of p in a new
// study and series.
func (p Patient) StudyFile(t testing.TB) []byte {
	t.Helper()
	ds := &dicom.DataSet{}
	set := func(tag dicom.Tag, vr dicom.VR, v string) { ds.Set(dicom.NewText(tag, vr, v)) }
	set(dicom.TagSOPClassUID, dicom.UI, "1.2.840.10008.5.1.4.1.1.7")
	set(dicom.TagSOPInstanceUID, dicom.UI, RandomUID(t))
	set(0x00080020, dicom.DA, "20240102")
	set(0x00080060, dicom.CS, "OT")
	set(0x00080064, dicom.CS, "WSD")
	set(0x00081030, dicom.LO, "LAB STUDY")
	set(dicom.TagPatientName, dicom.PN, p.Name)
	set(dicom.TagPatientID, dicom.LO, p.ID)
	set(0x00100030, dicom.DA, p.BirthDate)
	set(0x00100040, dicom.CS, "F")
	set(0x00101040, dicom.LO, p.Address)
	set(dicom.TagStudyInstanceUID, dicom.UI, RandomUID(t))
	set(dicom.TagSeriesInstanceUID, dicom.UI, RandomUID(t))
	set(0x00200013, dicom.IS, "1")
	ds.Set(dicom.NewUint16s(0x00280002, dicom.US, 1))
	set(0x00280004, dicom.CS, "MONOCHROME2")
	ds.Set(dicom.NewUint16s(0x00280010, dicom.US, 4))
	ds.Set(dicom.NewUint16s(0x00280011, dicom.US, 4))
	ds.Set(dicom.NewUint16s(0x00280100, dicom.US, 8))
	ds.Set(dicom.NewUint16s(0x00280101, dicom.US, 8))
	ds.Set(dicom.NewUint16s(0x00280102, dicom.US, 7))
	ds.Set(dicom.NewUint16s(0x00280103, dicom.US, 0))
	ds.Set(dicom.NewBytes(dicom.TagPixelData, dicom.OB, make([]byte, 16)))
	b, err := dicom.MarshalFile(dicom.NewFile(ds, dicom.ExplicitVRLittleEndian))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Secrets gathers the secrets of every patient of ps.
func Secrets(ps []Patient) []string {
	var s []string
	for _, p := range ps {
		s = append(s, p.Secrets()...)
	}
	return s
}

// NoPatientData fails the test for each secret found in out, naming what
// out is and the kind of leak but never the value (test logs are output
// too).
func NoPatientData(t testing.TB, what string, out []byte, secrets []string) {
	t.Helper()
	for i, s := range secrets {
		if strings.Contains(string(out), s) {
			t.Errorf("%s contains loaded patient data (secret %d of %d)", what, i+1, len(secrets))
		}
	}
}
