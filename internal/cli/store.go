package cli

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/dimse"
	"github.com/dicomshield/dicomshield/internal/ul"
)

// maxStoreJobs bounds -j: far more associations than any archive serves
// one sender at once.
const maxStoreJobs = 64

// storeStopAt ends the header read right after SOP Instance UID: the
// scan needs the first data set elements only, whatever follows (pixel
// data, an encapsulated PDF) is neither read nor held.
const storeStopAt = dicom.TagSOPInstanceUID + 1

func newStoreCmd() *cobra.Command {
	var nf *netOptions
	var jobs int
	var verbose bool
	cmd := &cobra.Command{
		Use:   "store [flags] HOST:PORT PATH...",
		Short: "Send DICOM files to a DICOM service (C-STORE)",
		Long: `Send DICOM files to the storage service at HOST:PORT. Each PATH is a file
or a folder, searched recursively.

Each file is sent as it is stored: the data set that follows its file meta
information is streamed from disk unchanged, in the transfer syntax the
meta information names, never decoded or re-encoded. One presentation
context is proposed for each distinct pair of SOP class and transfer syntax
found in the files (several associations are used when there are more than
128 pairs); a file whose pair the peer does not accept fails with that
reason. -j opens several associations in parallel.

Files that are not DICOM are skipped with a warning; DICOMDIR files are
skipped too. A progress bar is drawn on standard error when it is a
terminal. The summary says how many files were stored; the exit status is 1
when any DICOM file was not stored.
` + netFlagsHelp,
		Example: `  dicomshield store pacs.example.org:104 image.dcm
  dicomshield store --aec ARCHIVE -j 4 10.0.0.5:11112 /data/study1 /data/study2
  dicomshield store --tls --ca ca.pem --cert me.pem --key me.key pacs.example.org:2762 ./export`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if jobs < 1 || jobs > maxStoreJobs {
				return usageError("-j must be from 1 to %d", maxStoreJobs)
			}
			addr := args[0]
			base, err := nf.prepare(addr, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			ctx, stop := interruptible(cmd)
			defer stop()
			r := &storeRun{nf: nf, base: base, addr: addr, jobs: jobs, verbose: verbose,
				prog: newProgress(cmd.ErrOrStderr())}
			return r.run(ctx, cmd.OutOrStdout(), args[1:])
		},
	}
	nf = addNetFlags(cmd)
	cmd.Flags().IntVarP(&jobs, "jobs", "j", 1, "`N` associations in parallel")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "name each file as it is stored")
	return cmd
}

// storeFile is a DICOM file to send: its data set occupies bytes
// [offset, size) of the file.
type storeFile struct {
	path            string
	class, instance string
	ts              string
	offset, size    int64
}

func (f *storeFile) dataSize() int64 { return f.size - f.offset }

// storeBatch is a set of presentation contexts that fits one association
// and the files sent over it.
type storeBatch struct {
	contexts []dimse.Proposal
	files    []*storeFile
}

type storeRun struct {
	nf      *netOptions
	base    *dimse.DialOptions
	addr    string
	jobs    int
	verbose bool
	prog    *progress

	stored, failed atomic.Int64
	storedBytes    atomic.Int64
}

func (r *storeRun) run(ctx context.Context, stdout io.Writer, paths []string) error {
	start := time.Now()
	names, missing := collectFiles(paths, r.prog)
	files, skipped, broken := r.scan(names)
	failedBefore := int64(missing + broken)
	total := len(files) + missing + broken
	if total == 0 {
		return &exitError{code: 1, err: fmt.Errorf("no DICOM files found (%d skipped)", skipped)}
	}
	var bytesTotal int64
	for _, f := range files {
		bytesTotal += f.dataSize()
	}
	r.prog.start(len(files), bytesTotal)
	for _, b := range batches(files) {
		r.sendBatch(ctx, b)
	}
	r.prog.finish()
	elapsed := time.Since(start)
	stored, nbytes := r.stored.Load(), r.storedBytes.Load()
	failed := r.failed.Load() + failedBefore
	rate := float64(nbytes) / 1e6 / max(elapsed.Seconds(), 1e-3)
	summary := fmt.Sprintf("stored %d of %d files (%s) in %.1f s, %.1f MB/s; %d failed",
		stored, total, megabytes(nbytes), elapsed.Seconds(), rate, failed)
	if skipped > 0 {
		summary += fmt.Sprintf("; %d skipped", skipped)
	}
	fmt.Fprintln(stdout, summary)
	if failed > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%d of %d files were not stored", failed, total)}
	}
	return nil
}

// collectFiles lists the regular files named by paths, folders searched
// recursively (symbolic links to files are followed, to folders not, so
// that a link loop cannot trap the walk). It returns the number of paths
// that could not be read, which count as failed.
func collectFiles(paths []string, prog *progress) ([]string, int) {
	var out []string
	bad := 0
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			prog.warnf("%v", err)
			bad++
			continue
		}
		if !st.IsDir() {
			if st.Mode().IsRegular() {
				out = append(out, p)
			} else {
				prog.warnf("%s: not a regular file or folder", p)
				bad++
			}
			continue
		}
		filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				prog.warnf("%v", err)
				bad++
				return nil
			}
			switch {
			case d.Type().IsRegular():
				out = append(out, path)
			case d.Type()&fs.ModeSymlink != 0:
				if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() {
					out = append(out, path)
				}
			}
			return nil
		})
	}
	return out, bad
}

// scan reads the header of each file, in parallel. It returns the DICOM
// files in the order given, the number of files that are not DICOM
// (skipped) and the number of DICOM files that cannot be sent (failed).
func (r *storeRun) scan(names []string) (files []*storeFile, skipped, broken int) {
	type result struct {
		f    *storeFile
		skip bool
		err  error
	}
	results := make([]result, len(names))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(max(r.jobs, runtime.GOMAXPROCS(0)), 16, max(len(names), 1)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(names) {
					return
				}
				f, skip, err := scanStoreFile(names[i])
				results[i] = result{f, skip, err}
			}
		})
	}
	wg.Wait()
	for i, res := range results {
		switch {
		case res.skip:
			r.prog.warnf("%s: skipped: %v", names[i], res.err)
			skipped++
		case res.err != nil:
			r.prog.warnf("%s: %v", names[i], res.err)
			broken++
		default:
			files = append(files, res.f)
		}
	}
	return files, skipped, broken
}

// scanStoreFile reads what sending path needs: SOP class and instance,
// transfer syntax and where the data set starts. skip is true (with the
// reason in err) for a file that is not DICOM, or not to be sent.
func scanStoreFile(path string) (f *storeFile, skip bool, err error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, false, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, false, err
	}
	df, err := dicom.ReadFileFrom(fh, &dicom.ReadOptions{StopAt: storeStopAt})
	part10 := df != nil && (df.Preamble != nil || df.Meta.Len() > 0)
	if err != nil {
		if !part10 {
			return nil, true, errors.New("not a DICOM file")
		}
		return nil, false, err
	}
	class := firstOf(df.DataSet.String(dicom.TagSOPClassUID), df.Meta.String(dicom.TagMediaStorageSOPClass))
	inst := firstOf(df.DataSet.String(dicom.TagSOPInstanceUID), df.Meta.String(dicom.TagMediaStorageSOPInst))
	switch {
	case class == "" && !part10:
		return nil, true, errors.New("not a DICOM file")
	case class == mediaStorageDirectory:
		return nil, true, errors.New("a DICOMDIR (media directory), not an instance to store")
	case !isUID(class) || !isUID(inst):
		return nil, false, fmt.Errorf("no valid SOP Class UID and SOP Instance UID (found %q and %q)", sanitize(class), sanitize(inst))
	}
	offset, metaElements, err := dataSetOffset(fh, st.Size())
	if err != nil {
		return nil, false, err
	}
	if metaElements != df.Meta.Len() {
		return nil, false, fmt.Errorf("cannot locate the data set: %d file meta elements read, %d found", df.Meta.Len(), metaElements)
	}
	return &storeFile{path: path, class: class, instance: inst, ts: df.TransferSyntax.UID, offset: offset, size: st.Size()}, false, nil
}

func firstOf(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// maxMetaLength bounds the file meta information, as the reader does.
const maxMetaLength = 1 << 20

// dataSetOffset returns where the data set of a Part 10 file starts: after
// the preamble and "DICM" when present, and after the file meta group
// (0002,xxxx), which is walked element by element (explicit VR little
// endian, PS3.10 7.1) whatever its group length says, as the reader walks
// it. It also returns the number of meta elements, to check that the
// reader saw the same group. For deflated syntaxes the data set is the
// compressed stream, which is sent as it is.
func dataSetOffset(r io.ReaderAt, size int64) (int64, int, error) {
	var b [12]byte
	var pos int64
	if n, _ := r.ReadAt(b[:4], 128); n == 4 && string(b[:4]) == "DICM" {
		pos = 132
	}
	start := pos
	count := 0
	for pos < size {
		n, err := r.ReadAt(b[:8], pos)
		if n < 2 || binary.LittleEndian.Uint16(b[:2]) != 0x0002 {
			return pos, count, nil
		}
		if n < 8 {
			return 0, 0, fmt.Errorf("file meta information truncated at offset %d: %v", pos, err)
		}
		v, ok := dicom.ParseVR(string(b[4:6]))
		if !ok {
			return 0, 0, fmt.Errorf("invalid VR in the file meta information at offset %d", pos)
		}
		var length int64
		if v.LongLength() {
			if n, err := r.ReadAt(b[8:12], pos+8); n < 4 {
				return 0, 0, fmt.Errorf("file meta information truncated at offset %d: %v", pos, err)
			}
			length = int64(binary.LittleEndian.Uint32(b[8:12]))
			pos += 12
		} else {
			length = int64(binary.LittleEndian.Uint16(b[6:8]))
			pos += 8
		}
		if length == 0xFFFFFFFF || pos+length-start > maxMetaLength {
			return 0, 0, fmt.Errorf("file meta information element at offset %d has an invalid length", pos)
		}
		pos += length
		count++
	}
	if pos > size {
		return 0, 0, fmt.Errorf("file meta information runs past the end of the file")
	}
	return pos, count, nil
}

// batches groups the files by presentation context: one context per
// distinct (SOP class, transfer syntax), at most 128 per association.
func batches(files []*storeFile) []*storeBatch {
	type pair struct{ class, ts string }
	index := map[pair]int{}
	var out []*storeBatch
	for _, f := range files {
		p := pair{f.class, f.ts}
		i, ok := index[p]
		if !ok {
			i = len(index)
			index[p] = i
			if i%ul.DefaultMaxPresentationContexts == 0 {
				out = append(out, &storeBatch{})
			}
			b := out[i/ul.DefaultMaxPresentationContexts]
			b.contexts = append(b.contexts, dimse.Proposal{AbstractSyntax: f.class, TransferSyntaxes: []string{f.ts}})
		}
		b := out[i/ul.DefaultMaxPresentationContexts]
		b.files = append(b.files, f)
	}
	return out
}

// sendBatch sends the files of b over up to -j associations. Each worker
// opens its association before taking a file, so files are only taken by
// workers that can send them; the files left when every worker failed to
// open one count as failed, with the reason said once.
func (r *storeRun) sendBatch(ctx context.Context, b *storeBatch) {
	var mu sync.Mutex
	queue := b.files
	take := func() *storeFile {
		mu.Lock()
		defer mu.Unlock()
		if len(queue) == 0 {
			return nil
		}
		f := queue[0]
		queue = queue[1:]
		return f
	}
	var dialErr error
	var wg sync.WaitGroup
	for range min(r.jobs, len(b.files)) {
		wg.Go(func() {
			if err := r.worker(ctx, b.contexts, take); err != nil {
				mu.Lock()
				if dialErr == nil {
					dialErr = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(queue) > 0 {
		if dialErr == nil {
			dialErr = ctx.Err()
		}
		r.prog.warnf("%d files not sent: %v", len(queue), dialErr)
		for range queue {
			r.failed.Add(1)
			r.prog.fileDone()
		}
	}
}

// worker sends files over one association, opening a new one after an
// association failure. It returns the error that stopped it from opening
// an association, if that is why it stopped.
func (r *storeRun) worker(ctx context.Context, contexts []dimse.Proposal, take func() *storeFile) error {
	var cl *dimse.Client
	defer func() {
		if cl != nil {
			cl.Release()
		}
	}()
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if cl == nil {
			c, err := r.nf.open(ctx, r.addr, r.base, contexts)
			if err != nil {
				return err
			}
			cl = c
		}
		f := take()
		if f == nil {
			return nil
		}
		if broken := r.send(ctx, cl, f); broken {
			cl.Abort()
			cl = nil
		}
	}
}

// send stores one file and reports whether the association broke.
func (r *storeRun) send(ctx context.Context, cl *dimse.Client, f *storeFile) (broken bool) {
	defer r.prog.fileDone()
	fh, err := os.Open(f.path)
	if err != nil {
		r.failed.Add(1)
		r.prog.warnf("%v", err)
		return false
	}
	defer fh.Close()
	data := &countingReader{r: io.NewSectionReader(fh, f.offset, f.dataSize()), prog: r.prog}
	status, err := cl.Store(ctx, f.class, f.instance, f.ts, data)
	var se *dimse.StatusError
	switch {
	case err == nil:
		r.stored.Add(1)
		r.storedBytes.Add(f.dataSize())
		if dimse.Kind(status) == dimse.KindWarning {
			r.prog.warnf("%s: stored with a warning: %s (0x%04X)", f.path, dimse.StatusText(status), status)
		} else if r.verbose {
			r.prog.infof("%s: stored", f.path)
		}
		return false
	case errors.As(err, &se):
		r.failed.Add(1)
		r.prog.warnf("%s: %v", f.path, serviceError("C-STORE", err))
		return false
	case errors.Is(err, dimse.ErrNoContext):
		r.failed.Add(1)
		r.prog.warnf("%s: not sent: %s did not accept %s in %s", f.path, r.nf.peer(r.addr), className(f.class), tsName(f.ts))
		return false
	}
	r.failed.Add(1)
	r.prog.warnf("%s: C-STORE failed: %s", f.path, trimPrefix(err))
	return true
}

// countingReader reports the bytes read to the progress bar.
type countingReader struct {
	r    io.Reader
	prog *progress
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.prog.addBytes(int64(n))
	return n, err
}

// progress prints warnings and, when its writer is a terminal, a progress
// bar under them.
type progress struct {
	mu         sync.Mutex
	w          io.Writer
	live       bool
	files      int
	bytesTotal int64
	done       int
	bytes      int64
	began      time.Time
	drawn      time.Time
}

func newProgress(w io.Writer) *progress {
	return &progress{w: w, live: isTerminal(w)}
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func (p *progress) start(files int, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.files, p.bytesTotal, p.began = files, bytes, time.Now()
	p.draw(true)
}

func (p *progress) warnf(format string, args ...any) {
	p.printf("dicomshield: "+format, args...)
}

func (p *progress) infof(format string, args ...any) { p.printf(format, args...) }

func (p *progress) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear()
	fmt.Fprintf(p.w, format+"\n", args...)
	p.draw(true)
}

func (p *progress) addBytes(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bytes += n
	p.draw(false)
}

func (p *progress) fileDone() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done++
	p.draw(false)
}

func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear()
	p.live = false
}

func (p *progress) clear() {
	if p.live && !p.drawn.IsZero() {
		io.WriteString(p.w, "\r\033[K")
	}
}

// draw redraws the bar, at most ten times a second unless forced.
func (p *progress) draw(force bool) {
	if !p.live || p.began.IsZero() || (!force && time.Since(p.drawn) < 100*time.Millisecond) {
		return
	}
	p.drawn = time.Now()
	const width = 30
	frac := 0.0
	if p.bytesTotal > 0 {
		frac = min(float64(p.bytes)/float64(p.bytesTotal), 1)
	}
	fill := int(frac * width)
	rate := float64(p.bytes) / 1e6 / max(time.Since(p.began).Seconds(), 1e-3)
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d files  %s / %s  %.1f MB/s\033[K",
		strings.Repeat("#", fill), strings.Repeat("-", width-fill), p.done, p.files,
		megabytes(p.bytes), megabytes(p.bytesTotal), rate)
}
