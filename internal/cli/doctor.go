package cli

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dicomshield/dicomshield/internal/doctor"
)

// doctorHighExit is doctor's exit status when it finds a high-severity
// weakness: distinct from 1, which says doctor itself could not run.
const doctorHighExit = 2

func newDoctorCmd() *cobra.Command {
	var dir string
	var asJSON, noProbe bool
	var days int
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check the archive's configuration and listeners and name every weakness",
		Long: `doctor reads the archive's configuration, registered devices and certificates,
probes its listeners on this machine, and names every weakness it finds with
its severity and what to do. It changes nothing.

The probes are one TLS handshake without a client certificate and, when the
unencrypted listener is on, one association under an unregistered AE title.
A healthy server refuses both, and each counts as one rejected attempt from
the address the probes come from (see [abuse] in the configuration): doctor
says how many runs within ban_duration get that address banned, unless
[abuse] never_ban lists it.

Exit status: 0 when nothing of high severity was found, 2 when something was,
1 when doctor could not run.`,
		Example: `  dicomshield doctor --data /srv/pacs
  dicomshield doctor --data /srv/pacs --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if days < 1 {
				return fmt.Errorf("--days %d: give a number of days of 1 or more", days)
			}
			r, err := doctor.Inspect(cmd.Context(), doctor.Options{Dir: dir, NoProbe: noProbe, ExpiryWarning: time.Duration(days) * 24 * time.Hour})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if r.Findings == nil {
					r.Findings = []doctor.Finding{}
				}
				if err := enc.Encode(r); err != nil {
					return err
				}
			} else {
				writeDoctorText(out, r)
			}
			if n := r.Count(doctor.High); n > 0 {
				return &exitError{code: doctorHighExit, err: fmt.Errorf("%d high-severity %s found", n, plural(n, "weakness", "weaknesses"))}
			}
			return nil
		},
	}
	addDataFlag(cmd, &dir)
	cmd.Flags().BoolVar(&asJSON, "json", false, "write the report as JSON")
	cmd.Flags().BoolVar(&noProbe, "no-probe", false, "check the configuration only; do not connect to the listeners")
	cmd.Flags().IntVar(&days, "days", int(doctor.DefaultExpiryWarning/(24*time.Hour)), "warn when the CA certificate expires within this many days (server and peer certificates: when they miss their renewal)")
	return cmd
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func writeDoctorText(w interface{ Write([]byte) (int, error) }, r *doctor.Report) {
	fmt.Fprintf(w, "dicomshield doctor: %s\n\n", r.Dir)
	for _, p := range r.Probes {
		line := fmt.Sprintf("%s listener %s: %s", p.Listener, p.Address, p.Result)
		if p.From != "" {
			line = fmt.Sprintf("%s listener %s (probed from %s): %s", p.Listener, p.Address, p.From, p.Result)
		}
		if p.TLSVersion != "" {
			line += ", " + p.TLSVersion
		}
		if c := p.Certificate; c != nil {
			from := "not from this archive's CA"
			if c.FromOurCA {
				from = "from this archive's CA"
			}
			line += fmt.Sprintf("; certificate for %s, %s, valid until %s", strings.Join(c.Names, ", "), from, c.NotAfter.UTC().Format(time.DateOnly))
		}
		fmt.Fprintln(w, line)
	}
	if len(r.Probes) > 0 {
		fmt.Fprintln(w)
	}
	if len(r.Findings) == 0 {
		fmt.Fprintln(w, "No weakness found.")
		return
	}
	for _, f := range r.Findings {
		fmt.Fprintf(w, "%-6s  %s\n        %s\n        What to do: %s\n\n", strings.ToUpper(f.Severity.String()), f.Check, f.Problem, f.Fix)
	}
	var parts []string
	for s := doctor.High; s >= doctor.Info; s-- {
		if n := r.Count(s); n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, s))
		}
	}
	fmt.Fprintf(w, "%d %s: %s\n", len(r.Findings), plural(len(r.Findings), "finding", "findings"), strings.Join(parts, ", "))
}
