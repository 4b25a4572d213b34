package archive

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/dicomshield/dicomshield/internal/store"
)

// keyIndex is a store.Index that only lists blob keys (every other method
// panics through the nil embedded interface: recovery must not call them).
type keyIndex struct {
	store.Index
	keys []string
	err  error // returned after the keys
}

func (ix keyIndex) BlobKeys(ctx context.Context, fn func(string) error) error {
	for _, k := range ix.keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(k); err != nil {
			return err
		}
	}
	return ix.err
}

// keyBlobs is a store.Blobs that only lists keys.
type keyBlobs struct {
	store.Blobs
	keys []string
}

func (b keyBlobs) List(fn func(string) error) error {
	for _, k := range b.keys {
		if err := fn(k); err != nil {
			return err
		}
	}
	return nil
}

// k makes a valid-looking key from a short tag, keeping the tags' order.
func k(tag string) string { return tag + strings.Repeat("0", 64-len(tag)) }

func ks(tags ...string) []string {
	out := make([]string, len(tags))
	for i, t := range tags {
		out[i] = k(t)
	}
	return out
}

// TestUnreferenced: the side-by-side walk finds exactly the blobs without
// an index row, and refuses (returning no list at all) whenever the walk
// could take a referenced blob for an orphan: an index error, keys out of
// order on either side, a cancelled start.
func TestUnreferenced(t *testing.T) {
	many := make([]string, 0, 2000)
	for i := range 2000 {
		many = append(many, fmt.Sprintf("%04x", i))
	}
	var manyIndex, manyOrphans []string
	for i, m := range many {
		if i%3 == 0 {
			manyOrphans = append(manyOrphans, k(m))
		} else {
			manyIndex = append(manyIndex, k(m))
		}
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	boom := errors.New("index unreadable")
	tests := []struct {
		name    string
		ctx     context.Context
		index   keyIndex
		blobs   []string
		want    []string
		wantErr string
	}{
		{name: "empty", want: nil},
		{name: "all referenced", index: keyIndex{keys: ks("a", "b")}, blobs: ks("a", "b"), want: nil},
		{name: "orphans between, before and after", index: keyIndex{keys: ks("b", "d")}, blobs: ks("a", "b", "c", "d", "e"), want: ks("a", "c", "e")},
		{name: "rows without blobs are not orphans", index: keyIndex{keys: ks("a", "b", "c")}, blobs: ks("b"), want: nil},
		{name: "no index rows", blobs: ks("a", "b"), want: ks("a", "b")},
		{name: "more keys than the channel holds", index: keyIndex{keys: manyIndex}, blobs: ks(many...), want: manyOrphans},
		{name: "index error voids the list", index: keyIndex{keys: ks("a"), err: boom}, blobs: ks("a", "b", "c"), wantErr: boom.Error()},
		{name: "index out of order", index: keyIndex{keys: ks("b", "a")}, blobs: ks("a", "b"), wantErr: "not in ascending order"},
		{name: "blobs out of order", index: keyIndex{keys: ks("a")}, blobs: ks("b", "a"), wantErr: "not in ascending order"},
		{name: "cancelled", ctx: cancelled, index: keyIndex{keys: ks("a", "b")}, blobs: ks("a", "b", "c"), wantErr: "canceled"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := tc.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			got, err := unreferenced(ctx, tc.index, keyBlobs{keys: tc.blobs})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				if got != nil {
					t.Fatalf("orphans %v given with an error: they would be quarantined", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("orphans = %v, want %v", got, tc.want)
			}
		})
	}
}
