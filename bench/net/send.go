package net

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/dimse"
)

// FileInfo is what a C-STORE needs from a Part 10 file: its SOP class
// and instance, the transfer syntax and where the data set starts.
type FileInfo struct {
	Path                  string
	SOPClass, SOPInstance string
	TransferSyntax        string
	DataOffset, Size      int64
}

// ReadInfo reads the meta header of a Part 10 file written with a group
// length (as dicomshield's writer always does).
func ReadInfo(path string) (*FileInfo, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(fh, 4096)
	head := make([]byte, 132+12)
	if _, err := io.ReadFull(br, head); err != nil {
		return nil, err
	}
	if string(head[128:132]) != "DICM" || string(head[132:138]) != "\x02\x00\x00\x00UL" {
		return nil, fmt.Errorf("%s: no Part 10 header with a group length", path)
	}
	n := binary.LittleEndian.Uint32(head[140:])
	if n > 1<<16 {
		return nil, fmt.Errorf("%s: meta group of %d bytes", path, n)
	}
	meta := make([]byte, n)
	if _, err := io.ReadFull(br, meta); err != nil {
		return nil, err
	}
	ds, err := dicom.Parse(meta, dicom.ExplicitVRLittleEndian, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	fi := &FileInfo{Path: path, SOPClass: ds.String(dicom.TagMediaStorageSOPClass), SOPInstance: ds.String(dicom.TagMediaStorageSOPInst),
		TransferSyntax: ds.String(dicom.TagTransferSyntaxUID), DataOffset: int64(len(head)) + int64(n), Size: st.Size()}
	if fi.SOPClass == "" || fi.SOPInstance == "" || fi.TransferSyntax == "" {
		return nil, fmt.Errorf("%s: incomplete meta header", path)
	}
	return fi, nil
}

// Proposals returns one presentation context per SOP class of files, in
// Explicit VR Little Endian (what the generator writes).
func Proposals(files []*FileInfo) []dimse.Proposal {
	seen := map[string]bool{}
	var out []dimse.Proposal
	for _, f := range files {
		if !seen[f.SOPClass] {
			seen[f.SOPClass] = true
			out = append(out, dimse.Proposal{AbstractSyntax: f.SOPClass, TransferSyntaxes: []string{f.TransferSyntax}})
		}
	}
	return out
}

// Send stores files to addr over jobs associations (files dealt out in
// turn), reading each data set from disk as it is sent. It is the
// in-process sender of the Go benchmarks, not the dicomshield store
// command (cmd/netbench times that one).
func Send(ctx context.Context, addr string, files []*FileInfo, jobs int, tlsConf *tls.Config) error {
	if jobs < 1 {
		jobs = 1
	}
	opts := &dimse.DialOptions{CallingAE: "BENCHSCU", CalledAE: "BENCHSCP", Contexts: Proposals(files), TLS: tlsConf}
	var wg sync.WaitGroup
	errs := make([]error, jobs)
	for j := 0; j < jobs; j++ {
		wg.Add(1)
		go func(j int) {
			defer wg.Done()
			cl, err := dimse.Dial(ctx, addr, opts)
			if err != nil {
				errs[j] = err
				return
			}
			for i := j; i < len(files); i += jobs {
				if err := sendOne(ctx, cl, files[i]); err != nil {
					cl.Abort()
					errs[j] = err
					return
				}
			}
			errs[j] = cl.Release()
		}(j)
	}
	wg.Wait()
	return errors.Join(errs...)
}

func sendOne(ctx context.Context, cl *dimse.Client, f *FileInfo) error {
	fh, err := os.Open(f.Path)
	if err != nil {
		return err
	}
	defer fh.Close()
	if _, err := fh.Seek(f.DataOffset, io.SeekStart); err != nil {
		return err
	}
	_, err = cl.Store(ctx, f.SOPClass, f.SOPInstance, f.TransferSyntax, fh)
	return err
}
