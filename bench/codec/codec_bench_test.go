package codec

// Side-by-side benchmarks of dicomshield's codec (internal/dicom) and
// github.com/suyashkumar/dicom on the same generated files (see gen_test.go).
//
//	BenchmarkHeaderOnly/<file>/{dicomshield,suyashkumar}     from disk
//	BenchmarkFullParse/<file>/{dicomshield,suyashkumar,...}  from disk
//	BenchmarkHeaderOnlyMem/...  BenchmarkFullParseMem/...    from a []byte
//
// Besides ns/op, B/op and allocs/op each benchmark reports allocs/elem:
// allocations per data element, with the elements counted once with our
// parser (meta group and nested elements included, items not counted), the
// same denominator for both libraries.
//
// Header-only means "everything before Pixel Data". Ours stops before the
// Pixel Data element (ReadOptions.StopAt) and reads none of it. The other
// library has no way to stop early; its fairest header-only mode is
// SkipPixelData(), which still reads the pixel bytes and discards them
// (io.CopyN to io.Discard). SkipMetadataReadOnNewParserInit is not used: it
// would make it parse the meta group as implicit VR data and then read the
// explicit VR data sets wrongly.

import (
	"bytes"
	"runtime"
	"strings"
	"testing"

	"github.com/dicomshield/dicomshield/internal/dicom"
	sdicom "github.com/suyashkumar/dicom"
)

// Results are stored here so that the compiler cannot drop the work.
var (
	sinkOurs   *dicom.File
	sinkTheirs sdicom.Dataset
)

// theirsExcluded names the files the other library cannot parse (found by
// TestSameValues); their side of the benchmark is skipped for those, with
// the reason. Empty: it parses every generated file.
var theirsExcluded = map[string]string{}

// measure runs op b.N times and reports allocs/elem besides the usual
// metrics.
func measure(b *testing.B, f *benchFile, elems int, op func() error) {
	if reason, ok := theirsExcluded[f.name]; ok && strings.Contains(b.Name(), "/suyashkumar") {
		b.Skip(reason)
	}
	if err := op(); err != nil { // validate once, untimed
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(f.size)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := op(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(b.N)/float64(elems), "allocs/elem")
}

func BenchmarkHeaderOnly(b *testing.B) {
	opts := &dicom.ReadOptions{StopAt: dicom.TagPixelData}
	for _, f := range testFiles(b) {
		b.Run(f.name, func(b *testing.B) {
			b.Run("dicomshield", func(b *testing.B) {
				measure(b, f, f.headerElems, func() (err error) {
					sinkOurs, err = dicom.ReadFile(f.path, opts)
					return err
				})
			})
			b.Run("suyashkumar", func(b *testing.B) {
				measure(b, f, f.headerElems, func() (err error) {
					sinkTheirs, err = sdicom.ParseFile(f.path, nil, sdicom.SkipPixelData())
					return err
				})
			})
		})
	}
}

func BenchmarkFullParse(b *testing.B) {
	for _, f := range testFiles(b) {
		b.Run(f.name, func(b *testing.B) {
			b.Run("dicomshield", func(b *testing.B) {
				measure(b, f, f.fullElems, func() (err error) {
					sinkOurs, err = dicom.ReadFile(f.path, nil)
					return err
				})
			})
			// Their default: native pixel data is decoded into typed frames
			// ([]uint16 per frame), sample by sample.
			b.Run("suyashkumar", func(b *testing.B) {
				measure(b, f, f.fullElems, func() (err error) {
					sinkTheirs, err = sdicom.ParseFile(f.path, nil)
					return err
				})
			})
			// Closer to what ours does (keep the raw pixel bytes): their
			// SkipProcessingPixelDataValue reads Pixel Data into one []byte.
			b.Run("suyashkumar-rawpixels", func(b *testing.B) {
				measure(b, f, f.fullElems, func() (err error) {
					sinkTheirs, err = sdicom.ParseFile(f.path, nil, sdicom.SkipProcessingPixelDataValue())
					return err
				})
			})
		})
	}
}

// The in-memory variants take the file from a []byte so that the page
// cache and the read syscalls do not dominate. Ours aliases the input (no
// value is copied); theirs reads through a bufio.Reader and copies.

func BenchmarkHeaderOnlyMem(b *testing.B) {
	opts := &dicom.ReadOptions{StopAt: dicom.TagPixelData}
	for _, f := range testFiles(b) {
		b.Run(f.name, func(b *testing.B) {
			b.Run("dicomshield", func(b *testing.B) {
				measure(b, f, f.headerElems, func() (err error) {
					sinkOurs, err = dicom.ParseFile(f.data, opts)
					return err
				})
			})
			b.Run("suyashkumar", func(b *testing.B) {
				measure(b, f, f.headerElems, func() (err error) {
					sinkTheirs, err = sdicom.Parse(bytes.NewReader(f.data), int64(len(f.data)), nil, sdicom.SkipPixelData())
					return err
				})
			})
		})
	}
}

func BenchmarkFullParseMem(b *testing.B) {
	for _, f := range testFiles(b) {
		b.Run(f.name, func(b *testing.B) {
			b.Run("dicomshield", func(b *testing.B) {
				measure(b, f, f.fullElems, func() (err error) {
					sinkOurs, err = dicom.ParseFile(f.data, nil)
					return err
				})
			})
			b.Run("suyashkumar", func(b *testing.B) {
				measure(b, f, f.fullElems, func() (err error) {
					sinkTheirs, err = sdicom.Parse(bytes.NewReader(f.data), int64(len(f.data)), nil)
					return err
				})
			})
			b.Run("suyashkumar-rawpixels", func(b *testing.B) {
				measure(b, f, f.fullElems, func() (err error) {
					sinkTheirs, err = sdicom.Parse(bytes.NewReader(f.data), int64(len(f.data)), nil, sdicom.SkipProcessingPixelDataValue())
					return err
				})
			})
		})
	}
}
