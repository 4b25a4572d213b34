package store

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
)

// IndexOpener opens an index from its URL.
type IndexOpener func(u *url.URL) (Index, error)

// BlobsOpener opens a blob store from its URL.
type BlobsOpener func(u *url.URL) (Blobs, error)

var (
	regMu   sync.RWMutex
	indexes = map[string]IndexOpener{}
	blobs   = map[string]BlobsOpener{}
)

// RegisterIndex makes an index backend available under a URL scheme
// ("sqlite"). Backends call it from init; registering a scheme twice
// panics.
func RegisterIndex(scheme string, open IndexOpener) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := indexes[scheme]; dup {
		panic("store: index scheme " + scheme + " registered twice")
	}
	indexes[scheme] = open
}

// RegisterBlobs makes a blob backend available under a URL scheme
// ("file"). Backends call it from init; registering a scheme twice panics.
func RegisterBlobs(scheme string, open BlobsOpener) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := blobs[scheme]; dup {
		panic("store: blob scheme " + scheme + " registered twice")
	}
	blobs[scheme] = open
}

// OpenIndex opens the index rawURL names, with the backend registered for
// its scheme (import the backend package for its side effect).
func OpenIndex(rawURL string) (Index, error) {
	u, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	regMu.RLock()
	open, ok := indexes[u.Scheme]
	regMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: no index backend for scheme %q (have %s)", ErrInvalid, u.Scheme, schemes(indexes))
	}
	return open(u)
}

// OpenBlobs opens the blob store rawURL names, with the backend registered
// for its scheme.
func OpenBlobs(rawURL string) (Blobs, error) {
	u, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	regMu.RLock()
	open, ok := blobs[u.Scheme]
	regMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: no blob backend for scheme %q (have %s)", ErrInvalid, u.Scheme, schemes(blobs))
	}
	return open(u)
}

func parseURL(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if u.Scheme == "" {
		return nil, fmt.Errorf("%w: storage URL %q has no scheme", ErrInvalid, rawURL)
	}
	return u, nil
}

func schemes[T any](m map[string]T) string {
	regMu.RLock()
	defer regMu.RUnlock()
	var s []string
	for k := range m {
		s = append(s, k)
	}
	sort.Strings(s)
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// URLPath returns the file system path of a "scheme:///abs/path" or
// "scheme:rel/path" URL, for file-based backends. A URL with a host, query
// or fragment is an error: they would be silently ignored.
func URLPath(u *url.URL) (string, error) {
	if u.Host != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("%w: %s URL takes only a path", ErrInvalid, u.Scheme)
	}
	p := u.Path
	if u.Opaque != "" {
		p = u.Opaque
	}
	if p == "" {
		return "", fmt.Errorf("%w: %s URL without a path", ErrInvalid, u.Scheme)
	}
	return p, nil
}
