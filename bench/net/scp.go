package net

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/dimse"
	"github.com/dicomshield/dicomshield/internal/ul"
)

// StoreBufferSize is the buffered writer of each received file, as the
// benchmark brief asks (storescp writes through DCMTK's own buffering).
const StoreBufferSize = 256 << 10

// SCPOptions configure the benchmark storage SCP.
type SCPOptions struct {
	// OutDir receives one Part 10 file per instance (temporary file, then
	// renamed to <SOP Instance UID>.dcm), as storescp -od DIR does.
	OutDir string
	// Discard reads the data sets and writes nothing (like storescp
	// --ignore), to separate the network path from the file path.
	Discard bool
	// TLS, when set, makes every association TLS.
	TLS *tls.Config
	// MaxReceivePDU: zero keeps internal/ul's default (1 MiB).
	MaxReceivePDU uint32
}

// NewSCP returns a storage SCP on internal/dimse's Server.
//
// BENCHMARK ONLY: it accepts every calling and called AE title and every
// abstract syntax proposed, with no peer registry, no authentication and
// no limit on what it writes. dicomshield's real archive never does this.
// It also does not fsync the files it writes (storescp does not either).
func NewSCP(o SCPOptions) *dimse.Server {
	var seq atomic.Uint64
	return &dimse.Server{
		TLS: o.TLS,
		UL:  ul.Config{MaxReceivePDU: o.MaxReceivePDU},
		Accept: func(r *dimse.AssocRequest) (*ul.AssociateAC, any, *ul.AssociateRJ) {
			// Every abstract syntax; Explicit then Implicit VR Little
			// Endian first, then whatever else the requestor proposed.
			proposed := map[string][]string{}
			for _, pc := range r.RQ.Contexts {
				proposed[pc.AbstractSyntax] = append(proposed[pc.AbstractSyntax], pc.TransferSyntaxes...)
			}
			return dimse.Negotiate(r.RQ, func(abstract string) []string {
				return append([]string{dicom.ExplicitVRLittleEndianUID, dicom.ImplicitVRLittleEndianUID}, proposed[abstract]...)
			}), nil, nil
		},
		Store: func(ctx context.Context, r *dimse.Request, data io.Reader) dimse.Status {
			if o.Discard {
				if _, err := io.Copy(io.Discard, data); err != nil {
					return dimse.Status{Code: dimse.StatusProcessingFailure, Comment: "receive failed"}
				}
				return dimse.Status{Code: dimse.StatusSuccess}
			}
			if err := storeFile(o.OutDir, r, data, seq.Add(1)); err != nil {
				return dimse.Status{Code: dimse.StatusOutOfResources, Comment: "cannot write file"}
			}
			return dimse.Status{Code: dimse.StatusSuccess}
		},
	}
}

// storeFile writes a minimal Part 10 meta header and the data set as it
// streams in, into a temporary file renamed into place at the end.
func storeFile(dir string, r *dimse.Request, data io.Reader, n uint64) error {
	name := safeName(r.Command.AffectedSOPInstance)
	if name == "" {
		name = fmt.Sprintf("instance-%d", n)
	}
	fh, err := os.CreateTemp(dir, ".recv-*")
	if err != nil {
		return err
	}
	tmp := fh.Name()
	fail := func(err error) error {
		fh.Close()
		os.Remove(tmp)
		return err
	}
	// onlyWriter hides (*os.File).ReadFrom: bufio.Writer.ReadFrom hands
	// the rest of the stream to it once its buffer is empty, and the
	// file's generic ReadFrom copies through 32 KiB writes. The buffers
	// are pooled: one per file would be 256 KiB of garbage per instance.
	w := writers.Get().(*bufio.Writer)
	w.Reset(onlyWriter{fh})
	defer func() {
		w.Reset(nil)
		writers.Put(w)
	}()
	f := &dicom.File{TransferSyntax: dicom.LookupTransferSyntax(r.TransferSyntax)}
	f.Meta.Set(dicom.NewBytes(dicom.TagFileMetaVersion, dicom.OB, []byte{0, 1}))
	f.Meta.Set(dicom.NewText(dicom.TagMediaStorageSOPClass, dicom.UI, r.Command.AffectedSOPClass))
	f.Meta.Set(dicom.NewText(dicom.TagMediaStorageSOPInst, dicom.UI, r.Command.AffectedSOPInstance))
	f.Meta.Set(dicom.NewText(dicom.TagImplementationClass, dicom.UI, dicom.ImplementationClassUID))
	f.Meta.Set(dicom.NewText(dicom.TagImplementationVersion, dicom.SH, dicom.ImplementationVersionName))
	f.Meta.Set(dicom.NewText(dicom.TagSourceAETitle, dicom.AE, r.Assoc.CallingAE))
	if err := dicom.WriteFile(w, f); err != nil { // meta only: f.DataSet is empty
		return fail(err)
	}
	if _, err := io.Copy(w, data); err != nil {
		return fail(err)
	}
	if err := w.Flush(); err != nil {
		return fail(err)
	}
	if err := fh.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, name+".dcm"))
}

var writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, StoreBufferSize) }}

type onlyWriter struct{ w io.Writer }

func (o onlyWriter) Write(p []byte) (int, error) { return o.w.Write(p) }

// safeName keeps a UID usable as a file name: digits and dots only, no
// leading dot, at most 64 characters; anything else yields "".
func safeName(uid string) string {
	if uid == "" || len(uid) > 64 || strings.HasPrefix(uid, ".") {
		return ""
	}
	for _, c := range uid {
		if (c < '0' || c > '9') && c != '.' {
			return ""
		}
	}
	return uid
}
