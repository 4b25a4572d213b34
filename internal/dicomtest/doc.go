// Package dicomtest holds test helpers: real-peer launchers, generated data,
// fake peers.
//
// The DCMTK launchers (DCMTKTool, RunDCMTK, StartDCMTK) fail the test, never
// skip it, when a tool is missing: the interoperability tests are part of the
// suite and a missing peer must not pass silently. Install the Debian package
// dcmtk to provide them.
package dicomtest
