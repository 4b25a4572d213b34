package dicom

// TransferSyntax says how a data set is encoded (PS3.5 section 10).
type TransferSyntax struct {
	UID  string
	Name string
	// Explicit: VRs are written in each element header.
	Explicit bool
	// BigEndian: binary values and headers are big-endian.
	BigEndian bool
	// Deflated: the data set is compressed with raw deflate (RFC 1951).
	Deflated bool
	// Encapsulated: Pixel Data is held in fragments (compressed pixel data).
	Encapsulated bool
	// Known is false for a UID this package has no entry for; such a syntax is
	// treated as explicit VR little endian with encapsulated pixel data, as
	// PS3.5 section 10 requires of every syntax defined after the first four.
	Known bool
}

// Transfer syntax UIDs the codec knows by name.
const (
	ImplicitVRLittleEndianUID         = "1.2.840.10008.1.2"
	ExplicitVRLittleEndianUID         = "1.2.840.10008.1.2.1"
	DeflatedExplicitVRLittleEndianUID = "1.2.840.10008.1.2.1.99"
	ExplicitVRBigEndianUID            = "1.2.840.10008.1.2.2"
)

var (
	// ImplicitVRLittleEndian is the default transfer syntax of DICOM (PS3.5 A.1).
	ImplicitVRLittleEndian = TransferSyntax{UID: ImplicitVRLittleEndianUID, Name: "Implicit VR Little Endian", Known: true}
	// ExplicitVRLittleEndian (PS3.5 A.2).
	ExplicitVRLittleEndian = TransferSyntax{UID: ExplicitVRLittleEndianUID, Name: "Explicit VR Little Endian", Explicit: true, Known: true}
	// DeflatedExplicitVRLittleEndian (PS3.5 A.5).
	DeflatedExplicitVRLittleEndian = TransferSyntax{UID: DeflatedExplicitVRLittleEndianUID, Name: "Deflated Explicit VR Little Endian", Explicit: true, Deflated: true, Known: true}
	// ExplicitVRBigEndian (PS3.5 A.3, retired but still met).
	ExplicitVRBigEndian = TransferSyntax{UID: ExplicitVRBigEndianUID, Name: "Explicit VR Big Endian", Explicit: true, BigEndian: true, Known: true}
)

var encapsulated = map[string]string{
	"1.2.840.10008.1.2.1.98":  "Encapsulated Uncompressed Explicit VR Little Endian",
	"1.2.840.10008.1.2.4.50":  "JPEG Baseline (Process 1)",
	"1.2.840.10008.1.2.4.51":  "JPEG Extended (Process 2 & 4)",
	"1.2.840.10008.1.2.4.57":  "JPEG Lossless, Non-Hierarchical (Process 14)",
	"1.2.840.10008.1.2.4.70":  "JPEG Lossless, Non-Hierarchical, First-Order Prediction",
	"1.2.840.10008.1.2.4.80":  "JPEG-LS Lossless",
	"1.2.840.10008.1.2.4.81":  "JPEG-LS Near-Lossless",
	"1.2.840.10008.1.2.4.90":  "JPEG 2000 (Lossless Only)",
	"1.2.840.10008.1.2.4.91":  "JPEG 2000",
	"1.2.840.10008.1.2.4.92":  "JPEG 2000 Part 2 Multi-component (Lossless Only)",
	"1.2.840.10008.1.2.4.93":  "JPEG 2000 Part 2 Multi-component",
	"1.2.840.10008.1.2.4.94":  "JPIP Referenced",
	"1.2.840.10008.1.2.4.100": "MPEG2 Main Profile / Main Level",
	"1.2.840.10008.1.2.4.101": "MPEG2 Main Profile / High Level",
	"1.2.840.10008.1.2.4.102": "MPEG-4 AVC/H.264 High Profile / Level 4.1",
	"1.2.840.10008.1.2.4.103": "MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1",
	"1.2.840.10008.1.2.4.104": "MPEG-4 AVC/H.264 High Profile / Level 4.2 For 2D Video",
	"1.2.840.10008.1.2.4.105": "MPEG-4 AVC/H.264 High Profile / Level 4.2 For 3D Video",
	"1.2.840.10008.1.2.4.106": "MPEG-4 AVC/H.264 Stereo High Profile / Level 4.2",
	"1.2.840.10008.1.2.4.107": "HEVC/H.265 Main Profile / Level 5.1",
	"1.2.840.10008.1.2.4.108": "HEVC/H.265 Main 10 Profile / Level 5.1",
	"1.2.840.10008.1.2.4.201": "High-Throughput JPEG 2000 (Lossless Only)",
	"1.2.840.10008.1.2.4.202": "High-Throughput JPEG 2000 with RPCL Options (Lossless Only)",
	"1.2.840.10008.1.2.4.203": "High-Throughput JPEG 2000",
	"1.2.840.10008.1.2.5":     "RLE Lossless",
}

// LookupTransferSyntax returns the transfer syntax for uid. A UID the
// package does not know yields an explicit VR little endian syntax with
// encapsulated pixel data and Known false (PS3.5 section 10).
func LookupTransferSyntax(uid string) TransferSyntax {
	switch uid {
	case ImplicitVRLittleEndianUID:
		return ImplicitVRLittleEndian
	case ExplicitVRLittleEndianUID:
		return ExplicitVRLittleEndian
	case DeflatedExplicitVRLittleEndianUID:
		return DeflatedExplicitVRLittleEndian
	case ExplicitVRBigEndianUID:
		return ExplicitVRBigEndian
	case "1.2.840.10008.1.2.4.95":
		return TransferSyntax{UID: uid, Name: "JPIP Referenced Deflate", Explicit: true, Deflated: true, Known: true}
	}
	if name, ok := encapsulated[uid]; ok {
		return TransferSyntax{UID: uid, Name: name, Explicit: true, Encapsulated: true, Known: true}
	}
	return TransferSyntax{UID: uid, Name: "unknown transfer syntax", Explicit: true, Encapsulated: true}
}
