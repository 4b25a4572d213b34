package pki

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// PEM block types.
const (
	pemCertificate = "CERTIFICATE"
	pemPrivateKey  = "PRIVATE KEY" // PKCS #8: read by OpenSSL (DCMTK) and Go alike
)

func certPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: der})
}

func keyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: encoding private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der}), nil
}

// parseCertPEM returns the single certificate in data.
func parseCertPEM(path string, data []byte) (*x509.Certificate, error) {
	b, rest := pem.Decode(data)
	if b == nil || b.Type != pemCertificate {
		return nil, fmt.Errorf("pki: %s: no PEM %q block", path, pemCertificate)
	}
	if extra, _ := pem.Decode(rest); extra != nil {
		return nil, fmt.Errorf("pki: %s: more than one PEM block; it must hold one certificate", path)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", path, err)
	}
	return c, nil
}

// parseKeyPEM returns the PKCS #8 private key in data.
func parseKeyPEM(path string, data []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(data)
	if b == nil || b.Type != pemPrivateKey {
		return nil, fmt.Errorf("pki: %s: no PEM %q block", path, pemPrivateKey)
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", path, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("pki: %s: a %T cannot sign", path, k)
	}
	return s, nil
}

// readPrivate reads a private key file. It refuses a file that anyone but
// its owner can read or write, naming the file and the fix. The mode is
// taken from the open file, so the file checked is the file read.
func readPrivate(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("pki: %s is not a regular file", path)
	}
	if tooOpen(st.Mode(), 0o077) {
		return nil, fmt.Errorf("pki: private key %s has mode %04o: others than its owner can access it; "+
			"run chmod 600 %s (and replace the key if someone else may have read it)", path, st.Mode().Perm(), path)
	}
	return readAll(f)
}

// maxPEMFile bounds what is read from a key or certificate file: 1 MiB.
// Such files are a few kilobytes; the limit only stops a mistaken path (a
// disk image) from being read whole.
const maxPEMFile = 1 << 20

func readAll(f *os.File) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(f, maxPEMFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxPEMFile {
		return nil, fmt.Errorf("pki: %s: larger than %d bytes, too large for a PEM key or certificate", f.Name(), maxPEMFile)
	}
	return data, nil
}

// readPublic reads a certificate file.
func readPublic(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAll(f)
}

// tooOpen reports whether mode grants any of the bits in mask. File modes
// mean nothing on Windows, where Go reports 0666 or 0444 for every file.
func tooOpen(mode fs.FileMode, mask fs.FileMode) bool {
	return runtime.GOOS != "windows" && mode.Perm()&mask != 0
}

// staged is a set of files written to temporary names next to their
// destinations and then moved into place, so that a failure or a crash
// leaves no half-written key or certificate behind.
type staged struct {
	tmp, dst []string
}

// add writes data to a temporary file in the directory of path, with mode
// perm.
func (s *staged) add(path string, data []byte, perm fs.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	s.tmp, s.dst = append(s.tmp, f.Name()), append(s.dst, path)
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// commit renames every file into place, replacing what is there (a
// symbolic link at the destination is replaced, not followed). With
// exclusive, it links instead and fails with fs.ErrExist if a destination
// exists, so that nothing is overwritten.
func (s *staged) commit(exclusive bool) error {
	for i, tmp := range s.tmp {
		var err error
		if exclusive {
			err = os.Link(tmp, s.dst[i])
		} else {
			err = os.Rename(tmp, s.dst[i])
		}
		if err != nil {
			return err
		}
	}
	dirs := map[string]bool{}
	for _, d := range s.dst {
		dirs[filepath.Dir(d)] = true
	}
	for d := range dirs {
		syncDir(d)
	}
	return nil
}

// abort removes the temporary files that are left. It is safe after
// commit.
func (s *staged) abort() {
	for _, tmp := range s.tmp {
		_ = os.Remove(tmp) // best effort: gone after a rename; a stray temporary file is harmless
	}
	s.tmp = nil
}

// syncDir makes renames in dir durable. Errors are ignored: some systems
// cannot sync a directory, and the files themselves are already synced.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// fileStamp identifies one version of a file, to notice replacement.
type fileStamp struct {
	size    int64
	modTime int64
}

func stampOf(path string) (fileStamp, bool) {
	st, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, false
	}
	return fileStamp{st.Size(), st.ModTime().UnixNano()}, true
}
