package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/dicomshield/dicomshield/internal/scan"
	"github.com/dicomshield/dicomshield/internal/scan/report"
)

// writeScanHTML writes the HTML report of results to path (scan --html):
// decoys marked first, the file replaced whole (written aside, then
// renamed) and readable by its owner only, since it lists vulnerable
// addresses.
func writeScanHTML(path string, results []scan.Result, sources []string) error {
	report.MarkDecoys(results)
	tmp, err := os.CreateTemp(filepath.Dir(path), ".dicomshield-report-*.html")
	if err != nil {
		return fmt.Errorf("html report: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing left to remove
	err = report.WriteHTML(tmp, results, report.Meta{Generated: time.Now(), Sources: sources, Version: Version})
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("html report: %w", err)
	}
	return nil
}

// htmlSink collects results and writes the HTML report when the scan ends
// (interrupted or not).
type htmlSink struct {
	path    string
	results []scan.Result
}

func (s *htmlSink) Write(r *scan.Result) error { s.results = append(s.results, *r); return nil }
func (s *htmlSink) Close() error               { return writeScanHTML(s.path, s.results, nil) }
