package privfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "peers.json")
	for _, content := range []string{"first\n", "second, longer\n", ""} {
		if err := WriteAtomic(p, []byte(content)); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != content {
			t.Fatalf("read back %q, %v; want %q", got, err, content)
		}
		st, _ := os.Stat(p)
		if st.Mode().Perm() != Mode {
			t.Fatalf("mode %o, want %o", st.Mode().Perm(), Mode)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("%d files in the directory, want only the target (no temporary left)", len(ents))
	}
	if err := WriteAtomic(filepath.Join(dir, "missing", "x"), nil); err == nil {
		t.Fatal("WriteAtomic into a missing directory succeeded")
	}
}
