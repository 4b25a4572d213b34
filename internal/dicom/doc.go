// Package dicom is dicomshield's DICOM data set codec (PS3.5 and PS3.10).
//
// It reads and writes data sets in Implicit VR Little Endian, Explicit VR
// Little Endian, Explicit VR Big Endian and Deflated Explicit VR Little
// Endian, and Part 10 files with their meta information header. It is built
// to sit in front of untrusted input: every declared length is checked
// against the bytes that remain and against a cap (see Limits) before
// anything is allocated, nesting and element counts are bounded, truncated
// input is an error, and no input makes it panic.
//
// Values are kept exactly as they were encoded (Element.Value holds the raw
// bytes, in the byte order of the transfer syntax they were read with), so a
// data set that was not changed is written back byte for byte. Typed
// accessors decode values on demand.
//
// The package does no networking, touches no disk except in ReadFile, and
// never logs.
package dicom
