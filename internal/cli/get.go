package cli

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/spf13/cobra"

	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/dimse"
)

func newGetCmd() *cobra.Command {
	var nf *netOptions
	var q *queryOptions
	var outDir string
	cmd := &cobra.Command{
		Use:   "get [flags] HOST:PORT",
		Short: "Retrieve instances from a DICOM service over the same association (C-GET)",
		Long: `Retrieve the instances an identifier selects from the DICOM service at
HOST:PORT with a C-GET: the peer sends them back over the same association,
so no port has to be opened on this side and the peer needs no address
for this AE. Storage is offered for ` + fmt.Sprint(len(storageClasses)) + ` common storage SOP classes (CT, MR,
CR, DX, MG, US, XA, NM, PET, RT, secondary capture, structured reports,
encapsulated PDF...), each in explicit and in implicit VR little endian;
instances the peer holds only compressed arrive only if it converts them.

Each instance is written to --out as a Part 10 file named after its SOP
Instance UID (1.2.3.4.dcm) with a file meta header, the data set stored
as received; a file appears only once complete (it is written under a
temporary name, then renamed) and is readable by its owner only. An
instance whose SOP Instance UID is not a UID (anything but digits and
dots) is refused and not written: a peer never chooses a path. The exit
status is 1 when any instance was not retrieved.
` + queryKeysHelp + `
` + netFlagsHelp,
		Example: `  dicomshield get pacs.example.org:104 --level STUDY -k StudyInstanceUID=1.2.840.113619.2.1.1 --out ./study
  dicomshield get pacs.example.org:104 --level SERIES -k StudyInstanceUID=1.2.3 -k SeriesInstanceUID=1.2.3.4 --out ./series
  dicomshield get --tls --ca ca.pem --cert me.pem --key me.key pacs.example.org:2762 -k StudyInstanceUID=1.2.3 --out ./study`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			addr := args[0]
			model, err := q.sopClass("get")
			if err != nil {
				return err
			}
			id, _, err := q.identifier()
			if err != nil {
				return err
			}
			base, err := nf.prepare(addr, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if err := os.MkdirAll(outDir, 0o700); err != nil {
				return fmt.Errorf("--out: %w", err)
			}
			root, err := os.OpenRoot(outDir)
			if err != nil {
				return fmt.Errorf("--out: %w", err)
			}
			defer root.Close()
			ctx, stop := interruptible(cmd)
			defer stop()
			cl, err := nf.open(ctx, addr, base, getContexts(model))
			if err != nil {
				return err
			}
			rc := &receiver{root: root, sourceAE: nf.calledAE, stderr: cmd.ErrOrStderr()}
			sub, err := cl.Get(ctx, model, id, rc.store)
			finish(cl, err)
			rc.mu.Lock()
			written, nbytes, refused := rc.written, rc.bytes, rc.refused
			rc.mu.Unlock()
			fmt.Fprintf(cmd.OutOrStdout(), "C-GET from %s: %s; %d files (%s) written to %s\n",
				nf.peer(addr), subOpsText(sub), written, megabytes(nbytes), outDir)
			switch {
			case err != nil:
				return fmt.Errorf("%s: %w", nf.peer(addr), serviceError("C-GET", err))
			case sub.Failed > 0 || refused > 0:
				return &exitError{code: 1, err: fmt.Errorf("%d instances not retrieved (%d refused here)", max(int(sub.Failed), refused), refused)}
			}
			return nil
		},
	}
	nf = addNetFlags(cmd)
	q = addQueryFlags(cmd)
	cmd.Flags().StringVarP(&outDir, "out", "o", ".", "`DIR`ectory to write the received files to (created if missing)")
	return cmd
}

// getContexts proposes the retrieve model and, for each storage class,
// one context per uncompressed transfer syntax: the peer sends each
// instance in a context whose syntax it is stored in (or that it converts
// to), so one context accepting a single syntax would not do. The SCP role
// is asked once per class (on its first context), as PS3.7 D.3.3.4 wants
// one role selection item per SOP class.
func getContexts(model string) []dimse.Proposal {
	contexts := []dimse.Proposal{{AbstractSyntax: model, TransferSyntaxes: uncompressedTS}}
	for _, c := range storageClasses {
		for i, ts := range uncompressedTS {
			contexts = append(contexts, dimse.Proposal{AbstractSyntax: c.UID, TransferSyntaxes: []string{ts}, SCPRole: i == 0})
		}
	}
	return contexts
}

// receiver writes the instances of C-GET sub-operations under root.
type receiver struct {
	root     *os.Root
	sourceAE string
	stderr   io.Writer

	mu      sync.Mutex
	written int
	bytes   int64
	refused int
}

func (rc *receiver) warnf(format string, args ...any) {
	fmt.Fprintf(rc.stderr, "dicomshield: "+format+"\n", args...)
}

// store answers one C-STORE sub-operation.
func (rc *receiver) store(req *dimse.Request, data io.Reader) dimse.Status {
	class, inst := req.Command.AffectedSOPClass, req.Command.AffectedSOPInstance
	var bad string
	switch {
	case !isUID(inst):
		bad = fmt.Sprintf("its SOP Instance UID %q is not a UID", clip(inst))
	case !isUID(class):
		bad = fmt.Sprintf("its SOP Class UID %q is not a UID", clip(class))
	}
	if bad != "" {
		rc.mu.Lock()
		rc.refused++
		rc.mu.Unlock()
		rc.warnf("refused an instance: %s (only digits and dots are allowed)", bad)
		return dimse.Status{Code: dimse.StatusCannotUnderstand, Comment: "invalid SOP Class or Instance UID"}
	}
	n, err := rc.write(inst+".dcm", class, inst, req.TransferSyntax, data)
	if err != nil {
		rc.warnf("%s: %v", inst, err)
		if errors.Is(err, errIncomplete) {
			return dimse.Status{Code: dimse.StatusProcessingFailure}
		}
		return dimse.Status{Code: dimse.StatusOutOfResources, Comment: "cannot write the instance"}
	}
	rc.mu.Lock()
	rc.written++
	rc.bytes += n
	rc.mu.Unlock()
	return dimse.Status{Code: dimse.StatusSuccess}
}

var errIncomplete = errors.New("data set incomplete")

// write stores one instance as name: meta header, then the data set bytes
// as received, under a temporary name renamed once complete. Everything
// happens inside root, which no path can leave.
func (rc *receiver) write(name, class, inst, ts string, data io.Reader) (int64, error) {
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := ".incoming-" + hex.EncodeToString(rnd[:]) + ".part"
	f, err := rc.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			rc.root.Remove(tmp)
		}
	}()
	head, err := fileHeader(class, inst, ts, rc.sourceAE)
	if err != nil {
		return 0, err
	}
	if _, err := f.Write(head); err != nil {
		return 0, err
	}
	n, err := io.Copy(f, data)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return 0, err
		}
		return 0, fmt.Errorf("%w: %v", errIncomplete, err)
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	if err := rc.root.Rename(tmp, name); err != nil {
		return 0, err
	}
	ok = true
	return n, nil
}

// fileHeader returns the preamble, "DICM" and the file meta information
// for an instance whose data set follows unchanged.
func fileHeader(class, inst, ts, sourceAE string) ([]byte, error) {
	ds := &dicom.DataSet{}
	ds.Set(dicom.NewText(dicom.TagSOPClassUID, dicom.UI, class))
	ds.Set(dicom.NewText(dicom.TagSOPInstanceUID, dicom.UI, inst))
	meta := dicom.NewFile(ds, dicom.LookupTransferSyntax(ts)).Meta
	meta.Set(dicom.NewText(dicom.TagSourceAETitle, dicom.AE, sourceAE))
	body, err := dicom.MarshalDataSet(&meta, dicom.ExplicitVRLittleEndian)
	if err != nil {
		return nil, err
	}
	gl := &dicom.DataSet{}
	gl.Set(dicom.NewUint32s(dicom.TagFileMetaGroupLength, dicom.UL, uint32(len(body))))
	head, err := dicom.MarshalDataSet(gl, dicom.ExplicitVRLittleEndian)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 128, 132+len(head)+len(body))
	out = append(out, "DICM"...)
	out = append(out, head...)
	return append(out, body...), nil
}

// clip shortens a peer-supplied string for a message (to be quoted with
// %q, which escapes what a terminal would interpret).
func clip(s string) string {
	if r := []rune(s); len(r) > 80 {
		return string(r[:80]) + "..."
	}
	return s
}
