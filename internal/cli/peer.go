package cli

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/dicomshield/dicomshield/internal/archive"
	"github.com/dicomshield/dicomshield/internal/audit"
	"github.com/dicomshield/dicomshield/internal/config"
	"github.com/dicomshield/dicomshield/internal/enroll"
	"github.com/dicomshield/dicomshield/internal/pki"
	"github.com/dicomshield/dicomshield/internal/policy"
)

func newPeerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "peer",
		Short: "Register, list and remove the peers that may use the archive",
		Long: `Only registered peers may associate with the archive, each from its registered
addresses, with its own certificate, and only for what it was allowed.
Changes take effect at once in a running server.`,
	}
	cmd.AddCommand(newPeerAddCmd(), newPeerListCmd(), newPeerSetCmd(), newPeerRemoveCmd(), newPeerRevokeCmd())
	return cmd
}

func newPeerAddCmd() *cobra.Command {
	var dir, allow, bundle, serverName string
	var hosts []string
	var port int
	var plaintext, requireUser, mayReopen, token bool
	cmd := &cobra.Command{
		Use:   "add AE_TITLE --host ADDR_OR_CIDR --allow RIGHTS (--token | --bundle DIR)",
		Short: "Register a peer and write its certificate bundle",
		Long: `Register a peer by its AE title, the addresses it connects from, and what it may
do (echo, store, find, get, move). A client certificate bound to the AE title
is written into --bundle DIR as ca.pem, AE_TITLE.crt and AE_TITLE.key: give
those three files to the device. DCMTK uses them as
  storescu +tls AE_TITLE.key AE_TITLE.crt +cf ca.pem ...
and dicomshield's clients as --tls --key AE_TITLE.key --cert AE_TITLE.crt --ca ca.pem.

With --token instead of --bundle, nothing secret is written: a one-time
enrolment token is printed, and on the device
  dicomshield enroll --token TOKEN --server ARCHIVE:2763 --out DIR
makes the device's own key and fetches its certificate into DIR, in the same
layout. The token works once, from the peer's registered addresses, until it
expires ([enroll] token_lifetime, 24 hours by default).

--port registers where the peer receives C-MOVE sub-operations. --plaintext
lets the peer use the plain listener (when one is configured): its traffic is
then readable by anyone on the network.

--require-user refuses the peer's associations unless they authenticate a
user (dicomshield user add) with a password or a token; the user's role then
limits what the association may do.

--may-reopen lets the peer add images to a series it created after the series
was sealed (tamper.seal_after).`,
		Example: `  dicomshield peer add CT01 --host 10.0.4.21 --allow echo,store --bundle ./ct01
  dicomshield peer add VIEWER --host 10.0.5.0/24 --allow echo,find,get,move --port 11112 --bundle ./viewer
  dicomshield peer add US02 --host 10.0.4.30 --allow echo,store --token`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			reg, ca, cfg, err := archive.OpenRegistry(dir)
			if err != nil {
				return err
			}
			ae := strings.TrimSpace(args[0])
			if err := config.CheckAETitle(ae); err != nil {
				return err
			}
			rights, err := policy.ParseRights(allow)
			if err != nil {
				return err
			}
			if len(hosts) == 0 {
				return errors.New("--host is required: the addresses (or CIDR ranges) the peer connects from")
			}
			var prefixes []netip.Prefix
			for _, h := range hosts {
				for _, part := range strings.Split(h, ",") {
					p, err := policy.ParseHost(strings.TrimSpace(part))
					if err != nil {
						return err
					}
					prefixes = append(prefixes, p)
				}
			}
			switch {
			case token && bundle != "":
				return errors.New("give --token or --bundle, not both: a token lets the device make its own key, a bundle carries one")
			case token:
				return addPeerWithToken(cmd, dir, reg, ca, cfg, policy.Peer{AETitle: ae, Hosts: prefixes, Port: port, Rights: rights, Plaintext: plaintext, RequireUser: requireUser, MayReopen: mayReopen, AddedAt: time.Now()}, serverName)
			case bundle == "":
				return errors.New("--token or --bundle DIR is required: how the peer gets its certificate")
			}
			if err := os.MkdirAll(bundle, 0o700); err != nil {
				return err
			}
			serial, err := ca.IssuePeer(ae, bundle)
			if err != nil {
				return err
			}
			p := policy.Peer{AETitle: ae, Hosts: prefixes, Port: port, Rights: rights, Plaintext: plaintext, CertSerial: serial, RequireUser: requireUser, AddedAt: time.Now(),
				MayReopen: mayReopen}
			if err := putPeer(cmd.Context(), reg, p); err != nil {
				return err
			}
			if err := archive.RecordLocal(dir, cfg, audit.Event{Kind: audit.ConfigChange, Alert: "peer-added", User: archive.OSUser(), Peer: ae,
				Description: fmt.Sprintf("peer %s registered: hosts %s, may %s", ae, joinHosts(prefixes), policy.FormatRights(rights))}); err != nil {
				return fmt.Errorf("peer registered, but the audit trail could not record it: %w", err)
			}
			base := pki.PeerFileBase(ae)
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "registered %s: hosts %s, may %s\n", ae, joinHosts(prefixes), policy.FormatRights(rights))
			fmt.Fprintf(out, "certificate bundle in %s: ca.pem, %s.crt, %s.key (keep the key secret)\n", bundle, base, base)
			fmt.Fprintf(out, "test it: dicomshield echo HOST:2762 --aet %s --aec ARCHIVE_AE --tls --ca %s --cert %s --key %s\n",
				ae, filepath.Join(bundle, "ca.pem"), filepath.Join(bundle, base+".crt"), filepath.Join(bundle, base+".key"))
			return nil
		},
	}
	addDataFlag(cmd, &dir)
	cmd.Flags().StringSliceVar(&hosts, "host", nil, "address or CIDR range the peer connects from (repeatable)")
	cmd.Flags().StringVar(&allow, "allow", "echo", "what the peer may do: echo,store,find,get,move")
	cmd.Flags().IntVar(&port, "port", 0, "port where the peer receives C-MOVE sub-operations (0: not a move destination)")
	cmd.Flags().BoolVar(&plaintext, "plaintext", false, "allow this peer on the plain (unencrypted) listener")
	cmd.Flags().BoolVar(&mayReopen, "may-reopen", false, "let this peer add to sealed series it created itself")
	cmd.Flags().StringVar(&bundle, "bundle", "", "directory to write the peer's ca.pem, certificate and key into")
	cmd.Flags().BoolVar(&requireUser, "require-user", false, "refuse the peer's associations unless a user authenticates (password or token)")
	cmd.Flags().BoolVar(&token, "token", false, "print a one-time enrolment token instead of writing a bundle")
	cmd.Flags().StringVar(&serverName, "server-name", "", "with --token: the host (or host:port) the device reaches the enrolment server at, for the printed command")
	return cmd
}

func joinHosts(ps []netip.Prefix) string {
	var s []string
	for _, p := range ps {
		s = append(s, policy.FormatHost(p))
	}
	return strings.Join(s, ",")
}

func newPeerListCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List registered peers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			reg, _, _, err := archive.OpenRegistry(dir)
			if err != nil {
				return err
			}
			peers, err := reg.List(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			pending, err := (&enroll.Tokens{Path: archive.TokensPath(dir)}).Pending()
			if err != nil {
				return err
			}
			now := time.Now()
			fmt.Fprintln(tw, "AE TITLE\tHOSTS\tRIGHTS\tMOVE PORT\tPLAINTEXT\tREQUIRE USER\tMAY REOPEN\tADDED\tCERTIFICATE\tEXPIRES")
			for _, p := range peers {
				port := "-"
				if p.Port > 0 {
					port = fmt.Sprint(p.Port)
				}
				state, expires := certState(p, pending, now)
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%v\t%v\t%s\t%s\t%s\n", p.AETitle, joinHosts(p.Hosts), policy.FormatRights(p.Rights), port, p.Plaintext, p.RequireUser, p.MayReopen, p.AddedAt.Format("2006-01-02"), state, expires)
			}
			return tw.Flush()
		},
	}
	addDataFlag(cmd, &dir)
	return cmd
}

func newPeerRemoveCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "remove AE_TITLE",
		Short: "Remove a peer: refused from its next association, no restart needed",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			reg, _, cfg, err := archive.OpenRegistry(dir)
			if err != nil {
				return err
			}
			ae := strings.TrimSpace(args[0])
			if err := reg.Remove(cmd.Context(), ae); err != nil {
				return err
			}
			if err := archive.RecordLocal(dir, cfg, audit.Event{Kind: audit.ConfigChange, Alert: "peer-removed", User: archive.OSUser(), Peer: ae,
				Description: "peer " + ae + " removed: refused from now on, its open associations aborted by a running serve"}); err != nil {
				return fmt.Errorf("peer removed, but the audit trail could not record it: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed %s\n", strings.TrimSpace(args[0]))
			return nil
		},
	}
	addDataFlag(cmd, &dir)
	return cmd
}

func newValidateCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "validate [FILE]",
		Short: "Check a config file strictly and explain every problem",
		Long: `validate reads a dicomshield.toml (by default the one in --data) strictly:
unknown keys, wrong types and unsafe settings are reported with the reason
and how to fix them. The exit status is 1 when there is any problem.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := config.Path(dir)
			if len(args) == 1 {
				path = args[0]
			}
			if _, err := config.Load(path); err != nil {
				return &exitError{code: 1, err: err}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: valid\n", path)
			return nil
		},
	}
	addDataFlag(cmd, &dir)
	return cmd
}
