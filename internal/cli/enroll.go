package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dicomshield/dicomshield/internal/archive"
	"github.com/dicomshield/dicomshield/internal/audit"
	"github.com/dicomshield/dicomshield/internal/config"
	"github.com/dicomshield/dicomshield/internal/enroll"
	"github.com/dicomshield/dicomshield/internal/pki"
	"github.com/dicomshield/dicomshield/internal/policy"
)

// TokenEnv is the environment variable "enroll" reads the token from when
// --token is not given, so that the token need not appear in the shell's
// history or the process list.
const TokenEnv = "DICOMSHIELD_ENROLL_TOKEN"

// putPeer registers p, keeping the revoked serials of the peer it
// replaces, and with the replaced peer's current serial revoked when p
// brings another: a re-issued or re-enrolled peer's old certificate is
// refused as revoked.
func putPeer(ctx context.Context, reg *policy.FileRegistry, p policy.Peer) error {
	if old, err := reg.Get(ctx, p.AETitle); err == nil {
		p.RevokedSerials = old.RevokedSerials
		if old.CertSerial != "" && !policy.SameSerial(old.CertSerial, p.CertSerial) {
			old.Revoke()
			p.RevokedSerials = old.RevokedSerials
		}
	} else if !errors.Is(err, policy.ErrUnknownPeer) {
		return err
	}
	return reg.Put(ctx, p)
}

// addPeerWithToken registers p without a certificate and prints a
// one-time enrolment token for it.
func addPeerWithToken(cmd *cobra.Command, dir string, reg *policy.FileRegistry, ca *pki.CA, cfg *config.Config, p policy.Peer, serverName string) error {
	if err := putPeer(cmd.Context(), reg, p); err != nil {
		return err
	}
	tok, expires, err := (&enroll.Tokens{Path: archive.TokensPath(dir)}).Create(p.AETitle, cfg.Enroll.TokenLifetime.Duration(), ca.Fingerprint())
	if err != nil {
		return err
	}
	if err := archive.RecordLocal(dir, cfg, audit.Event{Kind: audit.ConfigChange, Alert: "peer-added", User: archive.OSUser(), Peer: p.AETitle,
		Description: fmt.Sprintf("peer %s registered: hosts %s, may %s; enrolment token issued, valid until %s",
			p.AETitle, joinHosts(p.Hosts), policy.FormatRights(p.Rights), expires.Format(time.RFC3339))}); err != nil {
		return fmt.Errorf("peer registered, but the audit trail could not record it (no token printed; run the command again): %w", err)
	}
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "registered %s: hosts %s, may %s\n", p.AETitle, joinHosts(p.Hosts), policy.FormatRights(p.Rights))
	fmt.Fprintf(out, "enrolment token (works once, until %s; treat it as a password):\n  %s\n", expires.Local().Format("2006-01-02 15:04 MST"), tok)
	if err := printEnrollServer(out, cfg, serverName); err != nil {
		return err
	}
	fmt.Fprintf(out, "the device then checks the archive's CA against the token: SHA-256 %s\n", ca.Fingerprint())
	return nil
}

// certState describes a peer's certificate for "peer list".
func certState(p policy.Peer, pending map[string]time.Time, now time.Time) (state, expires string) {
	expires = "-"
	if !p.CertNotAfter.IsZero() {
		expires = p.CertNotAfter.Local().Format("2006-01-02 15:04")
	}
	switch {
	case p.CertSerial != "" && !p.CertNotAfter.IsZero() && !now.Before(p.CertNotAfter):
		return "expired", expires
	case p.CertSerial != "":
		return "active", expires
	}
	if _, ok := pending[p.AETitle]; ok {
		return "awaiting enrolment", expires
	}
	if len(p.RevokedSerials) > 0 {
		return "revoked", expires
	}
	return "none", expires
}

func newPeerRevokeCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "revoke AE_TITLE",
		Short: "Revoke a peer's certificate: refused from its next association, no restart needed",
		Long: `revoke refuses the peer's current certificate from its next association and
renewal on, in a running server too. The peer stays registered: give it a new
certificate with "peer add AE_TITLE ... --token" (or --bundle).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			reg, _, cfg, err := archive.OpenRegistry(dir)
			if err != nil {
				return err
			}
			ae := strings.TrimSpace(args[0])
			var serial string
			err = reg.Modify(cmd.Context(), ae, func(p *policy.Peer) error {
				if serial = p.Revoke(); serial == "" {
					return fmt.Errorf("peer %s has no current certificate to revoke", ae)
				}
				return nil
			})
			if err != nil {
				return err
			}
			if err := archive.RecordLocal(dir, cfg, audit.Event{Kind: audit.ConfigChange, Alert: "peer-revoked", User: archive.OSUser(), Peer: ae,
				Description: fmt.Sprintf("certificate %s of peer %s revoked", serial, ae)}); err != nil {
				return fmt.Errorf("certificate %s of %s revoked, but the audit trail could not record it: %w", serial, ae, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked certificate %s of %s\n", serial, ae)
			return nil
		},
	}
	addDataFlag(cmd, &dir)
	return cmd
}

func newEnrollCmd() *cobra.Command {
	var token, server, out, ae string
	var renew, force bool
	cmd := &cobra.Command{
		Use:   "enroll --token TOKEN --server HOST:PORT --out DIR",
		Short: "Fetch this device's certificate from an archive, or renew it",
		Long: `enroll runs on the device. It makes the device's key (ECDSA P-256), which
never leaves this machine, and fetches a certificate for it from the archive's
enrolment listener (port 2763 by default), using the one-time token that
"dicomshield peer add ... --token" printed. The archive is trusted only if its
CA has the fingerprint the token carries. DIR then holds ca.pem, AE.crt and
AE.key (mode 0600), for DCMTK: storescu +tls AE.key AE.crt +cf ca.pem ...

The token may also be given in $` + TokenEnv + `, to keep it out of the
shell's history.

--renew renews the certificate in DIR with the current one, once two thirds
of its life have passed (run it daily from a timer); --force renews at once.
The old certificate is refused from then on.`,
		Example: `  dicomshield enroll --token dsenroll1.… --server pacs.example.org:2763 --out /etc/dicom/tls
  dicomshield enroll --renew --server pacs.example.org:2763 --out /etc/dicom/tls`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if server == "" || out == "" {
				return errors.New("--server HOST:PORT and --out DIR are required")
			}
			w := cmd.OutOrStdout()
			if renew {
				if token != "" {
					return errors.New("--renew uses the current certificate, not a token")
				}
				cur, err := enroll.LoadBundle(out, ae)
				if err != nil {
					return err
				}
				if due := pki.RenewDue(cur.Cert, time.Now()); !due && !force {
					life := cur.Cert.NotAfter.Sub(cur.Cert.NotBefore)
					fmt.Fprintf(w, "%s: certificate valid until %s; renewal is due from %s (use --force to renew now)\n",
						cur.AETitle, cur.NotAfter.Local().Format("2006-01-02 15:04"), cur.Cert.NotBefore.Add(life*2/3).Local().Format("2006-01-02 15:04"))
					return nil
				}
				res, err := enroll.Renew(cmd.Context(), server, out, ae)
				if err != nil {
					return err
				}
				fmt.Fprintf(w, "renewed the certificate of %s: serial %s, valid until %s\n", res.AETitle, res.Serial, res.NotAfter.Local().Format("2006-01-02 15:04"))
				return nil
			}
			if token == "" {
				token = os.Getenv(TokenEnv)
			}
			if token == "" {
				return fmt.Errorf("--token (or $%s) is required, or --renew", TokenEnv)
			}
			res, err := enroll.Enrol(cmd.Context(), server, token, out)
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "enrolled as %s: certificate %s valid until %s\n", res.AETitle, res.Serial, res.NotAfter.Local().Format("2006-01-02 15:04"))
			fmt.Fprintf(w, "wrote %s, %s and %s (keep the key secret)\n", res.CAFile, res.CertFile, res.KeyFile)
			fmt.Fprintf(w, "renew it before it expires: dicomshield enroll --renew --server %s --out %s (daily, from a timer)\n", server, out)
			return nil
		},
	}
	cmd.Flags().StringVar(&token, "token", "", "the one-time enrolment token (or $"+TokenEnv+")")
	cmd.Flags().StringVar(&server, "server", "", "the archive's enrolment listener, HOST:PORT (port 2763 by default)")
	cmd.Flags().StringVar(&out, "out", "", "directory for ca.pem, AE.crt and AE.key")
	cmd.Flags().BoolVar(&renew, "renew", false, "renew the certificate in --out with the current one")
	cmd.Flags().BoolVar(&force, "force", false, "with --renew: renew even if not yet due")
	cmd.Flags().StringVar(&ae, "ae", "", "with --renew: the AE title, when --out holds several certificates")
	return cmd
}
