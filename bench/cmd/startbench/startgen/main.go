// Command startgen fills a dicomshield data directory for cmd/startbench,
// and profiles what `dicomshield serve` does before it is ready. It is its
// own module (like cmd/ingestbench/archiveprof) so that the bench module's
// go.sum need not list the index's dependencies; startbench builds and
// runs it.
//
// Fill (the data directory must already hold a config and a CA: startbench
// runs `dicomshield peer add` first):
//
//	startgen -data DIR -n 1000000
//
// writes N instances into DIR/index.db through the real index
// (sqlite.Index.Add, from many goroutines at once, so that its group
// commit puts up to 128 instances in a transaction, each with its ledger
// entry) and, beside it, one small file per instance in DIR/blobs/ab/cd/
// named by the SHA-256 of its content, as the blob store would (written
// directly, without the store's syncs: one sync(2) at the end). Start-up
// never reads a referenced blob (recovery lists names only), so the
// content is a short line, not DICOM; its hash is still its name.
//
// Profile (nothing is written to DIR but what serve itself writes):
//
//	startgen -data DIR -profile cpu.out [-memprofile heap.out]
//
// times, one after the other, the parts of recovery on their own (opening
// the index, walking Index.BlobKeys, walking Blobs.List) and then serve's
// start path as cmd/dicomshield runs it (archive.Open, which recovers; the
// audit trail; the ledger head; the peer list; the server key), under the
// CPU profiler. After each it prints the process's anonymous RSS and peak
// RSS: the index walk leaves its page cache behind (SQLite's pages are
// allocated outside the Go heap).
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dicomshield/dicomshield/internal/archive"
	"github.com/dicomshield/dicomshield/internal/pki"
	"github.com/dicomshield/dicomshield/internal/store"
	blobfs "github.com/dicomshield/dicomshield/internal/store/fs"
	"github.com/dicomshield/dicomshield/internal/store/sqlite"
)

// Shape of the generated archive, as in internal/store/sqlite's
// benchmark: per patient, 5 studies of 4 series of 5 instances.
const (
	studiesPer   = 5
	seriesPer    = 4
	instancesPer = 5
	perPatient   = studiesPer * seriesPer * instancesPer
)

// uidRoot is a 2.25 (UUID-derived) root for the synthetic UIDs.
const uidRoot = "2.25.302861176203349716545337357392431618779"

func main() {
	data := flag.String("data", "", "data directory (config and CA already there)")
	n := flag.Int("n", 1_000_000, "instances to generate (a multiple of 100)")
	adders := flag.Int("adders", 512, "goroutines calling Index.Add at once (group commit batches up to 128)")
	writers := flag.Int("writers", 4, "goroutines writing blob files")
	profile := flag.String("profile", "", "profile serve's start on -data instead of filling it: CPU profile file")
	memprofile := flag.String("memprofile", "", "with -profile: allocation profile (everything allocated, the timed parts included)")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("startgen: ")
	if *data == "" {
		log.Fatal("-data is required")
	}
	var err error
	if *profile != "" {
		err = profileStart(*data, *profile, *memprofile)
	} else {
		err = fill(*data, *n, *adders, *writers)
	}
	if err != nil {
		log.Fatal(err)
	}
}

// blobContent is the content of instance i's blob; its key is the hex
// SHA-256 of it.
func blobContent(i int) []byte {
	return fmt.Appendf(nil, "dicomshield startbench blob %d\n", i)
}

func blobKey(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// instance returns instance i of the archive (patient i/100): synthetic
// names and identifiers only.
func instance(i int, at time.Time, key string, size int64) *store.Instance {
	p, r := i/perPatient, i%perPatient
	s, se, in := r/(seriesPer*instancesPer), (r/instancesPer)%seriesPer, r%instancesPer
	mods := []string{"CT", "MR", "CR", "US"}
	study := fmt.Sprintf("%s.%d.%d", uidRoot, p, s)
	series := fmt.Sprintf("%s.%d", study, se)
	return &store.Instance{
		PatientID: fmt.Sprintf("P%07d", p), PatientName: fmt.Sprintf("Name%d^Given%d", p, p%97),
		PatientBirthDate: fmt.Sprintf("19%02d%02d%02d", p%100, 1+p%12, 1+p%28), PatientSex: "O",
		StudyInstanceUID: study, StudyDate: fmt.Sprintf("20%02d%02d%02d", 10+s, 1+p%12, 1+p%28),
		StudyTime: "101500", AccessionNumber: fmt.Sprintf("A%d-%d", p, s), StudyID: fmt.Sprint(s),
		StudyDescription: "STUDY " + mods[s%len(mods)], ReferringPhysicianName: "Ref^Doc",
		SeriesInstanceUID: series, Modality: mods[(s+se)%len(mods)], SeriesNumber: fmt.Sprint(se + 1),
		SeriesDescription: "SERIES", SOPInstanceUID: fmt.Sprintf("%s.%d", series, in),
		SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", InstanceNumber: fmt.Sprint(in + 1),
		TransferSyntaxUID: "1.2.840.10008.1.2.1", BlobKey: key, Size: size,
		Sender: "STARTBENCH", ReceivedAt: at.Add(time.Duration(i) * time.Microsecond),
	}
}

// fill writes n instances: index rows through Index.Add and their blob
// files, both at once.
func fill(dir string, n, adders, writers int) error {
	if n <= 0 || n%perPatient != 0 {
		return fmt.Errorf("-n %d: want a positive multiple of %d", n, perPatient)
	}
	if _, err := os.Stat(filepath.Join(dir, "dicomshield.toml")); err != nil {
		return fmt.Errorf("no config in %s (run dicomshield peer add first): %w", dir, err)
	}
	ix, err := sqlite.Open(filepath.Join(dir, archive.IndexFile))
	if err != nil {
		return err
	}
	defer ix.Close()
	ctx := context.Background()
	if h, err := ix.LedgerHead(ctx); err != nil {
		return err
	} else if h.Seq != 0 {
		return fmt.Errorf("%s already holds %d instances", dir, h.Seq)
	}
	// Open makes the root, tmp/ and the 256 first-level directories,
	// as serve's first start would.
	bl, err := blobfs.Open(filepath.Join(dir, archive.BlobsDir))
	if err != nil {
		return err
	}
	root := bl.Root()
	start := time.Now()
	at := start.Add(-time.Duration(n) * time.Microsecond)

	// Blob files: each writer takes every writers-th instance.
	var blobsDone atomic.Int64
	blobErr := make(chan error, writers)
	var bwg sync.WaitGroup
	for w := range writers {
		bwg.Add(1)
		go func() {
			defer bwg.Done()
			for i := w; i < n; i += writers {
				b := blobContent(i)
				if err := writeBlob(root, blobKey(b), b); err != nil {
					blobErr <- err
					return
				}
				blobsDone.Add(1)
			}
		}()
	}

	// Index rows: adders goroutines each Add one instance at a time,
	// so that the group commit gathers up to 128 per transaction.
	next := make(chan int, 1024)
	var added atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var awg sync.WaitGroup
	for range adders {
		awg.Add(1)
		go func() {
			defer awg.Done()
			for i := range next {
				b := blobContent(i)
				if err := ix.Add(ctx, instance(i, at, blobKey(b), int64(len(b))), store.Guard{}); err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("instance %d: %w", i, err) })
					continue
				}
				added.Add(1)
			}
		}()
	}
	stopProgress := progress(n, &added, &blobsDone, start)
	for i := range n {
		next <- i
	}
	close(next)
	awg.Wait()
	bwg.Wait()
	stopProgress()
	close(blobErr)
	if firstErr != nil {
		return firstErr
	}
	if err := <-blobErr; err != nil {
		return err
	}
	if err := ix.Close(); err != nil {
		return err
	}
	syscall.Sync()
	fmt.Fprintf(os.Stderr, "startgen: %d instances and blobs in %v\n", n, time.Since(start).Round(time.Second))
	return nil
}

func progress(n int, added, blobs *atomic.Int64, start time.Time) func() {
	done := make(chan struct{})
	t := time.NewTicker(10 * time.Second)
	go func() {
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintf(os.Stderr, "startgen: %v: %d/%d rows, %d/%d blobs\n",
					time.Since(start).Round(time.Second), added.Load(), n, blobs.Load(), n)
			}
		}
	}()
	return func() { t.Stop(); close(done) }
}

// writeBlob puts b where the blob store keeps key: root/ab/cd/key, mode
// 0600, directories 0700.
func writeBlob(root, key string, b []byte) error {
	d := filepath.Join(root, key[0:2], key[2:4])
	p := filepath.Join(d, key)
	err := os.WriteFile(p, b, 0o600)
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(d, 0o700); err == nil {
			err = os.WriteFile(p, b, 0o600)
		}
	}
	return err
}

// procKB returns a "kB" field of /proc/self/status.
func procKB(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

// profileStart times the parts of recovery alone, then serve's start
// path under the CPU profiler.
func profileStart(dir, cpuFile, memFile string) error {
	ctx := context.Background()
	phase := func(name string, f func() (int, error)) error {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		t := time.Now()
		cnt, err := f()
		d := time.Since(t)
		runtime.ReadMemStats(&after)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		fmt.Printf("%-44s %7.3f s %8d items %7.1f MB allocated, then RssAnon %4d MB, VmHWM %4d MB\n", name, d.Seconds(), cnt,
			float64(after.TotalAlloc-before.TotalAlloc)/1e6, procKB("RssAnon")/1024, procKB("VmHWM")/1024)
		return nil
	}

	// The parts alone (after a first pass of each, the page cache is warm
	// as it is for the timed runs).
	if err := phase("sqlite.Open (index)", func() (int, error) {
		ix, err := sqlite.Open(filepath.Join(dir, archive.IndexFile))
		if err != nil {
			return 0, err
		}
		return 0, ix.Close()
	}); err != nil {
		return err
	}
	ix, err := sqlite.Open(filepath.Join(dir, archive.IndexFile))
	if err != nil {
		return err
	}
	if err := phase("Index.BlobKeys (whole walk)", func() (int, error) {
		c := 0
		return c, ix.BlobKeys(ctx, func(string) error { c++; return nil })
	}); err != nil {
		return err
	}
	if err := phase("Index.BlobKeys into a map (before 0e785aa)", func() (int, error) {
		m := map[string]bool{}
		err := ix.BlobKeys(ctx, func(k string) error { m[k] = true; return nil })
		return len(m), err
	}); err != nil {
		return err
	}
	if err := ix.Close(); err != nil {
		return err
	}
	bl, err := blobfs.Open(filepath.Join(dir, archive.BlobsDir))
	if err != nil {
		return err
	}
	if err := phase("Blobs.List (whole walk)", func() (int, error) {
		c := 0
		return c, bl.List(func(string) error { c++; return nil })
	}); err != nil {
		return err
	}

	f, err := os.Create(cpuFile)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	var a *archive.Archive
	err = phase("archive.Open (recovery included)", func() (int, error) {
		var err error
		a, _, err = archive.Open(dir, slog.New(slog.DiscardHandler))
		return 0, err
	})
	if err == nil {
		defer a.Close()
		err = phase("audit trail, ledger head, peer list", func() (int, error) {
			trail, err := a.StartAudit(func(error) {})
			if err != nil {
				return 0, err
			}
			defer trail.Close(ctx)
			if _, err := a.Index.LedgerHead(ctx); err != nil {
				return 0, err
			}
			peers, err := a.Registry.List(ctx)
			return len(peers), err
		})
	}
	if err == nil {
		err = phase("CA.ServerTLSConfig (server key)", func() (int, error) {
			_, err := a.CA.ServerTLSConfig(pki.DefaultHosts())
			return 0, err
		})
	}
	pprof.StopCPUProfile()
	if err != nil {
		return err
	}
	if memFile != "" {
		mf, err := os.Create(memFile)
		if err != nil {
			return err
		}
		defer mf.Close()
		runtime.GC()
		if err := pprof.Lookup("allocs").WriteTo(mf, 0); err != nil {
			return err
		}
	}
	return nil
}
