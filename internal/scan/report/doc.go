// Package report turns scan results (JSON Lines of scan.Result) into what a
// person reads: summary figures the way the published research counted
// exposed DICOM servers (Summarize), a self-contained HTML page (WriteHTML),
// the evidence that a service is a honeypot or a test fixture (MarkDecoys),
// and what changed between two monitoring runs (Diff).
//
// It works only from results, which hold counts and presence flags, never
// patient data; the HTML page escapes everything it shows and forbids every
// network fetch with its Content-Security-Policy.
package report
