package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dicomshield/dicomshield/internal/archive"
	"github.com/dicomshield/dicomshield/internal/policy"
)

func newPeerSetCmd() *cobra.Command {
	var dir, allow string
	var requireUser, mayReopen bool
	cmd := &cobra.Command{
		Use:   "set AE_TITLE [--require-user[=false]] [--may-reopen[=false]] [--allow RIGHTS]",
		Short: "Change a registered peer's settings; its certificate stays valid",
		Long: `set changes what a registered peer may do without issuing a new certificate:
--require-user turns on (or with =false off) the need for an authenticated
user on each of its associations, --may-reopen (or =false) lets it add to
sealed series it created itself, --allow replaces its rights. Only the
flags given change. A running server applies the change from the peer's next
association.`,
		Example: `  dicomshield peer set WS1 --require-user
  dicomshield peer set CT01 --allow echo,store`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f := cmd.Flags()
			if !f.Changed("require-user") && !f.Changed("allow") && !f.Changed("may-reopen") {
				return usageError("nothing to change: give --require-user[=false], --may-reopen[=false] or --allow RIGHTS")
			}
			reg, _, _, err := archive.OpenRegistry(dir)
			if err != nil {
				return err
			}
			p, err := reg.Get(cmd.Context(), strings.TrimSpace(args[0]))
			if err != nil {
				return err
			}
			if f.Changed("require-user") {
				p.RequireUser = requireUser
			}
			if f.Changed("may-reopen") {
				p.MayReopen = mayReopen
			}
			if f.Changed("allow") {
				if p.Rights, err = policy.ParseRights(allow); err != nil {
					return err
				}
			}
			if err := reg.Put(cmd.Context(), *p); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: may %s, requires a user: %v, may reopen its sealed series: %v\n", p.AETitle, policy.FormatRights(p.Rights), p.RequireUser, p.MayReopen)
			return nil
		},
	}
	addDataFlag(cmd, &dir)
	cmd.Flags().BoolVar(&requireUser, "require-user", false, "refuse the peer's associations unless a user authenticates (--require-user=false to stop)")
	cmd.Flags().BoolVar(&mayReopen, "may-reopen", false, "let the peer add to sealed series it created itself (--may-reopen=false to stop)")
	cmd.Flags().StringVar(&allow, "allow", "", "replace what the peer may do: echo,store,find,get,move")
	return cmd
}
