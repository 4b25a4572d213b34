package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/dicomshield/dicomshield/internal/archive"
	"github.com/dicomshield/dicomshield/internal/identity"
)

func newUserCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Add, list and remove the users who may authenticate to the archive",
		Long: `Users authenticate with user identity negotiation (a user name and
password) through a registered peer; a peer added with --require-user accepts
no association without one. A user's role limits what the association may do,
within what the peer may do:

  modality  echo, store
  viewer    echo, find, get
  reader    echo, find, get, move
  admin     everything the peer may

Passwords are read from the terminal without echo, or from standard input
with --password-stdin, never from the command line (it shows in the process
list), and are kept only as Argon2id hashes in users.json in the data
directory. Changes take effect at once in a running server, on open
associations too: within about a second, an association that authenticated
a user with a password is aborted (A-ABORT, a security alert in the audit
trail) when the user is removed, its password changed, or its role no longer
allows what the association can do. A token's user is its issuer's, not one
of these: associations authenticated with a token are not ended by them.`,
	}
	cmd.AddCommand(newUserAddCmd(), newUserListCmd(), newUserRemoveCmd(), newUserPasswdCmd())
	return cmd
}

// readPassword reads a new password: from stdin's first line with
// --password-stdin, else from the terminal, asked twice without echo.
func readPassword(cmd *cobra.Command, fromStdin bool) (string, error) {
	in := cmd.InOrStdin()
	if fromStdin {
		line, err := bufio.NewReader(io.LimitReader(in, identity.MaxPasswordLength+2)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", err
		}
		p := strings.TrimRight(line, "\r\n")
		if p == "" {
			return "", errors.New("--password-stdin: standard input held no password")
		}
		return p, nil
	}
	f, ok := in.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", usageError("no terminal to ask for the password on: give it on standard input with --password-stdin")
	}
	ask := func(prompt string) (string, error) {
		fmt.Fprint(cmd.ErrOrStderr(), prompt)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(cmd.ErrOrStderr())
		return string(b), err
	}
	p, err := ask("Password: ")
	if err != nil {
		return "", err
	}
	again, err := ask("Password again: ")
	if err != nil {
		return "", err
	}
	if p != again {
		return "", errors.New("the two passwords differ; nothing was changed")
	}
	return p, nil
}

func newUserAddCmd() *cobra.Command {
	var dir, role string
	var fromStdin bool
	cmd := &cobra.Command{
		Use:   "add NAME --role ROLE",
		Short: "Add a user with a role; the password is asked for",
		Example: `  dicomshield user add alice --role viewer
  printf '%s\n' "$PASS" | dicomshield user add ct-tech --role modality --password-stdin`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := identity.CheckName(name); err != nil {
				return err
			}
			if role == "" {
				return usageError("--role is required: one of %s", identity.RoleNames())
			}
			r, err := identity.ParseRole(role)
			if err != nil {
				return err
			}
			users, err := archive.OpenUsers(dir)
			if err != nil {
				return err
			}
			defer users.Close()
			pass, err := readPassword(cmd, fromStdin)
			if err != nil {
				return err
			}
			if err := users.Add(cmd.Context(), name, r, pass); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "added user %s with role %s (may %s, within what the peer may)\n", name, r, joinRights(r))
			return nil
		},
	}
	addDataFlag(cmd, &dir)
	cmd.Flags().StringVar(&role, "role", "", "the user's role: "+identity.RoleNames())
	cmd.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the password from the first line of standard input")
	return cmd
}

func joinRights(r identity.Role) string {
	var s []string
	for _, x := range r.Rights() {
		s = append(s, string(x))
	}
	return strings.Join(s, ",")
}

func newUserPasswdCmd() *cobra.Command {
	var dir string
	var fromStdin bool
	cmd := &cobra.Command{
		Use:   "passwd NAME",
		Short: "Set a user's password; associations opened with the old one are aborted",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			users, err := archive.OpenUsers(dir)
			if err != nil {
				return err
			}
			defer users.Close()
			if _, err := users.Get(cmd.Context(), args[0]); err != nil {
				return err
			}
			pass, err := readPassword(cmd, fromStdin)
			if err != nil {
				return err
			}
			if err := users.SetPassword(cmd.Context(), args[0], pass); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "password of %s changed\n", args[0])
			return nil
		},
	}
	addDataFlag(cmd, &dir)
	cmd.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the password from the first line of standard input")
	return cmd
}

func newUserListCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List users and their roles",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			users, err := archive.OpenUsers(dir)
			if err != nil {
				return err
			}
			defer users.Close()
			list, err := users.List(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tROLE\tADDED\tPASSWORD CHANGED")
			for _, u := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.Name, u.Role, u.AddedAt.Format("2006-01-02"), u.ChangedAt.Format("2006-01-02"))
			}
			return tw.Flush()
		},
	}
	addDataFlag(cmd, &dir)
	return cmd
}

func newUserRemoveCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a user: refused from now on, its open associations aborted",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			users, err := archive.OpenUsers(dir)
			if err != nil {
				return err
			}
			defer users.Close()
			if err := users.Remove(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed user %s\n", args[0])
			return nil
		},
	}
	addDataFlag(cmd, &dir)
	return cmd
}
