// Command gen generates zdict.go, the tables of package dict, from DCMTK's
// data dictionary file dicom.dic (installed by the Debian package dcmtk).
//
// Usage (from internal/dicom/dict, see the go:generate line in dict.go):
//
//	go run ./gen -in /usr/share/libdcmtk17/dicom.dic -out zdict.go
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"sort"
)

func main() {
	in := flag.String("in", "/usr/share/libdcmtk17/dicom.dic", "DCMTK dictionary file to read")
	out := flag.String("out", "zdict.go", "Go file to write")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("gen: ")

	f, err := os.Open(*in)
	if err != nil {
		log.Fatal(err)
	}
	src, st, err := generate(f)
	f.Close()
	if err != nil {
		log.Fatalf("%s: %v", *in, err)
	}
	if err := os.WriteFile(*out, src, 0o644); err != nil {
		log.Fatal(err)
	}
	var skipped []string
	for s, n := range st.skipped {
		skipped = append(skipped, fmt.Sprintf("%s: %d", s, n))
	}
	sort.Strings(skipped)
	log.Printf("wrote %s: %d exact and %d repeating-group entries; skipped %v", *out, st.exact, st.masked, skipped)
}
