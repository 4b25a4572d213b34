// Package prove establishes, by doing, what a stranger can do with a DICOM
// service the scanner got into: how many records a C-FIND hands out and
// which kinds of personal data they carry (counts and presence flags,
// never values), whether C-GET and C-MOVE are honoured and to which
// destinations, how the service treats user identity negotiation, and,
// only when asked (--test-write), whether it lets a synthetic series be
// appended to or an instance be overwritten.
//
// Nothing a server hands out is kept beyond the moment it is checked: a
// query match is inspected for non-empty attributes and dropped, an image
// a C-GET starts to send is discarded unread, and errors and details are
// built from status codes, never from the peer's words or data. The one
// exception is opt-in: a salted SHA-256 of each patient ID (Options.HashSalt)
// so that the same patients can be recognised across servers.
//
// The package sits above scan (the result model) and dimse (the client);
// the scan engine calls Read and Write from its follow-up hook and Apply
// to turn what they proved into exposure verdicts and findings.
package prove

import (
	"context"
	"crypto/rand"
	"errors"
	"net"
	"strconv"
	"time"

	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/dimse"
	"github.com/dicomshield/dicomshield/internal/scan"
	"github.com/dicomshield/dicomshield/internal/ul"
)

// Defaults. Each is an Options field whose zero value selects it.
const (
	// DefaultMaxRecords stops a count with C-CANCEL: a thousand records are
	// proof enough that a stranger can read the archive, and a small bound
	// keeps the scanner from walking (and the server from serving) a whole
	// patient index.
	DefaultMaxRecords = 1000
	// DefaultStepTimeout bounds connecting, associating and each wait for a
	// response when the Access carries no timeout: a DICOM server that has
	// not answered in 10 s is not going to.
	DefaultStepTimeout = 10 * time.Second
	// maxDrain is the most of one C-GET sub-operation the scanner lets
	// arrive (and discards unread) before it aborts: one CT or MR slice
	// fits, a multi-frame study does not, so honouring a C-GET is proved
	// without downloading images.
	maxDrain = 2 << 20
	// maxRefusedSubOps is how many C-STORE sub-operations the scanner
	// refuses before it aborts a C-GET whose server ignores C-CANCEL.
	maxRefusedSubOps = 2
)

// ScannerUIDRoot is the root of every UID the scanner creates (a 2.25 UUID
// root, PS3.5 B.2): the owner of a server can find and delete whatever
// --test-write stored by this prefix alone.
const ScannerUIDRoot = "2.25.125383248476657840569405048503293249435"

// Errors.
var (
	// ErrNoAccess is returned when the service refused the association
	// the Access describes.
	ErrNoAccess = errors.New("prove: the service refused the association")
)

// Options tune Read. The zero Options count up to DefaultMaxRecords and
// keep no hashes.
type Options struct {
	// MaxRecords stops each count with C-CANCEL; zero means
	// DefaultMaxRecords.
	MaxRecords int
	// HashSalt, when not empty, keeps a salted SHA-256 of each patient ID
	// seen (the user asked for it with --hash-ids) to de-duplicate across
	// servers. Empty: no hashes.
	HashSalt string
	// MoveListener is where the scanner's own AE title receives the C-MOVE
	// it asks for itself: a server that connects to it honoured the move.
	// Read serves on it (refusing every association, so no data flows) and
	// closes it. Nil: a listener on loopback when the target is on
	// loopback, none otherwise (a remote server cannot reach it).
	MoveListener net.Listener
	// MoveAE is the AE title of MoveListener, the destination of the
	// scanner's C-MOVE to itself; empty means the calling AE title.
	MoveAE string
}

func (o *Options) moveAE(a scan.Access) string {
	if o.MoveAE != "" {
		return o.MoveAE
	}
	return a.CallingAE
}

func (o *Options) maxRecords() int {
	if o == nil || o.MaxRecords <= 0 {
		return DefaultMaxRecords
	}
	return o.MaxRecords
}

// stepTimeout returns the bound of each step for a.
func stepTimeout(a scan.Access) time.Duration {
	if a.Timeout > 0 {
		return a.Timeout
	}
	return DefaultStepTimeout
}

// syntaxes are the transfer syntaxes proposed for queries and retrieves:
// the two every implementation supports.
var syntaxes = []string{dicom.ExplicitVRLittleEndianUID, dicom.ImplicitVRLittleEndianUID}

// dial opens an association as the stranger of a. The association is
// aborted when ctx ends.
func dial(ctx context.Context, a scan.Access, contexts []dimse.Proposal, id *ul.UserIdentity) (*dimse.Client, func(), error) {
	t := stepTimeout(a)
	cl, err := dimse.Dial(ctx, a.Addr, &dimse.DialOptions{
		CallingAE: a.CallingAE, CalledAE: a.CalledAE, Contexts: contexts, TLS: a.TLS, Identity: id,
		ConnectTimeout: t, UL: ul.Config{AssociateTimeout: t, IdleTimeout: t, CloseTimeout: t},
	})
	if err != nil {
		return nil, nil, err
	}
	stop := context.AfterFunc(ctx, func() { cl.Abort() })
	done := func() {
		if stop() {
			cl.Release()
		}
	}
	return cl, done, nil
}

// proposals proposes each abstract syntax in the common syntaxes.
func proposals(classes ...string) []dimse.Proposal {
	out := make([]dimse.Proposal, 0, len(classes))
	for _, c := range classes {
		out = append(out, dimse.Proposal{AbstractSyntax: c, TransferSyntaxes: syntaxes})
	}
	return out
}

// accepted reports whether the association accepted a context for class.
func accepted(cl *dimse.Client, class string) bool {
	rq := cl.Association().RQ()
	ids := map[byte]bool{}
	for _, pc := range rq.Contexts {
		if pc.AbstractSyntax == class {
			ids[pc.ID] = true
		}
	}
	for _, pc := range cl.Association().AC().Contexts {
		if ids[pc.ID] && pc.Result == ul.ResultAcceptance {
			return true
		}
	}
	return false
}

// newUID returns a fresh UID under ScannerUIDRoot: the root, then one arc
// of 18 random decimal digits (63 characters in all, under the 64 PS3.5
// allows).
func newUID() string {
	var b [8]byte
	rand.Read(b[:])
	var n uint64
	for _, x := range b {
		n = n<<8 | uint64(x)
	}
	n = n%900_000_000_000_000_000 + 100_000_000_000_000_000
	return ScannerUIDRoot + "." + strconv.FormatUint(n, 10)
}

// randomAE returns a 16-letter AE title nobody configured.
func randomAE() string {
	const letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	var b [16]byte
	rand.Read(b[:])
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return string(b[:])
}
