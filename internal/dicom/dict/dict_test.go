package dict

import (
	"fmt"
	"strings"
	"testing"
)

func TestLookup(t *testing.T) {
	const exact = 0xFFFFFFFF
	tests := []struct {
		tag  uint32
		want Entry
	}{
		{0x00100010, Entry{Tag: 0x00100010, Mask: exact, VR: "PN", VM: "1", Keyword: "PatientName"}},
		{0x7FE00010, Entry{Tag: 0x7FE00010, Mask: exact, VR: "OB", AltVR: "OW", VM: "1", Keyword: "PixelData"}},
		{0x00280106, Entry{Tag: 0x00280106, Mask: exact, VR: "US", AltVR: "SS", VM: "1", Keyword: "SmallestImagePixelValue"}},
		{0x00283006, Entry{Tag: 0x00283006, Mask: exact, VR: "OW", AltVR: "US", VM: "1-n", Keyword: "LUTData"}},
		{0x00041200, Entry{Tag: 0x00041200, Mask: exact, VR: "UL", VM: "1", Keyword: "OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity"}},
		{0x00020000, Entry{Tag: 0x00020000, Mask: exact, VR: "UL", VM: "1", Keyword: "FileMetaInformationGroupLength"}},
		{0x0020000D, Entry{Tag: 0x0020000D, Mask: exact, VR: "UI", VM: "1", Keyword: "StudyInstanceUID"}},
		{0x00140025, Entry{Tag: 0x00140025, Mask: exact, VR: "ST", VM: "1", Keyword: "ComponentManufacturingProcedure"}},
		// Repeating groups.
		{0x60003000, Entry{Tag: 0x60003000, Mask: 0xFF01FFFF, VR: "OB", AltVR: "OW", VM: "1", Keyword: "OverlayData"}},
		{0x60FE3000, Entry{Tag: 0x60003000, Mask: 0xFF01FFFF, VR: "OB", AltVR: "OW", VM: "1", Keyword: "OverlayData"}},
		{0x60020010, Entry{Tag: 0x60000010, Mask: 0xFF01FFFF, VR: "US", VM: "1", Keyword: "OverlayRows"}},
		{0x50100005, Entry{Tag: 0x50000005, Mask: 0xFF01FFFF, VR: "US", VM: "1", Keyword: "CurveDimensions", Retired: true}},
		{0x00203102, Entry{Tag: 0x00203100, Mask: 0xFFFFFF01, VR: "CS", VM: "1-n", Keyword: "SourceImageIDs", Retired: true}},
		{0x7F020010, Entry{Tag: 0x7F000010, Mask: 0xFF01FFFF, VR: "OB", AltVR: "OW", VM: "1", Keyword: "VariablePixelData", Retired: true}},
		// Retired exact entry.
		{0x00280104, Entry{Tag: 0x00280104, Mask: exact, VR: "US", AltVR: "SS", VM: "1", Keyword: "SmallestValidPixelValue", Retired: true}},
		// Group lengths.
		{0x00080000, Entry{Tag: 0x00080000, Mask: exact, VR: "UL", VM: "1", Keyword: "GroupLength", Retired: true}},
		{0x00290000, Entry{Tag: 0x00290000, Mask: exact, VR: "UL", VM: "1", Keyword: "GroupLength", Retired: true}},
		// Private creators.
		{0x00290010, Entry{Tag: 0x00290010, Mask: exact, VR: "LO", VM: "1", Keyword: "PrivateCreator"}},
		{0x001900FF, Entry{Tag: 0x001900FF, Mask: exact, VR: "LO", VM: "1", Keyword: "PrivateCreator"}},
		// Items and delimiters have no VR.
		{0xFFFEE000, Entry{Tag: 0xFFFEE000, Mask: exact, VR: "", VM: "1", Keyword: "Item"}},
		{0xFFFEE0DD, Entry{Tag: 0xFFFEE0DD, Mask: exact, VR: "", VM: "1", Keyword: "SequenceDelimitationItem"}},
	}
	for _, tt := range tests {
		got, ok := Lookup(tt.tag)
		if !ok || got != tt.want {
			t.Errorf("Lookup(%08X) = %+v, %v; want %+v, true", tt.tag, got, ok, tt.want)
		}
	}
}

func TestLookupNotFound(t *testing.T) {
	for _, tag := range []uint32{
		0x00291010, // private data element
		0x00290001, // private group, reserved element below the creators
		0x00290100, // beyond the private creator range
		0x60013000, // odd group: private data element, not overlay data
		0x00010010, // illegal odd group 0001: not private
		0x00070010, // illegal odd group 0007
		0xFFFF0010,
		0x00203101, // (0020,3100-31FF) covers even elements only
		0x00100011, // unassigned element in a standard group
		0x61003000, // outside the repeating group range
	} {
		if e, ok := Lookup(tag); ok {
			t.Errorf("Lookup(%08X) = %+v, want not found", tag, e)
		}
	}
}

func TestByKeyword(t *testing.T) {
	e, ok := ByKeyword("StudyInstanceUID")
	if !ok || e.Tag != 0x0020000D || e.Mask != 0xFFFFFFFF || e.VR != "UI" {
		t.Errorf("ByKeyword(StudyInstanceUID) = %+v, %v", e, ok)
	}
	e, ok = ByKeyword("OverlayData")
	if !ok || e.Tag != 0x60003000 || e.Mask != 0xFF01FFFF {
		t.Errorf("ByKeyword(OverlayData) = %+v, %v", e, ok)
	}
	e, ok = ByKeyword("SmallestValidPixelValue")
	if !ok || e.Tag != 0x00280104 || !e.Retired {
		t.Errorf("ByKeyword(SmallestValidPixelValue) = %+v, %v", e, ok)
	}
	for _, kw := range []string{"", "studyinstanceuid", "RETIRED_SmallestValidPixelValue", "GroupLength", "PrivateCreator", "NoSuchKeyword"} {
		if e, ok := ByKeyword(kw); ok {
			t.Errorf("ByKeyword(%q) = %+v, want not found", kw, e)
		}
	}
}

var ps35VRs = func() map[string]bool {
	m := map[string]bool{}
	for _, v := range strings.Fields("AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV") {
		m[v] = true
	}
	return m
}()

func allEntries() []Entry {
	return append(append([]Entry(nil), exactEntries[:]...), maskedEntries[:]...)
}

// TestTables checks the invariants Lookup and ByKeyword rely on, and that
// each entry is well formed.
func TestTables(t *testing.T) {
	if len(exactEntries) < 4000 {
		t.Errorf("only %d exact entries", len(exactEntries))
	}
	for i := range exactEntries {
		if e := exactEntries[i]; e.Mask != 0xFFFFFFFF {
			t.Errorf("exact entry %s has mask %08X", e.Keyword, e.Mask)
		}
		if i > 0 && exactEntries[i-1].Tag >= exactEntries[i].Tag {
			t.Errorf("exactEntries not strictly sorted at %d (%08X, %08X)", i, exactEntries[i-1].Tag, exactEntries[i].Tag)
		}
	}
	covered := 0
	for k, r := range maskRuns {
		if r.lo != covered || r.hi <= r.lo || r.hi > len(maskedEntries) {
			t.Fatalf("maskRuns[%d] = %+v does not continue at %d", k, r, covered)
		}
		covered = r.hi
		for i := r.lo; i < r.hi; i++ {
			e := maskedEntries[i]
			if e.Mask != r.mask || e.Tag&e.Mask != e.Tag {
				t.Errorf("masked entry %s: Tag %08X Mask %08X in run with mask %08X", e.Keyword, e.Tag, e.Mask, r.mask)
			}
			if i > r.lo && maskedEntries[i-1].Tag >= e.Tag {
				t.Errorf("maskedEntries not strictly sorted at %d", i)
			}
		}
	}
	if covered != len(maskedEntries) {
		t.Errorf("maskRuns cover %d of %d masked entries", covered, len(maskedEntries))
	}

	seen := map[string]uint32{}
	for _, e := range allEntries() {
		if e.VR == "" {
			if e.Tag>>16 != 0xFFFE || e.AltVR != "" {
				t.Errorf("%s (%08X): empty VR outside the item/delimitation group", e.Keyword, e.Tag)
			}
		} else if !ps35VRs[e.VR] {
			t.Errorf("%s (%08X): VR %q is not a PS3.5 VR", e.Keyword, e.Tag, e.VR)
		}
		if e.AltVR != "" && (!ps35VRs[e.AltVR] || e.AltVR == e.VR) {
			t.Errorf("%s (%08X): bad AltVR %q", e.Keyword, e.Tag, e.AltVR)
		}
		if e.VM == "" || e.Keyword == "" || strings.HasPrefix(e.Keyword, "RETIRED_") {
			t.Errorf("%08X: bad VM %q or keyword %q", e.Tag, e.VM, e.Keyword)
		}
		if prev, dup := seen[e.Keyword]; dup {
			t.Errorf("keyword %s used by %08X and %08X", e.Keyword, prev, e.Tag)
		}
		seen[e.Keyword] = e.Tag
		// Every entry is found again by its own tag and keyword.
		if got, ok := Lookup(e.Tag); !ok || got != e {
			t.Errorf("Lookup(%08X) = %+v, %v; want %+v", e.Tag, got, ok, e)
		}
		if got, ok := ByKeyword(e.Keyword); !ok || got != e {
			t.Errorf("ByKeyword(%q) = %+v, %v; want %+v", e.Keyword, got, ok, e)
		}
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	tags := benchTags()
	n := testing.AllocsPerRun(100, func() {
		for _, tag := range tags {
			Lookup(tag)
		}
	})
	if n != 0 {
		t.Errorf("Lookup allocates %v times per run", n)
	}
}

func benchTags() []uint32 {
	return []uint32{
		0x00080005, 0x00080016, 0x00080018, 0x00080060, 0x00100010, 0x00100020,
		0x0020000D, 0x0020000E, 0x00200013, 0x00280010, 0x00280011, 0x00280100,
		0x00281050, 0x7FE00010, 0xFFFEE000, // common exact
		0x60003000, 0x60020010, // repeating group
		0x00090010, 0x00091001, // private
		0x00080000, // group length
	}
}

func BenchmarkLookup(b *testing.B) {
	tags := benchTags()
	for _, tag := range tags {
		b.Run(fmt.Sprintf("%08X", tag), func(b *testing.B) {
			for b.Loop() {
				Lookup(tag)
			}
		})
	}
	b.Run("mix", func(b *testing.B) {
		i := 0
		for b.Loop() {
			Lookup(tags[i])
			if i++; i == len(tags) {
				i = 0
			}
		}
	})
}
