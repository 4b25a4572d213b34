package cli

import "github.com/dicomshield/dicomshield/internal/dicom"

// sopClass is a storage SOP class (PS3.4 annex B) with its name.
type sopClass struct {
	UID  string
	Name string
}

// storageClasses are the storage SOP classes `get` offers to receive (with
// the SCP role), covering what archives commonly hold: the image classes
// of every common modality, presentation states, structured reports,
// encapsulated documents and radiotherapy objects. An association holds at
// most 128 presentation contexts, so the list stays well under that.
var storageClasses = []sopClass{
	{"1.2.840.10008.5.1.4.1.1.1", "Computed Radiography Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.1.1", "Digital X-Ray Image Storage - For Presentation"},
	{"1.2.840.10008.5.1.4.1.1.1.1.1", "Digital X-Ray Image Storage - For Processing"},
	{"1.2.840.10008.5.1.4.1.1.1.2", "Digital Mammography X-Ray Image Storage - For Presentation"},
	{"1.2.840.10008.5.1.4.1.1.1.2.1", "Digital Mammography X-Ray Image Storage - For Processing"},
	{"1.2.840.10008.5.1.4.1.1.1.3", "Digital Intra-Oral X-Ray Image Storage - For Presentation"},
	{"1.2.840.10008.5.1.4.1.1.2", "CT Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.2.1", "Enhanced CT Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.2.2", "Legacy Converted Enhanced CT Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.3.1", "Ultrasound Multi-frame Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.4", "MR Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.4.1", "Enhanced MR Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.4.2", "MR Spectroscopy Storage"},
	{"1.2.840.10008.5.1.4.1.1.4.4", "Legacy Converted Enhanced MR Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.6.1", "Ultrasound Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.7", "Secondary Capture Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.7.1", "Multi-frame Single Bit Secondary Capture Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.7.2", "Multi-frame Grayscale Byte Secondary Capture Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.7.3", "Multi-frame Grayscale Word Secondary Capture Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.7.4", "Multi-frame True Color Secondary Capture Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.9.1.1", "12-lead ECG Waveform Storage"},
	{"1.2.840.10008.5.1.4.1.1.11.1", "Grayscale Softcopy Presentation State Storage"},
	{"1.2.840.10008.5.1.4.1.1.12.1", "X-Ray Angiographic Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.12.1.1", "Enhanced XA Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.12.2", "X-Ray Radiofluoroscopic Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.13.1.1", "X-Ray 3D Angiographic Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.13.1.3", "Breast Tomosynthesis Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.20", "Nuclear Medicine Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.66", "Raw Data Storage"},
	{"1.2.840.10008.5.1.4.1.1.66.4", "Segmentation Storage"},
	{"1.2.840.10008.5.1.4.1.1.77.1.1", "VL Endoscopic Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.77.1.4", "VL Photographic Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.77.1.6", "VL Whole Slide Microscopy Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.88.11", "Basic Text SR Storage"},
	{"1.2.840.10008.5.1.4.1.1.88.22", "Enhanced SR Storage"},
	{"1.2.840.10008.5.1.4.1.1.88.33", "Comprehensive SR Storage"},
	{"1.2.840.10008.5.1.4.1.1.88.34", "Comprehensive 3D SR Storage"},
	{"1.2.840.10008.5.1.4.1.1.88.50", "Mammography CAD SR Storage"},
	{"1.2.840.10008.5.1.4.1.1.88.59", "Key Object Selection Document Storage"},
	{"1.2.840.10008.5.1.4.1.1.88.67", "X-Ray Radiation Dose SR Storage"},
	{"1.2.840.10008.5.1.4.1.1.104.1", "Encapsulated PDF Storage"},
	{"1.2.840.10008.5.1.4.1.1.104.2", "Encapsulated CDA Storage"},
	{"1.2.840.10008.5.1.4.1.1.128", "Positron Emission Tomography Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.130", "Enhanced PET Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.481.1", "RT Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.481.2", "RT Dose Storage"},
	{"1.2.840.10008.5.1.4.1.1.481.3", "RT Structure Set Storage"},
	{"1.2.840.10008.5.1.4.1.1.481.4", "RT Beams Treatment Record Storage"},
	{"1.2.840.10008.5.1.4.1.1.481.5", "RT Plan Storage"},
	{"1.2.840.10008.5.1.4.1.1.481.8", "RT Ion Plan Storage"},
}

// mediaStorageDirectory is the SOP class of DICOMDIR files, which describe
// media and are not sent to archives.
const mediaStorageDirectory = "1.2.840.10008.1.3.10"

// className names a SOP class for messages, or returns its UID.
func className(uid string) string {
	for _, c := range storageClasses {
		if c.UID == uid {
			return c.Name
		}
	}
	return uid
}

// tsName names a transfer syntax for messages.
func tsName(uid string) string {
	if ts := dicom.LookupTransferSyntax(uid); ts.Known {
		return ts.Name
	}
	return uid
}
