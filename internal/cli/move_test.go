package cli

import (
	"bytes"
	"testing"

	"github.com/dicomshield/dicomshield/internal/dicomtest"
)

func TestMove(t *testing.T) {
	pki := dicomtest.NewPKI(t, "MODALITY")
	for _, mode := range []string{"plain", "tls"} {
		t.Run(mode, func(t *testing.T) {
			arch, dest := newTestArchive(), newTestArchive()
			want := fillArchive(t, arch)
			var flags []string
			var addr string
			if mode == "tls" {
				arch.destTLS = pki.Client
				addr = startServer(t, arch.server(pki.Server))
				arch.dests["DEST"] = startServer(t, dest.server(pki.Server))
				flags = []string{"--tls", "--ca", pki.CAFile, "--cert", pki.ClientCert, "--key", pki.ClientKey}
			} else {
				addr = startServer(t, arch.server(nil))
				arch.dests["DEST"] = startServer(t, dest.server(nil))
			}
			base := append([]string{"move", "--aec", "ARCHIVE", addr, "--level", "STUDY", "-k", "StudyInstanceUID=1.2.3"}, flags...)
			cliCase{args: append(base, "--dest", "DEST"), code: 0,
				stdout: []string{"C-MOVE to DEST via ARCHIVE@" + addr + ": 4 completed, 0 failed, 0 warning\n"}}.check(t)
			for inst, data := range want {
				if got, _, ok := dest.get(inst); !ok || !bytes.Equal(got, data) {
					t.Errorf("%s did not arrive intact at the destination", inst)
				}
			}
			cliCase{args: append(base, "--dest", "NOWHERE"), code: 1,
				stderr: []string{"C-MOVE failed: refused: move destination unknown (0xA801)"}}.check(t)
		})
	}
	t.Run("dest required", func(t *testing.T) {
		cliCase{args: []string{"move", "127.0.0.1:104", "-k", "StudyInstanceUID=1.2.3"}, code: 1,
			stderr: []string{`required flag(s) "dest" not set`}}.check(t)
	})
	t.Run("bad dest", func(t *testing.T) {
		cliCase{args: []string{"move", "127.0.0.1:104", "--dest", `A\B`}, code: 1,
			stderr: []string{"--dest"}}.check(t)
	})
}
