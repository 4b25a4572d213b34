package codec

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/dicomshield/dicomshield/internal/dicom"
	sdicom "github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// facts are the values both libraries must agree on for the benchmark to
// compare like with like.
type facts struct {
	patientName string
	studyUID    string
	rows, cols  int
	pixelBytes  int
}

func (f facts) String() string {
	return fmt.Sprintf("PatientName=%q StudyInstanceUID=%q Rows=%d Columns=%d pixel bytes=%d",
		f.patientName, f.studyUID, f.rows, f.cols, f.pixelBytes)
}

func oursFacts(f *dicom.File) (facts, error) {
	ds := &f.DataSet
	u16 := func(t dicom.Tag) int {
		if e := ds.Get(t); e != nil && len(e.Value) >= 2 {
			return int(binary.LittleEndian.Uint16(e.Value))
		}
		return -1
	}
	out := facts{
		patientName: ds.String(dicom.TagPatientName),
		studyUID:    ds.String(dicom.TagStudyInstanceUID),
		rows:        u16(dicom.NewTag(0x0028, 0x0010)),
		cols:        u16(dicom.NewTag(0x0028, 0x0011)),
		pixelBytes:  -1,
	}
	if e := ds.Get(dicom.TagPixelData); e != nil {
		out.pixelBytes = len(e.Value)
	}
	return out, nil
}

func theirsFacts(ds sdicom.Dataset) (facts, error) {
	str := func(t tag.Tag) (string, error) {
		e, err := ds.FindElementByTag(t)
		if err != nil {
			return "", err
		}
		s, ok := e.Value.GetValue().([]string)
		if !ok || len(s) == 0 {
			return "", fmt.Errorf("%v: not a string value", t)
		}
		return strings.TrimRight(s[0], " \x00"), nil
	}
	num := func(t tag.Tag) (int, error) {
		e, err := ds.FindElementByTag(t)
		if err != nil {
			return 0, err
		}
		n, ok := e.Value.GetValue().([]int)
		if !ok || len(n) == 0 {
			return 0, fmt.Errorf("%v: not an integer value", t)
		}
		return n[0], nil
	}
	var out facts
	var err error
	if out.patientName, err = str(tag.PatientName); err != nil {
		return out, err
	}
	if out.studyUID, err = str(tag.StudyInstanceUID); err != nil {
		return out, err
	}
	if out.rows, err = num(tag.Rows); err != nil {
		return out, err
	}
	if out.cols, err = num(tag.Columns); err != nil {
		return out, err
	}
	e, err := ds.FindElementByTag(tag.PixelData)
	if err != nil {
		return out, err
	}
	info, ok := e.Value.GetValue().(sdicom.PixelDataInfo)
	if !ok {
		return out, fmt.Errorf("pixel data value is %T", e.Value.GetValue())
	}
	if info.IntentionallyUnprocessed {
		out.pixelBytes = len(info.UnprocessedValueData)
		return out, nil
	}
	for _, fr := range info.Frames {
		nf, err := fr.GetNativeFrame()
		if err != nil {
			return out, err
		}
		n := 0
		switch raw := nf.RawDataSlice().(type) {
		case []uint8:
			n = len(raw)
		case []uint16:
			n = len(raw)
		case []uint32:
			n = len(raw)
		case []int:
			n = len(raw)
		default:
			return out, fmt.Errorf("unexpected frame data %T", raw)
		}
		out.pixelBytes += n * nf.BitsPerSample() / 8
	}
	return out, nil
}

// theirsCount counts the elements the other library returns, nested ones
// included, to show that both see the same structure.
func theirsCount(ds sdicom.Dataset) int {
	n := 0
	for it := ds.FlatStatefulIterator(); it.HasNext(); it.Next() {
		n++
	}
	return n
}

// TestSameValues parses every generated file with both libraries (from disk
// and from memory) and checks that they agree on the values the benchmark
// relies on, so that the comparison is like with like.
func TestSameValues(t *testing.T) {
	for _, f := range testFiles(t) {
		t.Run(f.name, func(t *testing.T) {
			want := facts{f.patientName, f.studyUID, f.rows, f.cols, f.pixelBytes}

			of, err := dicom.ReadFile(f.path, nil)
			if err != nil {
				t.Fatalf("dicomshield ReadFile: %v", err)
			}
			if got, _ := oursFacts(of); got != want {
				t.Errorf("dicomshield ReadFile:\n got %v\nwant %v", got, want)
			}
			of, err = dicom.ParseFile(f.data, nil)
			if err != nil {
				t.Fatalf("dicomshield ParseFile: %v", err)
			}
			if got, _ := oursFacts(of); got != want {
				t.Errorf("dicomshield ParseFile:\n got %v\nwant %v", got, want)
			}
			hf, err := dicom.ReadFile(f.path, &dicom.ReadOptions{StopAt: dicom.TagPixelData})
			if err != nil {
				t.Fatalf("dicomshield header-only: %v", err)
			}
			hw := want
			hw.pixelBytes = -1
			if got, _ := oursFacts(hf); got != hw || !hf.HeaderOnly {
				t.Errorf("dicomshield header-only:\n got %v (HeaderOnly=%v)\nwant %v", got, hf.HeaderOnly, hw)
			}

			if reason, ok := theirsExcluded[f.name]; ok {
				t.Logf("suyashkumar not compared on this file: %s", reason)
				return
			}
			theirs := []struct {
				name  string
				parse func() (sdicom.Dataset, error)
			}{
				{"ParseFile", func() (sdicom.Dataset, error) { return sdicom.ParseFile(f.path, nil) }},
				{"Parse", func() (sdicom.Dataset, error) {
					return sdicom.Parse(bytes.NewReader(f.data), int64(len(f.data)), nil)
				}},
				{"ParseFile(SkipProcessingPixelDataValue)", func() (sdicom.Dataset, error) {
					return sdicom.ParseFile(f.path, nil, sdicom.SkipProcessingPixelDataValue())
				}},
			}
			for _, p := range theirs {
				ds, err := p.parse()
				if err != nil {
					t.Errorf("suyashkumar %s: %v", p.name, err)
					continue
				}
				got, err := theirsFacts(ds)
				if err != nil {
					t.Errorf("suyashkumar %s: %v", p.name, err)
					continue
				}
				if got != want {
					t.Errorf("suyashkumar %s:\n got %v\nwant %v", p.name, got, want)
				}
				if n := theirsCount(ds); n != f.fullElems {
					t.Errorf("suyashkumar %s sees %d elements, dicomshield %d", p.name, n, f.fullElems)
				}
			}
			// Their header-only mode must still see the header.
			ds, err := sdicom.ParseFile(f.path, nil, sdicom.SkipPixelData())
			if err != nil {
				t.Fatalf("suyashkumar SkipPixelData: %v", err)
			}
			if n := theirsCount(ds); n != f.headerElems+1 { // + the skipped Pixel Data element
				t.Errorf("suyashkumar SkipPixelData sees %d elements, dicomshield header-only %d (+1 for Pixel Data)", n, f.headerElems)
			}
			t.Logf("%s: %d bytes, %d elements (%d before Pixel Data)", f.name, f.size, f.fullElems, f.headerElems)
		})
	}
}
