package privfile

import (
	"os"
	"path/filepath"
	"strings"
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

func TestDecodeJSON(t *testing.T) {
	type doc struct {
		Version int `json:"version"`
	}
	for _, tc := range []struct{ name, in, wantErr string }{
		{"ok", `{"version":1}`, ""},
		{"unknown field", `{"version":1,"extra":2}`, "is not valid"},
		{"trailing document", `{"version":1} {"version":2}`, "has data after its end"},
		{"over the limit", `{"version":1}` + strings.Repeat(" ", 64), "is larger than 32 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d doc
			err := DecodeJSON(strings.NewReader(tc.in), 32, &d)
			if tc.wantErr == "" {
				if err != nil || d.Version != 1 {
					t.Fatalf("got %+v, %v", d, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
}
