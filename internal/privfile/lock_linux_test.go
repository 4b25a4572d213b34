package privfile

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestLockExcludes: while Lock is held, another descriptor cannot take
// the lock; once released, it can.
func TestLockExcludes(t *testing.T) {
	p := filepath.Join(t.TempDir(), "peers.json.lock")
	unlock, err := Lock(p)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != syscall.EWOULDBLOCK {
		t.Fatalf("second lock while held: %v, want EWOULDBLOCK", err)
	}
	unlock()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatalf("second lock after release: %v", err)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Fatalf("lock file mode %o", st.Mode().Perm())
	}
}
