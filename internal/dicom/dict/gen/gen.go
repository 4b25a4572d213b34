package main

import (
	"bufio"
	"bytes"
	"fmt"
	"go/format"
	"io"
	"sort"
	"strconv"
	"strings"
)

// record is one parsed dictionary row that will be emitted.
type record struct {
	tag, mask uint32
	vr, altVR string
	vm        string
	keyword   string
	retired   bool
	line      int
}

// stats summarises what parse kept and dropped.
type stats struct {
	exact, masked int
	skipped       map[string]int // status column -> rows dropped
	source        string         // rest of the "Generated automatically from ..." header line, if any
}

// ps35VRs is the set of value representations of PS3.5 table 6.2-1.
var ps35VRs = map[string]bool{}

func init() {
	for _, v := range strings.Fields("AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV") {
		ps35VRs[v] = true
	}
}

// dcmtkVRs maps DCMTK's internal lower-case VR codes to a primary and an
// alternative standard VR.
var dcmtkVRs = map[string][2]string{
	"ox": {"OB", "OW"}, // "OB or OW" (overlay, waveform, curve, audio data)
	"px": {"OB", "OW"}, // Pixel Data: "OB or OW"
	"xs": {"US", "SS"}, // "US or SS"
	"lt": {"OW", "US"}, // LUT data: "US or OW" ("US or SS or OW" for some retired ones); OW is the implicit-VR reading
	"up": {"UL", ""},   // unsigned 32-bit pointer (DICOMDIR offsets): UL
	"na": {"", ""},     // items and delimitation items have no VR
}

// mapVR converts the VR column to the primary and alternative standard VR.
func mapVR(s string) (vr, alt string, err error) {
	if ps35VRs[s] {
		return s, "", nil
	}
	if m, ok := dcmtkVRs[s]; ok {
		return m[0], m[1], nil
	}
	return "", "", fmt.Errorf("unknown VR %q", s)
}

// parseTagPart parses one half of a tag: "gggg", "gggg-gggg" (even values
// only), or "gggg-r-gggg" with r one of o (odd), e (even), u (all). It
// returns the value with the varying bits zeroed (or the low bit set for odd
// ranges) and the 16-bit mask of the bits that are fixed.
func parseTagPart(s string) (val, mask uint16, err error) {
	hex := func(h string) (uint16, error) {
		if len(h) != 4 {
			return 0, fmt.Errorf("bad hex number %q", h)
		}
		v, err := strconv.ParseUint(h, 16, 16)
		return uint16(v), err
	}
	f := strings.Split(s, "-")
	var lo, hi uint16
	restrict := byte('e')
	switch len(f) {
	case 1:
		v, err := hex(f[0])
		return v, 0xFFFF, err
	case 2:
		if lo, err = hex(f[0]); err != nil {
			return
		}
		if hi, err = hex(f[1]); err != nil {
			return
		}
	case 3:
		if len(f[1]) != 1 {
			return 0, 0, fmt.Errorf("bad range restriction in %q", s)
		}
		restrict = f[1][0] | 0x20 // lower case
		if lo, err = hex(f[0]); err != nil {
			return
		}
		if hi, err = hex(f[2]); err != nil {
			return
		}
	default:
		return 0, 0, fmt.Errorf("bad tag part %q", s)
	}
	if lo > hi {
		return 0, 0, fmt.Errorf("empty range %q", s)
	}
	first, last := uint32(lo), uint32(hi)
	var parity uint16
	switch restrict {
	case 'u':
	case 'e', 'o':
		want := uint16(0)
		if restrict == 'o' {
			want = 1
		}
		if lo&1 != want {
			return 0, 0, fmt.Errorf("range %q does not start with an %s value", s, map[byte]string{'e': "even", 'o': "odd"}[restrict])
		}
		first, last = first&^1, last|1
		parity = 1
	default:
		return 0, 0, fmt.Errorf("bad range restriction in %q", s)
	}
	size := last - first + 1
	if size&(size-1) != 0 || first%size != 0 {
		return 0, 0, fmt.Errorf("range %q cannot be expressed as a bit mask", s)
	}
	mask = uint16(^(size - 1)) | parity
	return uint16(first) | lo&parity, mask, nil
}

// parseTag parses "(gggg,eeee)" including range notation.
func parseTag(s string) (tag, mask uint32, err error) {
	if len(s) < 2 || s[0] != '(' || s[len(s)-1] != ')' {
		return 0, 0, fmt.Errorf("tag %q not in parentheses", s)
	}
	g, e, ok := strings.Cut(s[1:len(s)-1], ",")
	if !ok {
		return 0, 0, fmt.Errorf("tag %q has no comma", s)
	}
	gv, gm, err := parseTagPart(g)
	if err != nil {
		return 0, 0, err
	}
	ev, em, err := parseTagPart(e)
	if err != nil {
		return 0, 0, err
	}
	return uint32(gv)<<16 | uint32(ev), uint32(gm)<<16 | uint32(em), nil
}

// parse reads a DCMTK dictionary. Rows whose status column does not start
// with "DICOM" (DCMTK's PRIVATE, ILLEGAL and GENERIC catch-alls) are
// skipped; later rows for the same tag replace earlier ones, as DCMTK does.
func parse(r io.Reader) (exact, masked []record, st stats, err error) {
	st.skipped = map[string]int{}
	type key struct{ tag, mask uint32 }
	index := map[key]int{}
	var all []record
	sc := bufio.NewScanner(r)
	ln := 0
	for sc.Scan() {
		ln++
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.HasPrefix(line, "#") {
			if st.source == "" {
				if _, after, ok := strings.Cut(line, "Generated automatically from "); ok {
					st.source = strings.TrimSpace(after)
				}
			}
			continue
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 5 {
			return nil, nil, st, fmt.Errorf("line %d: %d tab-separated fields, want 5", ln, len(f))
		}
		status := strings.Split(f[4], "/")
		if status[0] != "DICOM" {
			st.skipped[f[4]]++
			continue
		}
		rec := record{line: ln, vm: f[3], keyword: f[2]}
		for _, s := range status[1:] {
			if strings.EqualFold(s, "retired") {
				rec.retired = true
			}
		}
		if kw, ok := strings.CutPrefix(rec.keyword, "RETIRED_"); ok {
			if !rec.retired {
				return nil, nil, st, fmt.Errorf("line %d: keyword %q has RETIRED_ prefix but status is %q", ln, f[2], f[4])
			}
			rec.keyword = kw
		} else if rec.retired {
			return nil, nil, st, fmt.Errorf("line %d: retired keyword %q lacks RETIRED_ prefix", ln, f[2])
		}
		if !validKeyword(rec.keyword) {
			return nil, nil, st, fmt.Errorf("line %d: bad keyword %q", ln, f[2])
		}
		if rec.vm == "" {
			return nil, nil, st, fmt.Errorf("line %d: empty VM", ln)
		}
		if rec.tag, rec.mask, err = parseTag(f[0]); err != nil {
			return nil, nil, st, fmt.Errorf("line %d: %v", ln, err)
		}
		if rec.vr, rec.altVR, err = mapVR(f[1]); err != nil {
			return nil, nil, st, fmt.Errorf("line %d: %v", ln, err)
		}
		k := key{rec.tag, rec.mask}
		if i, ok := index[k]; ok {
			all[i] = rec
		} else {
			index[k] = len(all)
			all = append(all, rec)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, st, err
	}
	keywords := map[string]int{}
	for _, rec := range all {
		if prev, ok := keywords[rec.keyword]; ok {
			return nil, nil, st, fmt.Errorf("line %d: keyword %q already used on line %d", rec.line, rec.keyword, prev)
		}
		keywords[rec.keyword] = rec.line
		if rec.mask == 0xFFFFFFFF {
			exact = append(exact, rec)
		} else {
			masked = append(masked, rec)
		}
	}
	sort.Slice(exact, func(i, j int) bool { return exact[i].tag < exact[j].tag })
	sort.Slice(masked, func(i, j int) bool {
		if masked[i].mask != masked[j].mask {
			return masked[i].mask > masked[j].mask // most specific mask first
		}
		return masked[i].tag < masked[j].tag
	})
	st.exact, st.masked = len(exact), len(masked)
	return exact, masked, st, nil
}

func validKeyword(s string) bool {
	if s == "" || !(s[0] >= 'A' && s[0] <= 'Z' || s[0] >= 'a' && s[0] <= 'z') {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func writeEntry(b *bytes.Buffer, r record) {
	fmt.Fprintf(b, "\t{Tag: 0x%08X, Mask: 0x%08X, VR: %q, ", r.tag, r.mask, r.vr)
	if r.altVR != "" {
		fmt.Fprintf(b, "AltVR: %q, ", r.altVR)
	}
	fmt.Fprintf(b, "VM: %q, Keyword: %q", r.vm, r.keyword)
	if r.retired {
		b.WriteString(", Retired: true")
	}
	b.WriteString("},\n")
}

// render produces the gofmt-formatted zdict.go source.
func render(exact, masked []record, st stats) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("// Code generated by gen from dicom.dic; DO NOT EDIT.\n\n")
	b.WriteString("package dict\n\n")
	if st.source != "" {
		fmt.Fprintf(&b, "// The input was generated from %s\n\n", st.source)
	}
	fmt.Fprintf(&b, "// exactEntries holds the %d entries for a single tag, sorted by Tag.\n", len(exact))
	b.WriteString("var exactEntries = [...]Entry{\n")
	for _, r := range exact {
		writeEntry(&b, r)
	}
	b.WriteString("}\n\n")
	fmt.Fprintf(&b, "// maskedEntries holds the %d repeating-group entries, sorted by Mask\n", len(masked))
	b.WriteString("// (most specific first), then Tag.\n")
	b.WriteString("var maskedEntries = [...]Entry{\n")
	for _, r := range masked {
		writeEntry(&b, r)
	}
	b.WriteString("}\n\n")
	b.WriteString("// maskRuns lists, for each distinct Mask, the run of maskedEntries that\n")
	b.WriteString("// share it.\n")
	b.WriteString("var maskRuns = [...]maskRun{\n")
	for i := 0; i < len(masked); {
		j := i
		for j < len(masked) && masked[j].mask == masked[i].mask {
			j++
		}
		fmt.Fprintf(&b, "\t{mask: 0x%08X, lo: %d, hi: %d},\n", masked[i].mask, i, j)
		i = j
	}
	b.WriteString("}\n")
	out, err := format.Source(b.Bytes())
	if err != nil {
		return nil, fmt.Errorf("formatting generated code: %v", err)
	}
	return out, nil
}

// generate parses a dictionary and renders zdict.go.
func generate(r io.Reader) ([]byte, stats, error) {
	exact, masked, st, err := parse(r)
	if err != nil {
		return nil, st, err
	}
	out, err := render(exact, masked, st)
	return out, st, err
}
