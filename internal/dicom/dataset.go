package dicom

import (
	"sort"
)

// DataSet is an ordered list of data elements: a whole data set, the file
// meta information group or one sequence item.
//
// The zero DataSet is empty and ready to use.
type DataSet struct {
	// Elements in the order they were read or set. Set and the reader keep
	// them in ascending tag order; a data set read with elements out of order
	// keeps that order (so that it is written back unchanged) and is then
	// searched linearly.
	Elements []Element
	// UndefinedLength records, for a sequence item, that it was encoded with
	// undefined length (ended by an item delimiter); the writer keeps that
	// form.
	UndefinedLength bool

	unsorted bool
}

// Len returns the number of elements at this level (nested items excluded).
func (ds *DataSet) Len() int { return len(ds.Elements) }

func (ds *DataSet) index(t Tag) (int, bool) {
	if ds.unsorted {
		for i := range ds.Elements {
			if ds.Elements[i].Tag == t {
				return i, true
			}
		}
		return len(ds.Elements), false
	}
	els := ds.Elements
	i := sort.Search(len(els), func(i int) bool { return els[i].Tag >= t })
	return i, i < len(els) && els[i].Tag == t
}

// Get returns the element with tag t, or nil.
func (ds *DataSet) Get(t Tag) *Element {
	if ds == nil {
		return nil
	}
	if i, ok := ds.index(t); ok {
		return &ds.Elements[i]
	}
	return nil
}

// String returns the first value of the text element t, trimmed, or "" if it
// is absent. No character set is applied.
func (ds *DataSet) String(t Tag) string {
	if e := ds.Get(t); e != nil {
		return e.String()
	}
	return ""
}

// Set inserts e, or replaces the element with the same tag.
func (ds *DataSet) Set(e Element) {
	i, ok := ds.index(e.Tag)
	if ok {
		ds.Elements[i] = e
		return
	}
	if ds.unsorted {
		ds.Elements = append(ds.Elements, e)
		return
	}
	ds.Elements = append(ds.Elements, Element{})
	copy(ds.Elements[i+1:], ds.Elements[i:])
	ds.Elements[i] = e
}

// Delete removes the element with tag t and reports whether it was there.
func (ds *DataSet) Delete(t Tag) bool {
	i, ok := ds.index(t)
	if !ok {
		return false
	}
	ds.Elements = append(ds.Elements[:i], ds.Elements[i+1:]...)
	return true
}

// Walk calls fn for every element in depth-first order, items included,
// with the nesting depth (0 for the top level). It stops when fn returns
// false.
func (ds *DataSet) Walk(fn func(depth int, e *Element) bool) {
	ds.walk(0, fn)
}

func (ds *DataSet) walk(depth int, fn func(int, *Element) bool) bool {
	for i := range ds.Elements {
		e := &ds.Elements[i]
		if !fn(depth, e) {
			return false
		}
		for _, it := range e.Items {
			if !it.walk(depth+1, fn) {
				return false
			}
		}
	}
	return true
}
