package dicom

// VR is a value representation (PS3.5 table 6.2-1), stored as its two ASCII
// letters packed into 16 bits ('P'<<8 | 'N' for PN). The zero VR means "not
// known".
type VR uint16

func vr(s string) VR { return VR(s[0])<<8 | VR(s[1]) }

// All value representations of PS3.5 table 6.2-1.
var (
	AE = vr("AE")
	AS = vr("AS")
	AT = vr("AT")
	CS = vr("CS")
	DA = vr("DA")
	DS = vr("DS")
	DT = vr("DT")
	FD = vr("FD")
	FL = vr("FL")
	IS = vr("IS")
	LO = vr("LO")
	LT = vr("LT")
	OB = vr("OB")
	OD = vr("OD")
	OF = vr("OF")
	OL = vr("OL")
	OV = vr("OV")
	OW = vr("OW")
	PN = vr("PN")
	SH = vr("SH")
	SL = vr("SL")
	SQ = vr("SQ")
	SS = vr("SS")
	ST = vr("ST")
	SV = vr("SV")
	TM = vr("TM")
	UC = vr("UC")
	UI = vr("UI")
	UL = vr("UL")
	UN = vr("UN")
	UR = vr("UR")
	US = vr("US")
	UT = vr("UT")
	UV = vr("UV")
)

type vrInfo struct {
	known     bool
	long      bool // explicit VR header has 2 reserved bytes and a 32-bit length
	text      bool // value is characters
	charset   bool // text affected by Specific Character Set
	multi     bool // text that may hold several values separated by '\'
	unit      int  // byte-swapping unit for binary values (0: none)
	padNUL    bool // padded with NUL rather than space
	maxLength int  // maximum length of one value in bytes or characters (0: none)
}

var vrTable = map[VR]vrInfo{}

func init() {
	set := func(v VR, i vrInfo) { i.known = true; vrTable[v] = i }
	// Text VRs.
	set(AE, vrInfo{text: true, multi: true, maxLength: 16})
	set(AS, vrInfo{text: true, multi: true, maxLength: 4})
	set(CS, vrInfo{text: true, multi: true, maxLength: 16})
	set(DA, vrInfo{text: true, multi: true, maxLength: 8})
	set(DS, vrInfo{text: true, multi: true, maxLength: 16})
	set(DT, vrInfo{text: true, multi: true, maxLength: 26})
	set(IS, vrInfo{text: true, multi: true, maxLength: 12})
	set(LO, vrInfo{text: true, charset: true, multi: true, maxLength: 64})
	set(LT, vrInfo{text: true, charset: true, maxLength: 10240})
	set(PN, vrInfo{text: true, charset: true, multi: true, maxLength: 64 * 3})
	set(SH, vrInfo{text: true, charset: true, multi: true, maxLength: 16})
	set(ST, vrInfo{text: true, charset: true, maxLength: 1024})
	set(TM, vrInfo{text: true, multi: true, maxLength: 14})
	set(UC, vrInfo{long: true, text: true, charset: true, multi: true})
	set(UI, vrInfo{text: true, multi: true, padNUL: true, maxLength: 64})
	set(UR, vrInfo{long: true, text: true})
	set(UT, vrInfo{long: true, text: true, charset: true})
	// Binary numbers.
	set(AT, vrInfo{unit: 2})
	set(FD, vrInfo{unit: 8})
	set(FL, vrInfo{unit: 4})
	set(SL, vrInfo{unit: 4})
	set(SS, vrInfo{unit: 2})
	set(SV, vrInfo{long: true, unit: 8})
	set(UL, vrInfo{unit: 4})
	set(US, vrInfo{unit: 2})
	set(UV, vrInfo{long: true, unit: 8})
	// Bulk.
	set(OB, vrInfo{long: true, padNUL: true})
	set(OD, vrInfo{long: true, unit: 8})
	set(OF, vrInfo{long: true, unit: 4})
	set(OL, vrInfo{long: true, unit: 4})
	set(OV, vrInfo{long: true, unit: 8})
	set(OW, vrInfo{long: true, unit: 2})
	set(SQ, vrInfo{long: true})
	set(UN, vrInfo{long: true, padNUL: true})
}

// vrLookup is a dense table indexed by the two letters, so that the hot path
// of the reader does no map lookups.
var vrLookup [26 * 26]vrInfo

func init() {
	for v, i := range vrTable {
		a, b := int(v>>8)-'A', int(v&0xFF)-'A'
		vrLookup[a*26+b] = i
	}
}

func (v VR) info() vrInfo {
	a, b := int(v>>8)-'A', int(v&0xFF)-'A'
	if a < 0 || a >= 26 || b < 0 || b >= 26 {
		return vrInfo{}
	}
	return vrLookup[a*26+b]
}

// String returns the two letters of the VR, or "??" for the zero VR, or the
// hexadecimal value of two bytes that are not letters.
func (v VR) String() string {
	if v == 0 {
		return "??"
	}
	a, b := byte(v>>8), byte(v)
	if a < 0x20 || a > 0x7E || b < 0x20 || b > 0x7E {
		const hx = "0123456789ABCDEF"
		return string([]byte{'0', 'x', hx[a>>4], hx[a&15], hx[b>>4], hx[b&15]})
	}
	return string([]byte{a, b})
}

// Known reports whether v is one of the VRs of PS3.5 table 6.2-1.
func (v VR) Known() bool { return v.info().known }

// LongLength reports whether, in explicit VR, the VR is followed by two
// reserved bytes and a 32-bit length (OB, OD, OF, OL, OV, OW, SQ, SV, UC, UN,
// UR, UT, UV) rather than a 16-bit length.
func (v VR) LongLength() bool { return v.info().long }

// IsText reports whether the VR holds characters.
func (v VR) IsText() bool { return v.info().text }

// UsesCharset reports whether Specific Character Set applies to the VR (SH,
// LO, UC, ST, LT, UT, PN).
func (v VR) UsesCharset() bool { return v.info().charset }

// SwapUnit returns the size of the unit whose byte order the transfer syntax
// decides (2 for US and OW, 4 for UL and OF, 8 for FD and OV...), or 0 for
// VRs whose bytes are never swapped.
func (v VR) SwapUnit() int { return v.info().unit }

// MultiValued reports whether values of this text VR are separated by '\'.
func (v VR) MultiValued() bool { return v.info().multi }

// PadByte is the byte that pads a value of this VR to even length.
func (v VR) PadByte() byte {
	if v.info().padNUL {
		return 0
	}
	if v.info().text {
		return ' '
	}
	return 0
}

// ParseVR returns the VR for two letters, and false if they name none.
func ParseVR(s string) (VR, bool) {
	if len(s) != 2 {
		return 0, false
	}
	v := vr(s)
	return v, v.Known()
}
