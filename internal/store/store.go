// Package store is dicomshield's archive storage layer: the interfaces of
// the instance index and of the blob store, the sentinel errors every
// backend returns, and the DICOM parts that all backends share: extracting
// what the index records from a data set (ExtractInstance) and compiling a
// C-FIND or retrieve identifier into matching rules (Compile,
// CompileRetrieve).
//
// An archived SOP instance is two things: its bytes, kept in a Blobs store
// under their content hash, and one index row (Instance) that names that
// hash. The order of a store is: write the blob and Commit it (it is then
// durable but unreferenced), then Index.Add. A crash in between leaves an
// unreferenced blob, which recovery finds by comparing Blobs.List with
// Index.BlobKeys; it never leaves an index row without its blob.
//
// Every Add also appends an entry to the index's ledger, an append-only
// hash chain over everything stored (see LedgerEntry), in the same
// transaction as the instance's row, so the chain costs no extra sync; and
// Add applies the tamper checks of a Guard (sealed series, studies of
// another sender) inside that transaction. Verify re-hashes every blob and
// walks the chain, reporting files changed, missing or added outside
// dicomshield and any break in the chain.
//
// Backends live in subpackages (store/sqlite for the index, store/fs for
// blobs) and register themselves under a URL scheme, so that the server
// opens them with OpenIndex and OpenBlobs from its configuration.
//
// The conformance suite in store/storetest runs against every backend.
package store

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/dicomshield/dicomshield/internal/dicom"
)

// Sentinel errors. Backends wrap them (fmt.Errorf("...: %w", ErrNotFound)),
// so callers test with errors.Is.
var (
	// ErrNotFound: no instance with that SOP Instance UID, or no blob with
	// that key.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: the SOP Instance UID is already stored with different
	// content (another blob key), or the instance contradicts the hierarchy
	// already stored (its study belongs to another patient, its series to
	// another study). Nothing was changed.
	ErrConflict = errors.New("store: conflicting instance")
	// ErrDuplicate: the same SOP instance with the same content is already
	// stored. Storing it again is a no-op, and callers treat it as success.
	ErrDuplicate = errors.New("store: duplicate instance")
	// ErrInvalid: the input cannot be stored or run: a data set without its
	// UIDs, a malformed UID, an over-long value, a query with an unknown
	// level, a retrieve without its unique key.
	ErrInvalid = errors.New("store: invalid input")
)

// Instance is what the index records for one SOP instance: the attributes
// C-FIND matches and returns at each level, and where its bytes are. No
// pixel data and nothing else of the data set is kept here.
//
// Text values are UTF-8 (decoded with the data set's Specific Character
// Set), trimmed of padding. Dates are YYYYMMDD and times HHMMSS.FFFFFF as
// far as the data set gave them (the "." of old-style dates and the ":" of
// old-style times are removed).
type Instance struct {
	// Patient level.
	PatientID, PatientName, PatientBirthDate, PatientSex string
	// Study level. ModalitiesInStudy is whatever the data set said; the
	// index answers queries with the modalities of the series it holds.
	StudyInstanceUID, StudyDate, StudyTime, AccessionNumber, StudyID, StudyDescription, ReferringPhysicianName, ModalitiesInStudy string
	// Series level.
	SeriesInstanceUID, Modality, SeriesNumber, SeriesDescription string
	// Instance level. TransferSyntaxUID is the syntax the blob is encoded
	// in; ExtractInstance cannot know it (it is not in the data set) and
	// leaves it to the caller.
	SOPInstanceUID, SOPClassUID, InstanceNumber, TransferSyntaxUID string
	// BlobKey is the content hash of the stored bytes (lower-case hex
	// SHA-256), as Blobs returned it.
	BlobKey string
	// Size of the blob in bytes.
	Size int64
	// Sender is the calling AE title of the association that stored it.
	Sender string
	// ReceivedAt is when it was stored. The index keeps nanoseconds and
	// returns the time in UTC.
	ReceivedAt time.Time
}

// Blobs keeps the bytes of stored instances under their content hash.
// Implementations are safe for concurrent use.
type Blobs interface {
	// Create returns a writer for a new blob. Nothing is visible under any
	// key until Commit.
	Create() (BlobWriter, error)
	// Open returns the bytes stored under key, or an error wrapping
	// ErrNotFound. A key that is not a lower-case hex SHA-256 is an error
	// wrapping ErrInvalid (no path is ever built from anything else).
	Open(key string) (io.ReadCloser, error)
	// Remove deletes the blob; ErrNotFound if there is none.
	Remove(key string) error
	// Exists reports whether a blob is stored under key.
	Exists(key string) (bool, error)
	// List calls fn with every stored key, in ascending order (recovery
	// walks it beside Index.BlobKeys, holding neither in memory), for
	// recovery and verification. It stops at fn's first error and returns
	// it.
	List(fn func(key string) error) error
}

// BlobWriter receives the bytes of one new blob.
type BlobWriter interface {
	io.Writer
	// Commit makes the blob durable (synced to stable storage) and visible
	// under its content hash, and returns that key and the size. Committing
	// content that is already stored keeps the stored copy and returns the
	// same key. After Commit the writer is finished.
	Commit() (key string, size int64, err error)
	// Abort discards the blob. It may be called after a failed Commit and
	// is then a no-op; after a successful Commit it does nothing.
	Abort() error
}

// Recoverer is implemented by blob stores that keep unfinished blobs in a
// scratch area: Recover deletes what a crash left there. It must be called
// before the store is used (at start-up), never while writers are open.
type Recoverer interface {
	Recover() error
}

// Index records the stored instances and answers queries about them.
// Implementations are safe for concurrent use.
type Index interface {
	// Add records inst and appends its ledger entry, in one transaction.
	// It returns an error wrapping ErrDuplicate if an instance with the
	// same SOP Instance UID and the same BlobKey exists (whoever sends it,
	// whatever g says: nothing is stored), ErrConflict if it exists with
	// another BlobKey (the overwrite attack: refused, the first content
	// kept) or the instance contradicts the stored hierarchy, ErrInvalid if
	// inst lacks its UIDs or its BlobKey, and ErrForeignStudy or ErrSealed
	// when g refuses it. Patient, study and series attributes are taken
	// from the first instance that creates them; the index remembers the
	// Sender that created each study and series, and when each series
	// last received an instance.
	Add(ctx context.Context, inst *Instance, g Guard) error
	// Precheck tells, before an instance's bytes are stored, whether Add
	// would refuse it under g for its place in the hierarchy: ErrSealed,
	// ErrForeignStudy, or ErrConflict for a series or study that belongs
	// to another study or patient. An instance whose SOP Instance UID is
	// stored passes (nil): whether it is the same content, a no-op even in
	// a sealed series, or other content needs the content. It is advice
	// that spares writing a refused instance: Add decides again, inside
	// its transaction.
	Precheck(ctx context.Context, inst *Instance, g Guard) error
	// Get returns the instance with that SOP Instance UID, or an error
	// wrapping ErrNotFound. Its ModalitiesInStudy is that of the index.
	Get(ctx context.Context, sopInstanceUID string) (*Instance, error)
	// Find runs a C-FIND query (see Compile for the matching rules) and
	// calls fn with each match: a data set holding the return keys the
	// identifier asked for, Query/Retrieve Level and, when a returned text
	// value is not ASCII, Specific Character Set "ISO_IR 192". It stops
	// after q.Limit matches (0: no limit), reporting truncated when more
	// would have matched, and stops at fn's first error, returning it.
	// fn runs while the query is open: it may send the match on, but must
	// not call back into the Index, and should not block for long (an open
	// read holds back the reuse of the database's log).
	Find(ctx context.Context, q *Query, fn func(*dicom.DataSet) error) (truncated bool, err error)
	// Instances lists the instances a C-GET or C-MOVE identifier selects
	// (see CompileRetrieve), in the order they were added.
	Instances(ctx context.Context, q *Query) ([]*Instance, error)
	// BlobKeys calls fn with every blob key the index refers to, each
	// once and in ascending order, for recovery. It stops at fn's first
	// error and returns it.
	BlobKeys(ctx context.Context, fn func(key string) error) error
	// HasBlob reports whether any instance refers to the blob key: a
	// lookup, not a scan, so that dropping a refused store's blob costs
	// the same in a full archive as in an empty one.
	HasBlob(ctx context.Context, key string) (bool, error)
	// Ledger reads the hash chain Add appends to.
	Ledger
	// Close releases the index. Calls after Close fail.
	Close() error
}

// Query is a C-FIND, C-GET or C-MOVE request to the index.
type Query struct {
	// Level is PATIENT, STUDY, SERIES or IMAGE. Empty: the identifier's
	// Query/Retrieve Level (0008,0052).
	Level string
	// Model is the information model: "PATIENT" (Patient Root) or "STUDY"
	// (Study Root). Empty means Study Root. The PATIENT level exists only in
	// Patient Root.
	Model string
	// Identifier holds the keys, as the peer sent them (its Specific
	// Character Set is applied).
	Identifier *dicom.DataSet
	// Limit is the largest number of matches Find returns; 0 means no
	// limit.
	Limit int
}
