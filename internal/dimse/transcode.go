package dimse

import (
	"fmt"
	"io"

	"github.com/dicomshield/dicomshield/internal/dicom"
)

// Retrieval sends each instance in the syntax it is held in when the peer
// accepted that syntax for its SOP class; otherwise it re-encodes it on
// the fly into one of the native syntaxes below, which differ only in
// byte order, VR encoding and deflation. Encapsulated (compressed) pixel
// data is never decompressed: such an instance fails its sub-operation
// when the peer accepted none of its own syntax.

// nativeSyntaxes are the syntaxes the codec converts between, in the
// order a target is chosen: explicit VR little endian keeps the VRs,
// implicit VR little endian is the one every SCP must accept, deflated
// and big endian last.
var nativeSyntaxes = []string{
	dicom.ExplicitVRLittleEndianUID, dicom.ImplicitVRLittleEndianUID,
	dicom.DeflatedExplicitVRLittleEndianUID, dicom.ExplicitVRBigEndianUID,
}

// fallbackSyntaxes are proposed to a C-MOVE destination, in one extra
// context per SOP class, for instances held in a native syntax it may not
// accept.
var fallbackSyntaxes = []string{dicom.ExplicitVRLittleEndianUID, dicom.ImplicitVRLittleEndianUID}

func isNative(ts string) bool {
	for _, n := range nativeSyntaxes {
		if ts == n {
			return true
		}
	}
	return false
}

// chooseContext picks the accepted context an instance of class held in
// stored goes out on, and the syntax it must be sent in: a context in
// stored itself, else (stored being native) one in the first native
// syntax accepted for class. usable filters contexts (C-GET needs the SCP
// role for the class). With no context it returns the sub-operation's
// failure: SOP class not supported when class has no usable context at
// all, unable to perform the sub-operation when it has some but none in a
// syntax the instance can be sent in.
func chooseContext(contexts map[byte]acceptedContext, class, stored string, usable func(class string) bool) (byte, string, uint16) {
	if !usable(class) {
		return 0, "", StatusSOPClassNotSupported
	}
	best := map[string]byte{}
	for id, pc := range contexts {
		if pc.abstract != class {
			continue
		}
		if old, ok := best[pc.ts]; !ok || id < old {
			best[pc.ts] = id
		}
	}
	if len(best) == 0 {
		return 0, "", StatusSOPClassNotSupported
	}
	if id, ok := best[stored]; ok {
		return id, stored, StatusSuccess
	}
	if isNative(stored) {
		for _, ts := range nativeSyntaxes {
			if id, ok := best[ts]; ok {
				return id, ts, StatusSuccess
			}
		}
	}
	return 0, "", StatusOutOfResourcesSubOps
}

// transcodeLimits bound the decoding of a stored instance for
// re-encoding: the codec's defaults, which hold every instance the
// archive takes in (values up to 1 GiB, 256 MiB once inflated).
var transcodeLimits = dicom.Limits{}

// openAs opens inst's data set encoded in ts. When ts is not the syntax
// it is held in, the data set is decoded whole before anything is
// returned (a damaged instance fails before its C-STORE starts, not
// halfway through the association's data PDVs), then encoded as it is
// read. Close waits for the encoder.
func openAs(inst Instance, ts string) (io.ReadCloser, error) {
	if ts == inst.TransferSyntax {
		return inst.Open()
	}
	from, to := dicom.LookupTransferSyntax(inst.TransferSyntax), dicom.LookupTransferSyntax(ts)
	if !isNative(from.UID) || !isNative(to.UID) {
		return nil, fmt.Errorf("dimse: cannot transcode %s to %s", from.Name, to.Name)
	}
	rc, err := inst.Open()
	if err != nil {
		return nil, err
	}
	ds, err := dicom.NewDecoder(rc, from, &dicom.ReadOptions{Limits: transcodeLimits}).Decode()
	rc.Close()
	if err != nil {
		return nil, fmt.Errorf("dimse: transcoding %s: %w", from.Name, err)
	}
	var encapsulated bool
	ds.Walk(func(_ int, e *dicom.Element) bool {
		encapsulated = encapsulated || e.IsEncapsulated()
		return !encapsulated
	})
	if encapsulated {
		return nil, fmt.Errorf("dimse: %w: encapsulated pixel data in %s", dicom.ErrEncode, from.Name)
	}
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		pw.CloseWithError(dicom.WriteDataSet(pw, ds, to))
	}()
	return &transcoder{PipeReader: pr, done: done}, nil
}

type transcoder struct {
	*io.PipeReader
	done chan struct{}
}

// Close stops the encoder (its next write fails) and waits for it.
func (t *transcoder) Close() error {
	t.PipeReader.Close()
	<-t.done
	return nil
}
